"""Helpers for the feature-method CLI tests: one MNIST-1D cache for every test module, sweep reading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from method_pairs import has_init_stage

# One intra-op thread: these runs are tiny, and on a busy machine a thread pool per process only contends.
QUIET_ENV = {"OMP_NUM_THREADS": "1"}


def shared_data_env(factory: pytest.TempPathFactory) -> dict[str, str]:
    """KDRUN_DATA shared by all test modules of a session (MNIST-1D is generated once, written atomically)."""
    root = factory.getbasetemp().parent / "kdrun-test-data"
    root.mkdir(parents=True, exist_ok=True)
    return {"KDRUN_DATA": str(root), **QUIET_ENV}


def sweep_results(sweep_dir: Path) -> dict[str, dict]:
    """method name -> results.json of each job of a multirun sweep."""
    out = {}
    for path in sorted(sweep_dir.glob("*/results.json")):
        results = json.loads(path.read_text())
        out[results["method"]] = {**results, "dir": path.parent}
    return out


def assert_completed_with_init_stages(results: dict[str, dict], methods) -> None:
    assert sorted(results) == sorted(methods)
    for name, r in results.items():
        assert r["status"] == "completed", (name, r.get("error"))
        stages = list(r["stages"])
        expected = ["teacher", f"{name}_init", "distilled"] if has_init_stage(name) else ["teacher", "distilled"]
        assert stages == expected, (name, stages)
        for stage in expected[1:]:
            assert (r["dir"] / "checkpoints" / stage / "last.pt").is_file(), (name, stage)
        metrics = [json.loads(line) for line in (r["dir"] / "metrics.jsonl").read_text().splitlines()]
        distilled = [m for m in metrics if m["stage"] == "distilled"]
        assert len(distilled) == 1 and distilled[0]["train_ce"] == distilled[0]["train_ce"]  # ran, not NaN
