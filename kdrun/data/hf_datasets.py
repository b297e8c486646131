"""``dataset=hf dataset.name=<hub id or local folder>``: a Hugging Face ``datasets`` image classification set.

The ``datasets`` extra. A folder written by ``save_to_disk`` is read with ``load_from_disk``; anything else
goes to ``load_dataset`` (a hub id online, or a packaged builder on local files offline, e.g.
``dataset.name=imagefolder dataset.data_dir=/data/pets``). ``trust_remote_code`` stays off unless turned on;
``revision`` pins a hub commit. The image and label columns are found by name (``image``/``img``/``pixel_values``
and ``label``/``labels``/``fine_label``) or given (``image_key``, ``label_key``); every image is read once
into memory, then the arrays contract applies (kdrun/data/arrays.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kdrun.data.arrays import bundle_from_arrays
from kdrun.data.base import DataBundle
from kdrun.errors import KdrunError

IMAGE_KEYS = ("image", "img", "pixel_values", "x")
LABEL_KEYS = ("label", "labels", "fine_label", "y")


def _open(name: str, data_dir: str | None, revision: str | None, trust_remote_code: bool) -> Any:
    try:
        import datasets
    except ImportError:
        raise KdrunError('dataset=hf needs the datasets extra: pip install -e ".[datasets]"') from None
    folder = Path(str(name)).expanduser()
    try:
        if (folder / "dataset_dict.json").is_file():
            return datasets.load_from_disk(str(folder))
        extra = {"trust_remote_code": True} if trust_remote_code else {}
        return datasets.load_dataset(str(name), data_dir=data_dir, revision=revision, **extra)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as e:
        raise KdrunError(f"dataset.name={name}: {str(e).splitlines()[0] if str(e) else type(e).__name__} (offline: "
                         f"a folder written by save_to_disk, or dataset.name=imagefolder dataset.data_dir=...)") from None


def _column(split: Any, given: str | None, names: tuple[str, ...], what: str, key: str) -> str:
    columns = list(split.column_names)
    if given:
        if given not in columns:
            raise KdrunError(f"dataset.{key}={given} is not a column; columns: {', '.join(columns)}")
        return given
    found = next((c for c in names if c in columns), None)
    if found is None:
        raise KdrunError(f"dataset=hf: no {what} column among {', '.join(columns)}; name it with dataset.{key}=...")
    return found


def _arrays(split: Any, image: str, label: str, image_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    xs = []
    for item in split[image]:
        if hasattr(item, "convert"):  # a PIL image
            item = item.resize((image_size, image_size)) if image_size else item
        xs.append(np.asarray(item))
    return np.stack(xs), np.asarray(split[label], dtype=np.int64)


def load_hf(name: str, data_dir: str | None = None, revision: str | None = None, trust_remote_code: bool = False,
            train_split: str = "train", test_split: str = "test", image_key: str | None = None,
            label_key: str | None = None, image_size: int | None = None, normalize: bool = True) -> DataBundle:
    ds = _open(name, data_dir, revision, trust_remote_code)
    for split in (train_split, test_split):
        if split not in ds:
            raise KdrunError(f"dataset.name={name} has no split {split!r}; splits: {', '.join(ds)} "
                             f"(choose with dataset.train_split / dataset.test_split)")
    image = _column(ds[train_split], image_key, IMAGE_KEYS, "image", "image_key")
    label = _column(ds[train_split], label_key, LABEL_KEYS, "label", "label_key")
    x_train, y_train = _arrays(ds[train_split], image, label, image_size)
    x_test, y_test = _arrays(ds[test_split], image, label, image_size)
    return bundle_from_arrays(f"hf:{name}", {"x_train": x_train, "y_train": y_train, "x_test": x_test,
                                             "y_test": y_test}, normalize=normalize, where=f"dataset.name={name}")
