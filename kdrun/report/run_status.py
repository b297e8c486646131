"""Marking a run directory as failed, so reports show it as such instead of dropping it."""

from __future__ import annotations

import json
from pathlib import Path

from kdrun.report.files import RESULTS_FILE, write_json_atomic


def mark_failed(run_dir: Path, error: str) -> None:
    path = Path(run_dir) / RESULTS_FILE
    results = {"stages": {}}
    if path.is_file():
        try:
            results = json.loads(path.read_text())
        except json.JSONDecodeError:
            pass
    results["status"] = "failed"
    results["error"] = error
    write_json_atomic(path, results)
