"""The runs under a directory, read only from the files runs write.

A run (a single run, or one job of a sweep) is a directory holding ``results.json`` and/or
``.hydra/config.yaml``: results.json says how far it got (``completed``, ``failed`` with the
error, or still ``running`` -- shown as unfinished, since a killed run looks the same), and the
``.hydra`` files say how it was configured (``overrides.yaml``: the command line;
``hydra.yaml``: which option of each config group was chosen). A job that Hydra started but that
wrote no results yet is unfinished too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from kdrun.report.files import METRICS_FILE, RESULTS_FILE

COMPLETED, FAILED, UNFINISHED = "completed", "failed", "unfinished"
# Folders inside a run, or beside sweep jobs, that never hold another run.
NOT_RUNS = {"checkpoints", "tb", "plots", "cache", "data"}


@dataclass
class Job:
    path: Path
    status: str
    error: str | None
    results: dict[str, Any]
    overrides: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, Any] = field(default_factory=dict)

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        """The finished stages shown in tables, in run order."""
        return {k: v for k, v in self.results.get("stages", {}).items() if v.get("in_table", True)}

    @property
    def seed(self) -> Any:
        return self.config.get("seed", self.results.get("seed"))

    def metrics(self) -> list[dict[str, Any]]:
        """Per-epoch records of metrics.jsonl (torn lines skipped)."""
        path = self.path / METRICS_FILE
        if not path.is_file():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records


def primary_stage(stages: list[str], declared: str | None = None) -> str | None:
    """The row a comparison is about: the one the run's scheme declared (results.json's ``primary_stage``);
    for runs written before schemes declared it, the distilled student if there is one, else the last stage."""
    if declared in stages:
        return declared
    if "distilled" in stages:
        return "distilled"
    return stages[-1] if stages else None


def reported_top1(stage: dict[str, Any]) -> float | None:
    """The top-1 reported for a stage (or one model of it): the test set's, of the model the stage kept. Runs
    written before ``test_top1`` existed evaluated every epoch on the test set and kept the last: ``last_top1``."""
    value = stage.get("test_top1")
    return stage.get("last_top1") if value is None else value


def per_epoch_set(results: dict[str, Any]) -> str:
    """The set a run evaluated every epoch (``best_top1``/``last_top1``, the curves): ``val`` or ``test``."""
    return (results.get("evaluation") or {}).get("per_epoch", "test")


def objective_record(results: dict[str, Any]) -> dict[str, Any]:
    """What a sweeper (Optuna) optimizes, and what it is: the primary stage's best validation top-1 with a
    validation split (the epoch the stage kept), else its last-epoch test top-1 (the published protocol has
    nothing else); the stage, the results.json key and the set it was measured on."""
    primary = results.get("primary_stage") or "distilled"  # runs written before schemes declared it
    validated = (results.get("evaluation") or {}).get("per_epoch") == "val"
    key = "best_top1" if validated else "last_top1"
    return {"stage": primary, "key": key, "set": "val" if validated else "test",
            "value": results["stages"].get(primary, {}).get(key)}


def reference_stage(results: dict[str, Any]) -> str:
    """The row differences are taken against, as the run's scheme declared it (the label-only baseline)."""
    return results.get("reference_stage") or "baseline"


def is_run_dir(path: Path) -> bool:
    return (path / RESULTS_FILE).is_file() or (path / ".hydra" / "config.yaml").is_file()


def find_jobs(root: str | os.PathLike) -> list[Job]:
    """Every run at or below ``root`` (a run directory, a sweep, or a folder of either)."""
    root = Path(root)
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        path = Path(dirpath)
        if is_run_dir(path):
            found.append(load_job(path))
            dirnames[:] = []  # a run's own folders hold no other runs
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in NOT_RUNS)
    return sorted(found, key=lambda j: str(j.path))


def load_job(path: Path) -> Job:
    results = _read_json(path / RESULTS_FILE) or {}
    status = results.get("status")
    status = status if status in (COMPLETED, FAILED) else UNFINISHED
    hydra_dir = path / ".hydra"
    overrides = _read_yaml(hydra_dir / "overrides.yaml") or []
    config = _read_yaml(hydra_dir / "config.yaml") or {}
    hydra_cfg = _read_yaml(hydra_dir / "hydra.yaml") or {}
    choices = hydra_cfg.get("hydra", {}).get("runtime", {}).get("choices", {}) or {}
    return Job(path, status, results.get("error"), results, [str(o) for o in overrides], config, choices)


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:  # a damaged file: show the run as unfinished, keep reporting the others
        return None


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
