"""Sweeps end to end: folders named by the command, a teacher trained once for parallel jobs,
the aggregated report at the end, re-runs that skip and resume, failed jobs recorded."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import REPO, TINY, read_results, run_kdrun, start_kdrun

from kdrun.config.preflight import parse_overrides
from kdrun.config.sweeps import default_sweep_name, quote, sweep_arguments

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")

GRID = ["distill.T=1,4", "distill.alpha=0.1,0.9"]
# the rows a sweep compares (CE-trained teacher and baseline shared, distilled per job); no later stages
SWEEP = [*TINY, "stages=[teacher,baseline,distilled]"]
TEST_METHODS = {"PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}


def _sweep_dir(workdir: Path) -> Path:
    (sweep,) = (workdir / "outputs" / "sweeps").iterdir()
    return sweep


def _jobs(sweep: Path) -> list[Path]:
    return sorted(p.parent for p in sweep.glob("*/results.json"))


def test_sweep_folder_names_come_from_the_command():
    args = ["-m", "seed=0,1", "distill.T=1,2", "dataset=digits"]
    extra = sweep_arguments(args, parse_overrides(args[1:]))[len(args):]
    assert extra[0] == "name='distill.T=1,2__seed=0,1__dataset=digits'"  # swept first, each part sorted
    assert extra[1] == "hydra.job.config.override_dirname.exclude_keys=['name','dataset']"
    shuffled = ["-m", "dataset=digits", "distill.T=1,2", "seed=0,1"]
    assert sweep_arguments(shuffled, parse_overrides(shuffled[1:]))[len(args):] == extra
    named = ["-m", "name=mine", "seed=0,1"]
    assert not any(a.startswith("name=") for a in sweep_arguments(named, parse_overrides(named[1:]))[3:])
    assert sweep_arguments(["seed=1"], parse_overrides(["seed=1"])) == ["seed=1"]  # single runs: untouched
    long = default_sweep_name(parse_overrides([f"trainer.milestones=[{','.join(map(str, range(80)))}]"]))
    assert len(long) <= 150 and long != default_sweep_name(parse_overrides(["trainer.milestones=[1]"]))


def test_a_bad_value_anywhere_in_a_sweep_is_refused_before_running(workdir):
    proc = run_kdrun(["-m", *TINY, "distill.T=1,2", "trainer.lr=0.1,-1"], workdir, check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == "kdrun: error: trainer.lr=-1 must be > 0"
    assert not (workdir / "outputs").exists()


@pytest.mark.slow  # joblib processes, two sweeps
def test_parallel_sweep_shares_the_teacher_reports_and_resumes(workdir):
    from test_startup import probe

    launcher = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    # a process of its own, which says at exit whether it imported torch (test_startup.py)
    proc = probe(["-m", *launcher, *SWEEP, *GRID], env={"KDRUN_DATA": str(workdir / "data")}, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch imported: []" in proc.stderr  # it launched, waited for and reported jobs that train
    sweep = _sweep_dir(workdir)
    jobs = _jobs(sweep)
    assert sorted(j.name for j in jobs) == ["distill.T=1,distill.alpha=0.1", "distill.T=1,distill.alpha=0.9",
                                            "distill.T=4,distill.alpha=0.1", "distill.T=4,distill.alpha=0.9"]
    results = [read_results(j) for j in jobs]
    assert all(r["status"] == "completed" for r in results)
    for stage in ("teacher", "baseline"):  # CE-trained once, the other three jobs waited and reused it
        sources = sorted(r["stages"][stage]["source"] for r in results)
        assert sources == ["cache", "cache", "cache", "trained"], (stage, sources)
    tops = {r["stages"]["teacher"]["last_top1"] for r in results}
    assert len(tops) == 1

    # the end of the sweep printed and wrote the aggregated report with its heat map; each job printed
    # one line naming its swept values, and no table of its own
    assert "kdrun sweep" in proc.stdout and "4 completed" in proc.stdout
    assert proc.stdout.count("kdrun sweep") == 1 and "kdrun: " not in proc.stdout
    assert "[HYDRA]" not in proc.stdout + proc.stderr and "Launching jobs" in proc.stderr  # one log format
    assert proc.stderr.count("job distill.T=") == 4 and "job distill.T=4,distill.alpha=0.9: distilled test top-1" in proc.stderr
    rows = (sweep / "report.csv").read_text().splitlines()
    assert rows[0].startswith("distill.T,distill.alpha,runs,completed,failed,unfinished,teacher_top1_mean")
    assert len(rows) == 5
    png = (sweep / "plots" / "heatmap_T_alpha.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert "![heatmap_T_alpha](plots/heatmap_T_alpha.png)" in (sweep / "report.md").read_text()

    # re-run: completed jobs are skipped, an unfinished one resumes; argument order does not matter
    stamps = {j: (j / "results.json").stat().st_mtime_ns for j in jobs}
    killed = jobs[2] / "results.json"
    killed.write_text(json.dumps({**results[2], "status": "running"}))
    again = run_kdrun(["-m", *reversed(GRID), *SWEEP], workdir)
    assert again.stderr.count("completed before, skipping") == 3
    assert read_results(jobs[2])["status"] == "completed"
    assert all((j / "results.json").stat().st_mtime_ns == stamps[j] for j in jobs if j != jobs[2])
    assert _sweep_dir(workdir) == sweep

    # the same folder with a different setting is refused before anything runs
    refused = run_kdrun(["-m", f"name={quote(sweep.name)}", *SWEEP, *GRID, "trainer.lr=0.1"], workdir, check=False)
    assert refused.returncode == 2
    assert "holds a sweep with a different config (differs in: trainer.lr)" in refused.stderr


@pytest.mark.slow  # a whole sweep; failed-job tables alone: test_report.py, test_faults.py
def test_a_failing_job_is_recorded_and_the_others_reported(workdir):
    methods = "method._target_=kdrun.methods.kd.KD,kdrun_test_methods.Fails"
    proc = run_kdrun(["-m", *SWEEP, methods, "distill.beta=1"], workdir, check=False,
                     env=TEST_METHODS)
    assert proc.returncode == 1, proc.stderr
    assert "1 job(s) of the sweep failed" in proc.stderr
    sweep = _sweep_dir(workdir)
    ok = read_results(sweep / "method._target_=kdrun.methods.kd.KD")
    failed = read_results(sweep / "method._target_=kdrun_test_methods.Fails")
    assert ok["status"] == "completed"
    assert failed["status"] == "failed" and "RuntimeError: this method always fails" in failed["error"]
    assert set(failed["stages"]) == {"teacher", "baseline"}  # what finished before the failure is kept
    report = (sweep / "report.md").read_text()
    assert "1 done" in report and "1 failed" in report and "this method always fails" in report
    assert "Traceback" in (sweep / "method._target_=kdrun_test_methods.Fails" / "kdrun.log").read_text()


@pytest.mark.slow  # a real parallel sweep: its own process and joblib's workers, and a real signal
@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "interrupted"),
                                              (signal.SIGTERM, 143, "terminated (SIGTERM)")], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_to_a_parallel_sweeps_own_process_is_one_line_and_marks_its_jobs_interrupted(
        workdir, sig, code, said):
    args = ["-m", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "dataset=digits", "teacher=mlp",
            "teacher.hidden=[32]", "trainer.epochs=3000", "stages=[teacher]", "measure.enabled=false",
            "hydra.sweep.dir=sweep"]
    proc = start_kdrun(args, workdir)

    def statuses() -> list[str]:
        found = []
        for path in (workdir / "sweep").glob("**/results.json"):
            try:
                found.append(json.loads(path.read_text()).get("status"))
            except (OSError, ValueError):  # being written
                found.append(None)
        return found

    def training() -> int:
        return sum(1 for m in (workdir / "sweep").glob("**/metrics.jsonl") if m.stat().st_size)

    deadline = time.monotonic() + 180
    while training() < 2:  # both jobs are training in the workers
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the sweep's jobs did not both start: {statuses()}\n{proc.communicate()[1][-3000:]}")
        time.sleep(0.2)
    proc.send_signal(sig)  # to the sweep's own process alone, as `kill -INT <pid>` (or `kill <pid>`) does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert [line for line in err.splitlines() if "error" in line] == [
        f"kdrun: error: sweep {said}; finished jobs are kept; to resume the others, run the same command again"]
    assert statuses() == ["interrupted", "interrupted"]  # joblib stopped the workers; the folders say so
    assert _processes_in(workdir) == []  # and none is left training


def _processes_in(folder: Path) -> list[int]:
    """PIDs of the processes working in ``folder`` (a sweep's workers start in its folder), from /proc."""
    found = []
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(proc_dir / "cwd")).is_relative_to(folder.resolve()):
                found.append(int(proc_dir.name))
        except OSError:  # gone, or another user's
            continue
    return found


