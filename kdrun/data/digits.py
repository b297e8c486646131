"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), offline.

Fixed split: 25% of each class held out as test set, chosen with ``split_seed`` (default 0),
so every run and every machine sees the same split. Pixels (0..16) are scaled to [0, 1] and
standardized with the train-set mean and std.
"""

from __future__ import annotations

import torch

from kdrun.data.base import DataBundle, DataInfo, TensorData, stratified_split


def load_digits(test_fraction: float = 0.25, split_seed: int = 0) -> DataBundle:
    from sklearn.datasets import load_digits as sk_load_digits

    raw = sk_load_digits()
    x = torch.tensor(raw.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(raw.target, dtype=torch.long)
    train_idx, test_idx = stratified_split(y, test_fraction, split_seed)
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std
    info = DataInfo("digits", "image", 1, (8, 8), 10, len(train_idx), len(test_idx))
    return DataBundle(info, TensorData(x[train_idx], y[train_idx]), TensorData(x[test_idx], y[test_idx]), y[train_idx])
