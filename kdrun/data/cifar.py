"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009): 50,000 train / 10,000 test RGB images of 32x32.

Read from the "python version" pickles under ``<root>/cifar-10-batches-py/`` or
``<root>/cifar-100-python/`` (what the official tarballs extract to), through torchvision.
If they are missing, the official tarball is extracted from ``<root>`` or, with ``download=True``
(the config's default, as in RepDistiller), downloaded with a progress bar first. The archive and
every extracted file are checked against torchvision's published md5s before anything is
unpickled (``verify=False`` reads CIFAR-format files you made yourself).
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
from kdrun.data.base import DataBundle, DataInfo, files_fingerprint
from kdrun.data.download import Archive, fetch_archive, missing, verify_files
from kdrun.data.files import read_split
from kdrun.data.images import ImageTensors, hwc_to_chw

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)


def _archive(cls: type[CIFAR10], label: str) -> Archive:
    """The official archive as torchvision describes it (URL, tarball md5, per-file md5s)."""
    files = [*cls.train_list, *cls.test_list, [cls.meta["filename"], cls.meta["md5"]]]
    return Archive(label, cls.url, cls.filename, cls.tgz_md5, cls.base_folder, tuple((n, m) for n, m in files))


ARCHIVES = {"cifar10": _archive(CIFAR10, "CIFAR-10"), "cifar100": _archive(CIFAR100, "CIFAR-100")}


# kdrun checks every file itself (verify_files) before torchvision opens it; these variants stop
# torchvision from md5-hashing the same 180 MB again each time a split is constructed.
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


def ensure_cifar(name: str, root: str, download: bool, verify: bool = True) -> Path:
    """Make ``<root>/<folder>`` hold the dataset's verified files; returns the root. Raises KdrunError."""
    archive, root_path = ARCHIVES[name], Path(root).expanduser()
    put_there = (f"put {archive.filename} (from {archive.url}) or its extracted {archive.folder}/ in {root_path} "
                 f"(or set dataset.root), or use the embedded dataset=digits (no download)")
    if missing(root_path, archive):
        fetch_archive(archive, root_path, download, put_there)
        if missing(root_path, archive):
            folder = root_path / archive.folder
            raise KdrunError(f"dataset.root={root_path}: {folder}/ lacks {', '.join(missing(root_path, archive))}; "
                             f"{put_there}")
    if verify:
        verify_files(archive, root_path)
    return root_path


def _load(cls: type[CIFAR10], name: str, num_classes: int, root: str, download: bool, verify: bool,
          mean, std) -> DataBundle:
    root_path = ensure_cifar(name, root, download, verify)
    folder, label = root_path / cls.base_folder, ARCHIVES[name].label
    train_tf, _ = cifar_transforms(mean, std)
    raw_train = read_split(lambda: cls(str(root_path), train=True), root_path, folder, label)
    raw_test = read_split(lambda: cls(str(root_path), train=False), root_path, folder, label)
    train = ImageTensors(hwc_to_chw(raw_train.data), raw_train.targets, mean, std, augment=CropFlip(padding=4))
    test = ImageTensors(hwc_to_chw(raw_test.data), raw_test.targets, mean, std)
    info = DataInfo(name, "image", 3, (32, 32), num_classes, len(train), len(test))
    # verified files are the published dataset wherever they lie; unverified ones are the user's own files
    files = None if verify else files_fingerprint(root_path, [folder / n for n, _ in ARCHIVES[name].files])
    return DataBundle(info, train, test, train.y.clone(), train_transform=train_tf, fingerprint=files)


def load_cifar10(root: str, download: bool = False, verify: bool = True) -> DataBundle:
    return _load(CIFAR10Files, "cifar10", 10, root, download, verify, CIFAR10_MEAN, CIFAR10_STD)


def load_cifar100(root: str, download: bool = False, verify: bool = True) -> DataBundle:
    return _load(CIFAR100Files, "cifar100", 100, root, download, verify, CIFAR100_MEAN, CIFAR100_STD)
