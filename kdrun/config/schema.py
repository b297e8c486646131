"""The types of every config value, checked before a run folder exists (torch-free).

Hydra parses ``trainer.lr=fast`` as the text ``"fast"`` and ``trainer.batch_size=2.5`` as a
float; without a schema they surface later as ``TypeError: '<' not supported`` tracebacks or as a
misleading range error. The fixed groups (trainer, distill, device, quant, prune, measure, paths
and the top-level keys) have a dataclass schema below; the open-ended ones (a method's or a
model's options, a dataset's arguments, a scheme's settings) take their types from their own
config files: a value whose default is a number must stay a number, and so on.

Each problem is one line naming the key, the bad value and what it must be.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

from kdrun.errors import KdrunError

Number = float  # an int is accepted wherever a float is expected


@dataclass
class TopSchema:
    seed: int = 0
    name: Optional[Union[str, int]] = None
    stages: list[str] = dataclasses.field(default_factory=list)
    teachers_dir: Optional[str] = None


@dataclass
class TrainerSchema:
    epochs: int = 30
    batch_size: int = 64
    lr: Number = 0.05
    momentum: Number = 0.9
    weight_decay: Number = 5e-4
    milestones: list[int] = dataclasses.field(default_factory=list)
    lr_decay: Number = 0.1
    num_workers: int = 0
    loader: str = "auto"
    compile: bool = False
    max_epochs: Optional[int] = None
    max_train_batches: Optional[int] = None
    max_eval_batches: Optional[int] = None
    grad_clip: Optional[Number] = None


@dataclass
class OptimizerSchema:
    name: str = "sgd"
    nesterov: bool = False
    betas: list[Number] = dataclasses.field(default_factory=list)
    eps: Number = 1e-8
    no_decay_norm_bias: bool = False


@dataclass
class SchedulerSchema:
    name: str = "multistep"
    warmup: Number = 0.0
    min_lr: Number = 0.0


@dataclass
class DistillSchema:
    T: Number = 4.0
    alpha: Number = 0.9
    gamma: Optional[Number] = None
    beta: Number = 0.0
    mix: Optional[str] = None
    mix_alpha: Number = 1.0
    transfer_size: Optional[int] = 0
    transfer_batch_size: Optional[int] = None


@dataclass
class DeviceSchema:
    type: str = "auto"
    amp: Optional[str] = "auto"
    channels_last: Union[bool, str] = "auto"
    tf32: bool = True
    threads: Optional[int] = None
    job_memory: Number = 4
    nproc: int = 1
    backend: Optional[str] = None
    index: Optional[int] = None


@dataclass
class FineTuneSchema:  # quant and prune: a short distillation fine-tune
    epochs: int = 5
    lr: Number = 0.005
    milestones: list[int] = dataclasses.field(default_factory=list)
    T: Number = 4.0
    alpha: Number = 0.9
    gamma: Optional[Number] = None
    calibration_batches: int = 16
    reduce_range: Optional[bool] = None
    amount: Number = 0.5


@dataclass
class MeasureSchema:
    enabled: bool = True
    compile: bool = True
    batch_sizes: list[int] = dataclasses.field(default_factory=list)
    warmup: int = 3
    iters: int = 20
    max_seconds: Number = 2.0
    threads: int = 1


@dataclass
class PathsSchema:
    outputs: str = "outputs"
    cache: str = "outputs/cache"
    data: str = "data"


@dataclass
class ModelSchema:  # teacher / student / assistant; an architecture's own options come from its defaults
    arch: str = ""
    checkpoint: Optional[str] = None
    lr: Optional[Number] = None


SCHEMAS: dict[str, type] = {"trainer": TrainerSchema, "optimizer": OptimizerSchema, "scheduler": SchedulerSchema,
                            "distill": DistillSchema, "device": DeviceSchema,
                            "quant": FineTuneSchema, "prune": FineTuneSchema, "measure": MeasureSchema,
                            "paths": PathsSchema, "teacher": ModelSchema, "student": ModelSchema,
                            "assistant": ModelSchema}
# Groups whose keys differ per option: typed by the values their config files give.
BY_DEFAULTS = ("method", "dataset", "scheme", "teacher", "student", "assistant")


def check_types(cfg: dict[str, Any], defaults: dict[str, Any] | None = None) -> None:
    """Raise a one-line :class:`KdrunError` for the first value of the wrong type.

    ``cfg`` and ``defaults`` are resolved plain containers: the job's config, and the same
    composition without the command line's value overrides (the config files' own values).
    """
    _check_schema(cfg, TopSchema, "")
    for group, schema in SCHEMAS.items():
        if isinstance(cfg.get(group), dict):
            _check_schema(cfg[group], schema, f"{group}.")
    for group in BY_DEFAULTS:
        given, default = cfg.get(group), (defaults or {}).get(group)
        if isinstance(given, dict) and isinstance(default, dict):
            _check_like(given, default, f"{group}.", SCHEMAS.get(group))


def _check_schema(node: dict[str, Any], schema: type, prefix: str) -> None:
    hints = get_type_hints(schema)
    for name, hint in hints.items():
        if name in node and not _matches(node[name], hint):
            raise _type_error(f"{prefix}{name}", node[name], hint)


def _check_like(node: dict[str, Any], default: dict[str, Any], prefix: str, schema: type | None) -> None:
    """Values of ``node`` must have the type of the same key in ``default`` (where that says one)."""
    covered = set(get_type_hints(schema)) if schema else set()
    for key, value in node.items():
        if key in covered or key not in default or key.startswith("_"):
            continue
        expected = _type_of(default[key])
        if isinstance(value, dict) and isinstance(default[key], dict):
            _check_like(value, default[key], f"{prefix}{key}.", None)
        elif expected is not None and not _matches(value, expected):
            raise _type_error(f"{prefix}{key}", value, expected)


def _type_of(value: Any) -> Any:
    """The type a default value stands for; None where it says nothing (null, text, mixed lists)."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return Number
    if isinstance(value, list) and value:
        kinds = {_type_of(v) for v in value}
        if len(kinds) == 1 and None not in kinds:
            kind = kinds.pop()
            return list[Number] if kind is int and any(isinstance(v, float) for v in value) else list[kind]
    return None


def _matches(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin is Union:
        return any(_matches(value, h) for h in get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = get_args(hint)
        return isinstance(value, (list, tuple)) and all(_matches(v, item) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Union:
        args = [a for a in get_args(hint) if a is not type(None)]
        text = " or ".join(_describe(a) for a in args)
        return f"{text} or null" if len(args) < len(get_args(hint)) else text
    if origin is list:
        return f"a list of {_describe(get_args(hint)[0]).removeprefix('a ').removeprefix('an ')}s"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a text"}.get(hint, str(hint))


def _type_error(key: str, value: Any, hint: Any) -> KdrunError:
    shown = "null" if value is None else value
    got = "null" if value is None else type(value).__name__.replace("str", "text").replace("float", "decimal number")
    return KdrunError(f"{key}={shown} must be {_describe(hint)} (got {got})")
