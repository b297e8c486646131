"""The runs under a directory, read only from the files runs write.

A run (a single run, or one job of a sweep) is a directory holding ``results.json`` and/or
``.hydra/config.yaml``: results.json says how far it got (``completed``, ``failed`` with the
error, or still ``running`` -- shown as unfinished, since a killed run looks the same), and the
``.hydra`` files say how it was configured (``overrides.yaml``: the command line;
``hydra.yaml``: which option of each config group was chosen). A job that Hydra started but that
wrote no results yet is unfinished too.

Run files are read through one validated shape (kdrun/report/run_files.py): a folder whose
results.json or saved config is not of it is an *invalid* job, listed with its problem and never
counted, and a folder that only another tool wrote (no manifest of kdrun's, no kdrun config, a
results.json of another shape) is no run at all (:func:`scan` says why, for the one-line error
when nothing under a folder is kdrun's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from kdrun.errors import KdrunError
from kdrun.io import one_line
from kdrun.owned_files import claimed
from kdrun.report.files import METRICS_FILE, RESULTS_FILE
from kdrun.report.run_files import InvalidRunFile, Metrics, read_metrics, read_results

COMPLETED, FAILED, UNFINISHED, INVALID = "completed", "failed", "unfinished", "invalid"
# Keys every kdrun config has (another Hydra app's saved config lacks them)
KDRUN_CONFIG_KEYS = ("seed", "distill", "trainer")
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
    _metrics: Metrics | None = field(default=None, repr=False)

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        """The finished stages shown in tables, in run order."""
        return {k: v for k, v in self.results.get("stages", {}).items() if v.get("in_table", True)}

    @property
    def seed(self) -> Any:
        return self.config.get("seed", self.results.get("seed"))

    def metrics(self) -> list[dict[str, Any]]:
        """Per-epoch records of metrics.jsonl (lines that are not one skipped: :attr:`metrics_note`)."""
        return self.read_metrics().records

    def read_metrics(self) -> Metrics:
        if self._metrics is None:
            self._metrics = read_metrics(self.path)
        return self._metrics

    @property
    def metrics_note(self) -> str | None:
        """One line if metrics.jsonl had lines that are not records (once read)."""
        return self._metrics.skipped_note(self.path / METRICS_FILE) if self._metrics is not None else None


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
    return (path / RESULTS_FILE).exists() or (path / ".hydra" / "config.yaml").exists()


@dataclass
class Scan:
    jobs: list[Job]  # kdrun's runs, invalid ones included
    not_kdrun: list[str]  # why folders that looked like runs are not kdrun's, one line each


def scan(root: str | os.PathLike) -> Scan:
    """Every run at or below ``root`` (a run directory, a sweep, or a folder of either)."""
    found, strangers = [], []
    for dirpath, dirnames, _ in os.walk(Path(root)):
        path = Path(dirpath)
        if is_run_dir(path):
            job = load_job(path)
            (found if isinstance(job, Job) else strangers).append(job)
            dirnames[:] = []  # a run's own folders hold no other runs
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in NOT_RUNS)
    return Scan(sorted(found, key=lambda j: str(j.path)), strangers)


def find_jobs(root: str | os.PathLike) -> list[Job]:
    """Every kdrun run at or below ``root``, invalid ones included (their status says so)."""
    return scan(root).jobs


def load_job(path: Path) -> Job | str:
    """The run in ``path``: an invalid job if its files are not of kdrun's shape, or why it is not kdrun's
    (a folder without kdrun's manifest or config, and without a results.json of kdrun's shape)."""
    hydra_dir = path / ".hydra"
    problem = None
    try:
        overrides = _read_yaml(hydra_dir / "overrides.yaml", list) or []
        config = _read_yaml(hydra_dir / "config.yaml", dict) or {}
        hydra_cfg = _read_yaml(hydra_dir / "hydra.yaml", dict) or {}
    except InvalidRunFile as e:
        problem, overrides, config, hydra_cfg = str(e), [], {}, {}
    try:
        results = read_results(path)
    except InvalidRunFile as e:
        problem, results = problem or str(e), None
    if results is None and not (_has_manifest(path) or all(k in config for k in KDRUN_CONFIG_KEYS)):
        return problem or f"{hydra_dir / 'config.yaml'} is not a kdrun run's config"
    if problem:
        return Job(path, INVALID, problem, {})
    results = results or {}
    status = results.get("status")
    status = status if status in (COMPLETED, FAILED) else UNFINISHED
    choices = ((hydra_cfg.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    return Job(path, status, results.get("error"), results, [str(o) for o in overrides], config, choices)


def _has_manifest(path: Path) -> bool:
    try:
        return claimed(path) is not None
    except KdrunError:  # a garbled manifest is no proof that kdrun made the folder
        return False


def _read_yaml(path: Path, shape: type) -> Any:
    """A saved Hydra file, which must hold a ``shape`` (list or dict); InvalidRunFile in one line if not."""
    if not path.is_file():
        return None
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as e:  # noqa: BLE001 - YAML syntax, bytes that are not text, an OmegaConf error
        raise InvalidRunFile(f"{path} cannot be read as YAML ({one_line(e, limit=100, lines=1)})") from None
    if data is not None and not isinstance(data, shape):
        raise InvalidRunFile(f"{path} holds a {type(data).__name__}, expected a {shape.__name__}")
    return data
