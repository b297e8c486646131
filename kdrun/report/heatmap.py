"""The T x alpha heat map of a sweep: the primary stage's test top-1, mean ± std and n per cell, with the
teacher's and the baseline's top-1 as references, titled with the dataset and pair."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from kdrun.report.aggregate import Group, Stat, Summary, format_value
from kdrun.report.figures import figure_title, save
from kdrun.report.jobs import reported_top1

T_KEY, ALPHA_KEY = "distill.T", "distill.alpha"


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
        written.append(_heatmap(summary, groups, out_dir / name, ", ".join(f"{k}={v}" for k, v in other)))
    return written


def _references(summary: Summary, groups: list[Group]) -> dict[str, Stat]:
    """The teacher's and the reference stage's (baseline) test top-1 over every run of the map."""
    out = {}
    for stage in ("teacher", summary.reference):
        if stage != summary.primary:
            stat = Stat.of([reported_top1(j.stages[stage]) for g in groups for j in g.jobs if stage in j.stages])
            if stat.mean is not None:
                out[stage] = stat
    return out


def _cell_text(stat: Stat) -> str:
    return f"{stat.mean:.1f}" + (f" ± {stat.std:.1f}" if stat.std is not None else "") + f"\nn={stat.n}"


def _heatmap(summary: Summary, groups: list[Group], path: Path, subtitle: str) -> Path:
    stage = summary.primary
    cells = {(float(_config_value(g, T_KEY)), float(_config_value(g, ALPHA_KEY))): g.stages.get(stage)
             for g in groups}
    temps, alphas = sorted({t for t, _ in cells}), sorted({a for _, a in cells})
    grid = [[math.nan] * len(alphas) for _ in temps]
    for (t, a), stat in cells.items():
        if stat is not None and stat.mean is not None:
            grid[temps.index(t)][alphas.index(a)] = stat.mean
    fig = Figure(figsize=(1.5 * len(alphas) + 3.2, 0.95 * len(temps) + 2.4))
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    for (t, a), stat in cells.items():
        i, j = temps.index(t), alphas.index(a)
        if math.isnan(grid[i][j]):
            ax.text(j, i, "–", ha="center", va="center", fontsize=8)
            continue
        bright = image.norm(grid[i][j]) > 0.6  # dark text on viridis' yellow end
        ax.text(j, i, _cell_text(stat), ha="center", va="center", fontsize=8, color="black" if bright else "white")
    bar = fig.colorbar(image, ax=ax, label=f"{stage} test top-1 (%)")
    references = _references(summary, groups)
    low, high = bar.ax.get_ylim()
    for name, stat in references.items():  # a reference inside the colour range: marked on the bar
        if low <= stat.mean <= high:
            bar.ax.axhline(stat.mean, color="red" if name == "teacher" else "white", linewidth=2)
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_yticks(range(len(temps)), [f"{t:g}" for t in temps])
    ax.set_xlabel("alpha (weight of the KD term)")
    ax.set_ylabel("T (temperature)")
    refs = ", ".join(f"{name} {_cell_text(s).replace(chr(10), ' (')})" for name, s in references.items())
    lines = [figure_title(summary) + (f" ({subtitle})" if subtitle else ""),
             f"{stage} test top-1: mean ± std over seeds, n runs per cell", refs]
    ax.set_title("\n".join(line for line in lines if line), fontsize=8.5)
    fig.tight_layout()
    return save(fig, path)
