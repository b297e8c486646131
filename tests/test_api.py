"""The Python API (kdrun/api.py): ``kdrun.run`` is the command line's run, from Python; its Result holds the rows
of results.json as objects and the models that gave them; errors are the command's one line; ``import kdrun``
stays cheap (no torch, no Hydra)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from conftest import REPO, TINY, read_results, run_kdrun

import kdrun
from kdrun.errors import KdrunError

RUN = [*TINY, "stages=[teacher,baseline,distilled,quantized]"]


def test_importing_kdrun_loads_neither_torch_nor_hydra():
    code = ("import sys, kdrun; print(sorted({'torch', 'hydra', 'omegaconf'} & set(sys.modules)), "
            "callable(kdrun.run), callable(kdrun.load), callable(kdrun.compose))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True", "True", "True"]


def test_compose_is_the_commands_config_checked_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = kdrun.compose([*TINY, "distill.T=2"])
    assert cfg.distill.T == 2 and cfg.dataset._target_.endswith("load_digits") and "hydra" not in cfg
    headline = kdrun.compose(["method=rkd", "teacher=resnet20", "student=resnet8"])  # image models: CIFAR-100
    assert headline.dataset._target_.endswith("load_cifar100")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("overrides", [["teacher=nope"], ["distill.alhpa=0.5"], ["distill.T=-1"]])
def test_errors_are_the_command_lines_one_line(overrides, tmp_path, monkeypatch):
    cli = run_kdrun([*TINY, *overrides], tmp_path, check=False)
    line = cli.stderr.strip().removeprefix("kdrun: error: ")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KdrunError) as compose_error:
        kdrun.compose([*TINY, *overrides])
    with pytest.raises(KdrunError) as run_error:
        kdrun.run([*TINY, *overrides])
    assert cli.returncode == 2 and str(compose_error.value) == str(run_error.value) == line and "\n" not in line
    assert not (tmp_path / "outputs").exists()


def test_sweeps_and_flags_stay_on_the_command_line():
    with pytest.raises(KdrunError, match="sweeps stay on the command line"):
        kdrun.run(["-m", "distill.T=1,2"])
    with pytest.raises(KdrunError, match="config overrides only"):
        kdrun.run(["--cfg", "job"])
    with pytest.raises(KdrunError, match="give a list of overrides"):
        kdrun.run("method=rkd")


def test_load_names_the_rows_of_a_run(tmp_path):
    with pytest.raises(KdrunError, match="holds no kdrun run"):
        kdrun.load(tmp_path)
    (tmp_path / "results.json").write_text('{"status": "completed", "stages": {"teacher": {"arch": "mlp", '
                                           '"last_top1": 90.0, "best_top1": 90.0}}}')  # the shape kdrun writes
    with pytest.raises(KdrunError, match="stage=distilled is not a row of .*; rows: teacher"):
        kdrun.load(tmp_path, "distilled")


def _test_top1(run_dir, model) -> float:
    """The model's top-1 on the part of the test set the run evaluated (debug=fast: two batches)."""
    import torch

    from kdrun.tasks.build import build_data
    from kdrun.data.loaders import make_loader
    from kdrun.distributed.data import eval_shard
    from kdrun.engine.loop import evaluate

    cfg = kdrun.Result.of(run_dir).config
    data = build_data(cfg)
    eval_batch = max(cfg.trainer.batch_size, 256)
    test = eval_shard(data.test, eval_batch, cfg.trainer.max_eval_batches, 0, 1)
    loader = make_loader(test, batch_size=eval_batch, shuffle=False, seed_for_epoch=cfg.seed, num_workers=0,
                         device=torch.device("cpu"))
    return evaluate(model, loader, torch.device("cpu"), across_ranks=False)["top1"]


@pytest.mark.slow  # a whole (tiny) run with its int8 row, in this process
def test_run_returns_the_rows_of_results_json_and_models_that_reproduce_them(tmp_path, monkeypatch):
    import torch

    from kdrun.report.table import table_rows

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDRUN_DATA", str(tmp_path / "data"))
    root, argv = logging.getLogger().handlers[:], list(sys.argv)
    result = kdrun.run(RUN, run_dir=tmp_path / "run")
    assert logging.getLogger().handlers == root and sys.argv == argv  # the process is given back as it was
    assert result.run_dir == (tmp_path / "run").absolute() and result.status == "completed"
    stored = read_results(result.run_dir)
    assert [r.stage for r in result.rows] == list(stored["stages"]) == ["teacher", "baseline", "distilled", "quantized"]
    for row in result.rows:
        record = stored["stages"][row.stage]
        assert (row.role, row.arch, row.method, row.params) == (record["role"], record["arch"], record["method"],
                                                                record["params"])
        deployed = record.get("artifact_bytes") or record["size_bytes"]  # the int8 row deploys int8.pt2
        assert (row.top1_last, row.top1_best, row.size_bytes) == (record["last_top1"], record["best_top1"], deployed)
    assert [r.columns for r in result.rows] == table_rows(stored)
    frame = result.to_pandas()
    assert list(frame.index) == ["teacher", "baseline", "distilled", "quantized"]
    assert frame.loc["distilled", "top1"] == stored["stages"]["distilled"]["last_top1"]
    assert result.config.distill.T == 4 and result.config.student.hidden == [16]

    students = result.students()
    assert list(students) == ["baseline", "distilled", "quantized"]
    distilled = kdrun.load(result.run_dir, "distilled")
    assert isinstance(distilled, torch.nn.Module) and not distilled.training
    assert _test_top1(result.run_dir, distilled) == pytest.approx(stored["stages"]["distilled"]["last_top1"], abs=1e-9)
    assert _test_top1(result.run_dir, students["quantized"]) == pytest.approx(
        stored["stages"]["quantized"]["last_top1"], abs=1e-9)  # the int8 program the row measured
    assert "distilled" in result._repr_markdown_()

    again = kdrun.run(RUN, run_dir=tmp_path / "run")  # the same folder: completed before, nothing retrained
    assert again.rows == result.rows


def readme_python_command() -> str:
    """README's Python API example: the code of its ``python -c "import kdrun; ..."`` line."""
    lines = [line.strip() for line in (REPO / "README.md").read_text().splitlines()
             if line.strip().startswith('python -c "import kdrun')]
    assert len(lines) == 1, lines
    return lines[0].removeprefix('python -c "').removesuffix('"')


@pytest.mark.slow  # README's example, run as written with debug=fast added
def test_readmes_python_example_runs(tmp_path, monkeypatch, capsys):
    from kdrun import api

    code = readme_python_command()
    real_run = api.run
    monkeypatch.setattr(api, "run", lambda overrides, run_dir=None: real_run([*overrides, "debug=fast"], run_dir))
    monkeypatch.chdir(tmp_path)
    exec(code, {})
    out = capsys.readouterr().out
    assert "distilled" in out and "top1" in out and "params" in out
