"""Run ``kdrun <args>`` through its real entry point in this test process, as ``run_kdrun`` would in a subprocess.

A CLI test that is about what a run does (its stages, rows, checkpoints, messages) gains nothing from a fresh
process, which costs python + torch + hydra + kdrun imports (and sklearn for digits) on every run: ~3-5 s on
a loaded core. The subprocess cases that stay are those about the process itself (exit codes and stderr of
the installed entry point, signals, two processes on one folder, the wheel).

These runs skip the run's own plots (``skip_run_plots``): drawing two PNGs with matplotlib was ~40% of a tiny
run here, and a failed plot is only a warning (kdrun/report/run_end.py), so no assertion of theirs could see
one. The plots are tested where they are the subject: test_report.py, test_wheel.py, the runs of test_cli.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import kdrun_in_process


def skip_run_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of this test draw no plots of their own (everything else at the end of a run is kept)."""
    monkeypatch.setattr("kdrun.report.run_end._run_plots", lambda run_dir: [])


def run_here(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
             check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``kdrun <args>`` started from ``cwd`` with its data under ``cwd/data`` (``env`` may point KDRUN_DATA
    elsewhere), in this process, without the run's plots; its exit status and what it printed, as
    ``run_kdrun`` returns them. The working directory and environment are restored after the test."""
    from kdrun.environment import PARALLEL_JOBS_ENV

    skip_run_plots(monkeypatch)
    monkeypatch.chdir(cwd)
    monkeypatch.delenv(PARALLEL_JOBS_ENV, raising=False)  # a sweep sets it for its jobs
    for key, value in {"KDRUN_DATA": str(cwd / "data"), **(env or {})}.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = kdrun_in_process(args)
    out = capsys.readouterr()
    proc = subprocess.CompletedProcess(["kdrun", *args], code, out.out, out.err)
    if check and code != 0:
        raise AssertionError(f"kdrun {' '.join(args)} exited {code}\n{out.out}\n{out.err[-5000:]}")
    return proc
