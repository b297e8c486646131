"""Loss terms in float32, also under mixed precision.

Autocast covers the networks' forward passes; the distillation terms are computed in float32.
Gram matrices, pairwise distances, attention maps and log-probabilities lose too much in bf16/fp16
(SP's loss is a sum of squared differences of B x B entries scaled by 3000; AT's and NST's maps are
L2-normalized and squared; in bf16 a KL divergence can even come out negative). The reference code
has no AMP. Loss functions are decorated with :func:`in_float32`; methods whose own modules must run
in float32 (CRD's and CC's embeddings) use :func:`no_autocast` and :func:`widen` directly.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def no_autocast(like: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast switched off for the device of ``like`` (a no-op when autocast is not active)."""
    return torch.autocast(like.device.type, enabled=False)


def widen(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32; float32 and float64 stay as they are (tests compare in float64)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _widen_any(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return widen(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_widen_any(v) for v in value)
    return value


def _first_tensor(values: Any) -> torch.Tensor | None:
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, (list, tuple)) and (found := _first_tensor(value)) is not None:
            return found
    return None


def in_float32(fn: F) -> F:
    """``fn`` runs with autocast off and its half-precision tensor arguments (and lists of them) widened."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        like = _first_tensor([*args, *kwargs.values()])
        args = tuple(_widen_any(a) for a in args)
        kwargs = {k: _widen_any(v) for k, v in kwargs.items()}
        with no_autocast(like) if like is not None else contextlib.nullcontext():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
