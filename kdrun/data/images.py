"""Image datasets held in memory as one uint8 tensor: CIFAR, MNIST, Fashion-MNIST.

Batches are cut by indexing that tensor on the training device (kdrun/data/loaders.py), then
augmented and normalized there in a few batched ops (kdrun/data/augment.py): no PIL, no worker
processes, 1 byte per pixel in memory (CIFAR-100's train split: 150 MB).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from kdrun.data.augment import CropFlip, normalize
from kdrun.data.base import TensorData


class ImageTensors(TensorData):
    """uint8 images (N, C, H, W) with labels; ``augment`` (train) or not (test); normalized per channel."""

    def __init__(self, images: torch.Tensor | np.ndarray, labels: Sequence[int] | torch.Tensor,
                 mean: Sequence[float], std: Sequence[float], augment: CropFlip | None = None) -> None:  # fmt: skip
        x = torch.as_tensor(images)
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise ValueError(f"expected uint8 images (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
        super().__init__(x.contiguous(), torch.as_tensor(labels, dtype=torch.long).clone())
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.augment = augment
        self.augmented = augment is not None

    def inputs(self, x: torch.Tensor, index: torch.Tensor, seeds: torch.Tensor | None = None) -> torch.Tensor:
        batch = x[index.to(x.device)]
        if self.augment is not None:
            if seeds is None:
                raise ValueError("an augmented dataset needs the samples' seeds")
            batch = self.augment(batch, seeds.to(x.device))
        return normalize(batch, self.mean.to(x.device), self.std.to(x.device))

    def evaluation_view(self, index: list[int] | torch.Tensor) -> "ImageTensors":
        part = super().evaluation_view(index)
        part.augment = None
        return part

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One sample; its augmentation seed comes from torch's global RNG (kdrun's loaders don't
        call this: they pass each sample's own seed to :meth:`item`)."""
        seed = int(torch.randint(0, 2**62, (1,))) if self.augmented else 0
        return self.item(index, seed)


def hwc_to_chw(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 array (how torchvision's CIFAR holds images) -> (N, C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
