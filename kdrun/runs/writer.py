"""Everything a run writes: metrics.jsonl, TensorBoard events, results.json, the tables.

Anything that aggregates runs (the report command, sweep tables) reads only these files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from kdrun.errors import write_error
from kdrun.io import write_bytes_atomic, write_json_atomic
from kdrun.report.files import METRICS_FILE, RESULTS_FILE, TB_DIR
from kdrun.report.run_files import Metrics, read_metrics

log = logging.getLogger("kdrun")


class RunWriter:
    """Per-epoch metrics to ``metrics.jsonl`` and to one TensorBoard writer per run (``tb/``).

    One writer per run (tags ``<stage>/top1/test``, or ``/val`` with a validation split, ...), so ``tensorboard --logdir <sweep dir>``
    lists one run per sweep job and draws the jobs' curves of a stage in one chart; the run's
    hyperparameters and final metrics go into the same event file (:meth:`write_hparams`).

    ``metrics.jsonl`` is the source of truth. On resume, metrics of epochs after the last
    checkpoint are dropped from it, and the first writer this process opens rebuilds the
    TensorBoard log from it: a resumed run's logs equal an uninterrupted run's, without relying
    on TensorBoard's purge rules (which act on all tags of a run at once). Lines that are not an
    epoch's record (kdrun/report/run_files.py) are skipped, said once, and kept as they were.
    """

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tb: Any = None
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
        self._writer()

    def log_epoch(self, stage: str, epoch: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            with self.metrics_path.open("a") as f:
                f.write(json.dumps({"stage": stage, **metrics}) + "\n")
        except OSError as e:
            raise write_error(self.metrics_path, f"the metrics of {stage} epoch {epoch}", e) from None
        tb = self._writer()
        _add_epoch_scalars(tb, stage, epoch, metrics)
        tb.flush()

    def end_stage(self, stage: str) -> None:
        if self._tb is not None:
            self._tb.flush()

    def write_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """The run's hyperparameters and final metrics for TensorBoard's HParams tab.

        Written into the run's own event file: ``SummaryWriter.add_hparams`` would create an
        extra run folder per call, which shows up as a spurious run next to every job.
        """
        if not self.enabled:
            return
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        tb = self._writer()
        experiment, session_start, session_end = hparams_summary(hparams, metrics)
        for summary in (experiment, session_start, session_end):
            tb._get_file_writer().add_summary(summary)
        for tag, value in metrics.items():
            tb.add_scalar(tag, value)
        tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def _writer(self) -> Any:
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            tb_dir = self.run_dir / TB_DIR
            if tb_dir.exists():  # a resumed run: rebuilt below from what metrics.jsonl kept
                shutil.rmtree(tb_dir)
            self._tb = SummaryWriter(str(tb_dir))
            for record in self._records():
                _add_epoch_scalars(self._tb, record["stage"], record["epoch"], record)
        return self._tb

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


# train_* entries of a task's terms that are not losses: the share of samples distilled (distill.select)
NOT_LOSSES = ("train_selected",)


def _add_epoch_scalars(tb: Any, stage: str, epoch: int, metrics: dict[str, Any]) -> None:
    """One epoch's record as scalars: ``<stage>/loss/<term>``, ``<stage>/top1/{train,val,test}``, ... (each
    evaluated set under its own name)."""
    for key, value in metrics.items():
        if key in NOT_LOSSES:
            tb.add_scalar(f"{stage}/{key[len('train_'):]}", value, epoch)
        elif key.startswith("train_") and key != "train_top1":
            tb.add_scalar(f"{stage}/loss/{key[len('train_'):]}", value, epoch)
    if "train_top1" in metrics:  # a deployed model's record (int8) is evaluated, not trained
        tb.add_scalar(f"{stage}/top1/train", metrics["train_top1"], epoch)
    for s in ("val", "test"):
        if f"{s}_top1" in metrics:
            tb.add_scalar(f"{stage}/top1/{s}", metrics[f"{s}_top1"], epoch)
        if f"{s}_loss" in metrics:
            tb.add_scalar(f"{stage}/loss/{s}_ce", metrics[f"{s}_loss"], epoch)
        for key, value in metrics.items():
            if key.startswith(f"{s}_top1/"):  # each model of a task that trains several (mutual learning)
                tb.add_scalar(f"{stage}/top1/{s}_{key[len(s) + 6:]}", value, epoch)
    tb.add_scalar(f"{stage}/lr", metrics["lr"], epoch)
