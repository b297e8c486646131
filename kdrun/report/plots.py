"""Report plots (PNG): a T x alpha heat map, validation curves of every stage on shared axes, accuracy
against the deployed file's size. Titles name the dataset, the teacher -> student pair and the method.

Drawn with matplotlib's object API on figures that are only saved: no pyplot, no global backend
switch, so nothing changes for a notebook or GUI that imports kdrun.
"""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from kdrun.report.aggregate import Group, Stat, Summary, format_value
from kdrun.report.table import deployed_size

T_KEY, ALPHA_KEY = "distill.T", "distill.alpha"
MAX_LEGEND = 12


def write_plots(summary: Summary, out_dir: Path) -> list[Path]:
    """Every plot that the runs' data supports; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = heatmaps(summary, out_dir)
    for path in (curves(summary, out_dir / "curves.png"), size_plot(summary, out_dir / "size_vs_top1.png")):
        if path is not None:
            written.append(path)
    return written


def label(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in settings.items()) or "run"


def _config_value(group: Group, key: str) -> Any:
    node: Any = group.jobs[0].config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def heatmaps(summary: Summary, out_dir: Path) -> list[Path]:
    """Student top-1 over the T x alpha grid; one map per combination of the other swept settings."""
    if summary.primary is None or not ({T_KEY, ALPHA_KEY} & set(summary.keys)):
        return []
    facets: dict[tuple, list[Group]] = {}
    for g in summary.groups:
        other = tuple((k, format_value(v)) for k, v in g.settings.items() if k not in (T_KEY, ALPHA_KEY))
        facets.setdefault(other, []).append(g)
    written = []
    for other, groups in facets.items():
        suffix = "_".join(f"{k}={v}" for k, v in other)
        name = "heatmap_T_alpha" + (f"_{re.sub(r'[^A-Za-z0-9._=,-]+', '-', suffix)}" if suffix else "") + ".png"
        written.append(_heatmap(groups, summary.primary, out_dir / name, ", ".join(f"{k}={v}" for k, v in other)))
    return written


def _heatmap(groups: list[Group], stage: str, path: Path, subtitle: str) -> Path:
    cells = {(float(_config_value(g, T_KEY)), float(_config_value(g, ALPHA_KEY))): g.stages.get(stage)
             for g in groups}
    temps = sorted({t for t, _ in cells})
    alphas = sorted({a for _, a in cells})
    grid = [[math.nan] * len(alphas) for _ in temps]
    for (t, a), stat in cells.items():
        if stat is not None and stat.mean is not None:
            grid[temps.index(t)][alphas.index(a)] = stat.mean
    fig = Figure(figsize=(1.3 * len(alphas) + 2.5, 0.9 * len(temps) + 1.8))
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    for (t, a), stat in cells.items():
        i, j = temps.index(t), alphas.index(a)
        if math.isnan(grid[i][j]):
            ax.text(j, i, "–", ha="center", va="center", fontsize=8)
            continue
        text = f"{stat.mean:.1f}" + (f"\n±{stat.std:.1f}" if stat.std is not None else "")
        bright = image.norm(grid[i][j]) > 0.6  # dark text on viridis' yellow end
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if bright else "white")
    fig.colorbar(image, ax=ax, label=f"{stage} top-1 (%)")
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_yticks(range(len(temps)), [f"{t:g}" for t in temps])
    ax.set_xlabel("alpha (weight of the KD term)")
    ax.set_ylabel("T (temperature)")
    ax.set_title(f"{stage} top-1, last epoch, mean over seeds" + (f"\n{subtitle}" if subtitle else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


STAGE_COLORS = matplotlib.colormaps["tab10"]
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _group_style(i: int) -> dict[str, Any]:
    """Line style and marker of group ``i``: groups stay distinguishable where colours mean stages."""
    return {"linestyle": LINESTYLES[i % len(LINESTYLES)], "marker": MARKERS[i % len(MARKERS)]}


def figure_title(summary: Summary) -> str:
    """Dataset, teacher -> student pair and method; a part that differs between runs lists its values."""
    parts: list[list[str]] = [[], [], [], []]
    for job in summary.jobs:
        stages = job.stages
        teacher = next((s.get("arch") for s in stages.values() if s.get("role") == "teacher"), None)
        student = next((stages[k].get("arch") for k in ("distilled", "baseline") if k in stages), None)
        values = (job.results.get("dataset"), " → ".join(a for a in (teacher, student) if a),
                  f"method={job.results['method']}" if job.results.get("method") else None,
                  f"scheme={job.results['scheme']}" if job.results.get("scheme", "offline") != "offline" else None)
        for seen, value in zip(parts, values):
            if value and value not in seen:
                seen.append(value)
    return ", ".join(" | ".join(p) for p in parts if p) or "kdrun"


def curves(summary: Summary, path: Path) -> Path | None:
    """Validation top-1 and loss per epoch of every stage on shared axes: colour = stage, line style
    and marker = group of runs (mean over its seeds)."""
    series = _curve_series(summary)
    stages = [s for s in summary.stages if any(series.get((g, s)) for g in range(len(summary.groups)))]
    if not stages:
        return None
    groups = len(summary.groups)
    fig = Figure(figsize=(11, 4.4 + (0.25 * min(groups, MAX_LEGEND) if groups > 1 else 0.0)))
    top1_ax, loss_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    epochs_seen: set[int] = set()
    drawn: dict[str, list] = {}  # stage -> curves drawn: a stage every group shares (a cached teacher) is drawn once
    for (g, stage), (epochs, top1, loss) in series.items():
        if stage not in stages or (epochs, top1, loss) in drawn.setdefault(stage, []):
            continue
        drawn[stage].append((epochs, top1, loss))
        style = {**_group_style(g), "color": STAGE_COLORS(stages.index(stage) % 10), "alpha": 0.85}
        if groups == 1:
            style.update(linestyle="-", marker="o" if len(epochs) < 20 else None)
        else:
            style["markevery"] = max(1, len(epochs) // 10)
        top1_ax.plot(epochs, top1, **style)
        loss_ax.plot(epochs, loss, **style)
        epochs_seen.update(epochs)
    for ax, ylabel in ((top1_ax, "validation top-1 (%)"), (loss_ax, "validation loss (cross-entropy)")):
        ax.set_xlabel("epoch of the stage")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(epochs_seen) <= 12:
            ax.set_xticks(sorted(epochs_seen))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    shared = {s for s in stages if groups > 1 and len(drawn.get(s, [])) == 1}
    stage_handles = [Line2D([], [], color=STAGE_COLORS(i % 10), label=s + (" (same in every group)" if s in shared else ""))
                     for i, s in enumerate(stages)]
    top1_ax.legend(handles=stage_handles, fontsize=8, title="stage", title_fontsize=8)
    fig.suptitle(f"{figure_title(summary)}: validation curves", fontsize=10)
    _group_legend(fig, summary)
    fig.savefig(path, dpi=120)
    return path


def _group_legend(fig: Figure, summary: Summary) -> None:
    """Below the axes: which line style and marker is which group (up to MAX_LEGEND groups)."""
    groups = len(summary.groups)
    if not 1 < groups <= MAX_LEGEND:
        fig.tight_layout()
        return
    handles = [Line2D([], [], color="0.3", **_group_style(i), label=label(g.settings))
               for i, g in enumerate(summary.groups)]
    rows = math.ceil(groups / 3)
    fig.legend(handles=handles, loc="lower center", ncol=min(3, groups), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.05 * rows, 1, 1))


def _curve_series(summary: Summary) -> dict[tuple[int, str], tuple[list[int], list[float], list[float]]]:
    """(group index, stage) -> epochs, mean validation top-1 and loss over the group's runs (metrics.jsonl)."""
    series = {}
    for i, g in enumerate(summary.groups):
        per_stage: dict[str, dict[int, list[tuple[float, float]]]] = {}
        for job in g.jobs:
            for rec in job.metrics():
                top1 = rec.get(f"{summary.per_epoch}_top1", rec.get("val_top1"))  # val_top1: written before 0.x
                if top1 is None:
                    continue
                per_stage.setdefault(rec.get("stage"), {}).setdefault(rec["epoch"], []).append(
                    (top1, rec.get(f"{summary.per_epoch}_loss", rec.get("val_loss", math.nan))))
        for stage, by_epoch in per_stage.items():
            if stage in summary.stages:
                epochs = sorted(by_epoch)
                series[(i, stage)] = (epochs, [statistics.fmean(v[0] for v in by_epoch[e]) for e in epochs],
                                      [statistics.fmean(v[1] for v in by_epoch[e]) for e in epochs])
    return series


