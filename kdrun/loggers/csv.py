"""CSV (``logger=csv``): ``<run>/csv/metrics.csv``, one row per stage and epoch, one column per scalar (the
names every tracker uses, without the stage's prefix), as lightning's CSVLogger. Rewritten whole from the records each epoch (a few
hundred rows at most), so a resumed run's file equals an uninterrupted run's."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from kdrun.io import write_text_atomic
from kdrun.loggers.base import Logger, RunInfo, epoch_scalars
from kdrun.report.files import CSV_DIR

CSV_FILE = Path(CSV_DIR) / "metrics.csv"


class CSVLogger(Logger):
    name = "csv"

    def __init__(self) -> None:
        self.path: Path | None = None
        self.rows: list[dict[str, Any]] = []

    def start(self, run: RunInfo) -> None:
        self.path = run.run_dir / CSV_FILE
        self.path.parent.mkdir(exist_ok=True)
        self.rows = [_row(r["stage"], r["epoch"], r) for r in run.records]
        self._write()

    def log_epoch(self, stage: str, epoch: int, metrics: dict[str, Any]) -> None:
        self.rows.append(_row(stage, epoch, metrics))
        self._write()

    def _write(self) -> None:
        columns = ["stage", "epoch", *sorted({k for r in self.rows for k in r} - {"stage", "epoch"})]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.path, buf.getvalue(), "the CSV metrics")


def _row(stage: str, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """The stage is a column of its own: ``top1/test``, ``loss/kd`` are shared by every stage's rows."""
    prefix = f"{stage}/"
    return {"stage": stage, "epoch": epoch,
            **{k[len(prefix):]: v for k, v in epoch_scalars(stage, metrics).items()}}
