"""Architectures: the registry, the CIFAR zoo, small models for small data.

The names below load on first use (PEP 562), so ``kdrun.models.catalog`` -- the torch-free facts the
command line and the config checks read -- can be imported without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdrun.models.base import KDModel
    from kdrun.models.features import FeatureInfo, Features
    from kdrun.models.registry import create_model, list_models, model_spec

_EXPORTS = {"KDModel": "kdrun.models.base", "FeatureInfo": "kdrun.models.features", "Features": "kdrun.models.features",
            "create_model": "kdrun.models.registry", "list_models": "kdrun.models.registry",
            "model_spec": "kdrun.models.registry"}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kdrun.models' has no attribute {name!r}")
