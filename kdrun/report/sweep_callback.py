"""At the end of a sweep, the aggregated report (Hydra callback, configured in conf/config.yaml).

Runs in the process that started the sweep, after every job returned -- for every launcher
(basic, joblib, submitit) -- and prints the same table ``kdrun-report <sweep dir>`` would.
The sweep's failed jobs are remembered in :data:`LAST_SWEEP` so that ``kdrun`` can exit
non-zero after reporting them.
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
    failed: list[Path] = field(default_factory=list)


LAST_SWEEP: SweepOutcome | None = None


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global LAST_SWEEP
        from kdrun.report.report_cli import build_report

        if started_by_torchrun():  # each rank ran the sweep; one reports it (a plain sweep: no torch import)
            from kdrun.distributed.state import is_main

            if not is_main():
                return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        report = build_report(sweep_dir)
        LAST_SWEEP = SweepOutcome(sweep_dir, [j.path for j in report.summary.jobs if j.status == "failed"])
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
