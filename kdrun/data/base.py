"""What every dataset builder returns: the data plus the static facts models and methods need."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

NO_LABEL = -1  # the label of a transfer-set input: it batches like labeled data and must never reach a CE loss


@dataclass(frozen=True)
class DataInfo:
    """Static facts of a dataset: they size models and methods before any batch is seen."""

    name: str
    input_kind: str  # "image" (C, H, W), "signal" (C, L) or "tokens" (L token ids; in_channels = vocabulary size)
    in_channels: int
    input_size: tuple[int, ...]
    num_classes: int
    num_train: int
    num_test: int
    pad_id: int = 0  # tokens: the id padding positions hold (the attention mask is ``x != pad_id``)
    tokenizer: str = ""  # tokens: which tokenizer made the ids (a hub name or folder, or "corpus:<digest>")
    num_val: int = 0  # samples held out of the training set (dataset.val_split, kdrun/data/holdout.py)


@dataclass
class DataBundle:
    """Train and test splits. Train items are ``(x, y)`` with the train augmentation applied.

    ``train_targets`` holds every train label in dataset order (class-balanced sampling,
    contrastive negatives from other classes); it never requires loading images.

    Optional, for transfer sets (see kdrun/data/transfer.py): ``generate_inputs(n)`` makes ``n``
    fresh inputs (datasets with a generator); ``train_transform`` turns a PIL image into a train
    input (datasets read from image files); ``transfer`` is the built transfer set, if configured.
    ``fingerprint`` identifies the files a dataset of the user's own files was read from (its root
    and file list): part of the key of cached teachers and baselines, so other files mean another model.
    """

    info: DataInfo
    train: Dataset
    test: Dataset
    train_targets: torch.Tensor
    generate_inputs: Callable[[int], torch.Tensor] | None = None
    train_transform: Callable[[Any], torch.Tensor] | None = None
    transfer: Dataset | None = None
    fingerprint: str | None = None
    val: Dataset | None = None  # held out of the training set (dataset.val_split); None: the test set chooses


class TensorData(Dataset):
    """A dataset held as tensors in memory; kdrun's loaders batch it by indexing (no per-item collate),
    on the training device. Subclasses store compact inputs (uint8 images) and turn a batch of them
    into model inputs in :meth:`inputs` (normalization, augmentation)."""

    augmented = False  # True: inputs() draws from the samples' seeds

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise ValueError("inputs and labels differ in length")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    @property
    def targets(self) -> torch.Tensor:
        return self.y

    def inputs(self, x: torch.Tensor, index: torch.Tensor, seeds: torch.Tensor | None = None) -> torch.Tensor:
        """Model inputs of samples ``index`` of ``x`` (``self.x``, or a copy on the training device);
        ``seeds`` (from kdrun/data/seeds.py) drive the augmentation of an augmented dataset."""
        return x[index]

    def item(self, index: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``index`` augmented under ``seed``: what the batched path gives for that sample."""
        return self.inputs(self.x, torch.tensor([index]), torch.tensor([seed]))[0], self.y[index]

    def subset(self, index: list[int] | torch.Tensor) -> "TensorData":
        """The samples ``index``, held the same way (same class, same preprocessing)."""
        import copy

        part = copy.copy(self)
        part.x, part.y = self.x[index], self.y[index]
        return part

    def evaluation_view(self, index: list[int] | torch.Tensor) -> "TensorData":
        """The samples ``index`` as an evaluation set reads them: no augmentation."""
        part = self.subset(index)
        part.augmented = False
        return part


def files_fingerprint(root: Path, files: Iterable[str | os.PathLike]) -> str:
    """The resolved ``root`` and a digest of every file's path (relative to it) and size."""
    root = Path(root).expanduser().resolve()
    digest = hashlib.sha256()
    for f in sorted(str(f) for f in files):
        path = Path(f)
        size = path.stat().st_size if path.is_file() else -1
        digest.update(f"{os.path.relpath(path.resolve(), root)}\0{size}\n".encode())
    return f"{root}:{digest.hexdigest()[:16]}"


def stratified_split(
    targets: torch.Tensor, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a fixed, class-stratified train/test split (same seed -> same split everywhere)."""
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in torch.unique(targets):
        idx = torch.nonzero(targets == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = round(len(idx) * test_fraction)
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    return torch.cat(train_idx).sort().values, torch.cat(test_idx).sort().values
