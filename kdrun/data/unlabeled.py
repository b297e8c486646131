"""Every image under a folder, searched recursively, without labels: a transfer set for distillation
on data the teacher labels itself. Items are ``(image, -1)`` so they batch with the same loaders and
the same ``(x, y)`` contract as labeled data (``NO_LABEL``, kdrun/data/base.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS

from kdrun.data.base import NO_LABEL
from kdrun.data.image_files import load_rgb
from kdrun.errors import KdrunError


class UnlabeledFolder(Dataset):
    def __init__(self, root: str, transform: Callable | None = None) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise KdrunError(f"transfer_set.root={root}: directory not found; point it at a folder of images")
        # Sorted, so index i names the same file on every machine and every run.
        self.paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
        if not self.paths:
            raise KdrunError(
                f"transfer_set.root={root}: no image files found (looked for {', '.join(IMG_EXTENSIONS)}); "
                "put images there, in any subfolders"
            )
        self.transform = transform if transform is not None else transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(load_rgb(str(self.paths[index]))), NO_LABEL
