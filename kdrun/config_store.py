"""The ``teacher=`` and ``student=`` options come from the model registry (one source of truth).

Each registered architecture becomes ``teacher/<name>`` and ``student/<name>`` in Hydra's
ConfigStore, holding ``arch``, an optional ``checkpoint`` and the architecture's own options
(e.g. ``hidden`` for ``mlp``), so ``kdrun teacher=mlp teacher.hidden=[1200,1200]`` works.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from kdrun.models.registry import list_models, model_spec

MODEL_GROUPS = ("teacher", "student")
RESERVED_MODEL_KEYS = ("arch", "checkpoint")


def model_node(name: str) -> dict:
    spec = model_spec(name)
    return {"arch": name, "checkpoint": None, **spec.defaults}


def register_configs() -> None:
    from kdrun.sweeps import register_resolvers

    register_resolvers()  # ${kdrun.name:...} in hydra.run.dir / hydra.sweep.dir
    cs = ConfigStore.instance()
    for name in list_models():
        for group in MODEL_GROUPS:
            cs.store(group=group, name=name, node=model_node(name))
