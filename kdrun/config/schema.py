"""The types of every config value, checked before a run folder exists (torch-free).

Hydra parses ``trainer.lr=fast`` as the text ``"fast"`` and ``trainer.batch_size=2.5`` as a
float; without a schema they surface later as ``TypeError: '<' not supported`` tracebacks or as a
misleading range error. The fixed groups (trainer, distill, device, quant, prune, measure, paths
and the top-level keys) have a dataclass schema below; the open-ended ones (a method's or a
model's options, a dataset's arguments, a scheme's settings) take their types from their own
config files: a value whose default is a number must stay a number, and so on.

Each problem is one line naming the key, the bad value and what it must be. The schemas declare types
only: every value, defaults included, is the config files' (conf/<group>/*.yaml), so none is kept here to
drift from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

from kdrun.errors import KdrunError

Number = float  # an int is accepted wherever a float is expected


@dataclass
class TopSchema:
    seed: int
    name: Optional[Union[str, int]]
    stages: list[str]
    teachers_dir: Optional[str]


@dataclass
class TrainerSchema:
    epochs: int
    batch_size: int
    lr: Number
    momentum: Number
    weight_decay: Number
    milestones: list[int]
    lr_decay: Number
    num_workers: int
    loader: str
    compile: bool
    max_epochs: Optional[int]
    max_train_batches: Optional[int]
    max_eval_batches: Optional[int]
    grad_clip: Optional[Number]


@dataclass
class OptimizerSchema:
    name: str
    nesterov: bool
    betas: list[Number]
    eps: Number
    no_decay_norm_bias: bool


@dataclass
class SchedulerSchema:
    name: str
    warmup: Number
    min_lr: Number


@dataclass
class DistillSchema:
    T: Number
    alpha: Number
    gamma: Optional[Number]
    beta: Number
    mix: Optional[str]
    mix_alpha: Number
    transfer_size: Optional[int]
    transfer_batch_size: Optional[int]


@dataclass
class DeviceSchema:
    type: str
    amp: Optional[str]
    channels_last: Union[bool, str]
    tf32: bool
    threads: Optional[int]
    job_memory: Number
    nproc: int
    backend: Optional[str]
    index: Optional[int]


@dataclass
class FineTuneSchema:  # quant and prune: a short distillation fine-tune
    epochs: int
    lr: Number
    milestones: list[int]
    T: Number
    alpha: Number
    gamma: Optional[Number]
    calibration_batches: int
    reduce_range: Optional[bool]
    amount: Number


@dataclass
class MeasureSchema:
    enabled: bool
    compile: bool
    batch_sizes: list[int]
    warmup: int
    iters: int
    max_seconds: Number
    threads: int
    rounds: int


@dataclass
class PathsSchema:
    outputs: str
    cache: str
    data: str


@dataclass
class ModelSchema:  # teacher / student / assistant; an architecture's own options come from its defaults
    arch: str
    checkpoint: Optional[str]
    lr: Optional[Number]


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
