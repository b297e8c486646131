"""How fast a run computes, decided once per process and recorded in results.json.

Every choice here leaves the recipe alone (same data, same schedule, same losses) and changes only
how the arithmetic is done:

* ``device.amp=auto``: bf16 autocast on GPUs that support it, float32 elsewhere (``null``: float32);
* ``device.channels_last=auto``: NHWC memory layout on CUDA for models fed images (cuDNN's fast
  convolutions); 1-D signals and vectors are left alone;
* ``device.tf32=true``: TF32 tensor-core matmuls and convolutions on CUDA (Ampere and newer);
* ``device.threads=null``: CPU threads per process = cores / processes running at once (parallel
  sweep jobs x data-parallel ranks), so that concurrent jobs don't fight over the cores;
* ``trainer.compile=true``: torch.compile of the training step's models (see kdrun/engine/compile.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

import torch

from kdrun.environment import PARALLEL_JOBS_ENV
from kdrun.errors import KdrunError

log = logging.getLogger("kdrun")


@dataclass(frozen=True)
class SpeedSettings:
    amp: str | None
    channels_last: bool
    tf32: bool
    threads: int
    compile: bool = False
    data_path: str = "device"  # "device": batched from memory on the training device; "dataloader"

    def record(self) -> dict:
        return asdict(self)


def resolve_amp(amp: str | None, device: torch.device) -> str | None:
    """``auto`` -> bf16 where the GPU computes in bf16 natively, else None (float32)."""
    if amp != "auto":
        return amp
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return "bf16"
    return None


def resolve_channels_last(setting: bool | str | None, device: torch.device, input_kind: str) -> bool:
    if setting == "auto":
        return device.type == "cuda" and input_kind == "image"
    return bool(setting) and input_kind == "image"


def apply_tf32(enabled: bool, device: torch.device) -> bool:
    """Allow TF32 in CUDA matmuls and convolutions; returns whether it is in effect."""
    if device.type != "cuda":
        return False
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9; the allow_tf32 flags are deprecated
        mode = "tf32" if enabled else "ieee"
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
    else:  # pragma: no cover - older torch
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(enabled)
    return bool(enabled)


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask: Slurm and taskset limit it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parallel_jobs() -> int:
    """Sweep jobs running at once on this machine (the kdrun command sets it for joblib sweeps)."""
    return max(1, int(os.environ.get(PARALLEL_JOBS_ENV, "1") or 1))


def parallel_processes(ranks: int) -> int:
    """Processes of this machine computing at once: parallel sweep jobs x data-parallel ranks."""
    return parallel_jobs() * max(1, ranks)


def threads_for(setting: int | None, cores: int, processes: int) -> int:
    """``device.threads``, or an equal share of the cores (at least one)."""
    if setting is not None:
        if int(setting) < 1:
            raise KdrunError(f"device.threads={setting} must be a positive integer, or null for cores / processes")
        return int(setting)
    return max(1, cores // max(1, processes))


def apply_threads(n: int) -> int:
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
