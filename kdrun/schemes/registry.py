"""The registry of schemes: each decides which models train and who teaches whom, and yields Stages.

A scheme is selected with ``scheme=<name>`` (conf/scheme/<name>.yaml, which also sets the scheme's
default ``stages``); ``SCHEME_STAGES`` lists the stages each scheme can run.
"""

from __future__ import annotations

from omegaconf import DictConfig

from kdrun.errors import KdrunError, choice_error
from kdrun.schemes import assistant, born_again, ensemble, momentum, mutual, offline, one

SCHEMES = {
    "offline": offline.offline,
    "born_again": born_again.born_again,
    "dml": mutual.mutual,
    "assistant": assistant.assistant,
    "ensemble": ensemble.ensemble,
    "momentum": momentum.momentum,
    "one": one.one,
}
SCHEME_STAGES: dict[str, tuple[str, ...]] = {
    "offline": offline.STAGES,
    "born_again": born_again.STAGES,
    "dml": mutual.STAGES,
    "assistant": assistant.STAGES,
    "ensemble": ensemble.STAGES,
    "momentum": momentum.STAGES,
    "one": one.STAGES,
}
SCHEME_CHECKS = {"offline": offline.check, "dml": mutual.peer_keys, "assistant": assistant.check,
                 "ensemble": ensemble.check, "momentum": momentum.check, "one": one.check}
STAGE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(s for stages in SCHEME_STAGES.values() for s in stages))


def scheme_name(cfg: DictConfig) -> str:
    return cfg.get("scheme", {}).get("name", "offline") if cfg.get("scheme") else "offline"


def check_scheme(cfg: DictConfig) -> None:
    """The scheme exists, and every requested stage is one it runs (one-line errors, before any work)."""
    name = scheme_name(cfg)
    if name not in SCHEMES:
        raise choice_error("scheme.name", name, SCHEMES)
    for stage in cfg.stages:
        if stage not in SCHEME_STAGES[name]:
            raise choice_error("stages", stage, SCHEME_STAGES[name], f"(not a stage of scheme={name})")
    generations = cfg.scheme.get("generations")
    if generations is not None and generations < 2:
        raise KdrunError(f"scheme.generations={generations} must be >= 2 (generation 1 is the baseline)")
    if name in SCHEME_CHECKS:
        SCHEME_CHECKS[name](cfg)
