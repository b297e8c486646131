"""What the transformer methods (DistilBERT, TinyBERT, MiniLM) share: their pair checks and layer maps.

Each check raises a one-line :class:`KdrunError` naming the method, the model option and what would fit,
when the method is built (before any stage trains; before any data work for datasets with static facts).
"""

from __future__ import annotations

from kdrun.errors import KdrunError
from kdrun.methods.base import MethodContext


def require_equal(method: str, ctx: MethodContext, what: str, option: str) -> None:
    """``what`` (``heads`` or ``hidden``) must be the same in both models."""
    s, t = _size(ctx.student, what), _size(ctx.teacher, what)
    if s != t:
        raise KdrunError(f"method={method} needs equal {what} in student and teacher, but student.{option}={s} and "
                         f"the teacher has {t}; set student.{option}={t}")


def _size(info, what: str) -> int:
    return info.heads if what == "heads" else info.pooled_dim


def uniform_layer_map(method: str, ctx: MethodContext) -> int:
    """TinyBERT's mapping: student layer m (1-based) learns from teacher layer k*m, k = N_teacher / M_student
    (which must divide); returns k."""
    n, m = ctx.teacher.layers, ctx.student.layers
    if m < 1 or n % m:
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        raise KdrunError(f"method={method} maps student layers to every k-th teacher layer: the teacher's {n} layers "
                         f"must be a multiple of the student's {m}; student.layers in {divisors}")
    return n // m


def check_layer(method: str, index: int, layers: int, key: str) -> int:
    """A layer index (negative counts from the end) -> its 0-based position; one line when out of range."""
    if not -layers <= index < layers:
        raise KdrunError(f"{key}={index} is out of range for a model of {layers} layers; valid: "
                         f"{-layers}..{layers - 1} (method={method})")
    return index % layers
