"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), offline.

Fixed split: 25% of each class held out as test set, chosen with ``split_seed`` (default 0),
so every run and every machine sees the same split. Pixels (0..16) are scaled to [0, 1] and
standardized with the train-set mean and std.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from kdrun.data.base import DataBundle, DataInfo, TensorData, stratified_split


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float64, labels (1797,) int): scikit-learn's ``load_digits()`` data.

    Read from the file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``, what ``load_digits``
    reads) without importing scikit-learn, whose import took 1.2 s of every digits run's 2-3 s start
    (`python -X importtime`). Where that file is not on disk (a zipped or rearranged install),
    ``load_digits`` itself."""
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    from sklearn.datasets import load_digits as sk_load_digits

    raw = sk_load_digits()
    return raw.images, raw.target


def load_digits(test_fraction: float = 0.25, split_seed: int = 0) -> DataBundle:
    images, labels = digits_arrays()
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(labels, dtype=torch.long)
    train_idx, test_idx = stratified_split(y, test_fraction, split_seed)
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std
    info = DataInfo("digits", "image", 1, (8, 8), 10, len(train_idx), len(test_idx))
    return DataBundle(info, TensorData(x[train_idx], y[train_idx]), TensorData(x[test_idx], y[test_idx]), y[train_idx])
