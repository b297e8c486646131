"""Signals from outside, made to happen for real: SIGHUP (an ssh session that drops) stops a run as SIGTERM
does, and ``kill -9`` of a parallel sweep's own process leaves no worker training (kdrun/interrupts.py,
kdrun/parent_watch.py)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import TINY, read_results, start_kdrun

LONG = ["trainer.epochs=5000", "trainer.max_epochs=5000", "stages=[teacher]", "measure.enabled=false"]


def _wait(condition, proc, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{what} did not happen:\n{proc.communicate()[1][-3000:]}")
        time.sleep(0.1)


def _training(run_dir: Path) -> bool:
    metrics = run_dir / "metrics.jsonl"
    return metrics.is_file() and metrics.stat().st_size > 0


@pytest.mark.slow  # a real process and a real SIGHUP; the in-process SIGTERM case: test_faults.py
def test_sighup_marks_the_run_interrupted_with_one_line_in_its_log(workdir):
    run_dir = workdir / "run"
    proc = start_kdrun([*TINY, *LONG, f"hydra.run.dir={run_dir}"], workdir)
    _wait(lambda: _training(run_dir), proc, "training")
    proc.send_signal(signal.SIGHUP)  # what the session's end sends
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 129, err[-3000:]
    assert read_results(run_dir)["status"] == "interrupted"
    said = [line for line in (run_dir / "kdrun.log").read_text().splitlines() if "SIGHUP" in line]
    assert len(said) == 1 and "to resume, run the same command with hydra.run.dir=" in said[0]
    assert [line for line in err.splitlines() if "error" in line] == [f"kdrun: error: {said[0].split('] ')[-1]}"]
    assert (run_dir / "checkpoints" / "teacher" / "last.pt").is_file()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _lock_holder(job: Path) -> int | None:
    try:
        return int((job / ".kdrun.lock").read_text().strip())
    except (OSError, ValueError):
        return None


def _lock_is_free(job: Path) -> bool:
    fd = os.open(job / ".kdrun.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.slow  # a real parallel sweep (its process and joblib's workers) and a real kill -9
def test_kill_9_of_a_parallel_sweep_leaves_no_worker_training(workdir):
    args = ["-m", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY, *LONG,
            "hydra.sweep.dir=sweep"]
    proc = start_kdrun(args, workdir)
    jobs = [workdir / "sweep" / f"seed={seed}" for seed in (0, 1)]
    _wait(lambda: all(_training(job) and _lock_holder(job) for job in jobs), proc, "both jobs training")
    workers = [_lock_holder(job) for job in jobs]
    assert proc.pid not in workers and all(_alive(pid) for pid in workers)
    proc.send_signal(signal.SIGKILL)  # the sweep's own process, killed outright
    proc.wait(timeout=30)  # (not communicate: its pipes stay open for as long as a worker lives)
    deadline = time.monotonic() + 10  # a few seconds: the workers' watch notices, and they stop
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [pid for pid in workers if _alive(pid)]
    for pid in alive:  # this test's own orphans: they would train on for minutes
        os.kill(pid, signal.SIGKILL)
    assert not alive, "loky workers still training after their sweep was killed"
    assert all(_lock_is_free(job) for job in jobs)  # the same command can start again at once
    for job in jobs:  # each job stopped as on `kill`: its folder says so
        assert json.loads((job / "results.json").read_text())["status"] == "interrupted"
