"""A search's trials ranked: an Optuna study (``hydra/sweeper=optuna``) is a sweep whose job folders are
its trials; its report lists them best first, by the value each trial returned to the sweeper.

The value is :func:`objective`, the one number a kdrun job returns to any sweeper (kdrun/cli.py), so the
ranking is the order the sweeper itself saw. Only files the runs and the sweeper wrote are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from kdrun.report.aggregate import Stat, Summary
from kdrun.report.files import OPTUNA_RESULTS, SWEEP_CONFIG
from kdrun.report.jobs import objective_record



def objective(results: dict[str, Any]) -> float | None:
    """What a sweeper optimizes, from the row the run's scheme is about (its primary stage): its best validation
    top-1 with a validation split (dataset.val_split), else its last-epoch test top-1 (kdrun/report/jobs.py's
    :func:`objective_record`, which results.json records as ``objective`` with the stage, key and set)."""
    value = (results.get("objective") or objective_record(results)).get("value")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def is_study(path: Path) -> bool:
    """A sweep folder that a search sweeper (Optuna) ran: its results file, or its sweeper in multirun.yaml
    (a study stopped before its end has no results file yet)."""
    if (path / OPTUNA_RESULTS).is_file():
        return True
    config = path / SWEEP_CONFIG
    if not config.is_file():
        return False
    try:
        target = OmegaConf.select(OmegaConf.load(config), "hydra.sweeper._target_", default="")
    except Exception:  # noqa: BLE001 - a damaged file: an ordinary sweep report still works
        return False
    return "optuna" in str(target).lower()


def rank(summary: Summary) -> None:
    """Order the summary's groups (trials) best first by their mean objective; trials without a value last."""
    for group in summary.groups:
        group.objective = Stat.of([objective(j.results) for j in group.jobs])
    summary.groups.sort(key=lambda g: (g.objective.mean is None, -(g.objective.mean or 0.0)))
    summary.ranked = True


def best_line(summary: Summary) -> str | None:
    """``best trial: distill.T=..., distill.alpha=... (objective 81.20)``, or None without a value."""
    if not summary.ranked or not summary.groups or summary.groups[0].objective.mean is None:
        return None
    best = summary.groups[0]
    settings = ", ".join(f"{k}={v}" for k, v in best.settings.items())
    return f"best trial: {settings or '(the only one)'} (objective {best.objective.mean:.2f})"
