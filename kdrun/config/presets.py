"""``experiment=`` presets for every published benchmark cell, generated from the data files.

Names are listable paths (``kdrun --help`` shows them, one line per pair):

* ``<table>/<teacher>-<student>/<row>`` -- a method row, e.g. ``cifar100/resnet56-resnet20/kd``,
  ``cifar100/resnet32x4-shufflenetv2/crd_kd``, ``imagenet/resnet34-resnet18/dkd``: teacher ->
  baseline -> [init stage] -> distilled (``stages=[teacher,baseline,distilled]``: the published
  rows, without kdrun's self-distilled and int8 rows or its latency measurement);
* ``<table>/teachers/<arch>`` -- the teacher row: trains that teacher alone (``stages=[teacher]``);
* ``<table>/students/<arch>`` -- the student row: the label-only baseline alone (``stages=[baseline]``).

Each preset is a ``# @package _global_`` config registered into Hydra's ConfigStore at startup
(no generated files to keep in sync): it overrides dataset/trainer/teacher/student/method, sets the
row's and the pair's extra keys (CRD+KD's ``distill.alpha=1``, DKD's per-pair ``method.nckd_weight``,
AB/FT/FSP's 30 init epochs), the lower lr of MobileNetV2/ShuffleNet, and a ``benchmark`` node
naming the cell, which the comparison reads back from the run's saved config.
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore

from kdrun.benchmarks.published import Pair, Table, tables

GROUP = "experiment"


def preset_name(table: Table, pair: Pair, row: str) -> str:
    if row == "teacher":
        return f"{table.name}/teachers/{pair.teacher}"
    if row == "student":
        return f"{table.name}/students/{pair.student}"
    return f"{table.name}/{pair.key}/{row}"


def _nest(dotted: dict[str, Any]) -> dict[str, Any]:
    """{'distill.alpha': 1} -> {'distill': {'alpha': 1}}."""
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _defaults(table: Table, teacher: str, student: str, method: str | None) -> list[Any]:
    chosen = {"dataset": table.dataset, "trainer": table.trainer, "teacher": teacher, "student": student}
    if method:
        chosen["method"] = method
    return [{f"override /{group}": option} for group, option in chosen.items()] + ["_self_"]


# The published rows only: no self-distilled or int8 rows, no latency measurement (measure.enabled=true adds it).
ONLY_PUBLISHED = {"measure": {"enabled": False}}


def _supervised_node(table: Table, row: str, arch: str) -> dict[str, Any]:
    """Teacher or student row: that one model, trained with cross-entropy by the recipe."""
    stage = "teacher" if row == "teacher" else "baseline"
    return {"defaults": _defaults(table, arch, arch, None), "stages": [stage], **ONLY_PUBLISHED,
            "trainer": {"lr": table.lr_for(arch)},
            "benchmark": {"table": table.name, "row": row, "pair": None, "arch": arch}}


def _method_node(table: Table, pair: Pair, row: str) -> dict[str, Any]:
    spec = table.rows[row]
    dotted = {**dict(spec.set), **pair.row_overrides(row)}
    # The student's lr is trainer.lr (baseline, init and distilled stages); the teacher keeps its own.
    dotted["trainer.lr"] = table.lr_for(pair.student)
    dotted["teacher.lr"] = table.lr_for(pair.teacher)
    node = {"defaults": _defaults(table, pair.teacher, pair.student, spec.method),
            "stages": ["teacher", "baseline", "distilled"], **ONLY_PUBLISHED, **_nest(dotted)}
    node["benchmark"] = {"table": table.name, "row": row, "pair": pair.key, "arch": pair.student}
    return node


def preset_node(table: Table, pair: Pair, row: str) -> dict[str, Any]:
    if row == "teacher":
        return _supervised_node(table, row, pair.teacher)
    if row == "student":
        return _supervised_node(table, row, pair.student)
    return _method_node(table, pair, row)


def all_presets() -> dict[str, dict[str, Any]]:
    """Every preset, by name: one per published cell (teacher and student rows shared between pairs)."""
    presets: dict[str, dict[str, Any]] = {}
    for table in tables():
        for cell in table.cells():
            pair = table.pairs[cell.pair]
            presets.setdefault(preset_name(table, pair, cell.row), preset_node(table, pair, cell.row))
    return presets


def register_presets() -> None:
    cs = ConfigStore.instance()
    for name, node in all_presets().items():
        group, _, option = f"{GROUP}/{name}".rpartition("/")
        cs.store(group=group, name=option, node=node, package="_global_")


def select(table: Table, pairs: list[str] | None, rows: list[str] | None) -> tuple[list[str], list[str]]:
    """Presets of the published cells among ``pairs`` x ``rows`` (None = all), and the cells skipped as n/a.

    Unknown pair or row names raise ``ValueError`` naming the valid ones.
    """
    for given, valid, what in ((pairs, table.pairs, "pair"), (rows, table.rows, "row")):
        unknown = [g for g in given or [] if g not in valid]
        if unknown:
            raise ValueError(f"unknown {what} {unknown[0]!r} for table {table.name}; valid: {', '.join(valid)}")
    chosen, skipped = [], []
    for pair_key in pairs or list(table.pairs):
        pair = table.pairs[pair_key]
        for row in rows or list(table.rows):
            if pair.value(row) is None:
                skipped.append(f"{pair_key}/{row}")
                continue
            name = preset_name(table, pair, row)
            if name not in chosen:
                chosen.append(name)
    return chosen, skipped
