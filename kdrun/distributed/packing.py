"""Several sweep jobs per GPU: which GPU a job takes, and a check that they fit.

With Hydra's joblib launcher, ``hydra.launcher.n_jobs`` jobs run at once. Each job takes a
*slot* on a GPU: a lock file ``<sweep dir>/.gpu_slots/gpu<g>-slot<k>.lock`` held (``flock``) for the
job's lifetime, so a slot frees itself when its job ends, even by a crash. Slots are taken
slot-major (every GPU's first slot before any second one), so jobs spread evenly whatever order
they start and finish in -- unlike ``job number % GPUs``, which stacks two long jobs on one GPU
when a short job between them has finished.

Before the sweep starts, :func:`check_packing` refuses a sweep whose jobs at once, each allowed
``device.job_memory`` GiB, would not fit in some GPU's free memory; each job then caps its own
allocations to that share (``torch.cuda.set_per_process_memory_fraction``), so one job cannot
starve the others.
"""

from __future__ import annotations

import fcntl
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import IO

from kdrun.errors import KdrunError

GIB = 1024**3
_held: list[IO] = []  # open lock files: a slot stays ours while this process lives


def jobs_per_gpu(jobs_at_once: int, gpus: int) -> int:
    return math.ceil(max(1, jobs_at_once) / max(1, gpus))


def check_packing(jobs_at_once: int, free_bytes: list[int], job_memory_gib: float) -> None:
    """One line naming the setting to change when the jobs that run at once don't fit the GPUs."""
    if not free_bytes:
        return
    per_gpu = jobs_per_gpu(jobs_at_once, len(free_bytes))
    need = per_gpu * job_memory_gib * GIB
    tightest = min(range(len(free_bytes)), key=lambda i: free_bytes[i])
    if need <= free_bytes[tightest]:
        return
    fit = int(free_bytes[tightest] // (job_memory_gib * GIB)) * len(free_bytes)
    raise KdrunError(
        f"hydra.launcher.n_jobs: {jobs_at_once} jobs at once put {per_gpu} on each of {len(free_bytes)} GPU(s), "
        f"{per_gpu} x device.job_memory={job_memory_gib:g} GiB > {free_bytes[tightest] / GIB:.1f} GiB free on "
        f"GPU {tightest}; use hydra.launcher.n_jobs<={max(fit, 1)} or a smaller device.job_memory"
    )


def free_gpu_memory() -> list[int]:
    """Free bytes of each visible GPU ([] without CUDA), asked in a child process so that this one
    (the sweep's parent, alive for the whole sweep) holds no CUDA context of its own."""
    import torch

    if not torch.cuda.is_available():  # a driver query, no context
        return []
    probe = ("import torch, json; print(json.dumps([torch.cuda.mem_get_info(i)[0] "
             "for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []))")
    try:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
        return [int(v) for v in json.loads(out.stdout.strip().splitlines()[-1])]
    except (subprocess.SubprocessError, ValueError, IndexError):
        return []  # cannot tell: the jobs' own memory caps still apply


def claim_gpu(slot_dir: Path, gpus: int, per_gpu: int) -> int | None:
    """The GPU of the first free slot (held until this process exits), or None if all are taken."""
    slot_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(per_gpu):
        for gpu in range(gpus):
            f = open(slot_dir / f"gpu{gpu}-slot{slot}.lock", "w")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            _held.append(f)
            return gpu
    return None


def release_gpus() -> None:
    while _held:
        f = _held.pop()
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
