"""Every feature-based method end to end through the CLI on a same-family pair (cnn1d -> narrower cnn1d
on MNIST-1D), in one multirun; FSP's incompatible-pair error; FitNet's two-stage form; init stages
that resume. Cross-family pairs: test_methods_feature_cross.py.
"""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import read_metrics, read_results
from feature_cli import assert_completed_with_init_stages, shared_data_env, sweep_results
from in_process import run_here
from method_pairs import map_methods

SMOKE = ["debug=fast", "dataset=mnist1d", "teacher=cnn1d", "student=cnn1d", "teacher.channels=[16,16,16]",
         "trainer.batch_size=16", "stages=[teacher,distilled]", "trainer.max_train_batches=1",
         "trainer.max_eval_batches=1"]


@pytest.fixture(scope="module")
def module_cwd(tmp_path_factory):
    """One working directory per module: the teacher is trained once and cached."""
    return tmp_path_factory.mktemp("feature_cli")


@pytest.fixture
def cli(module_cwd, tmp_path_factory, monkeypatch):
    """Run kdrun in the module's working directory, in this process (tests/in_process.py)."""
    env = {"KDRUN_DATA": shared_data_env(tmp_path_factory)["KDRUN_DATA"]}
    return lambda args, **kw: run_here(args, module_cwd, monkeypatch, env=env, **kw), module_cwd


@pytest.mark.slow  # each method's stages in-process: test_methods.py; the pipeline: the tests below, test_cli.py
def test_every_map_method_on_a_same_family_pair(cli):
    run, cwd = cli
    methods = map_methods()  # all but FSP, which needs equal widths: below
    assert len(methods) >= 6
    run(["-m", f"method={','.join(methods)}", *SMOKE, "student.channels=[8,12,16]", "hydra.sweep.dir=sweep"])
    assert_completed_with_init_stages(sweep_results(cwd / "sweep"), methods)


@pytest.mark.slow  # two runs; init stages on their own: test_methods.py
def test_fsp_init_stage_runs_and_resumes(cli):
    run, cwd = cli
    args = ["method=fsp", *SMOKE, "student.channels=[16,16,16]", "hydra.run.dir=fsp"]
    run(args)
    run_dir = cwd / "fsp"
    assert list(read_results(run_dir)["stages"]) == ["teacher", "fsp_init", "distilled"]
    assert (run_dir / "checkpoints" / "fsp_init" / "last.pt").is_file()
    assert list((run_dir / "tb").rglob("events.out.tfevents.*"))
    init_records = [m for m in read_metrics(run_dir) if m["stage"] == "fsp_init"]
    assert len(init_records) == 1 and "train_fsp" in init_records[0]
    # as if killed after the init stage: no distilled checkpoint, results.json as the pipeline left it then
    shutil.rmtree(run_dir / "checkpoints" / "distilled")
    results = read_results(run_dir)
    del results["stages"]["distilled"]
    (run_dir / "results.json").write_text(json.dumps({**results, "status": "running"}))
    run(args)
    assert [m for m in read_metrics(run_dir) if m["stage"] == "fsp_init"] == init_records  # resumed, not retrained
    assert read_results(run_dir)["status"] == "completed"
    assert (run_dir / "checkpoints" / "distilled" / "last.pt").is_file()


def test_fsp_incompatible_pair_fails_before_training_in_one_line(cli):
    run, cwd = cli
    proc = run(["method=fsp", *SMOKE, "student.channels=[8,8,8]", "hydra.run.dir=fsp_bad"], check=False)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("kdrun: error:")]
    assert len(errors) == 1 and "method=fsp needs equal channel counts" in errors[0]
    assert "(8, 8, 8)" in errors[0] and "(16, 16, 16)" in errors[0]
    assert not (cwd / "fsp_bad" / "checkpoints").exists()  # nothing trained, not even the teacher


@pytest.mark.slow  # two runs; FitNet's stages on their own: test_methods.py
def test_fitnet_two_stage_is_a_hint_stage_then_kd(cli):
    run, cwd = cli
    run(["method=fitnet", "method.two_stage=true", "distill.alpha=0.9", "distill.gamma=0.1", *SMOKE,
         "student.channels=[8,12,16]", "hydra.run.dir=fitnet2"])
    metrics = read_metrics(cwd / "fitnet2")
    init = [m for m in metrics if m["stage"] == "fitnet_init"]
    distilled = [m for m in metrics if m["stage"] == "distilled"]
    assert len(init) == 1 and "train_hint" in init[0]
    assert "train_kd" in distilled[0] and "train_hint" not in distilled[0]
    proc = run(["method=fitnet", "method.two_stage=true", *SMOKE, "hydra.run.dir=fitnet2_bad"], check=False)
    assert proc.returncode == 2 and "distill.alpha=0" in proc.stderr
