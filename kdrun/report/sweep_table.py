"""The aggregated table of a sweep (one row per group of seeds) as rich, Markdown and CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from kdrun.report.aggregate import Stat, Summary, format_value


def _fmt(stat: Stat, signed: bool = False) -> str:
    if stat.mean is None:
        return "–"
    text = f"{stat.mean:+.2f}" if signed else f"{stat.mean:.2f}"
    return text if stat.std is None else f"{text} ± {stat.std:.2f}"


def headers(summary: Summary) -> list[str]:
    cols = ["rank"] if summary.ranked else []
    cols += [*summary.keys, "runs"]
    cols += [f"{stage} top-1" for stage in summary.stages]
    if summary.primary:
        cols.append(best_header(summary))
        if _with_delta(summary):
            cols.append(f"Δ vs {summary.reference}")
    return cols + ["status"]


def best_header(summary: Summary) -> str:
    """The primary stage's best epoch: on the validation split (what a sweep optimizes) or the test set."""
    return f"{summary.primary} val top-1" if summary.per_epoch == "val" else f"{summary.primary} best"


def _with_delta(summary: Summary) -> bool:
    return summary.primary not in (None, summary.reference) and summary.reference in summary.stages


def text_rows(summary: Summary) -> list[list[str]]:
    """Cells as shown: test top-1 per stage (the kept epoch's), mean ± std over seeds (std when 2+ seeds)."""
    with_delta = _with_delta(summary)
    rows = []
    for i, g in enumerate(summary.groups, 1):
        row = [str(i)] if summary.ranked else []
        row += [format_value(g.settings[k]) for k in summary.keys] + [str(len(g.jobs))]
        row += [_fmt(g.stages.get(stage, Stat(None, None, 0))) for stage in summary.stages]
        if summary.primary:
            row.append(_fmt(g.best))
            if with_delta:
                row.append(_fmt(g.delta, signed=True))
        rows.append(row + [g.status])
    return rows


def rich_sweep_table(summary: Summary, title: str = "") -> Table:
    """The terminal view: the swept settings, runs, the primary stage's top-1, Δ and status (report.md
    has every stage's column)."""
    # Text, not markup: a swept value such as stages=[teacher,baseline] prints as it is
    table = Table(title=Text(title) if title else None, box=box.SIMPLE_HEAD, pad_edge=False)
    keys = set(summary.keys)
    cols = headers(summary)
    primary = f"{summary.primary} top-1" if summary.primary else None
    shown = [i for i, h in enumerate(cols) if h in keys or h in ("rank", "runs", primary, "Δ vs baseline", "status")]
    for i in shown:
        h = cols[i]
        table.add_column(h, justify="left" if h in keys or h == "status" else "right", no_wrap=h not in keys)
    for group, row in zip(summary.groups, text_rows(summary)):
        style = "red" if group.count("failed") else ("yellow" if group.count("unfinished") else None)
        table.add_row(*(Text(row[i]) for i in shown), style=style)
    return table


def markdown_sweep_table(summary: Summary) -> str:
    cols = headers(summary)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(row) + " |" for row in text_rows(summary)]
    return "\n".join(lines) + "\n"


def csv_sweep_table(summary: Summary) -> str:
    """Machine-readable: separate mean/std/n columns, plain numbers."""
    records: list[dict[str, Any]] = []
    for i, g in enumerate(summary.groups, 1):
        rec: dict[str, Any] = {"rank": i} if summary.ranked else {}
        rec.update({k: format_value(g.settings[k]) for k in summary.keys})
        rec.update(runs=len(g.jobs), completed=g.count("completed"), failed=g.count("failed"),
                   unfinished=g.count("unfinished"))
        for stage in summary.stages:
            _put(rec, f"{stage}_top1", g.stages.get(stage, Stat(None, None, 0)))
            rec[f"{stage}_params"] = g.params.get(stage)
        if summary.primary:
            _put(rec, f"{summary.primary}_{'val' if summary.per_epoch == 'val' else 'best'}_top1", g.best)
            _put(rec, "delta_vs_baseline", g.delta)
        if summary.ranked:
            _put(rec, "objective", g.objective)
        records.append(rec)
    buf = io.StringIO()
    fields = list(records[0]) if records else []
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def _put(rec: dict[str, Any], name: str, stat: Stat) -> None:
    rec[f"{name}_mean"], rec[f"{name}_std"], rec[f"{name}_n"] = stat.mean, stat.std, stat.n
