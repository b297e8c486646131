"""Names of the files a run, a sweep and a report write (how to write them safely: :mod:`kdrun.io`),
and the entries of a folder that each may create, replace or delete (claimed in the folder's manifest,
:mod:`kdrun.owned_files`; no other entry of a folder is ever touched)."""

from __future__ import annotations

from typing import Any

LOCK_FILE = ".kdrun.lock"  # one process per run folder (kdrun/runs/lock.py)
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
INVALID_RESULTS = "results.json.invalid"  # a results.json of another shape, set aside before its job runs again
TABLE_MD = "table.md"
TABLE_CSV = "table.csv"
RESOLVED_CONFIG = "config.yaml"
CHECKPOINTS_DIR = "checkpoints"
TB_DIR = "tb"
PLOTS_DIR = "plots"
REPORT_MD, REPORT_CSV = "report.md", "report.csv"
SWEEP_CONFIG = "multirun.yaml"  # Hydra's record of a sweep
OPTUNA_RESULTS = "optimization_results.yaml"  # written by hydra-optuna-sweeper at the end of a study
GPU_SLOTS = ".gpu_slots"  # a packed parallel sweep's GPU claims (kdrun/runs/launch.py)
TRACKERS_FILE, TRACKERS_LOCK = "trackers.json", ".trackers.lock"  # tracker run ids of a run or sweep (kdrun/loggers/)
CSV_DIR, WANDB_DIR = "csv", "wandb"  # logger=csv's metrics.csv; logger=wandb's files (offline runs)
TRACKER_ENTRIES = (TRACKERS_FILE, TRACKERS_LOCK, CSV_DIR, WANDB_DIR)

REPORT_ENTRIES = (REPORT_MD, REPORT_CSV, PLOTS_DIR)
SWEEP_ENTRIES = (SWEEP_CONFIG, OPTUNA_RESULTS, GPU_SLOTS, TRACKERS_FILE, TRACKERS_LOCK, *REPORT_ENTRIES)
KDRUN_RUN_ENTRIES = (LOCK_FILE, RESOLVED_CONFIG, RESULTS_FILE, INVALID_RESULTS, METRICS_FILE, TB_DIR, CHECKPOINTS_DIR,
                     TABLE_MD, TABLE_CSV, *TRACKER_ENTRIES, *REPORT_ENTRIES)


def hydra_run_entries(hydra: Any) -> tuple[str, ...]:
    """What Hydra writes into a run folder before kdrun's code runs (``hydra``: the config's hydra node):
    its ``.hydra/`` record and the log."""
    subdir = hydra.get("output_subdir")
    return (*([str(subdir)] if subdir else []), f"{hydra.job.name}.log")


def run_entries(hydra: Any) -> tuple[str, ...]:
    """Every entry a run (its Hydra and kdrun parts) may create, replace or delete in its folder."""
    return (*hydra_run_entries(hydra), *KDRUN_RUN_ENTRIES)
