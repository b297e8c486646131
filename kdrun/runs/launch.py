"""Starting the processes of a data-parallel run. Three ways in, one code path after start-up:

* ``torchrun`` (or anything that sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT): every process
  runs the kdrun command; ``kdrun.cli.main`` joins the process group *before* Hydra starts, so
  rank 0 can hand its run directory to the others (:func:`agree_on_run_dir`).
* Hydra's submitit launcher with ``tasks_per_node`` > 1 (Slurm): every task runs the Hydra job
  from the same pickled config; the job joins the group from submitit's job environment.
* ``device.nproc=N``: the Hydra job (one process) spawns N workers on this machine and hands
  them its config, already composed and resolved.

In all three the workers call the same ``fn(cfg, run_dir)`` (``kdrun.runs.pipeline.run``) in the same
run directory; only rank 0 writes there (see ``kdrun.distributed.state.is_main``).
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig, OmegaConf

from kdrun.distributed import state
from kdrun.distributed.packing import GIB, claim_gpu, jobs_per_gpu, release_gpus
from kdrun.engine.speed import parallel_jobs
from kdrun.environment import started_by_torchrun
from kdrun.errors import KdrunError
from kdrun.config.sweeps import quote

log = logging.getLogger("kdrun")

RunFn = Callable[[DictConfig, Path], dict]
IN_SWEEP_ENV = "KDRUN_IN_SWEEP"  # set in workers spawned by a sweep job


def submitit_tasks() -> int:
    """Number of tasks of the submitit job this process belongs to (0 outside submitit)."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return 0
    import submitit

    return submitit.JobEnvironment().num_tasks


def launcher_rank() -> int:
    """This process's global rank as its launcher announced it, before any process group exists
    (torchrun's RANK, a submitit task's rank); 0 for a single process."""
    if started_by_torchrun():
        return int(os.environ["RANK"])
    if submitit_tasks() > 1:
        import submitit

        return submitit.JobEnvironment().global_rank
    return 0


def backend_for(device_node: DictConfig) -> str:
    from kdrun.tasks.build import resolve_device

    return device_node.get("backend") or state.default_backend(resolve_device(device_node).type)


def init_from_environment(device_node: DictConfig) -> bool:
    """Join the process group announced by the environment (torchrun, submitit); False if none."""
    if state.initialized():
        return True
    if started_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
        state.init_process_group(backend_for(device_node))
        return True
    if submitit_tasks() > 1:
        from submitit.helpers import TorchDistributedEnvironment

        # MASTER_ADDR = the job's first node, MASTER_PORT derived from the job id
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        state.init_process_group(backend_for(device_node))
        return True
    return False


def run_data_parallel(fn: RunFn, cfg: DictConfig, run_dir: Path) -> dict:
    """Run ``fn(cfg, run_dir)`` on every rank of the run; return the run's results."""
    if init_from_environment(cfg.device):
        state.quiet_other_ranks()
        if state.is_main():
            log.info("data-parallel run: %d processes (%s)", state.world_size(), torch.distributed.get_backend())
        return fn(cfg, run_dir)
    nproc = int(cfg.device.get("nproc", 1) or 1)
    if nproc <= 1:
        try:
            _place_on_gpu(cfg.device)
            return fn(cfg, run_dir)
        finally:
            release_gpus()  # a joblib worker runs several jobs one after another: free this job's slot
    return spawn(fn, cfg, run_dir, nproc)


def gpu_for_job(index: int | None, job_num: int | None, visible: int) -> int | None:
    """``device.index`` if set; else a sweep job's number modulo the visible GPUs; else None (the first)."""
    if index is not None:
        return index
    if job_num is None or visible < 2:
        return None
    return job_num % visible


def _place_on_gpu(device_node: DictConfig) -> None:
    """A one-process run on CUDA: make its GPU the current device (what ``cuda`` then means)."""
    from hydra.core.hydra_config import HydraConfig

    from kdrun.tasks.build import resolve_device

    if resolve_device(device_node).type != "cuda":
        return
    visible, at_once = torch.cuda.device_count(), parallel_jobs()
    index = device_node.get("index")
    if index is None and in_sweep() and at_once > 1:  # packed sweep: a free slot on the least-used GPU
        per_gpu = jobs_per_gpu(at_once, visible)
        index = claim_gpu(Path(HydraConfig.get().sweep.dir) / ".gpu_slots", visible, per_gpu)
        if per_gpu > 1:  # several jobs share a GPU: none may take more than its share
            gpu = index if index is not None else torch.cuda.current_device()
            total = torch.cuda.get_device_properties(gpu).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, device_node.get("job_memory", 4) * GIB / total), gpu)
    index = gpu_for_job(index, HydraConfig.get().job.num if in_sweep() else None, visible)
    if index is not None:
        if index >= torch.cuda.device_count():
            raise KdrunError(f"device.index={index} but only {torch.cuda.device_count()} CUDA devices are visible; "
                             f"valid choices: null, 0..{torch.cuda.device_count() - 1}")
        torch.cuda.set_device(index)
        log.info("using GPU %d of %d", index, torch.cuda.device_count())


