"""The run's trackers from its ``logger`` config group (conf/logger/), and what they are told about the run.

Building one only reads its options (imports of mlflow, wandb happen when it starts), so a tracker whose
package is missing or whose server is down fails when it starts: one warning line, and the run goes on
(kdrun/loggers/fanout.py). ``logger=none`` leaves the run its own files only (metrics.jsonl, results.json, ...).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from kdrun.errors import KdrunError
from kdrun.loggers.base import RunInfo
from kdrun.loggers.fanout import Loggers
from kdrun.objects import from_config

log = logging.getLogger("kdrun")


def run_loggers(cfg: DictConfig, run_dir: Path) -> tuple[Loggers, RunInfo]:
    built = []
    for name, node in (cfg.get("logger") or {}).items():
        if node is None:
            continue
        try:
            built.append(from_config(node, f"logger.{name}", "give a class of kdrun/loggers/ or your own Logger"))
        except KdrunError as e:
            log.warning("%s; the run goes on without it", e)
    info = RunInfo(run_dir, run_dir.name, params=flat_params(cfg), group=_sweep_dir())
    return Loggers(built), info


def flat_params(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as ``{"distill.T": 4.0, "student.hidden": "[16]", ...}`` (hydra's node left out)."""
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg
    return _flatten(OmegaConf.to_container(job, resolve=True))


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    value = node if isinstance(node, (bool, int, float, str)) or node is None else str(node)
    return {prefix.rstrip("."): value}


def _sweep_dir() -> Path | None:
    """The sweep folder when this run is a sweep's job: trackers group the sweep's runs by it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(str(HydraConfig.get().sweep.dir)).absolute()
    return None
