"""Everything a run writes: metrics.jsonl, TensorBoard events, results.json, the tables.

Anything that aggregates runs (the report command, sweep tables) reads only these files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kdrun.report.files import METRICS_FILE, RESULTS_FILE, write_json_atomic


class RunWriter:
    """Per-epoch metrics to ``metrics.jsonl`` and to one TensorBoard writer per stage (``tb/<stage>``).

    On resume, metrics of epochs after the last checkpoint are dropped (from the file, and from
    TensorBoard with ``purge_step``), so a resumed run's logs equal an uninterrupted run's.
    """

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tb: dict[str, Any] = {}

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    def begin_stage(self, stage: str, first_epoch: int) -> None:
        if not self.enabled:
            return
        self._drop_epochs_from(stage, first_epoch)
        from torch.utils.tensorboard import SummaryWriter

        self._tb[stage] = SummaryWriter(str(self.run_dir / "tb" / stage), purge_step=first_epoch)

    def log_epoch(self, stage: str, epoch: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.metrics_path.open("a") as f:
            f.write(json.dumps({"stage": stage, **metrics}) + "\n")
        tb = self._tb.get(stage)
        if tb is None:
            return
        for key, value in metrics.items():
            if key.startswith("train_") and key not in ("train_top1",):
                tb.add_scalar(f"loss/{key[len('train_'):]}", value, epoch)
        tb.add_scalar("top1/train", metrics.get("train_top1", 0.0), epoch)
        tb.add_scalar("top1/val", metrics["val_top1"], epoch)
        for key, value in metrics.items():
            if key.startswith("val_top1/"):  # each model of a task that trains several
                tb.add_scalar(f"top1/val_{key[len('val_top1/'):]}", value, epoch)
        tb.add_scalar("loss/val_ce", metrics["val_loss"], epoch)
        tb.add_scalar("lr", metrics["lr"], epoch)
        tb.flush()

    def end_stage(self, stage: str) -> None:
        tb = self._tb.pop(stage, None)
        if tb is not None:
            tb.close()

    def _drop_epochs_from(self, stage: str, first_epoch: int) -> None:
        path = self.metrics_path
        if not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a kill
                continue
            if not (rec.get("stage") == stage and rec.get("epoch", 0) >= first_epoch):
                keep.append(line)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(k + "\n" for k in keep))
        os.replace(tmp, path)

    def write_results(self, results: dict[str, Any]) -> None:
        if self.enabled:
            write_json_atomic(self.run_dir / RESULTS_FILE, results)