def spawn(fn: RunFn, cfg: DictConfig, run_dir: Path, nproc: int) -> dict:
    """Start ``nproc`` workers on this machine (``device.nproc``) and wait for them."""
    backend = backend_for(cfg.device)
    if backend == "nccl" and torch.cuda.device_count() < nproc:
        raise KdrunError(f"device.nproc={nproc} but only {torch.cuda.device_count()} CUDA devices are visible; "
                         f"use device.nproc<={torch.cuda.device_count()}")
    scratch = Path(tempfile.mkdtemp(prefix="kdrun-ddp-"))  # rendezvous file and error messages
    # Composed once, here: workers get plain data, with Hydra's interpolations already resolved.
    resolved = OmegaConf.to_container(cfg, resolve=True)
    log.info("data-parallel run: spawning %d processes (%s)", nproc, backend)
    try:
        with _standard_start_method():
            args = (nproc, backend, fn, resolved, str(run_dir), _job_logging(), str(scratch), in_sweep())
            ranks = torch.multiprocessing.start_processes(_worker, args=args, nprocs=nproc, join=False,
                                                          start_method="spawn")
            try:
                while not ranks.join():  # what join=True does; raises when a rank fails
                    pass
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM (kdrun/interrupts.py) in this process
                _stop_ranks(ranks.processes)
                raise
    except torch.multiprocessing.ProcessRaisedException:
        messages = sorted(scratch.glob("rank*.error"))
        if messages:
            raise KdrunError(messages[0].read_text()) from None
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    from kdrun.report.run_files import read_results

    return read_results(run_dir) or {}


def _stop_ranks(processes: list, grace: float = 5.0) -> None:
    """Stop the ranks of an interrupted run before this process exits (it would wait for them at exit,
    and they would train on). A Ctrl-C typed in a terminal reached them too: they get a moment to stop by
    themselves. The others are ended with SIGTERM (not SIGINT: a process started in the background
    ignores SIGINT, and so do its children), and killed if still there after ``grace`` seconds. Their
    checkpoints are written atomically, so the run resumes from the last one either way."""
    def wait(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))

    wait(2.0)
    for process in processes:
        if process.is_alive():
            process.terminate()
    wait(grace)
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()


@contextlib.contextmanager
def _standard_start_method() -> Iterator[None]:
    """A spawned child re-applies its parent's global start method before running anything; inside
    a joblib (loky) sweep job that is 'loky', unknown to a fresh interpreter. Spawn from 'spawn'."""
    previous = multiprocessing.get_start_method(allow_none=True)
    custom = previous not in (None, "spawn", "fork", "forkserver")
    if custom:
        multiprocessing.set_start_method("spawn", force=True)
    try:
        yield
    finally:
        if custom:
            multiprocessing.set_start_method(previous, force=True)


def _worker(rank: int, nproc: int, backend: str, fn: RunFn, cfg: dict, run_dir: str,
            job_logging: dict | None, scratch: str, in_sweep: bool) -> None:
    _configure_logging(rank, job_logging)
    if in_sweep:  # Hydra's state stays in the parent: tell in_sweep()
        os.environ[IN_SWEEP_ENV] = "1"
    os.environ["LOCAL_WORLD_SIZE"] = str(nproc)  # ranks share the cores (kdrun.engine.speed.threads_for)
    os.environ["LOCAL_RANK"] = str(rank)
    state.init_process_group(backend, init_method=f"file://{scratch}/rendezvous", rank=rank, world_size=nproc)
    try:
        fn(OmegaConf.create(cfg), Path(run_dir))
    except KdrunError as e:  # shown to the user as kdrun's one-line error, not a worker traceback
        Path(scratch, f"rank{rank}.error").write_text(str(e))
        raise
    finally:
        state.destroy_process_group()


def in_sweep() -> bool:
    """Is this process running a job of a sweep (or a worker spawned by one)?"""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if os.environ.get(IN_SWEEP_ENV) == "1":
        return True
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _job_logging() -> dict | None:
    """Hydra's logging config of this job (console + <run dir>/kdrun.log), for rank 0's worker."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return OmegaConf.to_container(HydraConfig.get().job_logging, resolve=True)


def _configure_logging(rank: int, job_logging: dict | None) -> None:
    if rank == 0 and job_logging:
        logging.config.dictConfig(job_logging)
    else:
        logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING)


def agree_on_run_dir(args: list[str], run_dir: str, sweep_dir: str) -> list[str]:
    """Under torchrun: every rank uses rank 0's run (or sweep) directory; only rank 0 saves .hydra/."""
    run_dir, sweep_dir = state.broadcast_object((run_dir, sweep_dir))
    extra = [f"hydra.run.dir={quote(run_dir)}", f"hydra.sweep.dir={quote(sweep_dir)}"]
    if not state.is_main():
        extra.append("hydra.output_subdir=null")
    return [a for a in args if not a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))] + extra


