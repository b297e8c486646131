"""Every method that serves an MLP student (KD, DKD, RKD, SP, CC, PKT, CRD: method_pairs.serving) end to
end through kdrun's entry point, a few steps each: once on the default dataset (MNIST-1D, mlp student) and
once on digits (resnet8 student), with a same-family teacher on one and a cross-family teacher on the other
(alternating over the methods, so that both datasets see both kinds of pair). One in-process test per
method and dataset (they spread over the xdist workers); each teacher trains once per worker and is cached
in the module's working directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import kdrun_in_process, read_metrics, read_results
from in_process import run_here, skip_run_plots
from method_pairs import VECTOR, serving

# One step and one evaluation batch of 16 per stage: each run proves the method's wiring, not its learning.
SMOKE = ["debug=fast", "stages=[teacher,distilled]", "trainer.batch_size=16", "trainer.max_train_batches=1",
         "trainer.max_eval_batches=1"]


def vector_methods() -> tuple[str, ...]:
    methods = serving(VECTOR)
    assert {"kd", "crd"} <= set(methods)
    return methods


@pytest.fixture(scope="module")
def cwd(tmp_path_factory) -> Path:
    from feature_cli import shared_data_env

    work = tmp_path_factory.mktemp("relation_cli")
    (work / "data").symlink_to(shared_data_env(tmp_path_factory)["KDRUN_DATA"])  # MNIST-1D generated once
    return work


def distilled_run(cwd: Path, args: list[str], name: str, monkeypatch, capsys) -> Path:
    """``kdrun <SMOKE> <args>`` in this process; checks the distilled stage; returns its run directory."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("KDRUN_DATA", str(cwd / "data"))
    skip_run_plots(monkeypatch)
    assert kdrun_in_process([*SMOKE, *args, f"hydra.run.dir=runs/{name}"]) == 0, capsys.readouterr().err[-3000:]
    run_dir = cwd / "runs" / name
    results = read_results(run_dir)
    method, student = args[0].split("=")[1], next(a for a in args if a.startswith("student=")).split("=")[1]
    distilled = results["stages"]["distilled"]
    assert results["status"] == "completed"
    assert (distilled["method"], distilled["arch"], distilled["source"]) == (method, student, "trained")
    last = [r for r in read_metrics(run_dir) if r["stage"] == "distilled"][-1]
    terms = {k: v for k, v in last.items() if k.startswith("train_") and k not in ("train_ce", "train_loss")}
    assert terms and all(v == v for v in terms.values()), (method, terms)  # logged, not NaN
    assert (run_dir / "checkpoints" / "distilled" / "last.pt").is_file()
    return run_dir


def with_teachers(same: str, cross: str, same_first: bool) -> list[tuple[str, str]]:
    """(method, teacher): the same-family and cross-family teachers taken in turn down the method list."""
    turn = (same, cross) if same_first else (cross, same)
    return [(method, turn[i % 2]) for i, method in enumerate(vector_methods())]


# mlp -> mlp (same family) or cnn1d -> mlp (cross family) on MNIST-1D, the embedded default
@pytest.mark.slow
@pytest.mark.parametrize("method, teacher", with_teachers("mlp", "cnn1d", same_first=False))
def test_each_method_on_the_default_dataset(cwd, method, teacher, monkeypatch, capsys):
    args = [f"method={method}", f"teacher={teacher}", "student=mlp", "student.hidden=[32]"]
    run_dir = distilled_run(cwd, args, f"mnist1d_{teacher}_{method}", monkeypatch, capsys)
    assert read_results(run_dir)["dataset"] == "mnist1d"
    if method == "crd":
        # the default dataset's largest class has 411 of 4000 samples: 3589 negatives per sample
        assert "crd: 3589 negatives per sample" in (run_dir / "kdrun.log").read_text()


# resnet14 -> resnet8 (same family) or wrn_16_1 -> resnet8 (cross family) on digits
@pytest.mark.slow
@pytest.mark.parametrize("method, teacher", with_teachers("resnet14", "wrn_16_1", same_first=True))
def test_each_method_on_a_zoo_pair(cwd, method, teacher, monkeypatch, capsys):
    distilled_run(cwd, [f"method={method}", "dataset=digits", f"teacher={teacher}", "student=resnet8"],
                  f"digits_{teacher}_{method}", monkeypatch, capsys)


def test_both_datasets_see_both_kinds_of_pair():
    for same, cross, first in (("mlp", "cnn1d", False), ("resnet14", "wrn_16_1", True)):
        assert {t for _, t in with_teachers(same, cross, first)} == {same, cross}
    default = dict(with_teachers("mlp", "cnn1d", False))
    zoo = dict(with_teachers("resnet14", "wrn_16_1", True))
    assert all((default[m] == "mlp") != (zoo[m] == "resnet14") for m in default)  # each method: one of each


@pytest.mark.parametrize("args, fragments", [
    (["method=cc", "method.form=taylor"], ["method.form=taylor", "gaussian", "reference"]),
    (["method=crd", "method.nce_t=0"], ["method.nce_t=0", "nce_t > 0"]),
])
def test_bad_method_constants_fail_in_one_line_before_training(workdir, args, fragments, monkeypatch):
    from test_bad_input import assert_one_line_error

    proc = run_here(["debug=fast", "hydra.run.dir=run", *args], workdir, monkeypatch, check=False)
    assert_one_line_error(proc, fragments)
    assert not (workdir / "run" / "checkpoints").exists()  # not a single stage trained
