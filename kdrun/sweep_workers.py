"""A parallel sweep's worker processes: started, warmed and used for the torch checks before Hydra launches.

Hydra's joblib launcher runs each job of a parallel sweep in a loky worker, a fresh interpreter that
imports torch and kdrun's zoo before its first job can start. If the sweep's own process -- which
trains nothing: it launches, waits and writes the sweep's report -- imported torch as well, for the
method x architecture checks preflight makes before anything starts, a 2-job sweep on 2 cores would
pay that import three times, one of them before any worker had started, and run slower than the same
jobs one after another (measured: docs/benchmarks.md, "Measured on the CPU").

So in a parallel sweep those checks run in the workers instead. The sweep's process starts joblib's
pool with the launcher's own settings; every worker imports what its jobs will need (all at once, one
per core), the first also checks the pairs and the GPU packing (kdrun/distributed/packing.py), and
Hydra's launcher then finds the same pool warm: joblib keeps one pool alive between ``Parallel`` calls
whose settings are equal (``tests/test_sweep_workers.py`` checks that the jobs run in these very
processes). The sweep's process never imports torch. What remains is each worker's own start (a
Python interpreter, the imports): about one job's start-up, paid by the workers at the same time.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from kdrun.errors import KdrunError


def joblib_settings(launcher: DictConfig) -> dict[str, Any]:
    """``joblib.Parallel``'s arguments exactly as Hydra's joblib launcher builds them
    (hydra_plugins/hydra_joblib_launcher/_core.py: ``backend`` forced to loky, sizes as integers):
    equal settings are what let the launcher reuse the pool started here."""
    settings = {k: v for k, v in OmegaConf.to_container(launcher, resolve=True).items() if k != "_target_"}
    settings["backend"] = "loky"
    for key in ("pre_dispatch", "batch_size", "max_nbytes"):
        value = settings.get(key)
        if value:
            try:
                settings[key] = int(value)
            except ValueError:
                pass
    return settings


def prepare_worker(index: int, modules: list[str], pair_jobs: list[DictConfig], packing: dict | None) -> tuple[int, str]:
    """Runs in a worker: import ``modules``; the first worker also checks the pairs and the GPU packing.
    Returns (this process's id, the one-line error or "")."""
    for name in modules:
        importlib.import_module(name)
    if index != 0:
        return os.getpid(), ""
    try:
        if pair_jobs:
            from kdrun.schemes.registry import check_before_data

            for job in pair_jobs:
                check_before_data(job)
        if packing is not None:
            from kdrun.distributed.packing import check_packing, free_gpu_memory

            check_packing(packing["jobs"], free_gpu_memory(), packing["job_memory"])
    except KdrunError as e:
        return os.getpid(), str(e)
    return os.getpid(), ""


def start_workers(launcher: DictConfig, workers: int, modules: list[str], pair_jobs: list[DictConfig],
                  packing: dict | None = None) -> list[int]:
    """Start the sweep's pool of ``workers`` processes, warm each with ``modules`` and run the checks in
    the first; raises KdrunError with the first check's message. Returns the workers' process ids."""
    from joblib import Parallel, delayed

    settings = joblib_settings(launcher)
    results = Parallel(**settings)(delayed(prepare_worker)(i, modules, pair_jobs, packing) for i in range(workers))
    errors = [error for _, error in results if error]
    if errors:
        raise KdrunError(errors[0])
    return [pid for pid, _ in results]
