"""Which folders a run or a sweep may write into, and kdrun's record of what it made there.

``kdrun ... hydra.run.dir=.`` in a folder holding the user's ``config.yaml`` and ``tb/`` once replaced
the one and deleted the other. Now a run writes only entries its folder's manifest claims
(kdrun/owned_files.py): :func:`check_run_folder` runs before Hydra writes anything and refuses, in one
line, a folder holding any entry a run writes that kdrun did not make; the folder's other entries are
left alone. :func:`claim_run_folder` records the claim once the run holds the folder's lock. Sweep
folders are checked the same way (:func:`check_sweep_folder`); the sweep's own process claims its folder as
the sweep starts (kdrun/report/sweep_callback.py).

Folders written before kdrun kept manifests are claimed as they are when they are recognizably the
same run or sweep: a run folder whose ``.hydra/config.yaml`` preflight found equal to this run's, a
sweep folder whose ``multirun.yaml`` matched (kdrun/config/sweeps.py's check), a job folder inside a sweep
folder that kdrun claimed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdrun.owned_files import check_unclaimed, claim, claimed
from kdrun.report.files import KDRUN_RUN_ENTRIES, SWEEP_CONFIG, SWEEP_ENTRIES, run_entries

RUN_ADVICE = "choose a new or empty folder (hydra.run.dir=... or name=...)"
SWEEP_ADVICE = "choose a new or empty folder (name=... or hydra.sweep.dir=...)"


def check_run_folder(run_dir: Path, hydra: Any) -> None:
    """Before Hydra writes (``hydra``: the composed config's hydra node): one line if ``run_dir`` holds an
    entry a run writes that kdrun did not make."""
    if _same_run_before_manifests(run_dir, hydra):
        return
    check_unclaimed(run_dir, run_entries(hydra), f"hydra.run.dir={run_dir}", RUN_ADVICE)


def claim_run_folder(run_dir: Path, hydra: Any, checked: bool) -> None:
    """Record the run's entries as kdrun's (the process holds the folder's lock). A folder that was not
    ``checked`` before Hydra wrote into it (a sweep's job folder; a run that skipped kdrun's checks) is
    checked here for the entries besides Hydra's own, unless it lies in a sweep folder kdrun claimed."""
    if not checked and not _in_claimed_sweep(run_dir):
        check_unclaimed(run_dir, KDRUN_RUN_ENTRIES, f"the run folder {run_dir}", RUN_ADVICE)
    claim(run_dir, run_entries(hydra), "run")


def check_sweep_folder(sweep_dir: Path) -> None:
    """Before the sweep starts: one line if ``sweep_dir`` holds an entry a sweep writes that kdrun did not make."""
    if claimed(sweep_dir) is None and (sweep_dir / SWEEP_CONFIG).is_file():
        return  # a sweep written before manifests, whose config kdrun/config/sweeps.py found the same: kdrun's
    check_unclaimed(sweep_dir, SWEEP_ENTRIES, f"hydra.sweep.dir={sweep_dir}", SWEEP_ADVICE)


def _same_run_before_manifests(run_dir: Path, hydra: Any) -> bool:
    """A run folder without a manifest whose saved config preflight compared equal to this run's."""
    subdir = hydra.get("output_subdir")
    return bool(subdir) and claimed(run_dir) is None and (run_dir / str(subdir) / "config.yaml").is_file()


def _in_claimed_sweep(run_dir: Path) -> bool:
    return SWEEP_CONFIG in (claimed(run_dir.parent) or set())
