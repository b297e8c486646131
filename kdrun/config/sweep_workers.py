"""A parallel sweep's worker processes: started and warmed while Hydra composes the sweep, and used for the torch checks.

Hydra's joblib launcher runs each job of a parallel sweep in a loky worker, a fresh interpreter that
imports torch and kdrun's zoo before its first job can start. If the sweep's own process -- which
trains nothing: it launches, waits and writes the sweep's report -- imported torch as well, for the
method x architecture checks preflight makes before anything starts, a 2-job sweep on 2 cores would
pay that import three times, one of them before any worker had started, and run slower than the same
jobs one after another (measured: docs/benchmarks.md, "Measured on the CPU").

So in a parallel sweep those checks run in the workers instead. The sweep's process starts joblib's
pool with the launcher's own settings, in a background thread (:func:`start_workers`); every worker
imports what its jobs will need (all at once, one per core), the first also checks the pairs and the
GPU packing (kdrun/distributed/packing.py). Meanwhile the sweep's process goes on: Hydra composes the
sweep again, and only then, before any job is launched, :class:`AwaitWorkers` (a Hydra callback,
conf/config.yaml) waits for the warm-up and stops the sweep on a failed check (:class:`WorkerCheckFailed`:
one line, exit status 2, no sweep folder). Hydra's launcher then finds the same pool warm: joblib keeps
one pool alive between ``Parallel`` calls whose settings are equal (``tests/test_sweep_workers.py``
checks that the jobs run in these very processes). The sweep's process never imports torch.

A warmed worker also skips two costs a sequential sweep pays once and a parallel one paid per worker:
kdrun's ~270 generated config nodes (each job brings the sweep's ConfigStore and resolvers with
Hydra's singleton state, so registering them again in the worker is wasted), and, at the end, the
garbage collector's pass over torch's objects while the interpreter shuts down (seconds on 2 cores,
and the sweep's process waits for its workers to exit).
"""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from kdrun.errors import KdrunError
from kdrun.parent_watch import die_with_parent


class WorkerCheckFailed(BaseException):
    """A check in the workers failed. A BaseException, because Hydra turns an Exception raised in a
    callback into a warning and goes on; kdrun's command prints it in one line and exits 2."""


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
            from kdrun.config.preflight import check_pairs_here

            check_pairs_here(pair_jobs[0], pair_jobs)  # the check preflight makes in a sequential command
        if packing is not None:
            from kdrun.distributed.packing import check_packing, free_gpu_memory

            check_packing(packing["jobs"], free_gpu_memory(), packing["job_memory"])
    except KdrunError as e:
        return os.getpid(), str(e)
    return os.getpid(), ""


def warm_worker(index: int, modules: list[str], pair_jobs: list[DictConfig], packing: dict | None,
                meeting: str, workers: int) -> tuple[int, str]:
    """What :func:`start_workers` runs in each worker: :func:`prepare_worker`, in a process that from
    now on only runs sweep jobs; then it waits until every worker has taken its task (:func:`meet`)."""
    from kdrun.config.store import leave_registration_to_the_jobs

    leave_registration_to_the_jobs()  # before kdrun.cli is imported: it registers on import
    atexit.register(_exit_without_collecting)
    die_with_parent()  # the sweep's process killed outright: no worker trains on (kdrun/parent_watch.py)
    result = prepare_worker(index, modules, pair_jobs, packing)
    meet(meeting, workers)
    return result


def meet(folder: str, workers: int, timeout: float = 60.0) -> None:
    """Hold this warm-up task until ``workers`` processes have each taken one (each leaves its pid in
    ``folder``): a worker that started early and warmed fast would otherwise take a second task while
    another stayed cold (seen on a loaded machine). Gives up after ``timeout`` seconds: a worker that never
    started must not hold the sweep; the others are warm."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while len(os.listdir(folder)) < workers and time.monotonic() < deadline:
        time.sleep(0.01)


def _exit_without_collecting() -> None:
    """An exit handler: no garbage collection while the interpreter shuts down. The process is about to
    go, freeing its objects one by one is wasted work (every result is written; the OS reclaims the
    memory; the other exit handlers still run), and the sweep's process waits for it:
    2 workers that imported torch took 3.2-4.3 s to exit on the loaded 2-core VM, 0.8-1.0 s with
    this (docs/benchmarks.md)."""
    gc.disable()
    gc.freeze()


class _Warmup:
    """The warm-up running in a background thread of the sweep's process."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.pids: list[int] = []
        self.error = ""

    def run(self, settings: dict[str, Any], workers: int, modules: list[str], pair_jobs: list[DictConfig],
            packing: dict | None) -> None:
        from joblib import Parallel, delayed

        meeting = tempfile.mkdtemp(prefix="kdrun-warmup-")
        try:
            results = Parallel(**settings)(delayed(warm_worker)(i, modules, pair_jobs, packing, meeting, workers)
                                           for i in range(workers))
            self.pids = [pid for pid, _ in results]
            self.error = next((error for _, error in results if error), "")
        except Exception as e:  # a worker that could not start or import: the sweep must not launch
            self.error = f"the sweep's worker processes failed before any job ran ({type(e).__name__}: {e})"
        finally:
            shutil.rmtree(meeting, ignore_errors=True)
            self.done.set()


_warmup: _Warmup | None = None


def start_workers(launcher: DictConfig, workers: int, modules: list[str], pair_jobs: list[DictConfig],
                  packing: dict | None = None) -> None:
    """Start the sweep's pool of ``workers`` processes in the background, warm each with ``modules``
    and run the checks in the first; :func:`await_workers` waits for it."""
    global _warmup
    warmup = _Warmup()
    thread = threading.Thread(target=warmup.run, args=(joblib_settings(launcher), workers, modules, pair_jobs,
                                                       packing), name="kdrun-sweep-workers", daemon=True)
    thread.start()
    _warmup = warmup


def await_workers() -> list[int]:
    """Wait for :func:`start_workers`' warm-up; raise WorkerCheckFailed with the first failed check's
    line. Returns the workers' process ids ([] when no warm-up was started)."""
    global _warmup
    warmup, _warmup = _warmup, None
    if warmup is None:
        return []
    warmup.done.wait()
    if warmup.error:
        raise WorkerCheckFailed(warmup.error)
    return warmup.pids


class AwaitWorkers(Callback):
    """Hydra callback: the sweep's jobs are launched only once its workers are warm and their checks passed.
    Runs after Hydra composed the sweep's config, so that composition overlaps the workers' start."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        await_workers()
