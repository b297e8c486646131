"""Progress display: rich bars in a terminal, plain log lines otherwise (CI, files, Slurm logs).

One line per stage projects how long the stage and the whole run will take, from measured steps: the steps
after the first progress refresh (the first steps pay for warm-up: allocation, caches, compilation), and, at the
end of the first epoch, that epoch's evaluation too. A long epoch (a CPU user of the 240-epoch CIFAR recipe)
gets the line as soon as the pace is measured; a short one at the end of its first epoch, with the whole
epoch measured. Every line and bar fits 80 columns (the bars' loss and accuracy give way first).
"""

from __future__ import annotations

import logging
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column

log = logging.getLogger("kdrun")
PROJECT_ABOVE_S = 10.0  # stages projected to finish sooner than this need no projection line
EARLY_EPOCH_S = 60.0  # an epoch projected to last longer is projected before it ends (from its measured steps)
MIN_MEASURED_STEPS = 10  # steps after the warm-up that an early projection needs


def duration(seconds: float) -> str:
    """A duration as a person says it: 0.4 s, 45 s, 12 min, 3.4 h, 2.9 days."""
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class ProgressReporter:
    """Epoch and batch progress of one stage at a time.

    Batch-level loss and accuracy are shown from values the engine already synced for logging
    (every ``refresh_every`` steps), so displaying progress adds no host-device sync per step.
    """

    def __init__(self, console: Console | None = None, rich: bool | None = None, refresh_every: int = 20) -> None:
        self.console = console or Console(stderr=True)
        self.rich = self.console.is_terminal if rich is None else rich
        self.refresh_every = refresh_every
        self._bars: Progress | None = None
        self._stage = ""
        self._epoch = self._batches = 0
        self._plain_next = 0.0
        self._position: tuple[int, int] | None = None  # (k, n): this is stage k of the run's n
        self._epochs = self._first_epoch = 0
        self._projected = True
        self._mark: tuple[int, float] | None = None  # (step, time) at the first refresh after the warm-up
        self._last: tuple[int, float] | None = None  # (step, time) at the latest refresh

    def set_position(self, k: int, n: int) -> None:
        """The stage about to run is the ``k``-th of about ``n`` (shown in the bars, used in projections)."""
        self._position = (k, n)

    def start_stage(self, name: str, epochs: int, first_epoch: int) -> None:
        self._stage = name
        self._epochs, self._first_epoch, self._projected = epochs, first_epoch, False
        self._mark = self._last = None
        if first_epoch > 1:
            log.info("%s: resuming after epoch %d of %d", name, first_epoch - 1, epochs)
        if self.rich:
            # the loss/accuracy field takes what is left and is cut first: the times always show whole
            self._bars = Progress(
                TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True, max_width=28)),
                BarColumn(bar_width=12), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}", markup=False,
                           table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis", min_width=0)),
                TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console, transient=True, expand=True,
            )
            self._bars.start()
            where = f"stage {self._position[0]}/{self._position[1]} " if self._position else ""
            self._epoch_task = self._bars.add_task(f"{where}{name} epochs", total=epochs, completed=first_epoch - 1,
                                                   info="")
            self._batch_task = self._bars.add_task("batches", total=1, info="")

    def start_epoch(self, epoch: int, batches: int) -> None:
        self._epoch, self._batches, self._t0 = epoch, batches, time.monotonic()
        self._plain_next = self._t0 + 30.0
        if self._bars:
            self._bars.reset(self._batch_task, total=batches, info="")

    def batch(self, step: int, loss: float | None = None, top1: float | None = None) -> None:
        if not self._projected and self._epoch == self._first_epoch:
            self._measure(step)
        info = "" if loss is None else f"loss {loss:.4f}  acc {top1:.1f}%"
        if self._bars:
            self._bars.update(self._batch_task, completed=step, **({"info": info} if info else {}))
        elif info and time.monotonic() > self._plain_next:  # long epochs: a line every 30 s
            self._plain_next = time.monotonic() + 30.0
            log.info("%s epoch %d: batch %d/%d  %s", self._stage, self._epoch, step, self._batches, info)

    def _measure(self, step: int) -> None:
        """The pace of the steps after the first refresh; a long epoch is projected from it at once."""
        now = time.monotonic()
        self._last = (step, now)
        if self._mark is None:
            self._mark = (step, now)
            return
        measured = step - self._mark[0]
        if measured >= MIN_MEASURED_STEPS:
            per_epoch = (now - self._mark[1]) / measured * self._batches
            if per_epoch >= EARLY_EPOCH_S:
                self._project(per_epoch, "measured steps")

    def _project(self, per_epoch: float, basis: str) -> None:
        """One line: the stage's and the run's projected time at the measured pace."""
        self._projected = True
        stage_left = per_epoch * (self._epochs - self._first_epoch + 1)
        if stage_left < PROJECT_ABOVE_S:
            return
        text = f"{self._stage}: {duration(per_epoch)}/epoch ({basis}), stage ≈ {duration(stage_left)}"
        if self._position and self._position[1] > self._position[0]:
            later = self._position[1] - self._position[0]
            run_left = stage_left + later * per_epoch * self._epochs
            text += f", run ≈ {duration(run_left)} if {later} more stage{'s' if later > 1 else ''} match"
        log.info("%s", text)

    def _project_epoch(self) -> None:
        """At the end of the first epoch: its steps' pace after the warm-up, plus its evaluation, as measured."""
        now = time.monotonic()
        if self._mark is not None and self._last is not None and self._last[0] > self._mark[0]:
            per_step = (self._last[1] - self._mark[1]) / (self._last[0] - self._mark[0])
            per_epoch = per_step * self._batches + (now - self._last[1])  # + the evaluation after the last step
        else:  # too few refreshes to leave the warm-up out: the whole epoch
            per_epoch = now - self._t0
        self._project(per_epoch, "first epoch")

    def end_epoch(self, epoch: int, epochs: int, line: str) -> None:
        if not self._projected and epoch == self._first_epoch:
            self._project_epoch()
        if self._bars:
            self._bars.update(self._epoch_task, completed=epoch, info=line)
        log.info("%s epoch %d/%d  %s", self._stage, epoch, epochs, line)

    def end_stage(self) -> None:
        if self._bars:
            self._bars.stop()
            self._bars = None
