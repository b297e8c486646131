"""The comparison table of a run: one row per stage (one per model for stages that train several),
computed from ``results.json`` only.

Two views of the same rows: a compact one for the terminal (stage, model, method, top-1, Δ, size,
speed-up; it fits 80 columns) and the full one in ``table.md``/``table.csv`` with every column and
the footnotes.

Sizes are those of the files a user would deploy: the saved state dict, ``int8.pt2`` for an int8
row, the compressed state dict for a pruned row. Latencies are medians over timed blocks of calls
(torch.utils.benchmark), every row timed in the same interleaved rounds at the end of the run
(kdrun/quant/rounds.py; rows computing the same thing share one latency), with their interquartile range over
the rounds; speed-ups compare full-batch latencies in
the same mode (eager with eager, compiled with compiled): against the teacher row, and, for rows
derived from a float model (int8, pruned), against that float model. Where the two latencies'
interquartile ranges overlap, the speed-up is shown as ``~1x (overlap)``: the timing cannot tell
the two models apart.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from kdrun.io import write_text_atomic
from kdrun.report.files import TABLE_CSV, TABLE_MD
from kdrun.report.jobs import per_epoch_set, reference_stage, reported_top1

MODES = ("eager", "compiled")
FIELDS = ["stage", "role", "arch", "method", "precision", "top1", "perplexity", "best_top1", "val_top1", "delta_vs_baseline", "params",
          "sparsity", "size_bytes", "size_file", "size_vs_teacher", "eager_ms_b1", "eager_ms_full",
          "eager_iqr_ms_full", "compiled_ms_b1", "compiled_ms_full", "compiled_iqr_ms_full", "full_batch",
          "speedup_vs_teacher_eager", "speedup_vs_teacher_compiled", "speedup_vs_float_eager",
          "speedup_vs_float_compiled", "onnx_top1", "onnx_max_abs_diff", "onnx_bytes", "onnx_ms_b1", "onnx_ms_full",
          "onnx_int8_top1", "onnx_int8_bytes", "onnx_int8_ms_b1", "onnx_int8_ms_full",
          "time_s", "note"]
OVERLAP = "~1x (overlap)"
Render = Callable[[dict[str, Any]], str]


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"  # a diverged value is never shown as a number
    return fmt.format(value)


def _size(n: int | None) -> str:
    if n is None:
        return "–"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _speedup(s: dict | None) -> str:
    if s is None:
        return "–"
    return OVERLAP if s["overlap"] else f"{s['ratio']:.3g}x"


def _ms(row: dict, mode: str, which: str) -> str:
    median, iqr = row[f"{mode}_ms_{which}"], row.get(f"{mode}_iqr_ms_{which}")
    if median is None:
        return "–"
    return f"{median:.3g}" + (f" [{iqr[0]:.3g}–{iqr[1]:.3g}]" if iqr else "")


def _leading_columns(model: str, delta: str) -> dict[str, Render]:
    """The columns both views open with (under their own headers for the model and Δ)."""
    return {"stage": lambda r: r["stage"], model: lambda r: r["arch"], "method": lambda r: r["method"],
            "top-1": lambda r: _num(r["top1"], "{:.2f}"), delta: lambda r: _num(r["delta_vs_baseline"], "{:+.2f}"),
            "perplexity": lambda r: _num(r.get("perplexity"), "{:.3f}")}  # next-token data only (else left out)


def _full_columns(rows: list[dict[str, Any]]) -> dict[str, Render]:
    """Every column table.md shows: header -> how to render a row; latency columns per timed mode."""
    columns: dict[str, Render] = {
        **_leading_columns("architecture", "Δ vs baseline"),
        "val top-1": lambda r: _num(r["val_top1"], "{:.2f}"),
        "params": lambda r: _num(r["params"], "{:,}"),
        "sparsity": lambda r: _num(None if r["sparsity"] is None else 100 * r["sparsity"], "{:.1f}%"),
        "size": lambda r: _size(r["size_bytes"]),
        "file": lambda r: r["size_file"] or "–",
        "size vs teacher": lambda r: _num(r["size_vs_teacher"], "{:.3g}x"),
    }
    for mode in timed_modes(rows):
        columns[f"{mode} ms, batch 1"] = lambda r, m=mode: _ms(r, m, "b1")
        columns[f"{mode} ms, batch N"] = lambda r, m=mode: _ms(r, m, "full")
        columns[f"speed-up vs teacher ({mode})"] = lambda r, m=mode: _speedup(r[f"speedup_vs_teacher_{m}"])
        columns[f"vs float student ({mode})"] = lambda r, m=mode: _speedup(r[f"speedup_vs_float_{m}"])
    columns["ONNX top-1"] = lambda r: _num(r.get("onnx_top1"), "{:.2f}")
    columns["ONNX size"] = lambda r: _size(r.get("onnx_bytes"))
    columns["ONNX ms, batch 1"] = lambda r: _num(r.get("onnx_ms_b1"), "{:.3g}")
    columns["ONNX ms, batch N"] = lambda r: _num(r.get("onnx_ms_full"), "{:.3g}")
    columns["ONNX int8 top-1"] = lambda r: _num(r.get("onnx_int8_top1"), "{:.2f}")
    columns["ONNX int8 size"] = lambda r: _size(r.get("onnx_int8_bytes"))
    columns["ONNX int8 ms, batch 1"] = lambda r: _num(r.get("onnx_int8_ms_b1"), "{:.3g}")
    columns["ONNX int8 ms, batch N"] = lambda r: _num(r.get("onnx_int8_ms_full"), "{:.3g}")
    columns["time (s)"] = lambda r: _num(r["time_s"], "{:.1f}")
    return _non_empty(columns, rows, always=("stage", "architecture", "method", "top-1", "Δ vs baseline"))


def _non_empty(columns: dict[str, Render], rows: list[dict[str, Any]], always: tuple[str, ...]) -> dict[str, Render]:
    """A column no row has a value for (the int8 speed-up without int8 rows) is left out."""
    return {h: render for h, render in columns.items() if h in always or any(render(r) != "–" for r in rows)}


def timed_modes(rows: list[dict[str, Any]]) -> list[str]:
    """The modes any row was timed in: none with measurement off, eager only without compiling."""
    return [m for m in MODES if any(r.get(f"{m}_ms_full") is not None for r in rows)]


def _latencies(record: dict[str, Any]) -> dict[str, Any]:
    lat = record.get("latency") or {}
    out: dict[str, Any] = {"full_batch": None, "rounds": lat.get("rounds")}
    for mode in MODES:
        times, iqrs = lat.get(f"{mode}_ms") or {}, lat.get(f"{mode}_iqr_ms") or {}
        sizes = sorted(times, key=int)
        for which, size in (("b1", sizes[0] if sizes else None), ("full", sizes[-1] if sizes else None)):
            out[f"{mode}_ms_{which}"] = times.get(size)
            out[f"{mode}_iqr_ms_{which}"] = iqrs.get(size)
        if sizes:
            out["full_batch"] = int(sizes[-1])
    return out


def _onnx(record: dict[str, Any]) -> dict[str, Any]:
    """The row's ONNX export (export.onnx=true): onnxruntime's top-1, the logits' max-abs difference from
    PyTorch's, the file's size, its CPU latency at batch 1 and the full batch."""
    out = {"onnx_max_abs_diff": record.get("onnx_max_abs_diff")}
    for kind in ("onnx", "onnx_int8"):  # float, and onnxruntime's int8 quantization of it (export.onnx_int8)
        times = record.get(f"{kind}_ms") or {}
        sizes = sorted(times, key=int)
        out.update({f"{kind}_top1": record.get(f"{kind}_top1"), f"{kind}_bytes": record.get(f"{kind}_bytes"),
                    f"{kind}_ms_b1": times.get(sizes[0]) if sizes else None,
                    f"{kind}_ms_full": times.get(sizes[-1]) if sizes else None})
    return out


def speedup(reference: dict | None, row: dict, mode: str) -> dict | None:
    """``reference`` latency over ``row``'s at the full batch; ``overlap`` when their IQRs intersect."""
    ref = reference.get(f"{mode}_ms_full") if reference else None
    own = row.get(f"{mode}_ms_full")
    if not ref or not own:
        return None
    if reference is row:
        return {"ratio": 1.0, "overlap": False}
    a, b = reference.get(f"{mode}_iqr_ms_full"), row.get(f"{mode}_iqr_ms_full")
    overlap = bool(a and b and a[0] <= b[1] and b[0] <= a[1])
    return {"ratio": ref / own, "overlap": overlap}


