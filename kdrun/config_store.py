"""Config options generated from code (one source of truth each), registered into Hydra's ConfigStore.

* ``teacher=`` and ``student=``: every architecture of the model registry becomes
  ``teacher/<name>`` and ``student/<name>``, holding ``arch``, an optional ``checkpoint`` and the
  architecture's own options (e.g. ``hidden`` for ``mlp``), so ``kdrun teacher=mlp
  teacher.hidden=[1200,1200]`` works. The teacher also has ``lr``: its learning rate when kdrun
  trains it (null = ``trainer.lr``), because the reference recipe trains the teachers at 0.05 while
  lowering the lr of some students (MobileNetV2, ShuffleNets) to 0.01.
* ``experiment=``: a preset for every cell of the published benchmark tables
  (:mod:`kdrun.benchmarks.presets`, generated from ``kdrun/benchmarks/*.yaml``).
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from kdrun.models.registry import list_models, model_spec

MODEL_GROUPS = ("teacher", "student")
RESERVED_MODEL_KEYS = ("arch", "checkpoint", "lr")


def model_node(name: str, group: str = "student") -> dict:
    spec = model_spec(name)
    extra = {"lr": None} if group == "teacher" else {}
    return {"arch": name, "checkpoint": None, **extra, **spec.defaults}


_registered = False


def register_configs() -> None:
    """Idempotent: storing ~270 nodes costs about a second, and tests compose configs many times."""
    global _registered
    if _registered:
        return
    from kdrun.benchmarks.presets import register_presets  # after the models: presets name them

    cs = ConfigStore.instance()
    for name in list_models():
        for group in MODEL_GROUPS:
            cs.store(group=group, name=name, node=model_node(name, group))
    register_presets()
    _registered = True
