"""Report plots: every stage's curves on shared axes, top-1 against the deployed file's size, and the T x alpha
heat map (kdrun/report/heatmap.py); PNG, with a PDF beside each. Titles name the dataset, the teacher -> student
pair and the method; axes name the set their top-1 comes from.

- curves: one run: colour = stage; a sweep: colour = run (labelled with what varies), line style = stage, and a
  stage every run shares (a cached teacher) drawn once. Legends sit inside the axes.
- top-1 vs size: drawn only where sizes differ; every point sits at its true size (log axis), never moved; points
  that coincide are hollow, so each stays visible, and the legend says which markers lie on each other.

Drawn with matplotlib's object API on figures that are only saved: no pyplot, no global backend
switch, so nothing changes for a notebook or GUI that imports kdrun.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from kdrun.report.aggregate import Stat, Summary
from kdrun.report.figures import figure_title, label, save, set_name
from kdrun.report.heatmap import heatmaps
from kdrun.report.jobs import reported_top1
from kdrun.report.table import deployed_size

__all__ = ["curves", "figure_title", "heatmaps", "size_plot", "write_plots"]
MAX_LEGEND = 12
STAGE_COLORS = matplotlib.colormaps["tab10"]
RUN_COLORS = matplotlib.colormaps["viridis"]
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def write_plots(summary: Summary, out_dir: Path) -> list[Path]:
    """Every plot that the runs' data supports; returns the PNG files written (each has its PDF beside it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = heatmaps(summary, out_dir)
    for path in (curves(summary, out_dir / "curves.png"), size_plot(summary, out_dir / "size_vs_top1.png")):
        if path is not None:
            written.append(path)
    return written


def _run_color(g: int, groups: int):
    return RUN_COLORS(0.85 * g / max(1, groups - 1))


