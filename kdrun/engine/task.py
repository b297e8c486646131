"""What the engine calls: a Task turns a batch into a loss.

The engine knows no method or scheme names. It asks a task for the parameters to optimize
(``task.parameters()``), the state to checkpoint (``task.state_dict()``), the models to
evaluate (``task.eval_models``, whose first is ``task.eval_model``) and, for each batch, a
:class:`StepOutput`.

A teacher is held outside the module tree (see :func:`frozen`), so it is never in
``parameters()``, never in ``state_dict()``, never switched to train mode and never sees
gradients: no loop can forget it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace

import torch
from torch import nn


@dataclass
class Batch:
    """One training batch. ``index`` holds dataset indices when a method needs them (CRD);
    ``transfer_x`` holds unlabeled inputs for the distillation terms when a transfer set is used."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor | None = None
    transfer_x: torch.Tensor | None = None


@dataclass(frozen=True)
class Progress:
    """Where training is: 1-based epoch of ``epochs``, 0-based step within the epoch."""

    epoch: int
    epochs: int
    step: int = 0
    steps_per_epoch: int = 1


@dataclass
class StepOutput:
    loss: torch.Tensor
    logits: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


def _as_normal_tensors(out):
    """Copies of inference-mode outputs as ordinary tensors, which autograd may save for the
    student's backward (an MSE to a teacher feature saves it); a copy per output is cheap."""
    if isinstance(out, torch.Tensor):
        return out.clone()
    if is_dataclass(out):
        return replace(out, **{f.name: _as_normal_tensors(getattr(out, f.name)) for f in fields(out)})
    if isinstance(out, (list, tuple)):
        return type(out)(_as_normal_tensors(o) for o in out)
    return out


class Frozen:
    """Holds a model out of the parent module's tree: eval mode, no grad, not saved, not optimized.
    Its forward runs in inference mode (no autograd bookkeeping at all)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()
        for p in model.parameters():
            p.requires_grad_(False)

    def __call__(self, *args, **kwargs):
        with torch.inference_mode():
            out = self.model(*args, **kwargs)
        return _as_normal_tensors(out)

    def features(self, x: torch.Tensor, preact: bool = False):
        with torch.inference_mode():
            out = self.model.forward_features(x, preact=preact)
        return _as_normal_tensors(out)


def frozen(model: nn.Module) -> Frozen:
    return Frozen(model)


class Task(nn.Module):
    """Base task. Subclasses register trainable modules as attributes and implement ``forward``."""

    @property
    def eval_model(self) -> nn.Module:
        """The model whose top-1 this task reports."""
        raise NotImplementedError

    @property
    def eval_models(self) -> dict[str, nn.Module]:
        """Every model this task reports, by name; the first is ``eval_model`` (the stage's own top-1).
        A task training several models at once (mutual learning) names each of them."""
        return {"": self.eval_model}

    def forward(self, batch: Batch, progress: Progress) -> StepOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after every optimizer step (a momentum teacher follows the student here); default: nothing."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimizer updates; by default every parameter of the task's modules."""
        return [p for p in self.parameters() if p.requires_grad]

    def frozen_models(self) -> list[nn.Module]:
        """The models this task holds frozen (teachers), outside its module tree."""
        held = [v for value in vars(self).values() for v in (value if isinstance(value, (list, tuple)) else [value])]
        return [v.model for v in held if isinstance(v, Frozen)]

    def to_device(self, device: torch.device, channels_last: bool = False) -> "Task":
        """Move trainable modules and held teachers to ``device`` (NHWC weights with ``channels_last``)."""
        layout = {"memory_format": torch.channels_last} if channels_last else {}
        self.to(device, **layout)
        for model in self.frozen_models():
            model.to(device, **layout)
        return self


class SupervisedTask(Task):
    """Cross-entropy on labels: trains teachers and baseline students."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def eval_model(self) -> nn.Module:
        return self.model

    def forward(self, batch: Batch, progress: Progress) -> StepOutput:
        logits = self.model(batch.x)
        ce = nn.functional.cross_entropy(logits, batch.y)
        return StepOutput(ce, logits, {"ce": ce})
