"""The comparison table of a run: one row per stage, from ``results.json`` only."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from rich.table import Table

from kdrun.report.files import TABLE_CSV, TABLE_MD, write_text_atomic

COLUMNS = ["stage", "arch", "method", "top1", "best_top1", "delta_vs_baseline", "params", "size_vs_teacher", "time_s"]
HEADERS = {
    "stage": "stage", "arch": "architecture", "method": "method", "top1": "top-1 (last)", "best_top1": "top-1 (best)",
    "delta_vs_baseline": "Δ vs baseline", "params": "params", "size_vs_teacher": "size vs teacher", "time_s": "time (s)",
}


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for every stage shown in the table, with differences computed from the recorded numbers."""
    stages = {k: v for k, v in results.get("stages", {}).items() if v.get("in_table", True)}
    base = stages.get("baseline", {}).get("last_top1")
    teacher_params = stages.get("teacher", {}).get("params")
    rows = []
    for name, s in stages.items():
        top1 = s.get("last_top1")
        rows.append({
            "stage": name, "arch": s.get("arch", ""), "method": s.get("method", ""),
            "top1": top1, "best_top1": s.get("best_top1"),
            "delta_vs_baseline": None if base is None or top1 is None or name == "baseline" else top1 - base,
            "params": s.get("params"),
            "size_vs_teacher": s["params"] / teacher_params if teacher_params and s.get("params") else None,
            "time_s": s.get("wall_time"),
        })
    return rows


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key in ("top1", "best_top1"):
        return f"{value:.2f}"
    if key == "delta_vs_baseline":
        return f"{value:+.2f}"
    if key == "params":
        return f"{value:,}"
    if key == "size_vs_teacher":
        return f"{value:.2f}x"
    if key == "time_s":
        return f"{value:.1f}"
    return str(value)


def rich_table(rows: list[dict[str, Any]], title: str = "") -> Table:
    table = Table(title=title or None)
    for key in COLUMNS:
        table.add_column(HEADERS[key], justify="left" if key in ("stage", "arch", "method") else "right")
    for row in rows:
        table.add_row(*(_fmt(k, row[k]) for k in COLUMNS))
    return table


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADERS[k] for k in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(k, r[k]) for k in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict[str, Any]], run_dir: str | Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(Path(run_dir) / TABLE_CSV, buf.getvalue())
    write_text_atomic(Path(run_dir) / TABLE_MD, markdown_table(rows))