def _relative_size(row: dict, teacher: dict | None) -> float | None:
    """Deployed size relative to the teacher's where both are known, else the parameter-count ratio."""
    if teacher is None:
        return None
    for key in ("size_bytes", "params"):
        if row.get(key) and teacher.get(key):
            return row[key] / teacher[key]
    return None


def deployed_size(r: dict[str, Any]) -> tuple[int | None, str | None]:
    """The bytes of the file a user would deploy, and what that file is."""
    if r.get("artifact_bytes"):
        return r["artifact_bytes"], Path(r.get("artifact", "int8.pt2")).name
    if r.get("compressed_bytes"):
        return r["compressed_bytes"], r.get("compressed_format", "compressed state dict")
    return r.get("size_bytes"), "state dict" if r.get("size_bytes") else None


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
        dense = f", dense state dict {_size(r['size_bytes'])}" if r.get("compressed_bytes") else ""
        parts.append(f"sparsity {100 * r['sparsity']:.1f}% (dense kernels{dense})")
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
    ref_stage = reference_stage(results)
    base = reported_top1(results.get("stages", {}).get(ref_stage, {}))
    validated = per_epoch_set(results) == "val"
    if results.get("status") == "failed":
        base = None  # a failed run shows no Δ
    rows = []
    for name, r, _ in entries:
        top1 = reported_top1(r)
        size, size_file = deployed_size(r)
        rows.append({"stage": name, "arch": r.get("arch", ""), "method": r.get("method", ""),
                     "precision": r.get("precision", "fp32"), "top1": top1, "best_top1": r.get("best_top1"),
                     "val_top1": r.get("best_top1") if validated else None,
                     "delta_vs_baseline": None if base is None or top1 is None or name == ref_stage else top1 - base,
                     "perplexity": r.get("perplexity"), "params": r.get("params"), "sparsity": r.get("sparsity"), "size_bytes": size,
                     "size_file": size_file, "time_s": r.get("wall_time"), "role": r.get("role"),
                     "float_reference": r.get("float_reference"), "note": _note(r), **_latencies(r), **_onnx(r)})
    by_name = {row["stage"]: row for row in rows}
    teacher = by_name.get("teacher") or next((row for row in rows if row["role"] == "teacher"), None)
    for row in rows:
        row["size_vs_teacher"] = _relative_size(row, teacher)
        reference = by_name.get(row.pop("float_reference") or "")
        for mode in MODES:
            row[f"speedup_vs_teacher_{mode}"] = speedup(teacher, row, mode)
            row[f"speedup_vs_float_{mode}"] = speedup(reference, row, mode)
    # NaN/inf (a diverged stage) become empty cells in every table, CSV included
    return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
            for row in rows]


