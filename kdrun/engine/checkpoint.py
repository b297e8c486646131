"""Checkpoints: written atomically, loaded safely (``weights_only=True``), errors in one line.

kdrun's checkpoint keeps the model weights under the key ``model`` -- the same layout as the
reference implementations' published teachers -- so any kdrun checkpoint can be used as a
teacher elsewhere, and published teachers load here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdrun.errors import KdrunError


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``.

    A kill at any moment leaves either the old file or the new one, never a torn write; a failed
    write (disk full) leaves the old one and no temporary file.
    """
    from kdrun.report.files import atomic_path

    with atomic_path(path, "a checkpoint") as tmp, tmp.open("wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def load_checkpoint(path: str | os.PathLike, key: str = "checkpoint") -> dict[str, Any]:
    """Load a checkpoint without executing code from it; a bad file is a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise KdrunError(f"{key}={path} does not exist; give the path of a .pt/.pth checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle with code, random bytes ...
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise KdrunError(f"{key}={path} is corrupt, truncated or not a weights-only checkpoint ({reason})") from None
    if not isinstance(obj, dict):
        raise KdrunError(f"{key}={path} holds a {type(obj).__name__}, expected a dict of weights")
    return obj


def state_dict_of(obj: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights inside a checkpoint: kdrun's and the reference format keep them under ``model``."""
    for k in ("model", "state_dict"):
        if isinstance(obj.get(k), dict):
            return obj[k]
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise KdrunError(f"no weights found in checkpoint (keys: {', '.join(list(obj)[:6])}); expected a 'model' entry")


def load_weights(model: nn.Module, path: str | os.PathLike, arch: str, key: str = "teacher.checkpoint") -> None:
    """Strictly load ``path`` into ``model``; mismatches name the architecture and class count."""
    ckpt = load_checkpoint(path, key)
    saved_arch = ckpt.get("arch")
    if isinstance(saved_arch, str) and saved_arch != arch:
        raise KdrunError(f"{key}={path} holds a '{saved_arch}' model, but the config asks for '{arch}'; "
                         f"set the matching architecture or another checkpoint")
    weights = state_dict_of(ckpt)
    own = model.state_dict()
    head = list(own)[-2:]  # the classifier's weight and bias come last in every zoo model
    for name, tensor in own.items():
        if name in weights and weights[name].shape != tensor.shape:
            if name in head and weights[name].shape[1:] == tensor.shape[1:]:
                raise KdrunError(f"{key}={path} was trained for {weights[name].shape[0]} classes, "
                                 f"the dataset has {tensor.shape[0]}; use a checkpoint for this dataset")
            raise KdrunError(f"{key}={path} does not fit {arch}: '{name}' has shape {tuple(weights[name].shape)}, "
                             f"expected {tuple(tensor.shape)}")
    # BatchNorm fills in a missing num_batches_tracked itself (torchvision's released weights lack it)
    missing = [k for k in own if k not in weights and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        raise KdrunError(f"{key}={path} does not match architecture {arch}: {len(missing)} missing keys "
                         f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})")
    model.load_state_dict(weights, strict=True)