def curves(summary: Summary, path: Path) -> Path | None:
    """Top-1 and loss per epoch of every stage on the set evaluated every epoch, on shared axes."""
    series = _curve_series(summary)
    stages = [s for s in summary.stages if any(series.get((g, s)) for g in range(len(summary.groups)))]
    if not stages:
        return None
    groups = len(summary.groups)
    fig = Figure(figsize=(11, 4.6))
    top1_ax, loss_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    epochs_seen: set[int] = set()
    drawn: dict[str, list] = {}  # stage -> curves drawn: a stage every run shares (a cached teacher) is drawn once
    for (g, stage), (epochs, top1, loss) in series.items():
        if stage not in stages or (epochs, top1, loss) in drawn.setdefault(stage, []):
            continue
        drawn[stage].append((epochs, top1, loss))
        style = _curve_style(g, groups, stages.index(stage), len(epochs))
        top1_ax.plot(epochs, top1, label=stage, **style)
        loss_ax.plot(epochs, loss, label=stage, **style)
        epochs_seen.update(epochs)
    shared = {s for s in stages if groups > 1 and len(drawn.get(s, [])) == 1}
    if groups > 1:  # a stage every run shares is one curve: grey, not the colour of the first run
        for ax in (top1_ax, loss_ax):
            for line in ax.lines:
                if line.get_label() in shared:
                    line.set_color("0.45")
    which = set_name(summary)
    for ax, ylabel in ((top1_ax, f"{which} top-1 (%)"), (loss_ax, f"{which} loss (cross-entropy)")):
        ax.set_xlabel("epoch of the stage")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(epochs_seen) <= 12:
            ax.set_xticks(sorted(epochs_seen))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _curve_legends(top1_ax, loss_ax, summary, stages, shared)
    fig.suptitle(f"{figure_title(summary)}: {which} top-1 and loss per epoch", fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def _curve_style(g: int, groups: int, stage_index: int, points: int) -> dict:
    """One run: colour = stage. A sweep: colour = run, line style = stage."""
    marker = {"marker": "o", "markersize": 3} if points < 20 else {}
    if groups == 1:
        return {"color": STAGE_COLORS(stage_index % 10), "linestyle": "-", "alpha": 0.9, **marker}
    return {"color": _run_color(g, groups), "linestyle": LINESTYLES[stage_index % len(LINESTYLES)], "alpha": 0.9,
            "linewidth": 1.3}


def _curve_legends(top1_ax, loss_ax, summary: Summary, stages: list[str], shared: set[str]) -> None:
    """Inside the axes: stages (by colour for one run, by line style in a sweep) and, in a sweep, the runs."""
    groups = len(summary.groups)
    if groups == 1:
        handles = [Line2D([], [], color=STAGE_COLORS(i % 10), label=s) for i, s in enumerate(stages)]
        top1_ax.legend(handles=handles, fontsize=8, title="stage", title_fontsize=8, loc="best")
        return
    handles = [Line2D([], [], color="0.45" if s in shared else "0.2", linestyle=LINESTYLES[i % len(LINESTYLES)],
                      label=s + (" (same in every run)" if s in shared else "")) for i, s in enumerate(stages)]
    loss_ax.legend(handles=handles, fontsize=7, title="stage", title_fontsize=7, loc="best")
    runs = [Line2D([], [], color=_run_color(i, groups), label=label(g.settings))
            for i, g in enumerate(summary.groups[:MAX_LEGEND])]
    if groups > MAX_LEGEND:
        runs.append(Line2D([], [], color="none", label=f"... {groups - MAX_LEGEND} more runs"))
    top1_ax.legend(handles=runs, fontsize=7, title="run (" + ", ".join(summary.keys) + ")", title_fontsize=7,
                   loc="best")


def _curve_series(summary: Summary) -> dict[tuple[int, str], tuple[list[int], list[float], list[float]]]:
    """(group index, stage) -> epochs, mean top-1 and loss over the group's runs (metrics.jsonl), on the set
    evaluated every epoch (``val_top1`` in runs written before the sets were named held the test set's)."""
    series = {}
    key = summary.per_epoch
    for i, g in enumerate(summary.groups):
        per_stage: dict[str, dict[int, list[tuple[float, float]]]] = {}
        for job in g.jobs:
            for rec in job.metrics():
                top1 = rec.get(f"{key}_top1", rec.get("val_top1"))
                if top1 is None:
                    continue
                per_stage.setdefault(rec.get("stage"), {}).setdefault(rec["epoch"], []).append(
                    (top1, rec.get(f"{key}_loss", rec.get("val_loss", math.nan))))
        for stage, by_epoch in per_stage.items():
            if stage in summary.stages:
                epochs = sorted(by_epoch)
                series[(i, stage)] = (epochs, [statistics.fmean(v[0] for v in by_epoch[e]) for e in epochs],
                                      [statistics.fmean(v[1] for v in by_epoch[e]) for e in epochs])
    return series


def size_plot(summary: Summary, path: Path) -> Path | None:
    """Test top-1 against the deployed file's size, where sizes differ; None where every row has one size."""
    points = _size_points(summary)
    if len({p[0] for p in points}) < 2:
        return None
    return save(size_figure(summary, points), path)


def size_figure(summary: Summary, points: list[tuple]) -> Figure:
    """Colour = stage, marker = group of runs; error bars: std over seeds; every point at its true size."""
    groups = len(summary.groups)
    fig = Figure(figsize=(7.5, 5))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    stages = [s for s in summary.stages if any(p[3] == s for p in points)]
    span = max(p[1] for p in points) - min(p[1] for p in points)
    hides = [any(q[0] == p[0] and abs(q[1] - p[1]) <= max(0.04 * span, 0.05) for q in points[:k])
             for k, p in enumerate(points)]  # within a marker's height of an earlier point at the same size
    for (size, top1, std, stage, g, _), hidden in zip(points, hides):
        ax.errorbar([size], [top1], yerr=[std], fmt=MARKERS[g % len(MARKERS)], capsize=3, alpha=0.9,
                    color=STAGE_COLORS(stages.index(stage) % 10), markersize=8 if hidden else 6,
                    markerfacecolor="none" if hidden else None, markeredgewidth=1.5)
    for size, arch in sorted({(p[0], p[5]) for p in points}):
        top = max(p[1] for p in points if p[0] == size)
        ax.annotate(arch, (size, top), textcoords="offset points", xytext=(0, 9), ha="center", fontsize=7)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _bytes(v)))
    sizes = [p[0] for p in points]
    if max(sizes) < 30 * min(sizes):  # within a decade or so: label the minor ticks too
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: _bytes(v)))
        ax.tick_params(axis="x", which="both", labelsize=7, length=3.5)
    ax.set_xlabel("size of the deployed file (state dict, int8.pt2, pruned.pt.gz), log scale")
    ax.set_ylabel("test top-1 (%)")
    ax.grid(alpha=0.3, which="both")
    ax.margins(x=0.15, y=0.12)
    handles = [Line2D([], [], color=STAGE_COLORS(i % 10), marker="o", linestyle="", label=s)
               for i, s in enumerate(stages)]
    if any(hides):
        handles.append(Line2D([], [], color="0.3", marker="o", markerfacecolor="none", linestyle="",
                              label="hollow: on another point"))
    legend = ax.legend(handles=handles, fontsize=7, title="stage", title_fontsize=7, loc="lower right")
    if 1 < groups <= MAX_LEGEND:
        ax.add_artist(legend)
        ax.legend(handles=[Line2D([], [], color="0.3", marker=MARKERS[i % len(MARKERS)], linestyle="",
                                  label=label(g.settings)) for i, g in enumerate(summary.groups)],
                  fontsize=7, title="run", title_fontsize=7, loc="upper left")
    ax.set_title(f"{figure_title(summary)}: test top-1 vs deployed size", fontsize=10)
    fig.tight_layout()
    return fig


def _size_points(summary: Summary) -> list[tuple]:
    """(size, mean top-1, std, stage, group index, arch) per stage and group; a stage that trains
    several models (mutual learning) gives a point per model."""
    points = []
    for i, g in enumerate(summary.groups):
        for stage, stat in g.stages.items():
            jobs = [j for j in g.jobs if stage in j.stages]
            record = jobs[0].stages[stage] if jobs else {}
            models = record.get("models") or {}
            if len(models) > 1:
                for name, m in models.items():
                    top1 = Stat.of([reported_top1(j.stages[stage].get("models", {}).get(name, {})) for j in jobs])
                    size = deployed_size(m)[0]
                    if size and top1.mean is not None:
                        points.append((size, top1.mean, top1.std or 0.0, stage, i, (record.get("peers") or {}).get(
                            name, record.get("arch", ""))))
                continue
            size = deployed_size(record)[0]
            if size and stat.mean is not None:
                points.append((size, stat.mean, stat.std or 0.0, stage, i, record.get("arch", "")))
    return points


def _bytes(value: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:g} {unit}"
    return f"{value:g} B"