def table_title(results: dict[str, Any], prefix: str = "kdrun") -> str:
    """What the run compared: dataset, teacher -> student pair, method (from results.json)."""
    stages = results.get("stages", {})
    teacher = next((s.get("arch") for s in stages.values() if s.get("role") == "teacher"), None)
    student = next((stages[k].get("arch") for k in ("distilled", "baseline") if k in stages),
                   next((s.get("arch") for s in stages.values() if s.get("role") != "teacher"), None))
    pair = " → ".join(a for a in (teacher, student) if a)
    scheme = results.get("scheme")
    parts = [results.get("dataset"), pair, f"method={results['method']}" if results.get("method") else None,
             f"scheme={scheme}" if scheme and scheme != "offline" else None]
    return f"{prefix}: " + ", ".join(p for p in parts if p)


def _compact_columns(rows: list[dict[str, Any]]) -> dict[str, Render]:
    """The terminal view: one speed-up, compiled where timed so (what one deploys), else eager."""
    columns: dict[str, Render] = {**_leading_columns("model", "Δ"), "size": lambda r: _size(r["size_bytes"])}
    modes = timed_modes(rows)
    if modes:
        columns["speed-up"] = lambda r, m=modes[-1]: _speedup(r[f"speedup_vs_teacher_{m}"])
    return _non_empty(columns, rows, always=("stage", "model", "method", "top-1", "Δ"))


def top1_source(rows: list[dict[str, Any]]) -> str:
    """Which set and epoch the top-1 column comes from."""
    if any(r.get("val_top1") is not None for r in rows):
        return "top-1: test set, evaluated once, at the epoch chosen on the validation split (val top-1)"
    return "top-1: test set, last epoch"


