"""What a run will take from the machine, checked before any data work: processes and memory.

``distill.transfer_size=1000000000`` started generating ~150 GB of MNIST-1D inputs and ended hours later in
the allocator's traceback; ``device.nproc=64`` on a 2-core, 24 GB machine started 64 processes of ~0.7 GB
each until memory ran out, without a word. Both are known from the config and the machine before anything
is read, generated or spawned, so they are refused in one line with the number:

* data-parallel processes (``device.nproc``): at most one per GPU on CUDA, one per core on the CPU;
* memory: every process a run starts (a parallel sweep's jobs at once x its ranks, plus the process
  that spawns the ranks) holds at least a Python with torch (:data:`PROCESS_MEMORY`), and every rank holds
  the generated transfer set (``distill.transfer_size`` fresh inputs of the dataset's shape, float32), one
  more copy while it is generated. That lower bound must fit in the memory available now (the smaller of
  the machine's and its cgroup's). Datasets read from disk and held compactly are not counted: the
  estimate refuses only what cannot fit.

Jobs that run on another machine (Hydra's submitit launcher: a Slurm node) are not checked here.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from kdrun.errors import KdrunError

GIB = 1024**3
# A kdrun process with torch imported, training the smallest models: 0.72-0.75 GiB peak RSS (VmHWM) per rank of
# `kdrun debug=fast dataset=digits teacher=mlp student=mlp stages=[teacher] device=cpu device.nproc=2`, and of
# the process that spawned them, on the 2-core development VM (torch 2.x, CPU). A lower bound for any run.
PROCESS_MEMORY = int(0.7 * GIB)
FLOAT32 = 4


def check_resources(cfg: DictConfig, at_once: int = 1, launcher: str = "") -> None:
    """Refuse in one line a job (``cfg``, composed) whose processes or memory this machine cannot give,
    ``at_once`` such jobs running together (a parallel sweep); ``launcher``: Hydra's launcher ``_target_``."""
    if "submitit" in launcher:
        return  # its jobs run where Slurm puts them
    nproc = int(cfg.device.get("nproc", 1) or 1)
    _check_processes(nproc, str(cfg.device.type))
    available = available_memory()
    if available is None:
        return
    ranks = at_once * nproc
    processes = ranks + (at_once if nproc > 1 else 0)  # a data-parallel job's own process spawns its ranks
    per_input, size = _transfer_input_bytes(cfg), int(cfg.distill.get("transfer_size") or 0)
    transfer = per_input * size
    need = processes * PROCESS_MEMORY + (ranks + 1) * transfer
    if need <= available:
        return
    where = f"this machine has {_gib(available)} available"
    base = processes * PROCESS_MEMORY
    if transfer and (nproc == 1 or base <= available):  # the transfer set is what does not fit
        fits = max(0, (available - base) // ((ranks + 1) * per_input))
        raise KdrunError(f"distill.transfer_size={size} needs about {_gib(need)} of memory ({size} generated "
                         f"inputs of {_gib(transfer)} in float32, held by {_count(ranks, 'process')} and once more "
                         f"while generated, plus {_gib(PROCESS_MEMORY)} per process) but {where}; use "
                         f"distill.transfer_size<={fits}, or 0 to distil on the labeled set")
    if nproc > 1:  # need(n) = at_once (n + 1) P + (at_once n + 1) T
        fits = max(1, (available - at_once * PROCESS_MEMORY - transfer) // (at_once * (PROCESS_MEMORY + transfer)))
        raise KdrunError(f"device.nproc={nproc} needs about {_gib(need)} of memory ({_count(processes, 'process')} "
                         f"of at least {_gib(PROCESS_MEMORY)}) but {where}; use device.nproc<={fits}")
    raise KdrunError(f"{at_once} sweep jobs at once need about {_gib(need)} of memory (at least {_gib(PROCESS_MEMORY)} "
                     f"each) but {where}; use hydra.launcher.n_jobs<={max(1, available // PROCESS_MEMORY)}")


def _check_processes(nproc: int, device_type: str) -> None:
    if nproc <= 1:
        return
    import torch  # the pair checks that run beside this one have imported it already

    from kdrun.engine.speed import cpu_cores

    gpus = torch.cuda.device_count() if device_type in ("auto", "cuda") else 0
    if gpus:
        if nproc > gpus:
            raise KdrunError(f"device.nproc={nproc} but only {gpus} CUDA devices are visible: one process per GPU; "
                             f"use device.nproc<={gpus}")
        return
    cores = cpu_cores()
    if nproc > cores:
        raise KdrunError(f"device.nproc={nproc} is more processes than the {cores} CPU cores this process may use "
                         f"(each rank would only wait for the others, with its own copy of the data); use "
                         f"device.nproc<={cores}")


def _transfer_input_bytes(cfg: DictConfig) -> int:
    """Bytes of one generated transfer input (a float32 input of the dataset's shape); 0 without a generated
    transfer set (none, or a folder or dataset given: a subset of files read as they are needed)."""
    if not cfg.distill.get("transfer_size") or cfg.distill.get("transfer_set") is not None:
        return 0
    from kdrun.data.static_info import static_info

    try:
        info = static_info(OmegaConf.to_container(cfg.dataset, resolve=True))
    except Exception:  # noqa: BLE001 - a dataset kdrun cannot describe before loading it: its builder says why
        return 0
    if info is None:
        return 0
    elements = info.in_channels
    for side in info.input_size:
        elements *= side
    return elements * FLOAT32


def available_memory() -> int | None:
    """Bytes of memory available now: the machine's (``MemAvailable``), or less where this process's cgroup
    (a container, a Slurm allocation) allows less; None where neither can be read."""
    amounts = [a for a in (_meminfo_available(), _cgroup_available()) if a is not None]
    return min(amounts) if amounts else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            cap = Path(limit).read_text().strip()
            if cap == "max" or int(cap) >= 2**60:  # no limit
                return None
            return max(0, int(cap) - int(Path(usage).read_text().strip()))
        except (OSError, ValueError):
            continue
    return None


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}es"
