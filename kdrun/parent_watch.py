"""A parallel sweep's worker dies with the sweep's process.

Hydra's joblib launcher runs a sweep's jobs in loky worker processes. When the sweep's own process is
killed outright (``kill -9``, the OOM killer), nothing tells them: they trained on for minutes, holding
their run folders' locks, so running the same command again was refused until they were done.

Each worker watches its parent from a daemon thread: when the parent is gone (``os.getppid()`` changes,
the orphan having been adopted by init or a subreaper), it sends itself SIGTERM, which a kdrun job
turns into an interruption (kdrun/interrupts.py: results.json says "interrupted", the checkpoints stay,
the lock goes), and SIGKILL if it is still there ``grace`` seconds later.

Not Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG)``): it fires when the *thread* that started
the child exits, and the sweep's pool is started by a background thread that ends after the warm-up
(kdrun/config/sweep_workers.py), so every worker would be killed right away; it is also Linux-only.
"""

from __future__ import annotations

import os
import signal
import threading
import time

_watching = False


def die_with_parent(grace: float = 3.0, every: float = 0.25) -> None:
    """From now on, this process stops when its parent dies (once per process; later calls do nothing).
    Checks every ``every`` seconds."""
    global _watching
    if _watching:
        return
    _watching = True
    parent = os.getppid()
    threading.Thread(target=_watch, args=(parent, grace, every), name="kdrun-parent-watch", daemon=True).start()


def _watch(parent: int, grace: float, every: float) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os.kill(os.getpid(), signal.SIGTERM)  # a job stops as on `kill`: marked interrupted, lock released
    time.sleep(grace)
    os.kill(os.getpid(), signal.SIGKILL)  # no handler, or one that did not end the process
