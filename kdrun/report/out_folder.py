"""Where kdrun-report may write: over nothing but its own report files.

report.md, report.csv and plots/ are written only where they are absent or kdrun's: claimed in the
folder's manifest (kdrun/owned_files.py: by a run, a sweep or an earlier report), or -- for folders
written before kdrun kept manifests -- recognizably kdrun's own report files (report.md under its
``# kdrun report`` title, report.csv under its header, plots/ holding only kdrun's plot files). Anything
else of that name is the user's or another tool's: one line, and nothing is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from kdrun.errors import KdrunError
from kdrun.owned_files import check_unclaimed, claim, unclaimed
from kdrun.report.files import PLOTS_DIR, REPORT_CSV, REPORT_ENTRIES, REPORT_MD

OUT_ADVICE = "give --out DIR to write the report elsewhere, or move them away"
KDRUN_PLOT = re.compile(r"(curves|size_vs_top1|heatmap_T_alpha[^/]*)\.(png|pdf|svg)")


def claim_report_folder(out: Path, where: str) -> None:
    """Check and claim ``out``'s report entries before anything is written there (``where``: how the user
    named the folder). One line if one of them is not kdrun's, or if ``out`` cannot be written."""
    check_writable(out, where)
    foreign = [e for e in unclaimed(out, REPORT_ENTRIES) if not _written_by_kdrun_report(out / e)]
    check_unclaimed(out, foreign, where, OUT_ADVICE)
    claim(out, REPORT_ENTRIES, "report")


def check_writable(out: Path, where: str) -> None:
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise KdrunError(f"{where}: {existing} is not a folder; give --out DIR to write the report elsewhere")
    if not os.access(existing, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        reason = "a read-only filesystem" if read_only else "no permission to write there"
        raise KdrunError(f"{where}: cannot write the report in {existing} ({reason}); give --out DIR (a "
                         f"writable folder) to write it elsewhere")


def _written_by_kdrun_report(path: Path) -> bool:
    """A report file from before manifests, recognizably kdrun's."""
    try:
        if path.name == REPORT_MD and path.is_file():
            return _first_line(path).startswith("# kdrun report")
        if path.name == REPORT_CSV and path.is_file():
            return "runs,completed,failed,unfinished" in _first_line(path)
        if path.name == PLOTS_DIR and path.is_dir() and not path.is_symlink():
            return all(p.is_file() and KDRUN_PLOT.fullmatch(p.name) for p in path.iterdir())
    except OSError:
        return False
    return False


def _first_line(path: Path) -> str:
    with path.open("rb") as f:
        return f.readline(200).decode("utf-8", errors="replace")
