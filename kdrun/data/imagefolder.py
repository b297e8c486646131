"""A user's own image classification data, laid out like ImageNet:

    <root>/train/<class>/<image>   and   <root>/val/<class>/<image>

Both splits must hold the same class folders (a class's index is its position in sorted order,
so differing lists would silently mislabel). ImageNet-style augmentation: train uses
RandomResizedCrop + RandomHorizontalFlip, val uses Resize(size / 0.875) + CenterCrop (256 -> 224);
ImageNet's mean and std unless overridden. Images are converted to RGB.

Folders are walked by kdrun/data/image_files.py: links followed, each real folder read once per
split (a symlink loop is cut and named in the log), and an image that cannot be read (truncated,
not an image) stops the run in one line naming the file. The log gives each split's image and
class counts, with its smallest and largest class.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision import transforms
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import find_classes

from kdrun.data.base import DataBundle, DataInfo, files_fingerprint
from kdrun.data.image_files import SplitWalk, load_rgb
from kdrun.errors import KdrunError
from kdrun.io import one_line

log = logging.getLogger("kdrun")

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def imagefolder_transforms(
    image_size: int, mean: Sequence[float], std: Sequence[float]
) -> tuple[transforms.Compose, transforms.Compose]:
    """(train, val) transforms: the standard ImageNet recipe."""
    normalize = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    train = transforms.Compose(
        [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(), *normalize]
    )
    resize = int(image_size / 0.875)  # the 256 -> 224 ratio
    val = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(image_size), *normalize])
    return train, val


def _class_folders(split_dir: Path, key: str) -> list[str]:
    if not split_dir.is_dir():
        raise KdrunError(f"{key}={split_dir.name}: {split_dir}/ not found; put one folder per class there")
    try:
        return find_classes(str(split_dir))[0]
    except FileNotFoundError as e:
        message = f"{key}={split_dir.name}: {split_dir}/ has no class folders; put one folder per class there"
        raise KdrunError(message) from e


def _check_same_classes(train_classes: list[str], val_classes: list[str], root: Path) -> None:
    if train_classes == val_classes:
        return
    only_train = sorted(set(train_classes) - set(val_classes))[:5]
    only_val = sorted(set(val_classes) - set(train_classes))[:5]
    raise KdrunError(
        f"dataset.root={root}: train and val class folders differ (only in train: {', '.join(only_train) or '-'}; "
        f"only in val: {', '.join(only_val) or '-'}); make both splits hold the same class folders"
    )


class ImageFiles(ImageFolder):
    """torchvision's ImageFolder, walked by :class:`SplitWalk` (each folder once) and read by :func:`load_rgb`."""

    def __init__(self, root: str, transform: transforms.Compose) -> None:
        self.walk: SplitWalk | None = None
        super().__init__(root, transform=transform, loader=load_rgb)

    def make_dataset(self, directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
        self.walk = SplitWalk(directory, list(class_to_idx))
        return self.walk.samples(class_to_idx)


def _open(split_dir: Path, transform: transforms.Compose) -> ImageFiles:
    try:
        split = ImageFiles(str(split_dir), transform=transform)
    except FileNotFoundError as e:  # a class folder without any image file
        raise KdrunError(f"dataset.root={split_dir.parent}: {one_line(e)}; remove empty class folders") from e
    _log_counts(split_dir.name, split)
    return split


def _log_counts(name: str, split: ImageFiles) -> None:
    """The split's images and classes, its smallest and largest class, and the links it did not follow."""
    per_class = Counter(split.targets)
    (least, few), (most, many) = min(per_class.items(), key=lambda kv: (kv[1], kv[0])), per_class.most_common(1)[0]
    spread = f"{few} per class" if few == many else \
        f"fewest: {split.classes[least]}, {few}; most: {split.classes[most]}, {many}"
    log.info("data: %s: %d images in %d classes (%s)", name, len(split.samples), len(per_class), spread)
    skipped = split.walk.skipped
    if skipped:
        log.warning("data: %s: %d folder link(s) not followed, as they lead back to a folder already read "
                    "(a loop or a duplicate): %s", name, len(skipped), ", ".join(skipped[:3]))


def load_imagefolder(
    root: str,
    image_size: int = 224,
    train_dir: str = "train",
    val_dir: str = "val",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> DataBundle:
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise KdrunError(
            f"dataset.root={root}: directory not found; point it at a folder holding {train_dir}/ and {val_dir}/"
        )
    if int(image_size) < 1:
        raise KdrunError(f"dataset.image_size={image_size} is not valid; use a positive number of pixels (e.g. 224)")
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)  # Hydra passes ListConfig
    for key, values in (("dataset.mean", mean), ("dataset.std", std)):
        if len(values) != 3:
            raise KdrunError(f"{key}={list(values)} is not valid; give 3 values, one per RGB channel")

    train_classes = _class_folders(root_path / train_dir, "dataset.train_dir")
    val_classes = _class_folders(root_path / val_dir, "dataset.val_dir")
    _check_same_classes(train_classes, val_classes, root_path)

    train_tf, val_tf = imagefolder_transforms(int(image_size), mean, std)
    train, val = _open(root_path / train_dir, train_tf), _open(root_path / val_dir, val_tf)
    size = int(image_size)
    info = DataInfo("imagefolder", "image", 3, (size, size), len(train_classes), len(train), len(val))
    files = [path for path, _ in train.samples + val.samples]
    return DataBundle(info, train, val, torch.tensor(train.targets, dtype=torch.long), train_transform=train_tf,
                      fingerprint=files_fingerprint(root_path, files))
