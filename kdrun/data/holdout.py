"""A validation split held out of the training set (``dataset.val_split``), for choosing without the test set.

Seeded (``dataset.val_seed``) and stratified by class, decided from the dataset's own training labels, so every
stage of a run (teacher, students) and every run with the same dataset settings hold out the same samples. The
held-out samples are read as the test set is read (no augmentation); the training set loses them. With the split
off (0, the default) nothing changes: the published tables' protocol, which reports test top-1.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch.utils.data import Dataset, Subset

from kdrun.data.base import DataBundle, TensorData, stratified_split
from kdrun.errors import KdrunError

SPLIT_KEYS = ("val_split", "val_seed")  # dataset.* keys kdrun reads itself (not the builder's arguments)


def hold_out(data: DataBundle, fraction: float, seed: int) -> DataBundle:
    """``data`` with ``fraction`` of each class of its training set moved to ``data.val``."""
    train_idx, val_idx = stratified_split(data.train_targets, fraction, seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise KdrunError(f"dataset.val_split={fraction} holds out {len(val_idx)} of {len(data.train_targets)} "
                         "training samples; choose a fraction that leaves samples on both sides (e.g. 0.1)")
    data.val = _evaluation_view(data.train, data.test, val_idx)
    data.train = _training_part(data.train, train_idx)
    data.train_targets = data.train_targets[train_idx]
    data.info = replace(data.info, num_train=len(train_idx), num_val=len(val_idx))
    return data


def _training_part(train: Dataset, index: torch.Tensor) -> Dataset:
    return train.subset(index) if isinstance(train, TensorData) else Subset(train, index.tolist())


def _evaluation_view(train: Dataset, test: Dataset, index: torch.Tensor) -> Dataset:
    """Samples ``index`` of the training set, read the way the test set is read (its transform, no
    augmentation)."""
    if isinstance(train, TensorData):
        return train.evaluation_view(index)
    if hasattr(train, "transform") and hasattr(test, "transform"):  # torchvision's folder datasets
        view = copy.copy(train)
        view.transform = test.transform
        return Subset(view, index.tolist())
    raise KdrunError(f"dataset.val_split: this dataset ({type(train).__name__}) has no test-time transform kdrun "
                     "can apply to held-out training samples; use dataset.val_split=0")
