"""Config options generated from code (one source of truth each), registered into Hydra's ConfigStore.

* ``teacher=`` and ``student=``: every architecture of the model registry (as listed, torch-free, in
  ``kdrun/models/catalog.py``) becomes
  ``teacher/<name>`` and ``student/<name>``, holding ``arch``, an optional ``checkpoint`` and the
  architecture's own options (e.g. ``hidden`` for ``mlp``), so ``kdrun teacher=mlp
  teacher.hidden=[1200,1200]`` works (likewise ``assistant/<name>`` for scheme=assistant's
  middle model). The teacher also has ``lr``: its learning rate when kdrun
  trains it (null = ``trainer.lr``), because the reference recipe trains the teachers at 0.05 while
  lowering the lr of some students (MobileNetV2, ShuffleNets) to 0.01 (trainer=cifar sets both from
  the catalog's ``recipe_lr``).
* ``experiment=``: a preset for every cell of the published benchmark tables
  (:mod:`kdrun.config.presets`, generated from ``kdrun/benchmarks/*.yaml``). Storing their ~200
  nodes took half a second of every start, so they are registered only for a command line that can use
  them (:func:`presets_needed`).
"""

from __future__ import annotations

import datetime

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from kdrun.config.sweeps import job_dir_name
from kdrun.data.cache_dir import data_root
from kdrun.models.catalog import arch_info, list_archs, recipe_lr
from kdrun.models.foreign_nodes import FOREIGN_NODES

MODEL_GROUPS = ("teacher", "student", "assistant")  # assistant: scheme=assistant's middle model


def model_node(name: str, group: str = "student") -> dict:
    extra = {"lr": None} if group == "teacher" else {}
    if name in FOREIGN_NODES:
        return {"arch": name, "checkpoint": None, **extra, **FOREIGN_NODES[name]}
    spec = arch_info(name)
    return {"arch": name, "checkpoint": None, **extra, **spec.defaults}


# dataset= options whose other keys are their loader's arguments (dataset.root=... for a user's loader)
OPEN_DATASETS = {"custom": ("_target_",), "torchvision": ("_target_", "name", "root", "download", "image_size",
                                                           "normalize")}


def open_model_options(args: list[str]) -> list[str]:
    """``teacher.width=64`` for a ``custom``/``timm``/``hf`` teacher becomes ``++teacher.width=64``: such a node's
    options are its builder's arguments, not keys of the node (the builder's signature checks them, in one line:
    kdrun/models/targets.py). Other overrides are left as they are (a mistyped key of a zoo model stays an error)."""
    chosen = {}
    for a in args:
        key, _, value = a.partition("=")
        if key in MODEL_GROUPS and value in FOREIGN_NODES or key == "dataset" and value in OPEN_DATASETS:
            chosen[key] = value
    out = []
    for a in args:
        key, eq, _ = a.partition("=")
        group, _, sub = key.partition(".")
        kind = chosen.get(group)
        known = OPEN_DATASETS.get(kind, ()) if group == "dataset" else (*model_node(kind, group), "lr") if kind else ()
        if eq and kind and sub and "." not in sub and sub not in known:
            a = f"++{a}"
        out.append(a)
    return out


def register_resolvers() -> None:
    """``${kdrun.name:${name}}``: the run's folder name, or the start time when ``name`` is null.
    Cached, so every use within one config (and every job of a sweep: Hydra copies the cache
    into each job's config) sees the same time.

    ``${kdrun.data_root:}``: ``paths.data``, the per-user data cache (kdrun/data/cache_dir.py).
    ``${kdrun.recipe_lr:<recipe>,<arch>,<base lr>}``: an architecture's own lr in a training recipe
    (the architecture's ``recipe_lr`` in kdrun/models/catalog.py; trainer=cifar uses it for trainer.lr and teacher.lr).
    ``${kdrun.job_dir:<task overrides>,<excluded keys>}``: a sweep job's folder name (kdrun/config/sweeps.py).
    """
    if not OmegaConf.has_resolver("kdrun.name"):
        OmegaConf.register_new_resolver("kdrun.name", run_name, use_cache=True)
    if not OmegaConf.has_resolver("kdrun.data_root"):
        OmegaConf.register_new_resolver("kdrun.data_root", data_root)
    if not OmegaConf.has_resolver("kdrun.recipe_lr"):
        OmegaConf.register_new_resolver("kdrun.recipe_lr", lambda recipe, arch, base: recipe_lr(recipe, arch, base))
    if not OmegaConf.has_resolver("kdrun.job_dir"):
        OmegaConf.register_new_resolver("kdrun.job_dir", job_dir_name)


