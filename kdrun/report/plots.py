"""Report plots (PNG): a T x alpha heat map, accuracy curves per stage, accuracy against model size.

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
from matplotlib.ticker import MaxNLocator

from kdrun.report.aggregate import Group, Summary, format_value

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


def curves(summary: Summary, path: Path) -> Path | None:
    """Test top-1 per epoch, one panel per stage, one line per group (mean over its seeds)."""
    series = _curve_series(summary)
    stages = [s for s in summary.stages if series.get(s)]
    if not stages:
        return None
    groups = len(summary.groups)
    cols = min(len(stages), 3)
    rows = math.ceil(len(stages) / cols)
    legend_height = 0.3 * min(groups, MAX_LEGEND) if groups > 1 else 0.0
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows + legend_height))
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(len(stages))]
    if groups > 10:  # the default cycle repeats after 10 colors
        cmap = matplotlib.colormaps["tab20"]
        for ax in axes:
            ax.set_prop_cycle(color=[cmap(i % 20) for i in range(groups)])
    for ax, stage in zip(axes, stages):
        for name, epochs, values in series[stage]:
            ax.plot(epochs, values, marker="o" if len(epochs) < 3 else None, label=name)
        ax.set_title(stage)
        epochs = sorted({e for _, es, _ in series[stage] for e in es})
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("test top-1 (%)")
        ax.grid(alpha=0.3)
    if 1 < groups <= MAX_LEGEND:
        handles, labels = axes[-1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0.08 + 0.02 * math.ceil(len(labels) / 3), 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _curve_series(summary: Summary) -> dict[str, list[tuple[str, list[int], list[float]]]]:
    """Per stage: (group label, epochs, mean test top-1 over the group's runs) from metrics.jsonl."""
    series: dict[str, list] = {stage: [] for stage in summary.stages}
    for g in summary.groups:
        per_stage: dict[str, dict[int, list[float]]] = {}
        for job in g.jobs:
            for rec in job.metrics():
                per_stage.setdefault(rec.get("stage"), {}).setdefault(rec["epoch"], []).append(rec["val_top1"])
        for stage, by_epoch in per_stage.items():
            if stage in series:
                epochs = sorted(by_epoch)
                series[stage].append((label(g.settings), epochs, [statistics.fmean(by_epoch[e]) for e in epochs]))
    return series


def size_plot(summary: Summary, path: Path) -> Path | None:
    """Last-epoch top-1 against parameter count: the comparison table as a picture."""
    points: dict[str, list[tuple[int, float, float]]] = {}
    archs: dict[int, str] = {}  # parameter count -> architecture, written once above its points
    for g in summary.groups:
        for stage, stat in g.stages.items():
            params = g.params.get(stage)
            if params is None or stat.mean is None:
                continue
            points.setdefault(stage, []).append((params, stat.mean, stat.std or 0.0))
            job = next(j for j in g.jobs if stage in j.stages)
            archs[params] = job.stages[stage].get("arch", "")
    if not points:
        return None
    fig = Figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    for stage, pts in points.items():
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], fmt="o", capsize=3,
                    label=stage, alpha=0.8)
    if max(archs) > 10 * min(archs):
        ax.set_xscale("log")
    for params, arch in archs.items():
        top = max(p[1] for pts in points.values() for p in pts if p[0] == params)
        ax.annotate(arch, (params, top), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    ax.set_xlabel("parameters")
    ax.set_ylabel("test top-1 (%), last epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
