"""Everything a run writes: metrics.jsonl, results.json, the tables; and what it tells its trackers.

Anything that aggregates runs (the report command, sweep tables) reads only these files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kdrun.errors import write_error
from kdrun.io import write_json_atomic, write_text_atomic
from kdrun.loggers.base import RunInfo
from kdrun.loggers.fanout import Loggers
from kdrun.loggers.tensorboard import TB_DIR, TensorBoardLogger  # noqa: F401 - TB_DIR: where tests look
from kdrun.report.files import METRICS_FILE, RESULTS_FILE


class RunWriter:
    """Per-epoch metrics to ``metrics.jsonl``, then to the run's trackers (kdrun/loggers/: TensorBoard by default;
    the ``logger`` config group chooses them).

    ``metrics.jsonl`` is the source of truth, written before any tracker hears of a number. On resume,
    metrics of epochs after the last checkpoint are dropped from it, and the trackers are started with what it
    kept (TensorBoard rebuilds its log from it; MLflow and W&B continue their run).
    """

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True, loggers: Loggers | None = None,
                 info: RunInfo | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.loggers = loggers if loggers is not None else Loggers([TensorBoardLogger()])
        self.info = info or RunInfo(self.run_dir, self.run_dir.name)
        self._started = False

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

    def _records(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line torn by a kill
                continue
        return records

    def _sync_stage(self, stage: str, first_epoch: int, done: list[dict[str, Any]]) -> None:
        path = self.metrics_path
        if not path.exists() and not done:
            return
        records = [r for r in self._records() if not (r.get("stage") == stage and r.get("epoch", 0) >= first_epoch)]
        logged = {r.get("epoch") for r in records if r.get("stage") == stage}
        records += [{"stage": stage, **r} for r in done if r["epoch"] not in logged and r["epoch"] < first_epoch]
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records), "the metrics")

    def write_results(self, results: dict[str, Any]) -> None:
        if self.enabled:
            write_json_atomic(self.run_dir / RESULTS_FILE, results, "the results")
