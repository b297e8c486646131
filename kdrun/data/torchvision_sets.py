"""MNIST (LeCun et al., 1998) and Fashion-MNIST (Xiao et al., 2017): 60,000 train / 10,000 test
grayscale 28x28 images, 10 classes.

Read by torchvision from the four uncompressed IDX files under ``<root>/MNIST/raw/`` or
``<root>/FashionMNIST/raw/`` (torchvision checks their presence only, no md5). No augmentation:
both splits are ToTensor + Normalize with each dataset's usual mean and std, applied per batch to
uint8 tensors held in memory (kdrun/data/images.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from torchvision import transforms
from torchvision.datasets import MNIST, FashionMNIST

from kdrun.data.base import DataBundle, DataInfo
from kdrun.data.files import ensure_files, read_split
from kdrun.data.images import ImageTensors

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)


def _load(cls: type[MNIST], name: str, label: str, root: str, download: bool, mean, std) -> DataBundle:
    root_path = Path(root).expanduser()
    folder = root_path / cls.__name__ / "raw"  # torchvision's raw_folder
    names = [os.path.splitext(archive)[0] for archive, _ in cls.resources]  # "train-images-idx3-ubyte", ...
    put_there = f"the four uncompressed {label} IDX files ({', '.join(names)})"
    fetch = lambda: cls(str(root_path), train=False, download=True)  # noqa: E731
    ensure_files(root_path, folder, names, label, put_there, download, fetch)

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    raw_train = read_split(lambda: cls(str(root_path), train=True), root_path, folder, label)
    raw_test = read_split(lambda: cls(str(root_path), train=False), root_path, folder, label)
    train, test = (ImageTensors(raw.data.unsqueeze(1), raw.targets, mean, std) for raw in (raw_train, raw_test))
    info = DataInfo(name, "image", 1, (28, 28), 10, len(train), len(test))
    return DataBundle(info, train, test, train.y.clone(), train_transform=tf)


def load_mnist(root: str, download: bool = False) -> DataBundle:
    return _load(MNIST, "mnist", "MNIST", root, download, MNIST_MEAN, MNIST_STD)


def load_fashion_mnist(root: str, download: bool = False) -> DataBundle:
    return _load(FashionMNIST, "fashion_mnist", "Fashion-MNIST", root, download, FASHION_MNIST_MEAN, FASHION_MNIST_STD)