@pytest.mark.parametrize("launcher, marked", [
    ("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "interrupted"),
    ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", "running"),
    ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", "running"),
])
def test_an_interrupted_sweep_marks_only_the_jobs_it_stopped(launcher, marked, tmp_path, capsys):
    """joblib's workers stop with the sweep's process; submitit's jobs run on (Slurm's by design), so their
    folders are theirs to write, and the line says they were not stopped."""
    from omegaconf import OmegaConf

    from kdrun import cli
    from kdrun.interrupts import Terminated

    job = tmp_path / "sweep" / "seed=0"
    (job / ".hydra").mkdir(parents=True)
    (job / "results.json").write_text(json.dumps({"status": "running", "stages": {}}))  # as a run begins it
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}, "launcher": {"_target_": launcher}}})
    with pytest.raises(SystemExit) as stopped:
        cli._stop_interrupted_sweep(cfg, Terminated())
    assert stopped.value.code == 143
    assert read_results(job)["status"] == marked
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kdrun: error: sweep terminated (SIGTERM); ")
    assert ("submitit jobs run on" in err) == (marked == "running")


def test_a_command_line_is_parsed_once(tmp_path, monkeypatch):
    """The headline rule, the sweep's folder names, preflight and the parallel-jobs plan share one parse:
    each override is parsed once (was: three times)."""
    from kdrun import cli
    from kdrun.config import preflight

    parsed = []
    real = preflight.parse_overrides

    def counting(overrides):
        parsed.extend(overrides)
        return real(overrides)

    monkeypatch.setattr(cli, "parse_overrides", counting)
    monkeypatch.setattr(preflight, "parse_overrides", counting)
    given = ["-m", "debug=fast", "teacher=resnet8", "student=resnet8", "distill.T=1,2", "teachers_dir=null"]
    args, _ = cli.checked_arguments(given, lambda cfg, jobs, overrides: None)
    assert "dataset=cifar100" in args and any(a.startswith("name=") for a in args)  # both rewrites added some
    assert sorted(parsed) == sorted(a for a in args if not a.startswith("-"))


@pytest.mark.parametrize("args, reader", [
    (["method=dkd"], "method=dkd reads method.T"),
    (["scheme=one"], "scheme=one reads scheme.T"),
    (["method=at", "distill.alpha=0"], "nothing reads it"),
    (["method=kd"], None),
])
def test_a_sweep_over_a_temperature_nothing_reads_says_so(tmp_path, capsys, args, reader):
    """Five keys are named T; sweeping distill.T with DKD (which reads method.T) would run identical jobs."""
    from kdrun.config.preflight import preflight
    from kdrun.conf_dir import config_dir

    preflight(config_dir(), ["-m", *TINY, *args, "distill.T=1,2", f"hydra.sweep.dir={tmp_path}/sweep"],
              lambda cfg, jobs, overrides: None)
    err = capsys.readouterr().err
    if reader is None:
        assert "warning" not in err
    else:
        lines = [line for line in err.splitlines() if "warning" in line]
        assert len(lines) == 1 and reader in lines[0] and "distill.T is swept" in lines[0], err
