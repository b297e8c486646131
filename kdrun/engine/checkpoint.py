"""Loading a checkpoint into a model strictly, with one-line errors that say what does not fit.

Checkpoints are taken as people have them: kdrun's own, the reference format (``{'model': ...}``),
``{'state_dict': ...}``, a bare state dict, safetensors files (kdrun/io.py reads them all without running
code). Before the strict match the weights are normalised, and only in these documented ways:

1. a prefix every key shares is dropped when the model has no such prefix: ``module.`` (DataParallel, DDP),
   ``_orig_mod.`` (torch.compile), ``model.``;
2. a foreign model (kdrun/models/foreign.py) holds the user's network as ``net``: a checkpoint of the bare
   network gets the ``net.`` prefix;
3. floating-point tensors take the model's dtype (fp16/bf16 weights load into a float32 model).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from kdrun.errors import KdrunError
from kdrun.io import load_checkpoint, state_dict_of

STRIPPED_PREFIXES = ("module.", "_orig_mod.", "model.")


def normalise(weights: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weights`` renamed and cast as the module docstring says, to match a model whose state is ``own``."""
    weights = dict(weights)
    changed = True
    while changed and weights:
        changed = False
        for prefix in STRIPPED_PREFIXES:
            if all(k.startswith(prefix) for k in weights) and not all(k.startswith(prefix) for k in own):
                weights = {k[len(prefix):]: v for k, v in weights.items()}
                changed = True
    if own and all(k.startswith("net.") for k in own) and not any(k.startswith("net.") for k in weights):
        weights = {f"net.{k}": v for k, v in weights.items()}
    for k, v in weights.items():
        target = own.get(k)
        if target is not None and v.is_floating_point() and target.is_floating_point() and v.dtype != target.dtype:
            weights[k] = v.to(target.dtype)
    return weights


def load_weights(model: nn.Module, path: str | os.PathLike, arch: str, key: str = "teacher.checkpoint") -> None:
    """Strictly load ``path`` into ``model``; mismatches name the architecture, the class count or the keys."""
    ckpt = load_checkpoint(path, key)
    saved_arch = ckpt.get("arch")
    if isinstance(saved_arch, str) and saved_arch != arch:
        raise KdrunError(f"{key}={path} holds a '{saved_arch}' model, but the config asks for '{arch}'; "
                         f"set the matching architecture or another checkpoint")
    own = model.state_dict()
    weights = normalise(state_dict_of(ckpt, f"{key}={path}"), own)
    _check_shapes(weights, own, path, arch, key)
    # BatchNorm fills in a missing num_batches_tracked itself (torchvision's released weights lack it)
    missing = [k for k in own if k not in weights and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        raise KdrunError(f"{key}={path} does not match architecture {arch} (after dropping a 'module.' prefix): "
                         f"{len(missing)} missing keys (e.g. {missing[:2]}), {len(unexpected)} unexpected "
                         f"(e.g. {unexpected[:2]})")
    model.load_state_dict(weights, strict=True)


def _check_shapes(weights: dict[str, torch.Tensor], own: dict[str, torch.Tensor], path, arch: str, key: str) -> None:
    head = list(own)[-2:]  # the classifier's weight and bias come last in every zoo model
    for name, tensor in own.items():
        if name in weights and weights[name].shape != tensor.shape:
            if name in head and weights[name].shape[1:] == tensor.shape[1:]:
                raise KdrunError(f"{key}={path} was trained for {weights[name].shape[0]} classes, "
                                 f"the dataset has {tensor.shape[0]}; use a checkpoint for this dataset")
            raise KdrunError(f"{key}={path} does not fit {arch}: '{name}' has shape {tuple(weights[name].shape)}, "
                             f"expected {tuple(tensor.shape)}")
