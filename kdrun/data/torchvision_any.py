"""``dataset=torchvision dataset.name=SVHN``: any torchvision dataset class by name, read into memory.

The class is built twice, for its train and test splits (``train=True/False``, or ``split="train"/"test"``
for the classes that take a split, such as SVHN); ``download=true`` lets torchvision fetch it. Every image
is read once into a uint8 tensor (resized to ``image_size`` when given, for sets of mixed sizes), then the
arrays contract applies (kdrun/data/arrays.py): kind, shape and classes come from the data.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from kdrun.data.arrays import bundle_from_arrays
from kdrun.data.base import DataBundle
from kdrun.errors import KdrunError, choice_error


def _dataset_class(name: str) -> type:
    import torchvision.datasets as tvd

    classes = [n for n in tvd.__all__ if n[0].isupper()]
    if name not in classes:
        raise choice_error("dataset.name", name, classes, "(no such torchvision dataset)")
    return getattr(tvd, name)


def _split(cls: type, root: str, train: bool, download: bool, options: dict[str, Any]) -> Any:
    params = inspect.signature(cls).parameters
    kwargs = dict(options)
    if "split" in params:
        kwargs["split"] = "train" if train else "test"
    elif "train" in params:
        kwargs["train"] = train
    if "download" in params:
        kwargs["download"] = download
    try:
        return cls(root, **kwargs)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted. You can use download=True ..."
        raise KdrunError(f"dataset=torchvision dataset.name={cls.__name__}: {str(e).splitlines()[0]} (root {root}; "
                         f"dataset.download=true fetches it)") from None


def _arrays(ds: Any, image_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    xs, ys = [], []
    for i in range(len(ds)):
        img, y = ds[i]
        if isinstance(img, Image.Image):
            if image_size:
                img = img.resize((image_size, image_size))
            img = np.asarray(img)
        xs.append(np.asarray(img))
        ys.append(int(y))
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def load_torchvision(name: str, root: str, download: bool = False, image_size: int | None = None,
                     normalize: bool = True, **options: Any) -> DataBundle:
    cls = _dataset_class(str(name))
    x_train, y_train = _arrays(_split(cls, root, True, download, options), image_size)
    x_test, y_test = _arrays(_split(cls, root, False, download, options), image_size)
    return bundle_from_arrays(str(name), {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
                              normalize=normalize, where=f"dataset.name={name}")
