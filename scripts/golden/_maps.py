"""Plain-numpy helpers for the feature-map golden scripts (independent of kdrun and of torch).

Adaptive average pooling is written from its definition: output cell i along an axis of length
n -> m averages input cells floor(i*n/m) .. ceil((i+1)*n/m) - 1.
"""

from __future__ import annotations

import math

import numpy as np


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def adaptive_avg_pool(x: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """x: (B, C, *spatial) -> (B, C, *size)."""
    for axis, m in enumerate(size, start=2):
        n = x.shape[axis]
        cells = [x.take(range(math.floor(i * n / m), math.ceil((i + 1) * n / m)), axis=axis).mean(axis=axis)
                 for i in range(m)]
        x = np.stack(cells, axis=axis)
    return x


def match_sizes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = tuple(min(p, q) for p, q in zip(a.shape[2:], b.shape[2:]))
    return adaptive_avg_pool(a, size), adaptive_avg_pool(b, size)


def l2_normalize(v: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of v divided by max(||row||_2, eps)."""
    return v / np.maximum(np.sqrt((v ** 2).sum(axis=-1, keepdims=True)), eps)


def listed(x: np.ndarray) -> list:
    return x.tolist()
