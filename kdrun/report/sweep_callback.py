"""At the end of a sweep, the aggregated report (Hydra callback, configured in conf/config.yaml).

Runs in the process that started the sweep, after every job returned -- for every launcher
(basic, joblib, submitit) -- and prints the same table ``kdrun-report <sweep dir>`` would.
The sweep's failed and invalid jobs, and a report that could not be made, are remembered in
:data:`LAST_SWEEP` so that ``kdrun`` can exit non-zero after reporting them (Hydra itself only logs a
callback's exception and exits 0). Before any job starts, the sweep folder is claimed as kdrun's
(kdrun/runs/folders.py): the jobs' folders and the report are what kdrun may write there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from kdrun.environment import started_by_torchrun

log = logging.getLogger("kdrun")


@dataclass
class SweepOutcome:
    sweep_dir: Path
    failed: list[Path] = field(default_factory=list)  # failed jobs, and jobs whose files are not of kdrun's shape
    report_error: str | None = None  # why the end-of-sweep report could not be made


LAST_SWEEP: SweepOutcome | None = None


class SweepReport(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from kdrun.owned_files import claim
        from kdrun.report.files import SWEEP_ENTRIES

        if not _reports():
            return
        claim(Path(str(config.hydra.sweep.dir)), SWEEP_ENTRIES, "sweep")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global LAST_SWEEP
        from kdrun.errors import KdrunError
        from kdrun.report.report_cli import build_report

        if not _reports():
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        LAST_SWEEP = SweepOutcome(sweep_dir)
        try:
            report = build_report(sweep_dir)
        except KdrunError as e:
            LAST_SWEEP.report_error = str(e)
            return
        except Exception as e:  # noqa: BLE001 - a bug must still fail the command (Hydra would log it, exit 0)
            LAST_SWEEP.report_error = f"{type(e).__name__}: {e}"
            return
        LAST_SWEEP.failed = [j.path for j in report.problems if j.status in ("failed", "invalid")]
        log.info("sweep report: %s (table: %s)", report.files[0], report.files[1])
        for path in report.files[2:]:
            log.info("plot: %s", path)
        _finish_trackers(sweep_dir.absolute(), report.files, bool(LAST_SWEEP.failed))


def _finish_trackers(sweep_dir: Path, files: list[Path], failed: bool) -> None:
    """The sweep's parent run in MLflow (if its jobs logged there) gets the report and is marked finished."""
    from kdrun.io import one_line
    from kdrun.loggers.mlflow import finish_sweep

    try:
        finish_sweep(sweep_dir, files, failed)
    except Exception as e:  # noqa: BLE001 - a tracker never fails a sweep whose results are on disk
        log.warning("logger=mlflow: could not finish the sweep's parent run (%s: %s)", type(e).__name__, one_line(e))


def _reports() -> bool:
    """Each rank of a torchrun-started sweep ran it; one (rank 0) claims its folder and reports it."""
    if not started_by_torchrun():  # a plain sweep: no torch import
        return True
    from kdrun.distributed.state import is_main

    return is_main()
