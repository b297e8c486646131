"""The comparison table of a run: one row per stage (one per model for stages that train several),
computed from ``results.json`` only.

Latency columns show batch 1 and the full batch (milliseconds, median); speed-ups compare full-batch
latencies in the same mode (eager with eager, compiled with compiled): against the teacher row, and,
for rows derived from a float model (int8, pruned), against that float model.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from rich.table import Table

from kdrun.io import write_text_atomic
from kdrun.report.files import TABLE_CSV, TABLE_MD

FIELDS = ["stage", "role", "arch", "method", "precision", "top1", "best_top1", "delta_vs_baseline", "params", "size_bytes",
          "size_vs_teacher", "eager_ms_b1", "eager_ms_full", "compiled_ms_b1", "compiled_ms_full", "full_batch",
          "speedup_vs_teacher_eager", "speedup_vs_teacher_compiled", "speedup_vs_float_eager",
          "speedup_vs_float_compiled", "time_s", "note"]
COLUMNS = {  # shown columns: header -> how to render a row
    "stage": lambda r: r["stage"],
    "architecture": lambda r: r["arch"],
    "method": lambda r: r["method"],
    "top-1": lambda r: _num(r["top1"], "{:.2f}"),
    "Δ vs baseline": lambda r: _num(r["delta_vs_baseline"], "{:+.2f}"),
    "params": lambda r: _num(r["params"], "{:,}"),
    "size": lambda r: _size(r["size_bytes"]),
    "size vs teacher": lambda r: _num(r["size_vs_teacher"], "{:.3g}x"),
    "eager ms (1 / N)": lambda r: _pair(r["eager_ms_b1"], r["eager_ms_full"], "{:.3g}"),
    "compiled ms (1 / N)": lambda r: _pair(r["compiled_ms_b1"], r["compiled_ms_full"], "{:.3g}"),
    "speed-up vs teacher (eager / compiled)": lambda r: _pair(r["speedup_vs_teacher_eager"],
                                                              r["speedup_vs_teacher_compiled"], "{:.2f}x"),
    "vs float student": lambda r: _pair(r["speedup_vs_float_eager"], r["speedup_vs_float_compiled"], "{:.2f}x"),
    "time (s)": lambda r: _num(r["time_s"], "{:.1f}"),
}
LEFT = ("stage", "architecture", "method")
ALWAYS = ("stage", "architecture", "method", "top-1", "Δ vs baseline", "params")  # shown even when empty


def shown_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The columns worth printing: a column no row has a value for (latency when timing is off, the
    int8 speed-up without int8 rows) is left out of the printed and Markdown tables (the CSV keeps all)."""
    return {h: render for h, render in COLUMNS.items()
            if h in ALWAYS or any(render(r) != "–" for r in rows)}


