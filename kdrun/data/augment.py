"""The CIFAR benchmark augmentation on uint8 image tensors: random crop with zero padding, then a
horizontal flip, then normalization -- torchvision's ``RandomCrop(32, padding=4)``,
``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)`` on whole batches, on the
training device, without PIL.

Same distribution as torchvision: the crop's top-left corner is uniform over the
(2 * padding + 1)^2 positions, the flip has probability 0.5, all independent. Same pixels: for a
given (corner, flip) the result equals torchvision's bit for bit (tests/test_augment.py).
The draws come from each sample's seed (kdrun/data/seeds.py), not from a global RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CropFlip:
    """Random crop of the input's own size after ``padding`` zero pixels per side, and an optional
    horizontal flip with probability 0.5."""

    padding: int = 4
    flip: bool = True

    def draws(self, seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(top, left, flipped) of each sample from its 63-bit seed: disjoint digits of the seed, so
        the three are independent and uniform (bias below 2**-56)."""
        window = 2 * self.padding + 1
        top = seeds % window
        left = seeds // window % window
        flipped = (seeds // (window * window) % 2 == 1) & self.flip
        return top, left, flipped

    def __call__(self, x: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        """Crop and flip a batch ``x`` (N, C, H, W), one draw per sample; same dtype and device."""
        n, _, h, w = x.shape
        top, left, flipped = (t.to(x.device) for t in self.draws(seeds))
        p = self.padding
        padded = F.pad(x, (p, p, p, p)) if p else x
        rows = top[:, None] + torch.arange(h, device=x.device)  # (N, H)
        cols = torch.arange(w, device=x.device).expand(n, w)
        cols = torch.where(flipped[:, None], cols.flip(1), cols) + left[:, None]  # flip = read columns backwards
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [0, 1] -> standardized, with the very operations of ToTensor and Normalize
    (divide by 255, subtract, divide), so the numbers are identical to torchvision's."""
    return x.float().div_(255).sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))
