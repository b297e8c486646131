"""Relation losses in float32, also under mixed precision.

Gram matrices, pairwise distances and exponentials of similarities lose too much in bf16/fp16
(SP's loss is a sum of squared differences of B x B entries scaled by 3000), so methods compute
them inside :func:`no_autocast` on inputs widened by :func:`widen`. The reference code has no AMP.
"""

from __future__ import annotations

import contextlib

import torch


def no_autocast(like: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast switched off for the device of ``like`` (a no-op when autocast is not active)."""
    return torch.autocast(like.device.type, enabled=False)


def widen(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32; float32 and float64 stay as they are (tests compare in float64)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
