"""Stop a stage as soon as its loss, a loss term or its weights stop being finite.

A diverged stage must not run on for hours, be cached as a teacher, or appear in a table as a
number. The check follows PyTorch Lightning's ``detect_anomaly``-free default and torchvision's
reference scripts ("Loss is nan, stopping training"), but without a host-device sync per step:
each step only records its (detached) loss and terms; they are checked together once per progress
refresh and at the end of the epoch, where the engine syncs anyway. The weights (and batch-norm
statistics) are checked at the end of every epoch, before the epoch's checkpoint is written, so
the stage's last checkpoint is always its last good epoch.

fp16's GradScaler is untouched: it skips a step whose *gradients* overflow, which is normal; only a
non-finite *loss* (or weight) means the run diverged.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from kdrun.distributed.state import all_reduce_sum_, collective_device, world_size
from kdrun.errors import KdrunError

HINT = "lower trainer.lr, or the method's weight distill.beta"
# Every NonFiniteError message holds this: a run's recorded error (results.json) says it diverged.
NOT_FINITE = "is not finite (NaN or inf)"


class NonFiniteError(KdrunError):
    """A loss, loss term or weight became NaN or infinite; the message names where."""

    def __init__(self, what: str, epoch: int, step: int | None = None, stage: str = "", kept: str = "") -> None:
        self.what, self.epoch, self.step, self.stage, self.kept = what, epoch, step, stage, kept
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"stage {self.stage}, " if self.stage else ""
        at = f"epoch {self.epoch}, step {self.step}" if self.step is not None else f"end of epoch {self.epoch}"
        kept = f"; kept {self.kept} (last good epoch), nothing cached" if self.kept else ""
        return f"{where}{at}: {self.what} {NOT_FINITE}, training stopped; {HINT}{kept}"

    def in_stage(self, stage: str, kept: str = "") -> NonFiniteError:
        """The same error, naming the stage and the checkpoint left from its last good epoch."""
        return NonFiniteError(self.what, self.epoch, self.step, stage, kept)


def is_divergence(error: str | None) -> bool:
    """Whether a failed run's recorded error (results.json's ``error``) is the non-finite guard's."""
    return bool(error) and NOT_FINITE in error


class FiniteWatch:
    """Collects each step's loss and terms on the device; :meth:`check` looks at them in one sync."""

    def __init__(self) -> None:
        self._steps: list[tuple[int, dict[str, torch.Tensor]]] = []

    def record(self, step: int, values: dict[str, torch.Tensor]) -> None:
        """Keep step ``step``'s values (0-based); costs no sync and no kernel launch."""
        self._steps.append((step, {k: v.detach() for k, v in values.items()}))

    def check(self, epoch: int) -> None:
        """Raise :class:`NonFiniteError` naming the first step and term that went non-finite."""
        if not self._steps:
            return
        steps, self._steps = self._steps, []
        names = list(dict.fromkeys(k for _, values in steps for k in values))
        rows = []
        for _, values in steps:
            zero = next(iter(values.values())).new_zeros((), dtype=torch.float32)
            rows.append(torch.stack([values[k].float().sum() if k in values else zero for k in names]))
        bad = ~torch.isfinite(torch.stack(rows))
        if world_size() > 1:  # data-parallel: every rank stops together, or the others wait in a collective
            total = bad.sum().to(collective_device(), torch.float64).reshape(1)
            all_reduce_sum_(total)
            if total.item() and not bad.any():
                raise NonFiniteError("the loss on another data-parallel rank", epoch, steps[-1][0] + 1)
        bad = bad.cpu()  # the one sync
        if not bad.any():
            return
        row = int(bad.any(1).nonzero()[0])
        # name the term that went first (the total is non-finite whenever a term is)
        cols = [int(c) for c in bad[row].nonzero().flatten()]
        col = next((c for c in cols if names[c] != "loss"), cols[0])
        term = "the loss" if names[col] == "loss" else f"the loss term '{names[col]}'"
        raise NonFiniteError(term, epoch, steps[row][0] + 1)


def check_weights(module: torch.nn.Module, epoch: int) -> None:
    """Raise :class:`NonFiniteError` if a parameter or floating buffer of ``module`` is not finite."""
    bad = first_non_finite(floating_tensors(module.state_dict()))
    if bad is not None:
        raise NonFiniteError(f"weight '{bad}'", epoch)


def floating_tensors(state: dict) -> list[tuple[str, torch.Tensor]]:
    return [(n, t) for n, t in state.items() if isinstance(t, torch.Tensor) and torch.is_floating_point(t)]


def first_non_finite(named: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    """The name of the first tensor holding a NaN or inf, in one host sync; None when all are finite."""
    named = list(named)
    if not named:
        return None
    finite = torch.stack([torch.isfinite(t.detach()).all().to(named[0][1].device) for _, t in named]).cpu()
    if bool(finite.all()):
        return None
    return named[int((~finite).nonzero()[0])][0]
