"""Where every random draw of the data comes from: a pure function of (seed, epoch, sample).

An epoch's order is ``EpochOrder.indices()`` (kdrun/data/loaders.py), drawn from
``epoch_seed(seed, epoch)``; each sample's augmentation is drawn from
``sample_seeds(seed, epoch, indices)``. Neither reads a global RNG, so a resumed run, a run with
more DataLoader workers, a run batched on the GPU and a replay of teacher outputs for the same
(seed, epoch, sample) all see the very same views.
"""

from __future__ import annotations

import torch

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MIX1, MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def mix_seed(*values: int) -> int:
    """Hash integers into one 63-bit seed (splitmix64 steps): nearby inputs give unrelated seeds."""
    h = GOLDEN
    for v in values:
        h = (h ^ (v & MASK64)) + GOLDEN & MASK64
        h = (h ^ (h >> 30)) * MIX1 & MASK64
        h = (h ^ (h >> 27)) * MIX2 & MASK64
        h ^= h >> 31
    return h >> 1


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's sample order (and the root of its samples' seeds)."""
    return mix_seed(seed, epoch)


def _signed(v: int) -> int:
    """A 64-bit pattern as the int64 with the same bits (torch has no uint64 arithmetic)."""
    v &= MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def _shr(h: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (``>>`` on int64 is arithmetic)."""
    return (h >> k) & ((1 << (64 - k)) - 1)


def mix_seed_tensor(first: int, values: torch.Tensor) -> torch.Tensor:
    """``mix_seed(first, v)`` for every ``v`` of an int64 tensor, bit for bit, vectorized.

    int64 addition and multiplication wrap modulo 2**64 in two's complement, so they give the
    same bits as the unsigned arithmetic of :func:`mix_seed` (checked against it in the tests).
    """
    h = GOLDEN
    h = (h ^ (first & MASK64)) + GOLDEN & MASK64
    h = (h ^ (h >> 30)) * MIX1 & MASK64
    h = (h ^ (h >> 27)) * MIX2 & MASK64
    h ^= h >> 31  # the first step is one integer: done in Python
    t = torch.bitwise_xor(values.to(torch.int64), _signed(h)) + _signed(GOLDEN)
    t = torch.bitwise_xor(t, _shr(t, 30)) * _signed(MIX1)
    t = torch.bitwise_xor(t, _shr(t, 27)) * _signed(MIX2)
    t = torch.bitwise_xor(t, _shr(t, 31))
    return _shr(t, 1)


def sample_seeds(seed: int, epoch: int, indices: torch.Tensor) -> torch.Tensor:
    """The augmentation seed of each sample ``indices`` in ``epoch``: ``mix_seed(epoch_seed, index)``.

    The same seeds the DataLoader path hands each item (kdrun/data/loaders.py), so both paths
    draw the same views."""
    return mix_seed_tensor(epoch_seed(seed, epoch), indices)
