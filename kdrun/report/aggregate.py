"""Group runs by what differs between them and summarize each group over its seeds.

Jobs are told apart by their settings: the keys of their command-line overrides (``distill.T``,
``method``, ...), valued by what the job actually ran with (the config value, or the chosen
option of a config group, so ``distill.T=4`` and ``distill.T=4.0`` are one setting). Keys whose
value is the same for every job are *common*; the others are the table's columns. ``seed`` is
what a group averages over, and ``name``/``paths``/``hydra`` say where a run went, not what it
computed. Runs with equal overrides whose configs still differ (config files edited between
runs) are told apart by the differing config keys.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser

from kdrun.report.jobs import (COMPLETED, FAILED, UNFINISHED, Job, per_epoch_set, primary_stage, reference_stage,
                               reported_top1)

AVERAGED = "seed"
BOOKKEEPING = ("name", "paths", "hydra")
MISSING = None


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation over seeds (std is None for a single value)."""

    mean: float | None
    std: float | None
    n: int

    @staticmethod
    def of(values: list[float]) -> "Stat":
        values = [v for v in values if v is not None and math.isfinite(v)]  # a diverged run is no number
        if not values:
            return Stat(None, None, 0)
        return Stat(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))


@dataclass
class Group:
    settings: dict[str, Any]
    jobs: list[Job]
    stages: dict[str, Stat] = field(default_factory=dict)  # last-epoch top-1 per stage
    best: Stat = Stat(None, None, 0)  # best-epoch top-1 of the primary stage
    delta: Stat = Stat(None, None, 0)  # primary minus baseline, per seed
    params: dict[str, int] = field(default_factory=dict)
    objective: Stat = Stat(None, None, 0)  # what the sweeper got back (kdrun/report/study.py), when ranked

    def count(self, status: str) -> int:
        return sum(j.status == status for j in self.jobs)

    @property
    def status(self) -> str:
        parts = [f"{self.count(s)} {label}" for s, label in
                 ((COMPLETED, "done"), (FAILED, "failed"), (UNFINISHED, "unfinished")) if self.count(s)]
        return ", ".join(parts)


@dataclass
class Summary:
    keys: list[str]  # the settings that vary, in command-line order
    common: dict[str, Any]  # settings every job shares
    groups: list[Group]
    stages: list[str]  # stages shown in tables, in run order
    primary: str | None  # the stage the sweep is about (as the runs' scheme declared it)
    reference: str = "baseline"  # the stage differences are taken against
    per_epoch: str = "test"  # the set evaluated every epoch, whose best epoch ``Group.best`` is: val or test
    ranked: bool = False  # groups in order of the search's objective, best first (a study, kdrun/report/study.py)

    @property
    def jobs(self) -> list[Job]:
        return [j for g in self.groups for j in g.jobs]


def summarize(jobs: list[Job]) -> Summary:
    keys = _override_keys(jobs)
    values = {k: [_setting(j, k) for j in jobs] for k in keys}
    varying = [k for k in keys if len({_hashable(v) for v in values[k]}) > 1]
    common = {k: values[k][0] for k in keys if k not in varying}
    varying += _config_only_differences(jobs, varying)
    groups: dict[tuple, Group] = {}
    for job in jobs:
        settings = {k: _setting(job, k) for k in varying}
        key = tuple(_hashable(v) for v in settings.values())
        groups.setdefault(key, Group(settings, [])).jobs.append(job)
    stages = _stage_order(jobs)
    declared = next((j.results["primary_stage"] for j in jobs if j.results.get("primary_stage")), None)
    primary = primary_stage(stages, declared)
    reference = next((reference_stage(j.results) for j in jobs if j.results.get("reference_stage")), "baseline")
    ordered = sorted(groups.values(), key=lambda g: [_natural(v) for v in g.settings.values()])
    for group in ordered:
        _fill_numbers(group, stages, primary, reference)
    per_epoch = "val" if any(per_epoch_set(j.results) == "val" for j in jobs if j.results) else "test"
    return Summary(varying, common, ordered, stages, primary, reference, per_epoch)


def _fill_numbers(group: Group, stages: list[str], primary: str | None, reference: str) -> None:
    for stage in stages:
        group.stages[stage] = Stat.of([reported_top1(j.stages[stage]) for j in group.jobs if stage in j.stages])
        params = [j.stages[stage].get("params") for j in group.jobs if stage in j.stages]
        if params and params[0] is not None:
            group.params[stage] = params[0]
    if primary is None:
        return
    group.best = Stat.of([j.stages[primary]["best_top1"] for j in group.jobs if primary in j.stages])
    if primary != reference:  # only a completed job's Δ compares like with like: a failed one has none
        group.delta = Stat.of([reported_top1(j.stages[primary]) - reported_top1(j.stages[reference])
                               for j in group.jobs
                               if j.status == COMPLETED and primary in j.stages and reference in j.stages])


def _override_keys(jobs: list[Job]) -> list[str]:
    keys: list[str] = []
    for job in jobs:
        for key in _keys_of(job.overrides):
            if key not in keys and not _ignored(key):
                keys.append(key)
    return keys


def _keys_of(overrides: list[str]) -> list[str]:
    try:
        return [o.key_or_group for o in OverridesParser.create().parse_overrides(overrides)]
    except Exception:  # written by another Hydra version: fall back to the text before '='
        return [line.partition("=")[0].lstrip("+~") for line in overrides]


def _ignored(key: str) -> bool:
    return key == AVERAGED or any(key == b or key.startswith((b + ".", b + "/")) for b in BOOKKEEPING)


def _setting(job: Job, key: str) -> Any:
    """What ``key`` was in this job: the chosen group option, the config value, or the override text."""
    if key in job.choices:
        return job.choices[key]
    node: Any = job.config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _override_text(job, key)
        node = node[part]
    return node if not isinstance(node, dict) else _override_text(job, key)


def _override_text(job: Job, key: str) -> Any:
    for line in job.overrides:
        k, _, v = line.partition("=")
        if k.lstrip("+~") == key:
            return v
    return MISSING


def _config_only_differences(jobs: list[Job], varying: list[str]) -> list[str]:
    """Config keys that differ between jobs with the same override settings (edited config files)."""
    by_settings: dict[tuple, list[Job]] = {}
    for job in jobs:
        by_settings.setdefault(tuple(_hashable(_setting(job, k)) for k in varying), []).append(job)
    extra: list[str] = []
    for same in by_settings.values():
        flat = [_flatten(j.config) for j in same]
        for key in sorted(set().union(*flat)):
            if _ignored(key) or key in extra or any(key.startswith(v + ".") for v in varying):
                continue
            if len({_hashable(f.get(key)) for f in flat}) > 1:
                extra.append(key)
    return extra


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix.rstrip("."): node}
    out: dict[str, Any] = {}
    for k, v in node.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def _stage_order(jobs: list[Job]) -> list[str]:
    order: list[str] = []
    for job in jobs:
        for stage in job.stages:
            if stage not in order:
                order.append(stage)
    return order


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def _natural(value: Any) -> tuple:
    """Sort numbers numerically, then everything else as text (None last)."""
    if value is None:
        return (2, 0.0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    text = str(value)
    if re.fullmatch(r"-?\d+(\.\d*)?([eE]-?\d+)?", text):
        return (0, float(text), "")
    return (1, 0.0, text)


def format_value(value: Any) -> str:
    """A setting as it reads on a command line."""
    if value is MISSING:
        return "–"
    if isinstance(value, list):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)
