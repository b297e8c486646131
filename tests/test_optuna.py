"""Search sweeps (hydra-optuna-sweeper): interval() and the other sweeper syntax pass kdrun's checks (one value
inside each range is checked before the sweep, each trial's own value when its job starts), the study
maximizes the primary stage's top-1, trains the teacher once, resumes like a grid sweep, and its report
ranks the trials."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import TINY, compose_config, read_results, run_kdrun

from kdrun.errors import KdrunError
from kdrun.config.preflight import parse_overrides, preflight
from kdrun.config.sweeps import inside, sweep_arguments

import hydra_plugins.hydra_optuna_sweeper  # noqa: F401 - the optuna extra, installed by CI (.ci/run)

STUDY = ["-m", "hparams_search=kd_optuna", *TINY, "hydra.sweeper.n_trials=4", "hydra.sweeper.sampler.n_startup_trials=2"]


def _preflight(tmp_path: Path, args: list[str]):
    from kdrun.cli import CONFIG_DIR

    return preflight(CONFIG_DIR, ["-m", *TINY, f"hydra.sweep.dir={tmp_path}/sweep", *args])


def test_interval_and_tag_pass_the_checks_with_a_value_inside(tmp_path):
    cfg = _preflight(tmp_path, ["hydra/sweeper=optuna", "distill.T=interval(1,8)", "distill.alpha=tag(log, interval(0.01,1))",
                                "trainer.epochs=int(interval(1,3))", "seed=0,1"])
    assert cfg.distill.T == 4.5 and cfg.distill.alpha == pytest.approx(0.1) and cfg.trainer.epochs == 2
    assert not (tmp_path / "sweep").exists()  # preflight creates nothing
    assert inside(parse_overrides(["distill.T=int(interval(1,8))"])[0]) == "4"


@pytest.mark.parametrize("args, message", [
    (["distill.Tx=interval(1,8)"], "distill.Tx is not a config key; did you mean distill.T"),
    (["distill.T=interval(-8,-1)"], "distill.T=-4.5 must be > 0"),
    (["hparams_search=kd_optuna", "hydra.sweeper.params.distill.alhpa='interval(0,1)'"], "distill.alhpa is not a config key"),
])
def test_a_search_space_that_cannot_work_is_one_line(tmp_path, args, message):
    with pytest.raises(KdrunError, match=message) as e:
        _preflight(tmp_path, ["hydra/sweeper=optuna", *args])
    assert "\n" not in str(e.value)


def test_the_optuna_sweeper_maximizes_and_is_seeded_unless_the_command_says_otherwise():
    args = ["-m", "hydra/sweeper=optuna", "distill.T=interval(1,8)"]
    extra = sweep_arguments(args, parse_overrides(args[1:]))
    assert "hydra.sweeper.direction=maximize" in extra and "hydra.sweeper.sampler.seed=0" in extra
    mine = [*args, "hydra.sweeper.direction=minimize", "hydra/sweeper/sampler=random"]
    extra = sweep_arguments(mine, parse_overrides(mine[1:]))
    assert not any(a.startswith(("hydra.sweeper.direction=max", "hydra.sweeper.sampler.seed")) for a in extra)
    grid = ["-m", "distill.T=1,2"]
    assert not any("sweeper" in a for a in sweep_arguments(grid, parse_overrides(grid[1:])))


def test_a_trials_sampled_value_is_checked_when_its_job_starts(tmp_path):
    from kdrun.runs.pipeline import run

    cfg = compose_config([*TINY, "distill.T=-0.5"])
    with pytest.raises(KdrunError, match="distill.T=-0.5 must be > 0"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # before the run folder and any data work


def _trials(sweep: Path) -> list[Path]:
    return sorted(p.parent for p in sweep.glob("*/results.json"))


@pytest.mark.slow  # a study of 4 tiny trials, then the same command again
def test_an_optuna_study_trains_the_teacher_once_resumes_and_ranks_its_trials(workdir):
    proc = run_kdrun(STUDY, workdir)
    (sweep,) = (workdir / "outputs" / "sweeps").iterdir()
    trials = _trials(sweep)
    assert len(trials) == 4 and all("distill.T=" in t.name for t in trials)  # folders named by the values
    results = [read_results(t) for t in trials]
    assert all(r["status"] == "completed" for r in results)
    assert sorted(r["stages"]["teacher"]["source"] for r in results) == ["cache"] * 3 + ["trained"]
    assert sorted(r["stages"]["baseline"]["source"] for r in results) == ["cache"] * 3 + ["trained"]
    assert len({(r["distill"]["T"], r["distill"]["alpha"]) for r in results}) == 4
    assert all(1 <= r["distill"]["T"] <= 8 and 0.1 <= r["distill"]["alpha"] <= 1 for r in results)
    best = max(r["stages"]["distilled"]["last_top1"] for r in results)
    assert "best trial:" in proc.stdout and (sweep / "optimization_results.yaml").is_file()
    assert f"best_value: {best}" in (sweep / "optimization_results.yaml").read_text()  # maximized
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    values = [float(r["objective_mean"]) for r in rows]
    assert values == sorted(values, reverse=True) and values[0] == best

    stamps = {t: (t / "results.json").stat().st_mtime_ns for t in trials}
    again = run_kdrun(STUDY, workdir)
    assert again.stdout.count("completed before, skipping") + again.stderr.count("completed before, skipping") == 4
    assert _trials(sweep) == trials and {t: (t / "results.json").stat().st_mtime_ns for t in trials} == stamps


@pytest.mark.slow  # two tiny trials from the command line alone (issue 20's case 16)
def test_interval_on_the_command_line_runs_a_study(workdir):
    run_kdrun(["-m", "hydra/sweeper=optuna", "distill.T=interval(1,8)", *TINY, "stages=[teacher,baseline,distilled]",
               "hydra.sweeper.n_trials=2"], workdir)
    (sweep,) = (workdir / "outputs" / "sweeps").iterdir()
    assert len(_trials(sweep)) == 2


@pytest.mark.slow  # a study of two tiny trials with a validation split
def test_with_a_validation_split_the_study_maximizes_the_validation_top1(workdir):
    run_kdrun([*STUDY[:-2], "hydra.sweeper.n_trials=2", "dataset.val_split=0.2"], workdir)
    (sweep,) = (workdir / "outputs" / "sweeps").iterdir()
    results = [read_results(t) for t in _trials(sweep)]
    assert len(results) == 2 and {r["objective"]["set"] for r in results} == {"val"}
    best = max(r["objective"]["value"] for r in results)
    assert f"best_value: {best}" in (sweep / "optimization_results.yaml").read_text()
    assert all(r["objective"]["value"] == r["stages"]["distilled"]["best_top1"] for r in results)
