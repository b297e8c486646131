"""What every report figure shares: its title (dataset, teacher -> student pair, method), how it is saved (PNG
for viewing, PDF beside it for a paper), the name of the set its top-1 comes from."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from kdrun.report.aggregate import Summary, format_value


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


def label(settings: dict) -> str:
    """A group of runs by what varies between groups: ``distill.T=4, distill.alpha=0.9``."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in settings.items()) or "run"


def set_name(summary: Summary) -> str:
    """The set the curves were evaluated on, as a reader says it."""
    return "validation" if summary.per_epoch == "val" else "test"


def save(fig: Figure, path: Path) -> Path:
    """``path`` (PNG) and the same figure as vector graphics beside it (``.pdf``); returns ``path``."""
    fig.savefig(path, dpi=120)
    fig.savefig(path.with_suffix(".pdf"))
    return path
