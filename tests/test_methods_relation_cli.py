"""DKD, RKD, SP, CC, PKT and CRD end to end through the CLI, a few steps each, on a same-family
and a cross-family pair (one multirun per pair: one process, the teacher trained once and cached)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import read_metrics, read_results, run_kdrun

METHODS = ("dkd", "rkd", "sp", "cc", "pkt", "crd")
TERMS = {"dkd": "tckd", "rkd": "rkd_angle", "sp": "sp", "cc": "cc", "pkt": "pkt", "crd": "crd_s"}
SMOKE = ["debug=fast", "stages=[teacher,distilled]", f"method={','.join(METHODS)}"]


def sweep(workdir: Path, pair: list[str]) -> dict[str, Path]:
    """Run every method on ``pair``; returns method -> run directory."""
    run_kdrun(["-m", *SMOKE, *pair, f"hydra.sweep.dir={workdir / 'sweep'}"], workdir)
    runs = {}
    for results in sorted((workdir / "sweep").glob("*/results.json")):
        runs[json.loads(results.read_text())["method"]] = results.parent
    return runs


def check_distilled(runs: dict[str, Path], student: str) -> None:
    assert set(runs) == set(METHODS)
    for method, run_dir in runs.items():
        results = read_results(run_dir)
        distilled = results["stages"]["distilled"]
        assert results["status"] == "completed"
        assert (distilled["method"], distilled["arch"], distilled["source"]) == (method, student, "trained")
        last = [r for r in read_metrics(run_dir) if r["stage"] == "distilled"][-1]
        assert last[f"train_{TERMS[method]}"] == last[f"train_{TERMS[method]}"]  # logged and not NaN
        assert (run_dir / "checkpoints" / "distilled" / "last.pt").is_file()


@pytest.mark.slow
def test_same_family_pair_on_digits(workdir):
    pair = ["dataset=digits", "teacher=mlp", "student=mlp", "teacher.hidden=[32,32]", "student.hidden=[16,16]"]
    check_distilled(sweep(workdir, pair), "mlp")


@pytest.mark.slow
def test_cross_family_pair_on_the_default_dataset(workdir):
    pair = ["teacher.channels=[8,8]", "student.hidden=[16]"]  # default: mnist1d, cnn1d -> mlp
    runs = sweep(workdir, pair)
    check_distilled(runs, "mlp")
    assert read_results(runs["crd"])["dataset"] == "mnist1d"
    # the default dataset's largest class has 411 of 4000 samples: 3589 negatives per sample
    assert "crd: 3589 negatives per sample" in (runs["crd"] / "kdrun.log").read_text()
