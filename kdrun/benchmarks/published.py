"""The published benchmark tables, read from the data files shipped beside this module.

``cifar100.yaml`` (RepDistiller / the CRD paper / mdistiller) and ``imagenet.yaml`` (mdistiller,
torchvision) are the one source of truth: the ``experiment=`` presets are generated from them
(:mod:`kdrun.config.presets`) and ``scripts/benchmark.py`` compares runs against them. Each
source says which metric it reports -- the last epoch's top-1 of one run (RepDistiller) or the best
epoch's, averaged over 5 runs (mdistiller) -- because gaps of 0.2 to 1.6 points come from exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

TABLE_NAMES = ("cifar100", "imagenet")
METRICS = {"last": "last epoch", "best": "best epoch", "weights": "released weights"}
SUPERVISED_ROWS = ("teacher", "student")  # rows trained with cross-entropy only


@dataclass(frozen=True)
class Source:
    key: str
    cite: str
    metric: str  # last | best | weights (see METRICS)
    runs: int | None  # how many runs the published number averages; None = not stated

    def describe(self) -> str:
        if self.metric == "weights":
            return "the released weights, evaluated"
        if self.runs is None:
            return f"{METRICS[self.metric]}, runs not stated"
        runs = "one run" if self.runs == 1 else f"mean of {self.runs} runs"
        return f"{METRICS[self.metric]}, {runs}"


@dataclass(frozen=True)
class Row:
    key: str  # teacher | student | a method row (kd, crd_kd, ...)
    label: str
    source: str
    method: str | None = None  # the method= option; None for the supervised rows
    set: tuple[tuple[str, Any], ...] = ()  # dotted-key overrides of every pair


@dataclass(frozen=True)
class Pair:
    key: str  # "<teacher>-<student>" as the tables name it
    teacher: str  # registered architectures
    student: str
    family: str  # same | cross
    published: tuple[tuple[str, float], ...]
    overrides: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()  # row -> dotted-key overrides

    def value(self, row: str) -> float | None:
        return dict(self.published).get(row)

    def row_overrides(self, row: str) -> dict[str, Any]:
        return dict(dict(self.overrides).get(row, ()))


@dataclass(frozen=True)
class Cell:
    """One published number."""

    table: str
    pair: str
    row: str
    value: float


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    dataset: str
    trainer: str
    lr: float
    low_lr: float
    low_lr_archs: tuple[str, ...]
    sources: dict[str, Source]
    rows: dict[str, Row]
    pairs: dict[str, Pair]
    archive_names: dict[str, str]

    def lr_for(self, arch: str) -> float:
        """The reference lr for training ``arch`` (0.01 for MobileNetV2/ShuffleNets on CIFAR-100)."""
        return self.low_lr if arch in self.low_lr_archs else self.lr

    def cells(self) -> list[Cell]:
        return [Cell(self.name, p.key, row, value) for p in self.pairs.values() for row, value in p.published]

    def source_of(self, row: str) -> Source:
        return self.sources[self.rows[row].source]


def _items(mapping: dict | None) -> tuple[tuple[str, Any], ...]:
    return tuple((mapping or {}).items())


def _pair(key: str, spec: dict) -> Pair:
    overrides = tuple((row, _items(values)) for row, values in (spec.get("overrides") or {}).items())
    return Pair(key, spec["teacher"], spec["student"], spec["family"],
                tuple((row, float(v)) for row, v in spec["published"].items()), overrides)


@cache
def load_table(name: str) -> Table:
    """The published table ``name`` (one of :data:`TABLE_NAMES`)."""
    if name not in TABLE_NAMES:
        raise ValueError(f"unknown benchmark table {name!r}; valid: {', '.join(TABLE_NAMES)}")
    raw = yaml.safe_load((resources.files("kdrun.benchmarks") / f"{name}.yaml").read_text())
    sources = {k: Source(k, v["cite"], v["metric"], v["runs"]) for k, v in raw["sources"].items()}
    rows = {k: Row(k, v["label"], v["source"], v.get("method"), _items(v.get("set"))) for k, v in raw["rows"].items()}
    pairs = {k: _pair(k, v) for k, v in raw["pairs"].items()}
    return Table(raw["name"], raw["title"], raw["dataset"], raw["trainer"], float(raw["lr"]), float(raw["low_lr"]),
                 tuple(raw["low_lr_archs"]), sources, rows, pairs, dict(raw.get("archive_names") or {}))


def tables() -> list[Table]:
    return [load_table(name) for name in TABLE_NAMES]
