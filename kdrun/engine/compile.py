"""``trainer.compile=true``: torch.compile the models of a training step, or fall back to eager.

Each model is compiled in place (``Module.compile``, which keeps its state-dict keys, so
checkpoints are unchanged), and so is its ``forward_features`` (what feature methods call).
Compiling happens lazily at the first call, so a broken toolchain (no C compiler, an
unsupported op) would otherwise surface in the middle of the first epoch: :func:`compile_step`
runs one trial forward and backward on a real batch right away, restores every weight, buffer
and gradient it touched, and on failure undoes the compilation with a one-line warning.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from kdrun.data.files import one_line

log = logging.getLogger("kdrun")
BACKEND = "inductor"  # tests swap in "eager" (tracing only) or a failing backend


def _compile(model: nn.Module) -> None:
    model.compile(backend=BACKEND)
    if hasattr(model, "forward_features"):
        model.forward_features = torch.compile(model.forward_features, backend=BACKEND)


def decompile(model: nn.Module) -> None:
    model._compiled_call_impl = None
    model.__dict__.pop("forward_features", None)


def _trial(model: nn.Module, x: torch.Tensor, trains: bool) -> None:
    """One forward (+ backward for a trained model) through every compiled entry point, state restored."""
    state = copy.deepcopy(model.state_dict())
    grads = [p.grad for p in model.parameters()]
    try:
        with torch.enable_grad() if trains else torch.inference_mode():  # as in the step (Frozen)
            out = model(x)
            if hasattr(model, "forward_features"):
                out = out.float().sum() + model.forward_features(x).logits.float().sum()
            if trains:
                out.float().sum().backward()
    finally:
        model.load_state_dict(state)
        for p, g in zip(model.parameters(), grads):
            p.grad = g


def compile_step(trained: list[nn.Module], frozen: list[nn.Module], example: torch.Tensor,
                 autocast) -> bool | str:  # fmt: skip
    """Compile the step's models; True when compiled, else the reason it fell back to eager.
    ``autocast`` is the step's precision context (a compiled graph is specialized to it)."""
    models = [(m, True) for m in trained] + [(m, False) for m in frozen]
    try:
        for model, trains in models:
            _compile(model)
            with autocast():
                _trial(model, example, trains and model.training)
    except Exception as e:  # any failure of dynamo, the backend or the toolchain: run eagerly
        for model, _ in models:
            decompile(model)
        reason = one_line(f"{type(e).__name__}: {e}", 160)
        log.warning("trainer.compile=true: compiling failed, training without it (%s)", reason)
        return reason
    return True
