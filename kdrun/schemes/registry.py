"""The registry of schemes: each decides which models train and who teaches whom, and yields Stages."""

from __future__ import annotations

from omegaconf import DictConfig

from kdrun.schemes.offline import STAGES as OFFLINE_STAGES
from kdrun.schemes.offline import offline

SCHEMES = {"offline": offline}
STAGE_NAMES: tuple[str, ...] = OFFLINE_STAGES


def scheme_name(cfg: DictConfig) -> str:
    return cfg.get("scheme", {}).get("name", "offline") if cfg.get("scheme") else "offline"
