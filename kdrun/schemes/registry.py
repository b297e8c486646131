"""The schemes, and the one scheme a config selects.

A scheme is chosen with ``scheme=<name>``: ``conf/scheme/<name>.yaml`` names its class in
``scheme._target_`` and sets its options and its default ``stages``. :data:`SCHEMES` is read from those
files (the config group is the registry: a new scheme is its file here and its YAML, nothing else to
edit); nothing here imports torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from kdrun.conf_dir import config_dir
from kdrun.errors import KdrunError
from kdrun.objects import from_config
from kdrun.schemes.base import Scheme


def scheme_classes(conf: str | Path) -> tuple[type[Scheme], ...]:
    """The classes that ``<conf>/scheme/*.yaml`` name in ``scheme._target_``, in file-name order."""
    classes = []
    for path in sorted(Path(conf, "scheme").glob("*.yaml")):
        module, _, name = str(OmegaConf.load(path).scheme._target_).rpartition(".")
        classes.append(getattr(importlib.import_module(module), name))
    return tuple(classes)


SCHEMES: tuple[type[Scheme], ...] = scheme_classes(config_dir())
STAGE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(s for scheme in SCHEMES for s in scheme.stage_names))


def scheme_from_config(cfg: DictConfig) -> Scheme:
    """The scheme ``cfg.scheme`` describes: its ``_target_`` class, built from its other keys but ``name``.

    (Built here rather than in kdrun/tasks/build.py, which imports torch: preflight checks the scheme, and a
    command must answer without loading torch; kdrun/objects.py is the torch-free instantiate.)
    """
    node = cfg.get("scheme")
    if node is None or "_target_" not in node:
        raise KdrunError("scheme has no _target_; choose one with scheme=<name>, valid choices: "
                         + ", ".join(s.name for s in SCHEMES))
    kwargs = OmegaConf.to_container(node, resolve=True)
    name = kwargs.pop("name", None)
    scheme = from_config(kwargs, f"scheme={name}", _convert_="all")
    if not isinstance(scheme, Scheme):
        raise KdrunError(f"scheme._target_={node._target_} is not a scheme (a subclass of kdrun.schemes.base.Scheme)")
    if name is not None and name != scheme.name:
        raise KdrunError(f"scheme.name={name} does not match scheme._target_={node._target_} (scheme {scheme.name})")
    return scheme


def check_scheme(cfg: DictConfig) -> Scheme:
    """The scheme exists, its options are valid and every requested stage is one it runs (one-line errors,
    before any work); returns it."""
    scheme = scheme_from_config(cfg)
    scheme.check(cfg)
    return scheme


def described_before_data(cfg: DictConfig):
    """The dataset's static facts (kdrun/data/static_info.py), or None for a dataset kdrun cannot describe
    without loading it."""
    from kdrun.data.static_info import static_info

    try:
        return static_info(OmegaConf.to_container(cfg.dataset, resolve=True))
    except MissingMandatoryValue:
        return None  # e.g. dataset=imagefolder without dataset.root: the builder says what is missing


def check_before_data(cfg: DictConfig) -> None:
    """The architecture/dataset/method checks of :meth:`SchemeContext.check_pairs`, run against the
    dataset's static facts before anything is read, generated or downloaded. A dataset kdrun cannot
    describe without loading it is checked by the pipeline instead, once loaded. Imports torch (the
    models are built on the meta device), so preflight runs it after every torch-free check."""
    import torch

    from kdrun.data.base import DataBundle
    from kdrun.schemes.context import SchemeContext

    info = described_before_data(cfg)
    if info is None:
        return
    # labels only size CRD's memory banks and its negative sampling: any balanced stand-in does
    targets = torch.arange(max(info.num_train, info.num_classes)) % info.num_classes
    scheme = scheme_from_config(cfg)
    SchemeContext(cfg, DataBundle(info, None, None, targets)).check_pairs(scheme.pairs(cfg), scheme.name, on_meta=True)
