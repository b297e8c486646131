"""Loading a checkpoint into a model strictly, with one-line errors that say what does not fit."""

from __future__ import annotations

import os

from torch import nn

from kdrun.errors import KdrunError
from kdrun.io import load_checkpoint, state_dict_of


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
