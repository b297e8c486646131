"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009): 50,000 train / 10,000 test RGB images of 32x32.

Read from the "python version" pickles under ``<root>/cifar-10-batches-py/`` or
``<root>/cifar-100-python/`` (what the official tarballs extract to), through torchvision.
Augmentation follows the KD benchmark recipe (RepDistiller, mdistiller): train uses
RandomCrop(32, padding=4) + RandomHorizontalFlip + Normalize, test uses Normalize only. Both
splits are held as uint8 tensors and augmented in batches on the training device
(kdrun/data/images.py); ``cifar_transforms`` (PIL) remains for folders of images used as transfer sets.
CIFAR-100 uses its fine labels (100 classes).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision import transforms
from torchvision.datasets import CIFAR10, CIFAR100

from kdrun.data.augment import CropFlip
from kdrun.data.base import DataBundle, DataInfo
from kdrun.data.files import ensure_files, read_split
from kdrun.data.images import ImageTensors, hwc_to_chw

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)


# torchvision md5-hashes every CIFAR file (about 180 MB) each time a split is constructed, and a
# file that is present but not byte-identical to the official one reads as "not found". These
# variants check presence only: a truncated or foreign file still fails loudly while unpickling
# (see files.read_split), downloads stay verified (download() checks the tarball's md5, tgz_md5),
# and tests can build small files in the real format. Everything else is torchvision's code.
class CIFAR10Files(CIFAR10):
    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


class CIFAR100Files(CIFAR100):
    train_list = [[name, None] for name, _ in CIFAR100.train_list]
    test_list = [[name, None] for name, _ in CIFAR100.test_list]
    meta = {**CIFAR100.meta, "md5": None}


def cifar_transforms(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[transforms.Compose, transforms.Compose]:
    """(train, test) transforms of the benchmark recipe."""
    normalize = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    train = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), *normalize])
    return train, transforms.Compose(normalize)


def _load(
    cls: type[CIFAR10], name: str, label: str, num_classes: int, root: str, download: bool, mean, std
) -> DataBundle:
    root_path = Path(root).expanduser()
    folder = root_path / cls.base_folder
    names = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    put_there = f"the {label} python version extracted from {cls.filename}"
    # train=False reads only the small test file; download() fetches and extracts the whole archive.
    fetch = lambda: cls(str(root_path), train=False, download=True)  # noqa: E731
    ensure_files(root_path, folder, names, label, put_there, download, fetch)

    train_tf, _ = cifar_transforms(mean, std)
    raw_train = read_split(lambda: cls(str(root_path), train=True), root_path, folder, label)
    raw_test = read_split(lambda: cls(str(root_path), train=False), root_path, folder, label)
    train = ImageTensors(hwc_to_chw(raw_train.data), raw_train.targets, mean, std, augment=CropFlip(padding=4))
    test = ImageTensors(hwc_to_chw(raw_test.data), raw_test.targets, mean, std)
    info = DataInfo(name, "image", 3, (32, 32), num_classes, len(train), len(test))
    return DataBundle(info, train, test, train.y.clone(), train_transform=train_tf)


def load_cifar10(root: str, download: bool = False) -> DataBundle:
    return _load(CIFAR10Files, "cifar10", "CIFAR-10", 10, root, download, CIFAR10_MEAN, CIFAR10_STD)


def load_cifar100(root: str, download: bool = False) -> DataBundle:
    return _load(CIFAR100Files, "cifar100", "CIFAR-100", 100, root, download, CIFAR100_MEAN, CIFAR100_STD)
