"""Every method that serves an MLP student (KD, DKD, RKD, SP, CC, PKT, CRD: method_pairs.serving) end to
end through the CLI, a few steps each, on same-family and cross-family pairs. One multirun per dataset:
one process, each teacher trained once and cached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import read_metrics, read_results, run_kdrun
from method_pairs import VECTOR, serving

SMOKE = ["debug=fast", "stages=[teacher,distilled]"]


def vector_methods() -> tuple[str, ...]:
    methods = serving(VECTOR)
    assert {"kd", "crd"} <= set(methods)
    return methods


def sweep(workdir: Path, args: list[str]) -> dict[tuple[str, str], Path]:
    """Run every method on every pair in ``args``; returns (teacher, method) -> run directory."""
    methods = f"method={','.join(vector_methods())}"
    run_kdrun(["-m", *SMOKE, methods, *args, f"hydra.sweep.dir={workdir / 'sweep'}"], workdir)
    runs = {}
    for results in sorted((workdir / "sweep").glob("*/results.json")):
        record = json.loads(results.read_text())
        runs[record["stages"]["teacher"]["arch"], record["method"]] = results.parent
    return runs


def check_distilled(runs: dict[tuple[str, str], Path], teachers: tuple[str, ...], student: str) -> None:
    assert set(runs) == {(t, m) for t in teachers for m in vector_methods()}
    for (_, method), run_dir in runs.items():
        results = read_results(run_dir)
        distilled = results["stages"]["distilled"]
        assert results["status"] == "completed"
        assert (distilled["method"], distilled["arch"], distilled["source"]) == (method, student, "trained")
        last = [r for r in read_metrics(run_dir) if r["stage"] == "distilled"][-1]
        terms = {k: v for k, v in last.items() if k.startswith("train_") and k not in ("train_ce", "train_loss")}
        assert terms and all(v == v for v in terms.values()), (method, terms)  # logged, not NaN
        assert (run_dir / "checkpoints" / "distilled" / "last.pt").is_file()


@pytest.mark.slow
def test_same_and_cross_family_pairs_on_the_default_dataset(workdir):
    # mlp -> mlp (same family) and cnn1d -> mlp (cross family) on MNIST-1D, the embedded default
    runs = sweep(workdir, ["teacher=cnn1d,mlp", "student.hidden=[32]"])
    check_distilled(runs, ("cnn1d", "mlp"), "mlp")
    assert read_results(runs["cnn1d", "crd"])["dataset"] == "mnist1d"
    # the default dataset's largest class has 411 of 4000 samples: 3589 negatives per sample
    assert "crd: 3589 negatives per sample" in (runs["cnn1d", "crd"] / "kdrun.log").read_text()


@pytest.mark.slow
def test_zoo_pairs_on_digits(workdir):
    # resnet14 -> resnet8 (same family) and wrn_16_1 -> resnet8 (cross family)
    runs = sweep(workdir, ["dataset=digits", "teacher=resnet14,wrn_16_1", "student=resnet8"])
    check_distilled(runs, ("resnet14", "wrn_16_1"), "resnet8")


@pytest.mark.parametrize("args, fragments", [
    (["method=cc", "method.form=taylor"], ["method.form=taylor", "gaussian", "reference"]),
    (["method=crd", "method.nce_t=0"], ["method.nce_t=0", "nce_t > 0"]),
])
def test_bad_method_constants_fail_in_one_line_before_training(workdir, args, fragments):
    from test_bad_input import assert_one_line_error

    proc = run_kdrun(["debug=fast", "hydra.run.dir=run", *args], workdir, check=False)
    assert_one_line_error(proc, fragments)
    assert not (workdir / "run" / "checkpoints").exists()  # not a single stage trained
