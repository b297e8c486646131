"""What one deploys from a distilled student: int8 (quantization-aware distillation, post-training
quantization) and magnitude-pruned rows. The fine-tuned ones share one KD fine-tune (finetune.py)."""

from kdrun.schemes.compression.pruned import pruned_stage
from kdrun.schemes.compression.quantized import dynamic_int8_stage, ptq_stage, qat_stage

__all__ = ["dynamic_int8_stage", "pruned_stage", "ptq_stage", "qat_stage"]
