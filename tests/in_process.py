"""kdrun runs of tests that are not about plots: in this process (conftest.run_kdrun, in_process=True) and without
the run's own plots.

Drawing the run's two PNGs with matplotlib was ~40% of a tiny in-process run here (1.5-2.5 s of ~5 s, loaded
machine), and a failed plot is only a warning (kdrun/runs/end.py), so no assertion of these tests could
see one. The plots are tested where they are the subject: test_report.py, test_wheel.py, the runs of test_cli.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import run_kdrun


def skip_run_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of this test draw no plots of their own (everything else at the end of a run is kept)."""
    monkeypatch.setattr("kdrun.runs.end._run_plots", lambda run_dir: [])


def run_here(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch, check: bool = True,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``kdrun <args>`` in ``cwd`` in this process (conftest.run_kdrun's in-process run: its exit status and
    output, every global it changes put back), without the run's own plots."""
    skip_run_plots(monkeypatch)
    return run_kdrun(args, cwd, check=check, env=env, in_process=True)