def run_name(name: object) -> str:
    if name is None or str(name) == "":
        return datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return str(name)


_registered = False  # the teacher=/student=/assistant= options and the resolvers
_presets_registered = False  # the experiment= presets
# Flags that run something without asking kdrun or Hydra to list or print anything
RUN_FLAGS = ("-m", "--multirun")


def presets_needed(args: list[str]) -> bool:
    """Whether a command line can use the benchmark presets: it names ``experiment`` (a preset, a value in a
    sweep, ``+experiment=``), or it has a flag other than ``-m`` (``--help``, ``--list``, ``--cfg``,
    ``--info``, shell completion, ``--config-dir``...), which may list or load them."""
    return any("experiment" in a or (a.startswith("-") and a not in RUN_FLAGS) for a in args)


def _share_store_between_compositions() -> None:
    """Stop Hydra from deep-copying the whole ConfigStore on every composition.

    Each ``compose`` (and each job of a multirun) builds a ``CachingConfigRepository``, which
    deep-copies its delegate "to avoid mutating it with initialize_sources()" -- and with it the
    ConfigStore singleton that its structured-config source points at. With the ~200 benchmark
    presets that copy cost more than the rest of the composition. Sharing the store is safe:
    ``initialize_sources`` only rebuilds the list of sources, and ``ConfigStore.load`` already
    hands out a deep copy of the one node it loads.
    """
    if "__deepcopy__" not in vars(ConfigStore):
        ConfigStore.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]


def register_configs(presets: bool = True) -> None:
    """Idempotent (tests compose configs many times). ``presets=False`` leaves out the experiment= presets;
    a later call with ``presets=True`` adds them."""
    global _registered, _presets_registered
    if not _registered:
        register_resolvers()  # ${kdrun.name:...} in hydra.run.dir / hydra.sweep.dir, paths.data, trainer=cifar's lr
        _share_store_between_compositions()
        cs = ConfigStore.instance()
        for name in [*list_archs(), *FOREIGN_NODES]:
            for group in MODEL_GROUPS:
                cs.store(group=group, name=name, node=model_node(name, group))
        _registered = True
    if presets and not _presets_registered:
        from kdrun.config.presets import register_presets  # after the models: presets name them

        register_presets()
        _presets_registered = True


def register_user_archs(args: list[str]) -> list[str]:
    """The user's own architectures (``arch/*.yaml`` in the config folders ``args`` names, kdrun/models/user_archs.py)
    as ``teacher=``, ``student=`` and ``assistant=`` options, written like the built-ins' nodes; their names."""
    from kdrun.models.user_archs import user_archs

    archs = user_archs(args, set(list_archs()) | set(FOREIGN_NODES))
    cs = ConfigStore.instance()
    for name, arch in archs.items():
        for group in MODEL_GROUPS:
            extra = {"lr": None} if group == "teacher" else {}
            node = {"arch": name, "checkpoint": None, "taps": None, "family": None, **extra, **arch["node"]}
            cs.store(group=group, name=name, node=node)
    return list(archs)


def leave_registration_to_the_jobs() -> None:
    """In a parallel sweep's worker process (kdrun/config/sweep_workers.py): each job arrives with the sweep's
    ConfigStore (Hydra's singleton state), so storing its nodes here would be wasted (~0.7 CPU-s per
    worker). The resolvers are registered (the pair checks resolve ``${kdrun.data_root:}`` before any
    job), and compositions still share the store instead of copying it."""
    global _registered, _presets_registered
    register_resolvers()
    _share_store_between_compositions()
    _registered = _presets_registered = True
