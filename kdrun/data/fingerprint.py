"""What a run's data is, as a short digest of its contents: results.json records it (``data_fingerprint``) so
two runs' numbers can be compared knowing whether they saw the same bits.

Generated data (MNIST-1D and its transfer sets) comes from a generator whose floats can differ in their last bits
between numpy/scipy versions, and training amplifies such differences into different accuracies; a digest tells
at once whether the data is the cause. In-memory data is hashed whole (CIFAR-100's 150 MB in well under a second);
data read from files item by item is identified by its root and file list (``DataBundle.fingerprint``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch.utils.data import Dataset

from kdrun.data.base import DataBundle, TensorData


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 (first 16 hex digits) of the tensors' dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


def _split_digest(split: Dataset | None) -> str | None:
    if isinstance(split, TensorData):  # a generated transfer set too (its labels are NO_LABEL)
        return tensor_digest(split.x, split.y)
    return None


def data_fingerprint(data: DataBundle) -> dict[str, Any]:
    """Per split (train, val, test, transfer): a digest of its contents, or None where it is read from files;
    ``files``: the root and file list of data read from the user's own files."""
    return {"train": _split_digest(data.train), "val": _split_digest(data.val), "test": _split_digest(data.test),
            "transfer": _split_digest(data.transfer), "files": data.fingerprint}
