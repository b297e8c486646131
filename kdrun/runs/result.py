"""A finished run as Python objects (``kdrun.run`` returns one): the table's rows, the composed config, the
run folder, and the trained models on demand. Everything is read from the files the run wrote, so
``Result.of(run_dir)`` gives the same object for a run made earlier, by the command line or by another process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from kdrun.errors import KdrunError
from kdrun.runs.stage_model import load_stage_model, run_config, run_results
from kdrun.report.table import markdown_table, table_rows

TEACHER_ROLES = ("teacher", "assistant")


@dataclass(frozen=True)
class Row:
    """One row of the run's table (``table.csv`` has the same columns; ``columns`` holds all of them)."""

    stage: str
    role: str
    arch: str
    method: str
    precision: str
    top1_last: float | None  # test top-1 (%) after the last epoch: the table's number
    top1_best: float | None  # the best epoch's
    delta_vs_baseline: float | None
    params: int | None
    size_bytes: int | None  # the file one deploys (state dict, int8.pt2, ...)
    latency_ms: float | None  # compiled (else eager) CPU latency at batch 1, median; None when not timed
    columns: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @staticmethod
    def of(row: dict[str, Any]) -> "Row":
        latency = row.get("compiled_ms_b1") if row.get("compiled_ms_b1") is not None else row.get("eager_ms_b1")
        return Row(stage=row["stage"], role=row.get("role") or "", arch=row.get("arch") or "",
                   method=row.get("method") or "", precision=row.get("precision") or "fp32",
                   top1_last=row.get("top1"), top1_best=row.get("best_top1"),
                   delta_vs_baseline=row.get("delta_vs_baseline"), params=row.get("params"),
                   size_bytes=row.get("size_bytes"), latency_ms=latency, columns=dict(row))


@dataclass
class Result:
    """What a run produced: ``rows`` (the table), ``run_dir``, ``config`` (composed, as the run used it),
    ``status`` and ``results`` (results.json as a dict)."""

    run_dir: Path
    rows: list[Row]
    config: DictConfig
    results: dict[str, Any]

    @staticmethod
    def of(run_dir: str | Path) -> "Result":
        run_dir = Path(run_dir)
        results = run_results(run_dir)
        return Result(run_dir, [Row.of(r) for r in table_rows(results)], run_config(run_dir), results)

    @property
    def status(self) -> str:
        return str(self.results.get("status"))

    def row(self, stage: str) -> Row:
        for r in self.rows:
            if r.stage == stage:
                return r
        raise KdrunError(f"stage={stage} is not a row of this run; rows: {', '.join(r.stage for r in self.rows)}")

    def load(self, stage: str = "distilled") -> Any:
        """The row's model (``nn.Module`` on the CPU, eval mode; the int8 row: its exported program)."""
        return load_stage_model(self.run_dir, stage)

    def students(self) -> dict[str, Any]:
        """Every student row's model by stage name (distilled, self_distilled, quantized, ...)."""
        return {r.stage: self.load(r.stage) for r in self.rows if r.role not in TEACHER_ROLES}

    def to_pandas(self) -> Any:
        """The table as a pandas DataFrame, one row per stage, every column of table.csv (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise KdrunError("Result.to_pandas() needs pandas, which is not installed; pip install pandas "
                             "(or read result.rows)") from None
        return pd.DataFrame([r.columns for r in self.rows]).set_index("stage")

    def _repr_markdown_(self) -> str:  # a notebook shows the table
        return f"**kdrun run** `{self.run_dir}` ({self.status})\n\n" + markdown_table(table_rows(self.results))

    def __repr__(self) -> str:
        rows = ", ".join(f"{r.stage} {r.top1_last:.2f}" if r.top1_last is not None else r.stage for r in self.rows)
        return f"Result(run_dir={str(self.run_dir)!r}, status={self.status!r}, top1: {rows})"
