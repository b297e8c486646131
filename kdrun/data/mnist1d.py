"""MNIST-1D (Greydanus, "Scaling down deep learning", 2020): 4,000 train / 1,000 test signals of length 40.

Generated locally by the ``mnist1d`` package with its default arguments (never downloaded)
and cached under ``<root>/mnist1d/`` after the first generation. Small and large models
separate far more here than on digits (published: MLP 68%, CNN 94%).
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import torch

from kdrun.data.base import DataBundle, DataInfo, TensorData

log = logging.getLogger(__name__)


def generate_mnist1d(num_samples: int = 5000, seed: int = 42, train_split: float = 0.8) -> dict:
    """Make an MNIST-1D set with the package's generator (the published set uses these defaults)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = num_samples, seed, train_split
    return make_dataset(args)


def _cached(root: str, seed: int) -> dict:
    path = Path(root).expanduser() / "mnist1d" / f"mnist1d_seed{seed}.pkl"
    if path.exists():
        with path.open("rb") as f:
            return pickle.load(f)
    log.info("generating MNIST-1D (seed %d) into %s", seed, path)
    data = {k: v for k, v in generate_mnist1d(seed=seed).items() if k in ("x", "y", "x_test", "y_test")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as f:
        pickle.dump(data, f)
    os.replace(tmp, path)
    return data


def load_mnist1d(root: str = "data", seed: int = 42) -> DataBundle:
    data = _cached(root, seed)
    x = torch.tensor(data["x"], dtype=torch.float32).unsqueeze(1)
    xt = torch.tensor(data["x_test"], dtype=torch.float32).unsqueeze(1)
    y, yt = torch.tensor(data["y"], dtype=torch.long), torch.tensor(data["y_test"], dtype=torch.long)
    info = DataInfo("mnist1d", "signal", 1, (x.shape[-1],), 10, len(y), len(yt))
    return DataBundle(info, TensorData(x, y), TensorData(xt, yt), y)
