"""A run directory's status: marking it failed (so reports show it as such instead of dropping
it), and telling whether it already completed (so a re-run of its sweep skips it)."""

from __future__ import annotations

import json
from pathlib import Path

from kdrun.errors import KdrunError
from kdrun.io import write_json_atomic
from kdrun.report.files import RESULTS_FILE


def mark_failed(run_dir: Path, error: str) -> None:
    mark(run_dir, "failed", error)


def mark(run_dir: Path, status: str, error: str | None = None) -> bool:
    """Set results.json's status (``failed``, ``interrupted``), keeping what it recorded.

    Best effort: this runs while a run is already failing (a full or read-only disk among the
    reasons), so a write that fails too is reported by the caller's one line, not by a second
    traceback. Returns whether the status was written.
    """
    path = Path(run_dir) / RESULTS_FILE
    results = {"stages": {}}
    if path.is_file():
        try:
            results = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            pass
    results["status"] = status
    if error is not None:
        results["error"] = error
    try:
        write_json_atomic(path, results, "the run's status")
    except KdrunError:
        return False
    return True


def mark_if_unfinished(run_dir: Path, status: str) -> None:
    """Set ``status`` on a run that recorded no final one (no results.json yet, or "running"); a completed,
    failed or interrupted run, or an unreadable file, is left as it is."""
    try:
        recorded = json.loads((Path(run_dir) / RESULTS_FILE).read_text()).get("status")
    except FileNotFoundError:
        recorded = None
    except (OSError, ValueError):
        return
    if recorded in (None, "running"):
        mark(run_dir, status)


def completed_results(run_dir: Path) -> dict | None:
    """The results of a run that already completed (a re-run of a sweep skips it), else None."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return results if results.get("status") == "completed" else None
