"""The one registry of architectures.

``@register_model`` adds a builder; ``create_model`` builds it for a dataset's input shape and
class count; ``list_models`` lists names. What is known about an architecture before building it
(family, input kind, options, recipe lr) is also in the torch-free table ``kdrun/models/catalog.py``,
which the config options (``kdrun/config/store.py``) and the config checks read; a test keeps the
two equal, so a new architecture is selectable, documented and tested the day it is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kdrun.errors import choice_error
from kdrun.models.base import KDModel
from kdrun.models.catalog import INPUT_KINDS, accepts


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., KDModel]
    family: str
    input_kind: str
    defaults: dict[str, Any] = field(default_factory=dict)
    doc: str = ""
    # Learning rates a published training recipe uses for this architecture instead of its usual one,
    # by recipe (trainer) name: RepDistiller's CIFAR recipe trains MobileNetV2/ShuffleNets at 0.01.
    recipe_lr: dict[str, float] = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str | None = None, *, family: str, input_kind: str = "image", recipe_lr: dict[str, float] | None = None,
    **defaults: Any,
) -> Callable[[Callable[..., KDModel]], Callable[..., KDModel]]:
    """Register ``builder(num_classes, in_channels, input_size, **kwargs) -> KDModel``.

    ``defaults`` are the architecture's user-tunable keyword arguments; they appear as
    config keys (``student.hidden=[800,800]``). ``recipe_lr`` maps a trainer recipe to the lr it
    uses for this architecture (``{"cifar": 0.01}``); see :func:`recipe_lr`.
    """
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}")

    def wrap(builder: Callable[..., KDModel]) -> Callable[..., KDModel]:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} registered twice")
        doc = (builder.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = ModelSpec(key, builder, family, input_kind, dict(defaults), doc[0] if doc else "",
                                   dict(recipe_lr or {}))
        return builder

    return wrap


def _ensure_loaded() -> None:
    # Importing the zoo modules runs their @register_model decorators.
    import kdrun.models.zoo  # noqa: F401


def list_models(family: str | None = None, input_kind: str | None = None) -> list[str]:
    _ensure_loaded()
    return sorted(
        n
        for n, s in _REGISTRY.items()
        if (family is None or s.family == family) and (input_kind is None or accepts(s.input_kind, input_kind))
    )


def model_spec(name: str, key: str = "model") -> ModelSpec:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise choice_error(key, name, _REGISTRY)
    return _REGISTRY[name]


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