def size_plot(summary: Summary, path: Path) -> Path | None:
    """Last-epoch top-1 against the deployed file's size (log axis): colour = stage, marker = group;
    points that would hide each other are spread sideways."""
    points = _size_points(summary)
    if not points:
        return None
    fig = Figure(figsize=(7, 4.8 + (0.25 * min(len(summary.groups), MAX_LEGEND) if len(summary.groups) > 1 else 0)))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    xs = _spread(points, ax_span=max(p[1] for p in points) - min(p[1] for p in points))
    stages = [s for s in summary.stages if any(p[3] == s for p in points)]
    for (size, top1, std, stage, g, _), x in zip(points, xs):
        ax.errorbar([x], [top1], yerr=[std], fmt=_group_style(g)["marker"], capsize=3, alpha=0.85,
                    color=STAGE_COLORS(stages.index(stage) % 10), markersize=7)
    for size, arch in sorted({(p[0], p[5]) for p in points}):
        top = max(p[1] for p in points if p[0] == size)
        ax.annotate(arch, (size, top), textcoords="offset points", xytext=(0, 9), ha="center", fontsize=7)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _bytes(v)))
    sizes = [p[0] for p in points]
    if max(sizes) < 2 * min(sizes):  # one size (every row the same model): a decade around it
        ax.set_xlim(min(sizes) / 3, max(sizes) * 3)
    if max(sizes) < 30 * min(sizes):  # within a decade or so: label the minor ticks too
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: _bytes(v)))
        ax.tick_params(axis="x", which="both", labelsize=7, length=3.5)
    ax.set_xlabel("size of the deployed file (state dict, int8.pt2, pruned.pt.gz), log scale")
    ax.set_ylabel("test top-1 (%), last epoch")
    ax.grid(alpha=0.3, which="both")
    ax.margins(y=0.12)
    if max(sizes) >= 2 * min(sizes):
        ax.margins(x=0.15)
    ax.legend(handles=[Line2D([], [], color=STAGE_COLORS(i % 10), marker="o", linestyle="", label=s)
                       for i, s in enumerate(stages)], fontsize=8, title="stage", title_fontsize=8)
    ax.set_title(f"{figure_title(summary)}: top-1 vs deployed size", fontsize=10)
    _group_legend(fig, summary)
    fig.savefig(path, dpi=120)
    return path


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
                    top1 = Stat.of([j.stages[stage].get("models", {}).get(name, {}).get("last_top1") for j in jobs])
                    size = deployed_size(m)[0]
                    if size and top1.mean is not None:
                        points.append((size, top1.mean, top1.std or 0.0, stage, i, (record.get("peers") or {}).get(
                            name, record.get("arch", ""))))
                continue
            size = deployed_size(record)[0]
            if size and stat.mean is not None:
                points.append((size, stat.mean, stat.std or 0.0, stage, i, record.get("arch", "")))
    return points


def _spread(points: list[tuple], ax_span: float) -> list[float]:
    """x positions: a point within 4% of the top-1 range of an earlier point of the same size moves
    sideways by a few percent (on the log axis), so coincident points stay visible."""
    tolerance = max(ax_span * 0.04, 0.05)  # about a marker's height
    xs: list[float] = []
    for k, (size, top1, *_rest) in enumerate(points):
        near = sum(1 for j in range(k) if points[j][0] == size and abs(points[j][1] - top1) <= tolerance)
        offset = (near + 1) // 2 * (1 if near % 2 else -1)  # 0, +1, -1, +2, -2, ...
        xs.append(size * 1.05 ** offset)
    return xs


def _bytes(value: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:g} {unit}"
    return f"{value:g} B"