def _num(value: Any, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def _pair(a: Any, b: Any, fmt: str) -> str:
    return "–" if a is None and b is None else f"{_num(a, fmt)} / {_num(b, fmt)}"


def _size(n: int | None) -> str:
    if n is None:
        return "–"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _latencies(record: dict[str, Any]) -> dict[str, Any]:
    lat = record.get("latency") or {}
    out: dict[str, Any] = {"eager_ms_b1": None, "eager_ms_full": None, "compiled_ms_b1": None,
                           "compiled_ms_full": None, "full_batch": None}
    for mode in ("eager", "compiled"):
        times = lat.get(f"{mode}_ms") or {}
        if times:
            sizes = sorted(times, key=int)
            out[f"{mode}_ms_b1"], out[f"{mode}_ms_full"] = times[sizes[0]], times[sizes[-1]]
            out["full_batch"] = int(sizes[-1])
    return out


def _ratio(reference: dict | None, row: dict, mode: str) -> float | None:
    ref = reference.get(f"{mode}_ms_full") if reference else None
    own = row.get(f"{mode}_ms_full")
    return ref / own if ref and own else None


def _relative_size(row: dict, teacher: dict | None) -> float | None:
    """Size on disk relative to the teacher's where both are known (an int8 row is smaller than its
    parameter count says), else the parameter-count ratio."""
    if teacher is None:
        return None
    for key in ("size_bytes", "params"):
        if row.get(key) and teacher.get(key):
            return row[key] / teacher[key]
    return None


def _note(r: dict[str, Any]) -> str:
    """What a reader needs to trust a row: how an int8 model ran, what failed to compile."""
    parts = []
    if r.get("int8_runtime"):
        parts.append(f"int8 top-1 measured on {r['int8_runtime']}")
    kernels = (r.get("kernels") or {}).get("int8")
    if kernels:
        parts.append("int8 kernels " + ", ".join(f"{k} x{n}" for k, n in sorted(kernels.items())))
    left = (r.get("kernels") or {}).get("float")
    if left:
        parts.append("still float: " + ", ".join(f"{k} x{n}" for k, n in sorted(left.items())))
    if r.get("sparsity") is not None:
        parts.append(f"sparsity {100 * r['sparsity']:.1f}% (dense storage and kernels)")
    error = r.get("compile_error") or (r.get("latency") or {}).get("compile_error")
    if error:
        parts.append(f"torch.compile failed: {error}")
    return "; ".join(parts)


def _stage_entries(results: dict[str, Any]) -> list[tuple[str, dict, dict]]:
    """(row name, row record, stage record): stages training several models give one row per model."""
    entries = []
    for name, s in results.get("stages", {}).items():
        if not s.get("in_table", True):
            continue
        models = s.get("models") or {}
        if len(models) > 1:
            archs = s.get("peers") or {}
            for model, m in models.items():
                entries.append((f"{name}/{model}", {**s, **m, "arch": archs.get(model, s.get("arch"))}, s))
        else:
            entries.append((name, s, s))
    return entries


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for every stage shown in the table, with differences computed from the recorded numbers."""
    entries = _stage_entries(results)
    base = results.get("stages", {}).get("baseline", {}).get("last_top1")
    rows = []
    for name, r, _ in entries:
        top1 = r.get("last_top1")
        rows.append({"stage": name, "arch": r.get("arch", ""), "method": r.get("method", ""),
                     "precision": r.get("precision", "fp32"), "top1": top1, "best_top1": r.get("best_top1"),
                     "delta_vs_baseline": None if base is None or top1 is None or name == "baseline" else top1 - base,
                     "params": r.get("params"), "size_bytes": r.get("size_bytes"), "time_s": r.get("wall_time"),
                     "role": r.get("role"), "float_reference": r.get("float_reference"), "note": _note(r),
                     **_latencies(r)})
    by_name = {row["stage"]: row for row in rows}
    teacher = by_name.get("teacher") or next((row for row in rows if row["role"] == "teacher"), None)
    for row in rows:
        row["size_vs_teacher"] = _relative_size(row, teacher)
        reference = by_name.get(row.pop("float_reference") or "")
        for mode in ("eager", "compiled"):
            row[f"speedup_vs_teacher_{mode}"] = _ratio(teacher, row, mode)
            row[f"speedup_vs_float_{mode}"] = _ratio(reference, row, mode)
    return rows


def rich_table(rows: list[dict[str, Any]], title: str = "") -> Table:
    table = Table(title=title or None)
    columns = shown_columns(rows)
    for header in columns:
        table.add_column(header, justify="left" if header in LEFT else "right")
    for row in rows:
        table.add_row(*(render(row) for render in columns.values()))
    return table


def markdown_table(rows: list[dict[str, Any]]) -> str:
    columns = shown_columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(render(r) for render in columns.values()) + " |" for r in rows]
    full = next((r["full_batch"] for r in rows if r.get("full_batch")), None)
    if full:
        lines += ["", f"Latency: median CPU milliseconds per forward pass at batch 1 and N={full}; "
                  "speed-ups compare batch-N latencies in the same mode."]
    lines += [f"- {r['stage']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict[str, Any]], run_dir: str | Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(Path(run_dir) / TABLE_CSV, buf.getvalue())
    write_text_atomic(Path(run_dir) / TABLE_MD, markdown_table(rows))
