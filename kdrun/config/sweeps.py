"""Sweep folders that a re-run finds again.

``kdrun -m distill.T=1,2 distill.alpha=0.1,0.9 seed=0,1`` writes every job into

    outputs/sweeps/distill.T=1,2__distill.alpha=0.1,0.9__seed=0,1/distill.T=1,distill.alpha=0.1,seed=0/

The sweep folder is named after the command's overrides (sorted, so their order does not
matter) and each job folder after the values it sweeps -- not after the clock or a job number --
so running the same command again maps every job to the folder it used before: completed jobs
are skipped, unfinished ones resume, and a grown sweep (another value of T) only adds jobs.
``name=...`` names the sweep folder instead (a fresh repeat, or something short); a full
``hydra.sweep.dir=...`` or ``hydra.sweep.subdir=...`` is left alone.

Before anything runs, :func:`check_sweep_dir` refuses a sweep folder whose earlier sweep had a
different configuration (apart from the swept keys), so changed config files never make a
re-run skip jobs whose results came from the old settings.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from kdrun.errors import KdrunError

SWEEP_NAME_MAX = 150
MULTIRUN_FLAGS = ("-m", "--multirun")
EXCLUDE_KEY = "hydra.job.config.override_dirname.exclude_keys"
# Keys that say where things go, not what is computed: never part of a sweep's identity.
BOOKKEEPING = ("name", "paths")


def quote(value: str) -> str:
    """A Hydra override value taken literally (commas, '=' and brackets included)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_multirun(args: list[str]) -> bool:
    return any(a in MULTIRUN_FLAGS for a in args)


def enumerable(o) -> bool:
    """A sweep whose values kdrun can list (``a,b,c``, ``choice()``, ``range()``, tagged or not).
    ``interval()`` and other sweeper syntax are the sweeper's to sample: kdrun checks one value
    inside them before the sweep (:func:`inside`) and every trial's own value when its job starts."""
    return o.is_sweep_override() and (o.is_choice_sweep() or o.is_range_sweep())


def inside(o) -> str:
    """A value a sweeper may sample from ``o`` (an interval's middle; geometric for ``tag(log, ...)``),
    as a value to compose the first job's config with."""
    sweep = o.value()
    start, end = sweep.start, sweep.end
    mid = (start * end) ** 0.5 if "log" in sweep.tags and start > 0 and end > 0 else (start + end) / 2
    return str(int(round(mid))) if isinstance(start, int) and isinstance(end, int) else repr(float(mid))


def _is_hydra_key(key: str) -> bool:
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def sweep_arguments(args: list[str], parsed: list) -> list[str]:
    """``args`` plus the overrides that give a sweep its stable folders (unchanged without -m)."""
    if not is_multirun(args):
        return args
    keys = {o.key_or_group for o in parsed}
    task = [o for o in parsed if not _is_hydra_key(o.key_or_group) and o.key_or_group != "name"]
    extra = []
    if "name" not in keys and "hydra.sweep.dir" not in keys:
        extra.append(f"name={quote(default_sweep_name(task))}")
    if EXCLUDE_KEY not in keys and "hydra.sweep.subdir" not in keys:
        # job folders show only what varies; with nothing swept, every override names the job
        constant = [o.key_or_group for o in task if not o.is_sweep_override()]
        exclude = ["name", *constant] if any(o.is_sweep_override() for o in task) else ["name"]
        extra.append(f"{EXCLUDE_KEY}=[{','.join(quote(k) for k in exclude)}]")
    return args + extra + optuna_arguments(parsed)


def optuna_arguments(parsed: list) -> list[str]:
    """``hydra/sweeper=optuna`` on the command line: maximize (kdrun returns the primary stage's top-1; the
    plugin minimizes by default) and seed the default TPE sampler, so that running the same command again
    asks for the same trials, finds their folders and skips the finished ones (as a grid sweep does).
    What the command sets itself is left alone; conf/hparams_search/ files set both themselves."""
    keys = {o.key_or_group for o in parsed}
    if not any(o.key_or_group == "hydra/sweeper" and str(o.value()) == "optuna" for o in parsed):
        return []
    extra = [] if "hydra.sweeper.direction" in keys else ["hydra.sweeper.direction=maximize"]
    if not keys & {"hydra/sweeper/sampler", "hydra.sweeper.sampler.seed", "hydra.sweeper.sampler"}:
        extra.append("hydra.sweeper.sampler.seed=0")
    return extra


def default_sweep_name(overrides: list) -> str:
    """The command's overrides joined, swept ones first, each part sorted: readable, and the same
    for the same command in any order."""
    swept = sorted(o.input_line for o in overrides if o.is_sweep_override())
    fixed = sorted(o.input_line for o in overrides if not o.is_sweep_override())
    text = "__".join(swept + fixed) or "multirun"
    text = re.sub(r"\s+", "", text).replace("/", "-").replace("'", "").replace('"', "")
    if len(text) > SWEEP_NAME_MAX:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        text = f"{text[:SWEEP_NAME_MAX - 9]}-{digest}"
    return text


def jobs_at_once(launcher: DictConfig | None, overrides: list) -> int:
    """Jobs of a sweep that run at the same time: joblib's ``n_jobs`` (negative counts back from the
    cores, as joblib does), at most the number of jobs; 1 with any other launcher."""
    if launcher is None or "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n_jobs = launcher.get("n_jobs") or 1
    if n_jobs < 0:
        n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    jobs = math.prod(len(list(o.sweep_string_iterator())) for o in overrides if enumerable(o))
    return max(1, min(n_jobs, jobs))


def config_differences(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config containers."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in set(a) | set(b):
            out += config_differences(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def swept_keys(overrides: list) -> set[str]:
    return {o.key_or_group for o in overrides if o.is_sweep_override()}


def check_sweep_dir(sweep_dir: Path, master: DictConfig, swept: set[str]) -> None:
    """Refuse to reuse a sweep folder whose earlier sweep differs in a key neither sweep varies."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    saved = sweep_dir / "multirun.yaml"
    if not saved.is_file():
        return
    old = OmegaConf.load(saved)
    old_overrides = OmegaConf.to_container(old.hydra.overrides.task) if "hydra" in old else []
    ignored = swept | swept_keys(OverridesParser.create().parse_overrides(old_overrides)) | set(BOOKKEEPING)
    old_job = OmegaConf.to_container(OmegaConf.masked_copy(old, [k for k in old if k != "hydra"]), resolve=False)
    new_job = OmegaConf.to_container(OmegaConf.masked_copy(master, [k for k in master if k != "hydra"]),
                                     resolve=False)
    diff = [k for k in sorted(config_differences(old_job, new_job))
            if not any(k == i or k.startswith(i + ".") or k.startswith(i + "/") for i in ignored)]
    if diff:
        raise KdrunError(f"hydra.sweep.dir={sweep_dir} holds a sweep with a different config (differs in: "
                         f"{', '.join(diff[:5])}); re-run it with the same options, or give this sweep another "
                         f"name=...")
