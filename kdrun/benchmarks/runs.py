"""The benchmark runs under some folders, read only from the files runs write.

A run directory holds ``results.json`` (status, and per stage ``last_top1``/``best_top1``, arch,
source) and its config -- ``config.yaml`` (resolved, written by the pipeline) or Hydra's
``.hydra/config.yaml``; a benchmark preset adds a ``benchmark`` node naming its cell. Failed and unfinished runs are kept, so tables can say how many of them there were.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from kdrun.report.files import RESULTS_FILE

COMPLETED, FAILED, UNFINISHED = "completed", "failed", "unfinished"
NOT_RUNS = {"checkpoints", "tb", "cache", "data", "plots"}  # folders inside runs that hold no other run


@dataclass
class Run:
    path: Path
    status: str
    results: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def benchmark(self) -> dict[str, Any] | None:
        node = self.config.get("benchmark")
        return node if isinstance(node, dict) else None

    @property
    def seed(self) -> Any:
        return self.config.get("seed", self.results.get("seed"))

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        return self.results.get("stages", {})

    @property
    def error(self) -> str | None:
        return self.results.get("error")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):  # missing or torn: the run shows as unfinished
        return {}


def load_run(path: Path) -> Run:
    results = _read_json(path / RESULTS_FILE)
    status = results.get("status")
    status = status if status in (COMPLETED, FAILED) else UNFINISHED
    config: dict[str, Any] = {}
    for saved in (path / "config.yaml", path / ".hydra" / "config.yaml"):
        if saved.is_file():
            config = OmegaConf.to_container(OmegaConf.load(saved), resolve=False)
            break
    return Run(path, status, results, config)


def find_runs(*roots: str | os.PathLike) -> list[Run]:
    """Every run directory at or below ``roots`` (single runs, sweeps, or folders of them)."""
    found: list[Run] = []
    for root in roots:
        for dirpath, dirnames, _ in os.walk(root):
            path = Path(dirpath)
            if (path / RESULTS_FILE).is_file() or (path / ".hydra" / "config.yaml").is_file():
                found.append(load_run(path))
                dirnames[:] = []
                continue
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in NOT_RUNS)
    return sorted(found, key=lambda r: str(r.path))
