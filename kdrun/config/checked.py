"""The job configs this command has checked already, so that a run does not check them again.

The command's preflight composes and checks every job config it can before Hydra starts anything: types,
values, the scheme, and the method on every pair it will distil (kdrun/config/preflight.py). Hydra then
composes the same config again for the job; the pipeline finds its digest here and goes straight to work.
A config nobody checked -- a value a search sweeper sampled, the pipeline called directly -- is checked
where it runs (kdrun/runs/pipeline.py). The digests travel in an environment variable, so the processes
the command starts (a parallel sweep's workers, data-parallel ranks) know them too; ``kdrun`` removes it
when it ends, so nothing checked by one command counts for the next.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

from omegaconf import DictConfig, OmegaConf

from kdrun.environment import CHECKED_ENV


def digest(job_cfg: DictConfig) -> str:
    """The job config as composed (interpolations unresolved: they resolve alike in both compositions)."""
    return hashlib.sha1(OmegaConf.to_yaml(job_cfg).encode()).hexdigest()[:16]


def record(job_cfgs: Iterable[DictConfig]) -> None:
    """These configs passed every check (replacing what an earlier command recorded)."""
    os.environ[CHECKED_ENV] = " ".join(dict.fromkeys(digest(c) for c in job_cfgs))


def was_checked(job_cfg: DictConfig) -> bool:
    return digest(job_cfg) in os.environ.get(CHECKED_ENV, "").split()


def forget() -> None:
    os.environ.pop(CHECKED_ENV, None)