def legend(rows: list[dict[str, Any]]) -> str:
    """One line under the terminal table: where top-1 comes from, what Δ and speed-up compare."""
    parts = [top1_source(rows), "Δ: top-1 minus the baseline's"]
    if any(r.get("perplexity") is not None for r in rows):
        parts.insert(1, "next-token data: top-1 is token accuracy and perplexity exp(mean NLL) over the non-padded "
                        "next-token positions")
    modes = timed_modes(rows)
    if modes:
        full = next((r["full_batch"] for r in rows if r.get("full_batch")), "N")
        parts.append(f"speed-up: teacher's {modes[-1]} CPU latency at batch {full} over the row's; "
                     f"{OVERLAP}: interquartile ranges overlap")
    return "; ".join(parts)


def rich_table(rows: list[dict[str, Any]], title: str = "") -> Table:
    """The compact table for a terminal of 80 columns or more (table.md has every column)."""
    # Text, not markup: a title or cell holding "[...]" (a swept list, a path) prints as it is
    table = Table(title=Text(title) if title else None, box=box.SIMPLE_HEAD, pad_edge=False,
                  caption=Text(legend(rows)), caption_justify="left", caption_style="dim")
    columns = _compact_columns(rows)
    for header in columns:
        left = header in ("stage", "model", "method")
        table.add_column(header, justify="left" if left else "right", no_wrap=header != "model")
    for row in rows:
        table.add_row(*(Text(render(row)) for render in columns.values()))
    return table


def markdown_table(rows: list[dict[str, Any]]) -> str:
    columns = _full_columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(render(r) for render in columns.values()) + " |" for r in rows]
    lines += ["", top1_source(rows).replace("top-1: ", "Top-1: ", 1) + "; val top-1: the validation split's top-1 "
              "of that epoch (dataset.val_split)." if any(r.get("val_top1") is not None for r in rows) else
              "Top-1: the test set's, at the last epoch (the published tables' protocol; dataset.val_split holds "
              "out a validation split that chooses the epoch instead)."]
    if any(r.get("perplexity") is not None for r in rows):
        lines += ["", "Next-token data (causal LMs): top-1 is the token accuracy and perplexity is exp(mean "
                  "cross-entropy), both over the non-padded next-token positions of the test set."]
    lines += ["", "Size: the file a user would deploy (the column `file`): the saved state dict, `int8.pt2` "
              "(the exported int8 program) for an int8 row, the compressed state dict for a pruned row."]
    full = next((r["full_batch"] for r in rows if r.get("full_batch")), None)
    if full:
        rounds = next((r.get("rounds") for r in rows if r.get("rounds")), None)
        how = f" in {rounds} interleaved rounds (every row timed in each round; rows with the same architecture " \
              "and precision share one latency)" if rounds else ""
        lines += ["", f"Latency: CPU milliseconds per forward pass at batch 1 and N={full}, timed with "
                  f"torch.utils.benchmark{how}: median [first–third quartile]. Speed-ups compare batch-N medians in "
                  f"the same mode; `{OVERLAP}` marks two latencies whose interquartile ranges overlap (the "
                  "timing cannot tell them apart)."]
    onnx = [r for r in rows if r.get("onnx_top1") is not None]
    if onnx:
        diff = max(r["onnx_max_abs_diff"] for r in onnx)
        lines += ["", "ONNX: `student.onnx` (torch.onnx.export) run by onnxruntime on the CPU (one thread, median of "
                  f"repeated runs); its top-1 on the same test batches as PyTorch's; logits max-abs difference from "
                  f"PyTorch's at most {diff:.2g}."]
        if any(r.get("onnx_int8_top1") is not None for r in onnx):
            lines += ["", "ONNX int8: `student_int8.onnx`, onnxruntime's static quantization of `student.onnx` (QDQ, "
                      "int8 weights per channel, uint8 activations), calibrated on training batches; its top-1 is "
                      "its own, on the same test batches."]
    notes = [f"- {r['stage']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """Speed-ups as plain ratios in the CSV (with an ``~`` prefix where the timings overlap)."""
    out = dict(row)
    for key, value in row.items():
        if key.startswith("speedup_") and value is not None:
            out[key] = f"~{value['ratio']:.4g}" if value["overlap"] else f"{value['ratio']:.4g}"
    return out


def write_tables(rows: list[dict[str, Any]], run_dir: str | Path) -> Path:
    """table.csv (every field) and table.md (every shown column and the footnotes); returns table.md."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(_csv_row(r) for r in rows)
    write_text_atomic(Path(run_dir) / TABLE_CSV, buf.getvalue(), "the table")
    write_text_atomic(Path(run_dir) / TABLE_MD, markdown_table(rows), "the table")
    return Path(run_dir) / TABLE_MD
