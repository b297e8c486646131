"""Environment variables that kdrun processes pass to the processes they start.

Import-free, so that the kdrun command (whose sweep process must not import torch) and the engine
(which reads them) share one name.
"""

import os

PARALLEL_JOBS_ENV = "KDRUN_PARALLEL_JOBS"  # jobs of a parallel sweep at once: set by the kdrun command, read by speed.py
SWEEP_PID_ENV = "KDRUN_SWEEP_PID"  # a parallel sweep's own process: its workers die with it (parent_watch.py)
CHECKED_ENV = "KDRUN_CHECKED_CONFIGS"  # digests of the job configs the command's preflight checked (config/checked.py)
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def started_by_torchrun() -> bool:
    return all(v in os.environ for v in TORCHRUN_VARS)
