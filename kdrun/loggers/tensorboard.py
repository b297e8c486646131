"""TensorBoard (the default tracker): one event file per run in ``<run>/tb`` with stage-prefixed tags, so
``tensorboard --logdir <sweep dir>`` lists one run per job and draws the jobs' curves of a stage in one chart;
the run's hyperparameters and final metrics go into the same event file (HParams tab).

On resume the log is rebuilt from metrics.jsonl (the source of truth, already cut back to the last
checkpoint): a resumed run's events equal an uninterrupted run's, without TensorBoard's purge rules (which act
on all tags of a run at once).
"""

from __future__ import annotations

import shutil
from typing import Any

from kdrun.loggers.base import Logger, RunInfo, epoch_scalars
from kdrun.report.files import TB_DIR  # the folder's one name (a run's files kdrun owns list it)


class TensorBoardLogger(Logger):
    name = "tensorboard"

    def __init__(self) -> None:
        self._tb: Any = None

    def start(self, run: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        tb_dir = run.run_dir / TB_DIR
        if tb_dir.exists():  # a resumed run: rebuilt below from what metrics.jsonl kept
            shutil.rmtree(tb_dir)
        self._tb = SummaryWriter(str(tb_dir))
        for record in run.records:
            self._add(record["stage"], record["epoch"], record)

    def log_epoch(self, stage: str, epoch: int, metrics: dict[str, Any]) -> None:
        self._add(stage, epoch, metrics)
        self._tb.flush()

    def log_final(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """Written into the run's own event file: ``SummaryWriter.add_hparams`` would create an extra run
        folder per call, which shows up as a spurious run next to every job."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        experiment, session_start, session_end = hparams_summary(hparams, metrics)
        for summary in (experiment, session_start, session_end):
            self._tb._get_file_writer().add_summary(summary)
        for tag, value in metrics.items():
            self._tb.add_scalar(tag, value)
        self._tb.flush()

    def close(self, status: str) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def _add(self, stage: str, epoch: int, metrics: dict[str, Any]) -> None:
        for tag, value in epoch_scalars(stage, metrics).items():
            self._tb.add_scalar(tag, value, epoch)
