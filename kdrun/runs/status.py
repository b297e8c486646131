"""A run directory's status: marking it failed (so reports show it as such instead of dropping
it), and telling whether it already completed (so a re-run of its sweep skips it).

results.json is read through kdrun/report/run_files.py: a file of another shape never counts as a
completed run; :func:`set_aside_invalid` moves it to ``results.json.invalid`` (an entry kdrun claims
in run folders) so that the run can write its own again, and nothing it held is lost."""

from __future__ import annotations

import os
from pathlib import Path

from kdrun.errors import KdrunError, write_error
from kdrun.io import write_json_atomic
from kdrun.report.files import INVALID_RESULTS, RESULTS_FILE
from kdrun.report.run_files import InvalidRunFile, read_results


def mark_failed(run_dir: Path, error: str) -> None:
    mark(run_dir, "failed", error)


def mark(run_dir: Path, status: str, error: str | None = None) -> bool:
    """Set results.json's status (``failed``, ``interrupted``), keeping what it recorded.

    Best effort: this runs while a run is already failing (a full or read-only disk among the
    reasons), so a write that fails too is reported by the caller's one line, not by a second
    traceback. Returns whether the status was written.
    """
    path = Path(run_dir) / RESULTS_FILE
    try:
        results = read_results(run_dir) or {"stages": {}}
    except InvalidRunFile:
        try:
            set_aside_invalid(run_dir)
        except KdrunError:
            return False
        results = {"stages": {}}
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
    failed or interrupted run, or a file of another shape, is left as it is."""
    try:
        results = read_results(run_dir)
    except InvalidRunFile:
        return
    if results is None or results.get("status") == "running":
        mark(run_dir, status)


def completed_results(run_dir: Path) -> dict | None:
    """The results of a run that already completed (a re-run of a sweep skips it), else None."""
    try:
        results = read_results(run_dir)
    except InvalidRunFile:
        return None
    return results if results is not None and results.get("status") == "completed" else None


def set_aside_invalid(run_dir: Path) -> str | None:
    """Move a results.json that is not of kdrun's shape to results.json.invalid (replacing an older one);
    returns the problem, or None when results.json is absent or valid."""
    try:
        read_results(run_dir)
        return None
    except InvalidRunFile as e:
        problem = str(e)
    aside = Path(run_dir) / INVALID_RESULTS
    try:
        os.replace(Path(run_dir) / RESULTS_FILE, aside)
    except OSError as e:
        raise write_error(aside, "the invalid results file, set aside", e) from None
    return problem
