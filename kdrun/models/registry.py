"""The one registry of architectures: ``kdrun/models/arch/<name>.yaml`` (read by ``kdrun/models/catalog.py``).

``create_model`` builds an architecture for a dataset's input shape and class count with the builder its
file names (``_target_``); ``list_models`` lists names. An architecture is its builder and its file: it is
selectable (``teacher=<name>``), listed, documented and tested (tests parametrize over this list) the day
its file exists.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from kdrun.errors import choice_error
from kdrun.models.base import KDModel
from kdrun.models.catalog import arch_info, list_archs


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., KDModel]
    family: str
    input_kind: str
    defaults: dict[str, Any] = field(default_factory=dict)
    doc: str = ""
    recipe_lr: dict[str, float] = field(default_factory=dict)


@cache
def _builder(target: str) -> Callable[..., KDModel]:
    """The builder a ``kdrun/models/arch`` file names: its module is imported only when that architecture is used."""
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def list_models(family: str | None = None, input_kind: str | None = None) -> list[str]:
    return list_archs(family, input_kind)


def model_spec(name: str, key: str = "model") -> ModelSpec:
    a = arch_info(name, key)
    return ModelSpec(a.name, _builder(a.target), a.family, a.input_kind, dict(a.defaults), a.doc, dict(a.recipe_lr))


def create_model(
    name: str, *, num_classes: int, in_channels: int, input_size: tuple[int, ...],
    data_facts: dict[str, Any] | None = None, **kwargs: Any
) -> KDModel:
    """Build architecture ``name`` for inputs of shape ``(in_channels, *input_size)``. For token inputs
    ``in_channels`` is the vocabulary size and ``data_facts`` holds the dataset's ``pad_id`` and ``tokenizer``."""
    spec = model_spec(name)
    unknown = set(kwargs) - set(spec.defaults)
    if unknown:
        raise choice_error(f"{name} option", sorted(unknown)[0], spec.defaults or ["(none)"])
    args = {**spec.defaults, **kwargs}
    return spec.builder(num_classes=num_classes, in_channels=in_channels, input_size=tuple(input_size), **args,
                        **(data_facts or {}))
