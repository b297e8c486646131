"""The end of a run: HParams for TensorBoard, the run's plots, its table, and where to look next.

A job of a sweep only writes its HParams and tables and prints one line naming its swept values:
the sweep's end prints the one table of all its jobs and draws their plots at once
(kdrun/report/sweep_callback.py), which is cheaper and easier to read than one set per job.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from kdrun.report.files import RESULTS_FILE, TABLE_CSV, TABLE_MD
from kdrun.report.jobs import primary_stage, reference_stage, reported_top1
from kdrun.report.hparams import final_metrics, run_hparams
from kdrun.report.table import rich_table, table_rows, table_title, write_tables
from kdrun.runs.writer import RunWriter

log = logging.getLogger("kdrun")


def finish_run(cfg: DictConfig, run_dir: Path, results: dict[str, Any], writer: RunWriter) -> None:
    """Everything after the last stage; the last lines printed name the full table (table.md)."""
    from kdrun.logs import output

    writer.write_hparams(run_hparams(cfg, results, run_dir), final_metrics(results))
    rows = table_rows(results)
    table_md = write_tables(rows, run_dir)
    log.info("results: %s", run_dir / RESULTS_FILE)
    if _in_sweep():
        writer.log_files(tracked_files(run_dir, results, []))
        log.info("%s", job_summary(_swept_values(), results, table_md))
        return
    plots = _run_plots(run_dir)
    for path in plots:
        log.info("plot: %s", path)
    writer.log_files(tracked_files(run_dir, results, plots))
    log.info("TensorBoard: tensorboard --logdir %s", run_dir)
    log.info("report (table, plots; also over several runs): kdrun-report %s", run_dir)
    output().print(rich_table(rows, title=table_title(results)))
    output().print(f"full table (every column, footnotes): {table_md}", highlight=False, soft_wrap=True, markup=False)


def tracked_files(run_dir: Path, results: dict[str, Any], plots: list[Path]) -> list[tuple[Path, str]]:
    """What a tracker keeps of the run (with its folder there): results.json, the tables, the plots, and each
    student row's deployed file (its weights; the int8 program; its ONNX file when exported)."""
    files = [(run_dir / RESULTS_FILE, ""), (run_dir / TABLE_MD, "tables"), (run_dir / TABLE_CSV, "tables")]
    files += [(p, "plots") for p in plots]
    for name, record in results.get("stages", {}).items():
        if record.get("role") in ("teacher", "assistant") or not record.get("in_table", True):
            continue
        for key in ("artifact", "onnx_file", "checkpoint"):
            if record.get(key):
                files.append((Path(record[key]), f"students/{name}"))
                break
    return files


def job_summary(swept: str, results: dict[str, Any], table_md: Path) -> str:
    """One line per sweep job: its swept values, the primary stage's top-1 and Δ, where its table is."""
    stages = {k: v for k, v in results.get("stages", {}).items() if v.get("in_table", True)}
    primary, reference = primary_stage(list(stages), results.get("primary_stage")), reference_stage(results)
    parts = [f"job {swept or '(no swept values)'}:"]
    top1 = reported_top1(stages.get(primary, {})) if primary else None
    if top1 is not None:
        parts.append(f"{primary} test top-1 {top1:.2f}%")
        base = reported_top1(stages.get(reference, {}))
        if base is not None and primary != reference:
            parts.append(f"(Δ {top1 - base:+.2f} vs {reference})")
    parts.append(f"table: {table_md}")
    return " ".join(parts)


def _swept_values() -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().job.override_dirname if HydraConfig.initialized() else ""


def _run_plots(run_dir: Path) -> list[Path]:
    try:
        from kdrun.report.aggregate import summarize
        from kdrun.report.jobs import Job, load_job
        from kdrun.report.plots import curves, size_plot

        job = load_job(run_dir)
        if not isinstance(job, Job) or job.status == "invalid":
            return []
        summary = summarize([job])
        (run_dir / "plots").mkdir(exist_ok=True)
        plots = (curves(summary, run_dir / "plots" / "curves.png"),
                 size_plot(summary, run_dir / "plots" / "size_vs_top1.png"))
        return [p for p in plots if p is not None]
    except Exception as e:  # the results are written; a plot must not turn a finished run into a failure
        log.warning("could not draw the run's plots (%s: %s)", type(e).__name__, e)
        return []


def _in_sweep() -> bool:
    from kdrun.runs.launch import in_sweep

    return in_sweep()
