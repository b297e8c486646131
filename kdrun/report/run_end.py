"""The end of a run: HParams for TensorBoard, the run's plots, and where to look next.

A job of a sweep only writes its HParams: the sweep's end draws the plots of all its jobs at
once (kdrun/report/sweep_callback.py), which is cheaper and easier to read than one set per job.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from kdrun.report.hparams import final_metrics, run_hparams
from kdrun.report.writer import RunWriter

log = logging.getLogger("kdrun")


def finish_run(cfg: DictConfig, run_dir: Path, results: dict[str, Any], writer: RunWriter) -> None:
    writer.write_hparams(run_hparams(cfg, results, run_dir), final_metrics(results))
    if _in_sweep():
        return
    for path in _run_plots(run_dir):
        log.info("plot: %s", path)
    log.info("TensorBoard: tensorboard --logdir %s", run_dir)
    log.info("report (table, plots; also over several runs): kdrun-report %s", run_dir)


def _run_plots(run_dir: Path) -> list[Path]:
    try:
        from kdrun.report.aggregate import summarize
        from kdrun.report.jobs import load_job
        from kdrun.report.plots import curves, size_plot

        summary = summarize([load_job(run_dir)])
        (run_dir / "plots").mkdir(exist_ok=True)
        plots = (curves(summary, run_dir / "plots" / "curves.png"),
                 size_plot(summary, run_dir / "plots" / "size_vs_top1.png"))
        return [p for p in plots if p is not None]
    except Exception as e:  # the results are written; a plot must not turn a finished run into a failure
        log.warning("could not draw the run's plots (%s: %s)", type(e).__name__, e)
        return []


def _in_sweep() -> bool:
    from kdrun.distributed.launch import in_sweep

    return in_sweep()
