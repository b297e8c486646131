"""Layer 5: config -> objects (``build``) and the distillation step the engine calls (``DistillTask`` and its
variants: momentum teachers, selective distillation)."""
