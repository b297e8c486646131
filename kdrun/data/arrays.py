"""Arrays and datasets from anywhere -> a :class:`DataBundle`, with the facts read from the data itself.

The dataset contract (docs/models_and_data.md): a loader returns one of

* a :class:`DataBundle` (what kdrun's own loaders return), used as it is;
* a mapping with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (numpy arrays or tensors);
* a pair ``(train, test)`` of map-style datasets whose items are ``(x, y)``.

Input kind and shape come from the inputs: ``(N, L)`` -> a 1-channel signal, ``(N, H, W)`` -> 1-channel
images, ``(N, C, H, W)`` (or channels-last ``(N, H, W, C)`` with C in 1, 3, 4) -> images; ``input_kind=signal``
reads ``(N, C, L)`` as C-channel signals. The class count is the largest label + 1. uint8 inputs are scaled to
[0, 1]; with ``normalize`` every channel is standardised with the train split's mean and std. The data's
fingerprint (a digest of the arrays, or of a sample of a dataset's items) is part of the cache key of the
teachers and baselines trained on it, so other data never reuses a model trained on these.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from kdrun.data.base import DataBundle, DataInfo, TensorData
from kdrun.errors import KdrunError

SPLITS = ("x_train", "y_train", "x_test", "y_test")


def as_tensor(a: Any, what: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu()
    try:
        return torch.from_numpy(np.ascontiguousarray(a))
    except TypeError as e:
        raise KdrunError(f"{what} is not a numeric array ({e})") from None


def images_first(x: torch.Tensor, input_kind: str | None) -> tuple[torch.Tensor, str]:
    """``x`` as ``(N, C, *spatial)`` and its input kind."""
    if x.dim() == 2:
        return x.unsqueeze(1), "signal"
    if x.dim() == 3:
        return (x, "signal") if input_kind == "signal" else (x.unsqueeze(1), "image")
    if x.dim() == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            x = x.permute(0, 3, 1, 2)
        return x.contiguous(), "image"
    raise KdrunError(f"inputs of shape {tuple(x.shape)}: expected (N, L) signals, (N, H, W) or (N, C, H, W) images")


def labels(y: torch.Tensor, what: str) -> torch.Tensor:
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.dim() != 1:
        raise KdrunError(f"{what} must be a 1-D array of integer class labels, got {tuple(y.shape)} {y.dtype}")
    if len(y) and int(y.min()) < 0:
        raise KdrunError(f"{what} has a negative label ({int(y.min())}); labels are 0..classes-1")
    return y.long()


def digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def bundle_from_arrays(name: str, arrays: Mapping[str, Any], input_kind: str | None = None,
                       normalize: bool = True, where: str = "the data") -> DataBundle:
    """A bundle of in-memory tensors from the four arrays of the contract."""
    missing = [k for k in SPLITS if k not in arrays]
    if missing:
        raise KdrunError(f"{where} has no {', '.join(missing)}; it needs {', '.join(SPLITS)} "
                         f"(found: {', '.join(map(str, arrays)) or 'nothing'})")
    x_train, x_test = (as_tensor(arrays[k], f"{where}: {k}") for k in ("x_train", "x_test"))
    y_train, y_test = (labels(as_tensor(arrays[k], f"{where}: {k}"), f"{where}: {k}") for k in ("y_train", "y_test"))
    fingerprint = digest(x_train, y_train, x_test, y_test)
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise KdrunError(f"{where}: x_{split} has {len(x)} samples, y_{split} {len(y)}")
    (x_train, kind), (x_test, _) = images_first(x_train, input_kind), images_first(x_test, input_kind)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise KdrunError(f"{where}: x_train samples are {tuple(x_train.shape[1:])}, x_test {tuple(x_test.shape[1:])}")
    x_train, x_test = _scaled(x_train, x_test, normalize)
    classes = int(max(y_train.max(), y_test.max() if len(y_test) else 0)) + 1
    info = DataInfo(name, kind, x_train.shape[1], tuple(x_train.shape[2:]), classes, len(y_train), len(y_test))
    return DataBundle(info, TensorData(x_train, y_train), TensorData(x_test, y_test), y_train.clone(),
                      fingerprint=f"arrays:{fingerprint}")


def _scaled(x_train: torch.Tensor, x_test: torch.Tensor, normalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    scale = 255.0 if x_train.dtype == torch.uint8 else 1.0
    x_train, x_test = x_train.float() / scale, x_test.float() / scale
    if normalize and len(x_train):
        dims = [0, *range(2, x_train.dim())]
        mean, std = x_train.mean(dims, keepdim=True), x_train.std(dims, keepdim=True).clamp_min(1e-6)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return x_train, x_test


def bundle_from_datasets(name: str, train: Dataset, test: Dataset, where: str) -> DataBundle:
    """A bundle of two map-style datasets of ``(x, y)`` items; facts from the first item and the labels."""
    try:
        x, _ = train[0]
    except Exception as e:  # noqa: BLE001 - the user's dataset: one line
        raise KdrunError(f"{where}: the train dataset's first item is not (x, y) ({type(e).__name__}: {e})") from None
    x = as_tensor(x, f"{where}: train[0][0]")
    kind = "image" if x.dim() == 3 else "signal" if x.dim() == 2 else None
    if kind is None:
        raise KdrunError(f"{where}: items are {tuple(x.shape)}; expected (C, H, W) images or (C, L) signals")
    y_train = _all_labels(train, where)
    classes = int(max(y_train.max(), _all_labels(test, where).max())) + 1
    info = DataInfo(name, kind, x.shape[0], tuple(x.shape[1:]), classes, len(train), len(test))
    sample = [as_tensor(train[i][0], where) for i in sorted({0, len(train) // 2, len(train) - 1})]
    return DataBundle(info, train, test, y_train, fingerprint=f"datasets:{len(train)}:{len(test)}:"
                                                                f"{digest(y_train, *sample)}")


def _all_labels(ds: Dataset, where: str) -> torch.Tensor:
    for attr in ("targets", "labels"):
        found = getattr(ds, attr, None)
        if found is not None and len(found) == len(ds):
            return labels(as_tensor(np.asarray(found), where), f"{where}: .{attr}")
    return labels(torch.tensor([int(ds[i][1]) for i in range(len(ds))]), f"{where}: labels")


def as_bundle(obj: Any, name: str, where: str) -> DataBundle:
    """Whatever a loader returned, as a bundle (the contract in the module docstring)."""
    if isinstance(obj, DataBundle):
        return obj
    if isinstance(obj, Mapping):
        return bundle_from_arrays(name, obj, where=where)
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(hasattr(d, "__getitem__") for d in obj):
        return bundle_from_datasets(name, obj[0], obj[1], where)
    raise KdrunError(f"{where} returned a {type(obj).__name__}; a loader returns a dict of x_train, y_train, x_test, "
                     f"y_test arrays, a (train, test) pair of datasets of (x, y) items, or a kdrun DataBundle")
