"""Transfer sets: unlabeled inputs used only by the distillation terms (Hinton et al., 2015, sec. 3).

Hinton et al. distil on a *transfer set*, inputs the teacher labels with its soft targets; it
need not be the labeled training set. kdrun offers three kinds (config in ``distill``):

- generated: ``distill.transfer_size=N`` on a dataset that can make fresh inputs (MNIST-1D's
  generator; the synthetic set): N new inputs, never the train or test ones, cached on disk;
- a folder: ``distill.transfer_set=/path/to/images``: every image below it, shaped like the
  dataset's inputs (channels, size) and augmented with the dataset's train transform;
- any dataset builder: ``distill.transfer_set={_target_: ..., ...}`` (e.g. CIFAR-100's train
  images for a CIFAR-10 run); its labels are dropped.

With a folder or dataset, ``transfer_size=N > 0`` keeps a fixed random subset of N inputs.

During distillation each step draws a labeled batch (for cross-entropy) and a transfer batch (for
the distillation terms): :class:`TransferPairs` zips the labeled loader with a cycling transfer
loader. Items keep the ``(x, y)`` contract with ``y = NO_LABEL``.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from kdrun.data.base import NO_LABEL, DataBundle, DataInfo, TensorData
from kdrun.data.loaders import EpochLoader, FollowsEpochs, make_loader, mix_seed
from kdrun.errors import KdrunError

SUBSET_SEED = 0  # which N inputs of a folder or dataset form the transfer set: fixed, not per run
TRANSFER_STREAM = 1  # decorrelates the transfer order from the labeled order (both derive from the run seed)


def generated_transfer(data: DataBundle, size: int) -> TensorData:
    """``size`` fresh inputs from the dataset's own generator."""
    if data.generate_inputs is None:
        raise KdrunError(
            f"distill.transfer_size={size}: dataset {data.info.name} cannot generate inputs (mnist1d and synthetic "
            "can); give unlabeled images with distill.transfer_set=/path/to/folder, or set distill.transfer_size=0"
        )
    x = data.generate_inputs(size)
    return TensorData(x, torch.full((len(x),), NO_LABEL, dtype=torch.long))


def folder_transfer(root: str, data: DataBundle, size: int) -> Dataset:
    """Every image below ``root``, made into a train input of ``data`` (channels, size, augmentation)."""
    if data.train_transform is None:
        raise KdrunError(
            f"distill.transfer_set={root}: dataset {data.info.name} is not read from image files, so there is no "
            "transform to apply to a folder of images; folders work with cifar10, cifar100, mnist, fashion_mnist, "
            "imagefolder (for mnist1d and synthetic use distill.transfer_size=N)"
        )
    from torchvision import transforms  # here: a run without an image folder never imports torchvision

    from kdrun.data.unlabeled import UnlabeledFolder

    info = data.info
    shape = [transforms.Grayscale(1)] if info.in_channels == 1 else []
    shape += [transforms.Resize(min(info.input_size)), transforms.CenterCrop(info.input_size)]
    folder = UnlabeledFolder(root, transforms.Compose([*shape, data.train_transform]))
    return _subset(folder, size, f"distill.transfer_set={root}")


def dataset_transfer(bundle: Any, info: DataInfo, size: int, spec: str) -> Dataset:
    """The train split of another dataset (``bundle``, a DataBundle), without its labels."""
    if not isinstance(bundle, DataBundle):
        raise KdrunError(f"distill.transfer_set={spec} built a {type(bundle).__name__}, not a dataset; "
                         "give a dataset builder as _target_ (e.g. kdrun.data.cifar.load_cifar100)")
    expected = (info.in_channels, *info.input_size)
    got = (bundle.info.in_channels, *bundle.info.input_size)
    if got != expected:
        raise KdrunError(f"distill.transfer_set={spec} gives inputs of shape {got} but dataset {info.name} needs "
                         f"{expected}; use a transfer set with the same input shape")
    return _subset(WithoutLabels(bundle.train), size, f"distill.transfer_set={spec}")


def _subset(dataset: Dataset, size: int, key: str) -> Dataset:
    if size == 0:
        return dataset
    if size > len(dataset):
        raise KdrunError(f"distill.transfer_size={size} exceeds the {len(dataset)} inputs of {key}; "
                         f"use at most {len(dataset)}, or 0 for all of them")
    keep = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(SUBSET_SEED))[:size]
    return Subset(dataset, keep.sort().values.tolist())


class WithoutLabels(Dataset):
    """A labeled dataset seen as unlabeled: items ``(x, NO_LABEL)``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.dataset[index][0], NO_LABEL


class TransferPairs(FollowsEpochs):
    """Each labeled batch paired with a transfer batch, as ``dict(x, y, [index,] transfer_x)``.

    The epoch is the labeled loader's; the transfer loader restarts at every epoch and cycles
    through fresh orders (cycle k of epoch e is its own "epoch" ``mix_seed(e, k)``), so the transfer
    batches of an epoch are a function of (seed, epoch) and a resumed run sees the same ones.
    """

    EPOCHS_FROM = "labeled"

    def __init__(self, labeled: EpochLoader, transfer: EpochLoader) -> None:
        if len(transfer) == 0:
            raise ValueError("the transfer loader yields no batches")
        self.labeled, self.transfer = labeled, transfer

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        stream = self._transfer_stream()
        for raw in self.labeled:
            batch = dict(zip(("x", "y", "index"), raw))
            batch["transfer_x"] = next(stream)[0]
            yield batch

    def _transfer_stream(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for cycle in count():
            self.transfer.set_epoch(mix_seed(self.epoch, cycle))
            yield from self.transfer



def pair_with_transfer(labeled: EpochLoader, transfer: Dataset, batch_size: int, seed: int, num_workers: int = 0,
                       device: str | torch.device = "cpu") -> TransferPairs:  # fmt: skip
    """Pair ``labeled``'s batches with shuffled ``transfer`` batches of ``batch_size`` inputs.

    Full transfer batches only (when the set holds at least one): a last batch of one input would
    break batch norm and weigh its single input as much as a whole batch.
    """
    loader = make_loader(transfer, batch_size, shuffle=True, seed_for_epoch=mix_seed(seed, TRANSFER_STREAM),
                         num_workers=num_workers, device=device, drop_last=len(transfer) >= batch_size)
    return TransferPairs(labeled, loader)
