"""Everything a run writes: metrics.jsonl, results.json, the tables; and what it tells its trackers.

Anything that aggregates runs (the report command, sweep tables) reads only these files.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from kdrun.errors import write_error
from kdrun.io import write_bytes_atomic, write_json_atomic
from kdrun.loggers.base import RunInfo
from kdrun.loggers.fanout import Loggers
from kdrun.loggers.tensorboard import TensorBoardLogger
from kdrun.report.files import METRICS_FILE, RESULTS_FILE
from kdrun.report.run_files import Metrics, read_metrics

log = logging.getLogger("kdrun")


class RunWriter:
    """Per-epoch metrics to ``metrics.jsonl``, then to the run's trackers (kdrun/loggers/: TensorBoard by default;
    the ``logger`` config group chooses them).

    ``metrics.jsonl`` is the source of truth, written before any tracker hears of a number. On resume, metrics
    of epochs after the last checkpoint are dropped from it, and the trackers are started with what it kept
    (TensorBoard rebuilds its log from it; MLflow and W&B continue their run). Lines that are not an epoch's
    record (kdrun/report/run_files.py) are skipped, said once, and kept as they were.
    """

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True, loggers: Loggers | None = None,
                 info: RunInfo | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.loggers = loggers if loggers is not None else Loggers([TensorBoardLogger()])
        self.info = info or RunInfo(self.run_dir, self.run_dir.name)
        self._started = False
        self._said_skipped = False

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    def begin_stage(self, stage: str, first_epoch: int, done: list[dict[str, Any]] = ()) -> None:
        """Start (or resume) ``stage`` at ``first_epoch``; ``done`` is the checkpoint's record of the
        epochs before it. A kill between a checkpoint and its metrics line is repaired from it."""
        if not self.enabled:
            return
        self._sync_stage(stage, first_epoch, done)
        self._start()

    def log_epoch(self, stage: str, epoch: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._start()  # before this record is in the file: a tracker's start replays only earlier ones
        try:
            with self.metrics_path.open("a") as f:
                f.write(json.dumps({"stage": stage, **metrics}) + "\n")
        except OSError as e:
            raise write_error(self.metrics_path, f"the metrics of {stage} epoch {epoch}", e) from None
        self.loggers.log_epoch(stage, epoch, metrics)

    def end_stage(self, stage: str) -> None:
        pass

    def write_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """The run's settings and final numbers (TensorBoard's HParams tab, the trackers' summaries)."""
        if not self.enabled:
            return
        self._start()
        self.loggers.log_final(hparams, metrics)

    def log_files(self, files: list[tuple[Path, str]]) -> None:
        """Files the run wrote, for the trackers that keep artifacts (each with its folder there)."""
        if self.enabled:
            self._start()
            self.loggers.log_files(files)

    def close(self, status: str = "completed") -> None:
        if self._started:
            self.loggers.close(status)
            self._started = False

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self.info.records = self._records()
            self.loggers.start(self.info)

    def _metrics(self) -> Metrics:
        metrics = read_metrics(self.metrics_path)
        note = metrics.skipped_note(self.metrics_path)
        if note and not self._said_skipped:
            log.warning("%s; they stay in the file as they are", note)
            self._said_skipped = True
        return metrics

    def _records(self) -> list[dict[str, Any]]:
        return self._metrics().records

    def _sync_stage(self, stage: str, first_epoch: int, done: list[dict[str, Any]]) -> None:
        path = self.metrics_path
        if not path.exists() and not done:
            return
        lines = self._metrics().lines
        kept = [line for line in lines if line.record is None  # not a record: kept as it was
                or not (line.record["stage"] == stage and line.record["epoch"] >= first_epoch)]
        logged = {line.record["epoch"] for line in kept if line.record is not None and line.record["stage"] == stage}
        raw = [line.raw for line in kept]
        raw += [json.dumps({"stage": stage, **r}).encode() for r in done
                if r["epoch"] not in logged and r["epoch"] < first_epoch]
        write_bytes_atomic(path, b"".join(line + b"\n" for line in raw), "the metrics")

    def write_results(self, results: dict[str, Any]) -> None:
        if self.enabled:
            write_json_atomic(self.run_dir / RESULTS_FILE, results, "the results")
