"""The interface every tracker implements, and what it is told about a run.

The run writer (kdrun/runs/writer.py) calls these methods; ``metrics.jsonl`` and ``results.json`` stay the
source of truth, written before any tracker hears of a number, so a tracker can never lose a result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# train_* entries of a task's terms that are not losses: the share of samples distilled (distill.select)
NOT_LOSSES = ("train_selected",)


@dataclass
class RunInfo:
    """A run as trackers see it."""

    run_dir: Path
    name: str  # the run folder's name (a sweep job's: its swept values)
    params: dict[str, Any] = field(default_factory=dict)  # the composed config, flat (``distill.T``: 4.0)
    group: Path | None = None  # the sweep folder of a sweep's job: its runs are grouped by it
    records: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl so far (a resumed run's past)


class Logger:
    """One tracker. Every method may raise: the caller (kdrun/loggers/fanout.py) turns a failure into one
    warning line and goes on without that tracker."""

    name = "logger"

    def start(self, run: RunInfo) -> None:
        """Open the tracker's run (or continue the one this run folder had: a resumed run)."""

    def log_epoch(self, stage: str, epoch: int, metrics: dict[str, Any]) -> None:
        """One epoch of one stage (its metrics.jsonl record)."""

    def log_final(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """The run's settings and final numbers (``final/<stage>/top1_last``, ...), once at the end."""

    def log_files(self, files: list[tuple[Path, str]]) -> None:
        """Files the run wrote, each with the folder it goes to in the tracker (``tables``, ``students/distilled``)."""

    def close(self, status: str) -> None:
        """The run ended: ``completed``, ``failed`` or ``interrupted``."""


def epoch_scalars(stage: str, metrics: dict[str, Any]) -> dict[str, float]:
    """One epoch's record as named scalars: ``<stage>/loss/<term>``, ``<stage>/top1/{train,val,test}``, ``<stage>/lr``
    (each evaluated set under its own name), the same names in every tracker."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key in NOT_LOSSES:
            out[f"{stage}/{key[len('train_'):]}"] = value
        elif key.startswith("train_") and key != "train_top1":
            out[f"{stage}/loss/{key[len('train_'):]}"] = value
    if "train_top1" in metrics:  # a deployed model's record (int8) is evaluated, not trained
        out[f"{stage}/top1/train"] = metrics["train_top1"]
    for s in ("val", "test"):
        if f"{s}_top1" in metrics:
            out[f"{stage}/top1/{s}"] = metrics[f"{s}_top1"]
        if f"{s}_loss" in metrics:
            out[f"{stage}/loss/{s}_ce"] = metrics[f"{s}_loss"]
        for key, value in metrics.items():
            if key.startswith(f"{s}_top1/"):  # each model of a task that trains several (mutual learning)
                out[f"{stage}/top1/{s}_{key[len(s) + 6:]}"] = value
    if "lr" in metrics:
        out[f"{stage}/lr"] = metrics["lr"]
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
