"""The test harness itself: an in-process kdrun run sees the environment a ``python -m kdrun`` child would."""

from __future__ import annotations

import os

import conftest


def test_an_in_process_run_keeps_this_processs_environment(tmp_path, monkeypatch):
    seen = {}

    def fake_run(args):
        seen.update(os.environ)
        return 0

    monkeypatch.setattr(conftest, "_exit_status", fake_run)
    before = dict(os.environ)
    proc = conftest.run_kdrun(["debug=fast"], cwd=tmp_path, env={"EXTRA": "1"})
    assert proc.returncode == 0
    # PATH and the rest stay (Inductor's C++ compile needs PATH), plus what a child would get
    assert seen == conftest.kdrun_env(tmp_path, {"EXTRA": "1"})
    assert seen["PATH"] == before["PATH"] and seen["KDRUN_DATA"] == str(tmp_path / "data")
    assert dict(os.environ) == before
