"""Progress display: rich bars in a terminal, plain log lines otherwise (CI, files, Slurm logs)."""

from __future__ import annotations

import logging
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

log = logging.getLogger("kdrun")


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

    def start_stage(self, name: str, epochs: int, first_epoch: int) -> None:
        self._stage = name
        if first_epoch > 1:
            log.info("%s: resuming after epoch %d of %d", name, first_epoch - 1, epochs)
        if self.rich:
            self._bars = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console, transient=True,
            )
            self._bars.start()
            self._epoch_task = self._bars.add_task(f"{name} epochs", total=epochs, completed=first_epoch - 1, info="")
            self._batch_task = self._bars.add_task("batches", total=1, info="")

    def start_epoch(self, epoch: int, batches: int) -> None:
        self._epoch, self._batches, self._t0 = epoch, batches, time.monotonic()
        self._plain_next = self._t0 + 30.0
        if self._bars:
            self._bars.reset(self._batch_task, total=batches, info="")

    def batch(self, step: int, loss: float | None = None, top1: float | None = None) -> None:
        info = "" if loss is None else f"loss {loss:.4f}  acc {top1:.1f}%"
        if self._bars:
            self._bars.update(self._batch_task, completed=step, **({"info": info} if info else {}))
        elif info and time.monotonic() > self._plain_next:  # long epochs: a line every 30 s
            self._plain_next = time.monotonic() + 30.0
            log.info("%s epoch %d: batch %d/%d  %s", self._stage, self._epoch, step, self._batches, info)

    def end_epoch(self, epoch: int, epochs: int, line: str) -> None:
        if self._bars:
            self._bars.update(self._epoch_task, completed=epoch, info=line)
        log.info("%s epoch %d/%d  %s", self._stage, epoch, epochs, line)

    def end_stage(self) -> None:
        if self._bars:
            self._bars.stop()
            self._bars = None
