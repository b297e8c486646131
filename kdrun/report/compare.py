"""kdrun's benchmark runs beside the published numbers.

Every run made from a preset carries a ``benchmark`` node (table, row, pair, arch). A method run
gives its cell the distilled student's top-1; every run also gives the teacher row of its teacher
architecture and the student row of its student architecture (the baseline stage), counted once
per distinct model (one teacher file shared by all seeds counts once). Each cell shows the
last-epoch and the best-epoch top-1 as mean ± sample std over runs, and the difference from the
published number *in the published number's own metric*: last epoch for RepDistiller and the CRD
paper (one run), best epoch for mdistiller (mean of 5 runs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from kdrun.benchmarks.published import METRICS, SUPERVISED_ROWS, Table, load_table
from kdrun.report.aggregate import Stat
from kdrun.report.jobs import COMPLETED, FAILED, INVALID, Job, find_jobs


def find_runs(*roots: str | os.PathLike) -> list[Job]:
    """Every run at or below ``roots`` (kdrun-report's reader: results.json and the saved .hydra config)."""
    return [job for root in roots for job in find_jobs(root) if job.status != INVALID]


def benchmark_node(job: Job) -> dict[str, Any] | None:
    """The cell a run's preset named (``benchmark`` in its saved config), if any."""
    node = job.config.get("benchmark")
    return node if isinstance(node, dict) else None


@dataclass
class Measured:
    """What kdrun's runs gave one cell: (last, best) per distinct model, and the runs that did not finish."""

    values: dict[Any, tuple[float, float]] = field(default_factory=dict)
    failed: int = 0
    unfinished: int = 0

    @property
    def last(self) -> Stat:
        return Stat.of([v[0] for v in self.values.values()])

    @property
    def best(self) -> Stat:
        return Stat.of([v[1] for v in self.values.values()])


CellKey = tuple[str, str, str]  # (table, row, pair for method rows | arch for teacher/student rows)


def _matches(run: Job, table: Table, node: dict[str, Any]) -> bool:
    """False when the command line changed the preset's models (the run is no longer that cell)."""
    stages = run.stages
    if node["row"] in SUPERVISED_ROWS:
        stage = stages.get("teacher" if node["row"] == "teacher" else "baseline")
        return stage is None or stage.get("arch") == node["arch"]
    pair = table.pairs.get(node.get("pair"))
    if pair is None:
        return False
    return all(stages.get(s, {}).get("arch", a) == a for s, a in
               (("teacher", pair.teacher), ("baseline", pair.student), ("distilled", pair.student)))


def _model_key(run: Job, stage: dict[str, Any]) -> Any:
    """One teacher file (or one cached model per seed) is one measurement, however many runs used it."""
    if stage.get("source") == "checkpoint":
        return ("file", stage.get("checkpoint"))
    return ("seed", run.seed)


def _add(cells: dict[CellKey, Measured], key: CellKey, run: Job, stage: dict[str, Any] | None, per_model: bool) -> None:
    cell = cells.setdefault(key, Measured())
    if stage is None or stage.get("last_top1") is None:
        if run.status != COMPLETED:
            cell.failed += run.status == FAILED
            cell.unfinished += run.status != FAILED
        return
    ident = _model_key(run, stage) if per_model else ("run", str(run.path))
    cell.values[ident] = (stage["last_top1"], stage.get("best_top1", stage["last_top1"]))


def collect(runs: list[Job]) -> tuple[dict[CellKey, Measured], list[Job]]:
    """Measured cells, and the runs that could not be placed (no preset, or models changed)."""
    cells: dict[CellKey, Measured] = {}
    unplaced: list[Job] = []
    for run in runs:
        node = benchmark_node(run)
        table = load_table(node["table"]) if node and node.get("table") in ("cifar100", "imagenet") else None
        if table is None or not _matches(run, table, node):
            unplaced.append(run)
            continue
        stages = run.stages
        if node["row"] not in SUPERVISED_ROWS:
            pair = table.pairs[node["pair"]]
            _add(cells, (table.name, node["row"], pair.key), run, stages.get("distilled"), per_model=False)
            _add(cells, (table.name, "teacher", pair.teacher), run, stages.get("teacher"), per_model=True)
            _add(cells, (table.name, "student", pair.student), run, stages.get("baseline"), per_model=True)
        else:
            stage = stages.get("teacher" if node["row"] == "teacher" else "baseline")
            _add(cells, (table.name, node["row"], node["arch"]), run, stage, per_model=True)
    return cells, unplaced


@dataclass(frozen=True)
class Line:
    """One row of the comparison."""

    pair: str
    row: str
    published: float | None
    metric: str  # the published number's metric: last | best | weights
    source: str
    measured: Measured

    @property
    def delta(self) -> float | None:
        stat = self.measured.best if self.metric == "best" else self.measured.last
        return None if self.published is None or stat.mean is None else stat.mean - self.published


def lines(table: Table, cells: dict[CellKey, Measured]) -> list[Line]:
    """Rows for every pair with a measured method cell (with its teacher and student rows), then any
    teacher or student measured on its own (the teachers and students presets)."""
    out: list[Line] = []
    shown: set[CellKey] = set()
    for pair in table.pairs.values():
        rows = [r for r in table.rows if r not in SUPERVISED_ROWS and (table.name, r, pair.key) in cells]
        if not rows:
            continue
        for row in (*SUPERVISED_ROWS, *rows):
            key = (table.name, row, {"teacher": pair.teacher, "student": pair.student}.get(row, pair.key))
            shown.add(key)
            out.append(_line(table, pair.key, row, pair.value(row), cells.get(key, Measured())))
    archs = list(dict.fromkeys(a for p in table.pairs.values() for a in (p.teacher, p.student)))
    alone = [k for k in cells if k[0] == table.name and k[1] in SUPERVISED_ROWS and k not in shown]
    for key in sorted(alone, key=lambda k: (k[1] != "teacher", archs.index(k[2]) if k[2] in archs else len(archs))):
        out.append(_line(table, f"({key[2]})", key[1], published_supervised(table, key[1], key[2]), cells[key]))
    return out


def _line(table: Table, pair: str, row: str, published: float | None, measured: Measured) -> Line:
    source = table.source_of(row)
    return Line(pair, row, published, source.metric, source.key, measured)


def published_supervised(table: Table, row: str, arch: str) -> float | None:
    """The published teacher/student accuracy of ``arch`` (the same in every pair that has it)."""
    for pair in table.pairs.values():
        if (pair.teacher if row == "teacher" else pair.student) == arch and pair.value(row) is not None:
            return pair.value(row)
    return None


def _fmt(stat: Stat) -> str:
    if stat.mean is None:
        return "–"
    return f"{stat.mean:.2f}" if stat.std is None else f"{stat.mean:.2f} ± {stat.std:.2f}"


def _status(m: Measured) -> str:
    parts = [f"{m.failed} failed" if m.failed else "", f"{m.unfinished} unfinished" if m.unfinished else ""]
    return ", ".join(p for p in parts if p)


HEADER = ["pair", "row", "published", "published metric", "runs", "kdrun last", "kdrun best", "Δ", "not finished"]


def markdown(table: Table, rows: list[Line]) -> str:
    """The comparison as a Markdown table, headed by what each published number means."""
    used = dict.fromkeys(line.source for line in rows)
    notes = [f"- {table.sources[s].cite}: {table.sources[s].describe()}" for s in used]
    text = [f"### {table.title}", "", "Published numbers:", *notes,
            "- kdrun: top-1 after the last epoch (last) and of the best epoch (best), mean ± sample std over runs;"
            " Δ = kdrun minus published, in the published number's metric.", "",
            "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for line in rows:
        m = line.measured
        published = "n/a" if line.published is None else f"{line.published:.2f}"
        delta = "–" if line.delta is None else f"{line.delta:+.2f}"
        label = table.rows[line.row].label
        text.append(f"| {line.pair} | {label} | {published} | {METRICS[line.metric]} | {m.last.n} | {_fmt(m.last)} "
                    f"| {_fmt(m.best)} | {delta} | {_status(m) or '–'} |")
    return "\n".join(text) + "\n"


def report(runs: list[Job]) -> str:
    """Markdown comparison of ``runs`` for every table they belong to, with the runs it could not place."""
    cells, unplaced = collect(runs)
    parts = []
    for name in ("cifar100", "imagenet"):
        table = load_table(name)
        rows = lines(table, cells)
        if rows:
            parts.append(markdown(table, rows))
    if unplaced:
        listed = ", ".join(str(r.path) for r in unplaced[:5])
        parts.append(f"{len(unplaced)} run(s) not from an unmodified benchmark preset, left out: {listed}"
                     f"{' ...' if len(unplaced) > 5 else ''}\n")
    return "\n".join(parts) if parts else "no benchmark runs found\n"
