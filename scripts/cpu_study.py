"""Every distillation method on the embedded MNIST-1D, several seeds, on a CPU: a trust check of kdrun's defaults.

Teacher: ``cnn1d`` 64-64-64. Student: a narrow ``cnn1d`` (12-12-12 by default, ``--width``), so that every
feature method has maps to work with (an MLP student has none) and there is a gap to close. FSP needs equal
channel counts at every stage, so its row uses a same-width student (64-64-64) and is compared with that
student's own baseline. Teacher and students have batch norm (``teacher.norm=batch student.norm=batch``)
like every CIFAR model: without it the narrow student diverges under most losses at lr 0.05
(``--norm none --width 8 --labeled-only`` repeats that first study; docs/cpu_study.md has them all).
Every method keeps its reference settings (loss weights, 30-epoch init stages) and the trainer is
kdrun's default 30-epoch MNIST-1D recipe (lr 0.05); the distillation terms see the dataset's default
generated transfer set (``conf/dataset/mnist1d.yaml``: 20,000 signals): nothing is tuned.
``--labeled-only`` distils on the labeled training set only (``distill.transfer_size=0``, the published
tables' protocol). ``--lr 0.02`` lowers the students' lr (the teacher keeps 0.05 through ``teacher.lr``).
``--teacher-width 12 --teacher-depth 3`` pairs the students with a deeper teacher of their own width, as the
CIFAR zoo's same-architecture pairs are built (resnet56 -> resnet20); FSP then uses the narrow student too.

Seeds run in order (every run of seed 0, then seed 1, ...), each seed's sweeps in their own folder under
``--root``, sharing the seed's cached teacher and baseline. Running the same command again skips the
finished runs and resumes the unfinished ones (kdrun's sweep folders are stable across re-runs).
The output ends with the summary line ``rows beating the baseline on every seed: X/14; diverged: Y``.

    python scripts/cpu_study.py --out table.md         # runs (one job at a time), then writes the table
    python scripts/cpu_study.py --seeds 0,1,2 --jobs 2 --root /tmp/cpu_study --out table.md   # two jobs at once
    python scripts/cpu_study.py --report-only --root /tmp/cpu_study   # the table from the runs already there
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kdrun.report.compare import find_runs  # noqa: E402
from kdrun.engine.finite import is_divergence  # noqa: E402
from kdrun.report.aggregate import Stat  # noqa: E402
from kdrun.report.jobs import COMPLETED, FAILED, Job  # noqa: E402

# Every method of conf/method/ (the config group is the registry: a new method joins the study with no edit
# here); FSP runs in a sweep of its own, as its flow matrices need the student's widths equal to the teacher's.
# Only the methods for signal models: the text ones (distilbert, tinybert, minilm, gkd) read token models.
METHOD_FILES = sorted((REPO / "conf" / "method").glob("*.yaml"))
SEPARATE = ("fsp",)


def _serves_signals(path: Path) -> bool:
    import importlib

    import yaml

    module, _, cls = yaml.safe_load(path.read_text())["method"]["_target_"].rpartition(".")
    return "signal" in getattr(importlib.import_module(module), cls).input_kinds


METHODS = [p.stem for p in METHOD_FILES if p.stem not in SEPARATE and _serves_signals(p)]
# kd first (the method the others are measured beside), then the rest by name; CRD+KD follows CRD
ORDER = [row for m in sorted(METHODS + list(SEPARATE), key=lambda m: (m != "kd", m))
         for row in ([m, "crd_kd"] if m == "crd" else [m])]
# The rows of the target "at least 10 of 14 beat the baseline on every seed": one per method kdrun
# implements; CRD+KD is the same CRD with the KD term added, shown beside it but not counted twice.
COUNTED = [row for row in ORDER if row != "crd_kd"]
# the paper's name of each method: its class (conf/method/<name>.yaml's _target_)
LABELS = {p.stem: re.search(r"_target_:\s*\S+\.(\w+)", p.read_text()).group(1) for p in METHOD_FILES} | \
    {"crd_kd": "CRD+KD"}
TEACHER_WIDTH = 64  # the teacher's channels per stage
NORMS = ("batch", "none")  # cnn1d's option norm, for the teacher and the students
WIDTH = 12  # the narrow students' channels: why 12, docs/cpu_study.md ("Choosing the student")
TEACHER_LR = 0.05  # the default recipe's: with --lr, only the students' lr changes


def sweeps(seed: str, lr: float | None = None, norm: str = "batch", width: int = WIDTH,
           labeled_only: bool = False, teacher_width: int = TEACHER_WIDTH,
           teacher_depth: int = 1) -> dict[str, list[str]]:
    """name -> kdrun multirun overrides (the rows compared here only)."""
    common = ["dataset=mnist1d", "teacher=cnn1d", "student=cnn1d", f"seed={seed}",
              "stages=[teacher,baseline,distilled]", "measure.enabled=false",
              f"teacher.norm={norm}", f"student.norm={norm}"]
    if teacher_width != TEACHER_WIDTH:
        common.append(f"teacher.channels={narrow(teacher_width)}")
    if teacher_depth != 1:  # a deeper teacher, as the CIFAR zoo's same-width pairs (resnet56 -> resnet20)
        common.append(f"teacher.depth={teacher_depth}")
    if labeled_only:  # the published protocol; by default the dataset's transfer set feeds the distillation terms
        common.append("distill.transfer_size=0")
    if lr is not None:
        common += [f"trainer.lr={lr}", f"teacher.lr={TEACHER_LR}"]
    return {
        "methods": [*common, f"student.channels={narrow(width)}", f"method={','.join(METHODS)}"],
        "crd_kd": [*common, f"student.channels={narrow(width)}", "method=crd", "distill.alpha=1"],
        "fsp": [*common, f"student.channels={narrow(teacher_width)}", "method=fsp"],
    }


def narrow(width: int) -> str:
    return f"[{width},{width},{width}]"


def run_sweeps(root: Path, seeds: list[str], jobs: int, extra: list[str], **settings) -> None:
    """Seed by seed, so that the seeds finished when time runs out make a table. The one-job sweeps
    (CRD+KD, FSP) run side by side when ``jobs`` > 1, so that no core idles while one of them trains."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    # One intra-op thread: these models are too small to gain from two, and on a busy machine the
    # second thread's spin-waiting cost ten times the CPU per step (measured: 7 ms vs 67 ms).
    env.setdefault("OMP_NUM_THREADS", "1")
    launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}"] if jobs > 1 else []
    for seed in seeds:
        commands = {name: [sys.executable, "-m", "kdrun", "-m", *overrides, f"paths.outputs={root}",
                           # the same folders on every re-run: kdrun skips the finished jobs, resumes the others
                           f"hydra.sweep.dir={root / f'seed{seed}' / name}", *launcher, *extra]
                    for name, overrides in sweeps(seed, **settings).items()}
        _run_side_by_side([commands["methods"]], env)
        singles = [commands["crd_kd"], commands["fsp"]]
        for i in range(0, len(singles), max(1, jobs)):
            _run_side_by_side(singles[i:i + max(1, jobs)], env)


def _run_side_by_side(commands: list[list[str]], env: dict[str, str]) -> None:
    for command in commands:
        print("$ " + " ".join(command), flush=True)
    # kdrun gives a lone sweep job every core it may use (device.threads=null: cores / jobs at once): two
    # side by side would run two threads each on two cores, ten times slower on a loaded machine (see
    # the one-thread note above), so each one gets a core of its own
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = len(commands) > 1 and len(cores) >= len(commands)
    running = [subprocess.Popen(command, env=env, preexec_fn=_on_core(cores[i]) if pin else None)
               for i, command in enumerate(commands)]
    for command, process in zip(commands, running):
        # a failed job (a diverged run among them) makes kdrun exit non-zero after its sweep: go on,
        # the table shows it
        if process.wait():
            where = next((a for a in command if a.startswith("hydra.sweep.dir=")), "")
            print(f"cpu_study: {where} exited with {process.returncode}; the table shows its failed runs", flush=True)


def _on_core(core: int):
    return lambda: os.sched_setaffinity(0, {core})


def row_of(run: Job) -> str:
    method = run.results.get("method") or run.choices.get("method") or run.config.get("method", {}).get("name", "?")
    alpha = (run.results.get("distill") or run.config.get("distill") or {}).get("alpha") or 0
    return "crd_kd" if method == "crd" and alpha > 0 else method


def diverged(run: Job) -> bool:
    """A run the non-finite guard stopped (its loss, a term or a weight became NaN or inf)."""
    return run.status == FAILED and is_divergence(run.error)


def _fmt(stat: Stat) -> str:
    if stat.mean is None:
        return "–"
    return f"{stat.mean:.2f}" if stat.std is None else f"{stat.mean:.2f} ± {stat.std:.2f}"


def _per_seed(runs: list[Job], stage: str) -> Stat:
    """One value per seed (a cached teacher or baseline is shared by every run of its seed)."""
    values = {r.seed: r.stages[stage]["last_top1"] for r in runs if stage in r.stages}
    return Stat.of(list(values.values()))


def train_top1(runs: list[Job], stage: str) -> Stat:
    """The last epoch's top-1 on the labeled training set, one value per seed (from metrics.jsonl; a
    stage loaded from the cache has none in its run: another run of the seed trained it)."""
    values = {}
    for run in runs:
        last = [m for m in run.metrics() if m.get("stage") == stage and "train_top1" in m]
        if last:
            values.setdefault(run.seed, last[-1]["train_top1"])
    return Stat.of(list(values.values()))


def _verdict(deltas: list[float], seeds: int, failed: list[Job]) -> str:
    """'yes' only if every seed ran and improves; 'no' if none does or the mean is not positive; else 'mixed'.
    A row with a diverged (or otherwise failed) seed says so, and never counts as beating the baseline."""
    if failed:
        kind = "diverged" if any(diverged(r) for r in failed) else "failed"
        return f"{kind} (seed {', '.join(str(r.seed) for r in failed)})"
    if not deltas:
        return "not run"
    if len(deltas) == seeds and all(d > 0 for d in deltas):
        return "yes"
    if statistics.fmean(deltas) <= 0 or not any(d > 0 for d in deltas):
        return "no"
    return "mixed" if len(deltas) == seeds else f"mixed ({len(deltas)} of {seeds} seeds)"


def _row_line(row: str, group: list[Job], everyone: list[Job], verdict: str, norm: str, width: int,
              teacher_width: int) -> str:
    if not group:
        return f"| {LABELS[row]} | – | – | – | – | – | – | – | – | {verdict} |"
    last = Stat.of([r.stages["distilled"]["last_top1"] for r in group])
    best = Stat.of([r.stages["distilled"]["best_top1"] for r in group])
    deltas = _deltas(group)
    delta = Stat.of(deltas)
    size = f"{width}-{width}-{width}"
    if row == "fsp" and teacher_width != width:
        size = f"{teacher_width}-{teacher_width}-{teacher_width} (FSP needs the teacher's width)"
    bn = " + BN" if norm == "batch" else ""
    baseline_train = train_top1([r for r in everyone if _size(r) == _size(group[0])], "baseline")
    return (f"| {LABELS[row]} | cnn1d {size}{bn} | {_fmt(last)} | {_fmt(best)} | {_fmt(_per_seed(group, 'baseline'))} "
            f"| {delta.mean:+.2f} ± {delta.std or 0:.2f} | {_fmt(train_top1(group, 'distilled'))} "
            f"| {_fmt(baseline_train)} | {sum(d > 0 for d in deltas)}/{len(deltas)} | {verdict} |")


def _size(run: Job) -> int | None:
    return (run.results.get("stages", {}).get("baseline") or {}).get("params")


def _deltas(group: list[Job]) -> list[float]:
    return [r.stages["distilled"]["last_top1"] - r.stages["baseline"]["last_top1"] for r in group]


def verdicts(runs: list[Job]) -> tuple[dict[str, list[Job]], dict[str, str], int]:
    """The completed runs of each row, each row's verdict, and the number of seeds in the study."""
    done: dict[str, list[Job]] = {}
    failed: dict[str, list[Job]] = {}
    for run in runs:
        if run.status == COMPLETED and "distilled" in run.stages:
            done.setdefault(row_of(run), []).append(run)
        elif run.status == FAILED:
            failed.setdefault(row_of(run), []).append(run)
    seeds = len({r.seed for r in runs if r.status in (COMPLETED, FAILED)})
    return done, {row: _verdict(_deltas(done.get(row, [])), seeds, failed.get(row, [])) for row in ORDER}, seeds


def summary(verdict: dict[str, str]) -> str:
    """The study's one-line answer to the target, computed from the verdicts."""
    beating = sum(verdict[row] == "yes" for row in COUNTED)
    diverging = sum(verdict[row].startswith("diverged") for row in ORDER)
    return (f"rows beating the baseline on every seed: {beating}/{len(COUNTED)}; diverged: {diverging} "
            f"(CRD+KD, not counted: {verdict['crd_kd']})")


def table(runs: list[Job], lr: float | None, norm: str = "batch", width: int = WIDTH,
          labeled_only: bool = False, teacher_width: int = TEACHER_WIDTH, teacher_depth: int = 1) -> str:
    """One row per method: distilled top-1, its baseline, the per-seed difference (paired by seed), then the summary."""
    done, verdict, seeds = verdicts(runs)
    completed = [r for group in done.values() for r in group]
    recipe = "kdrun's default recipe (lr 0.05)" if lr is None else f"students at lr {lr}, the teacher at 0.05"
    data = ("distillation on the labeled training set only (distill.transfer_size=0)" if labeled_only else
            "distillation terms on the dataset's generated transfer set (the default)")
    models = "teacher and students with batch norm" if norm == "batch" else "no batch norm"
    bn = " + BN" if norm == "batch" else ""
    deeper = f", {teacher_depth} conv layers per stage" if teacher_depth != 1 else ""
    teacher = f"cnn1d {teacher_width}-{teacher_width}-{teacher_width}{bn}{deeper}"
    lines = [f"Teacher {teacher}: {_fmt(_per_seed(completed, 'teacher'))}; {recipe}; {data}; {models}; "
             f"{seeds} seed(s). Top-1 (%) on the 1000 test signals, mean ± std over seeds; train: top-1 on the "
             "4000 labeled training signals, last epoch.", "",
             "| method | student | distilled (last epoch) | distilled (best epoch) | baseline (last epoch) "
             "| Δ vs baseline (last, paired by seed) | distilled train | baseline train | seeds better "
             "| beats the baseline? |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_row_line(row, done.get(row, []), completed, verdict[row], norm, width, teacher_width) for row in ORDER]
    unfinished = [r for r in runs if r.status not in (COMPLETED, FAILED)]
    if unfinished:
        lines += ["", f"{len(unfinished)} run(s) unfinished: " + ", ".join(str(r.path) for r in unfinished)]
    return "\n".join(lines + ["", summary(verdict)]) + "\n"


def _last_epoch(run: Job, stage: str) -> dict:
    records = [m for m in run.metrics() if m.get("stage") == stage and "train_loss" in m]
    return records[-1] if records else {}


def loss_table(runs: list[Job]) -> str:
    """What each row's training loss was made of at its last epoch (mean over seeds): the labels' CE and the
    share of the loss that the distillation terms (KD and the method's, as weighted) made up."""
    done, _, _ = verdicts(runs)
    lines = ["| method | train CE | distillation terms' share of the loss | train top-1 |", "|---|---|---|---|"]
    for row in ORDER:
        ce, share, top1, terms = [], [], [], []
        for run in done.get(row, []):
            last = _last_epoch(run, "distilled")
            distill = run.results.get("distill") or {}
            gamma = distill.get("gamma")
            gamma = 1 - (distill.get("alpha") or 0) if gamma is None else gamma  # Hinton's convention, as kdrun
            if last and last["train_loss"]:
                ce.append(last["train_ce"])
                share.append(100 * (1 - gamma * last["train_ce"] / last["train_loss"]))
                terms.append(last["train_loss"] - gamma * last["train_ce"])
                top1.append(last["train_top1"])
        if ce:
            # a term below zero (VID's is a negative log-likelihood with a learned variance) is no share
            part = (f"{_fmt(Stat.of(share))}%" if min(terms) >= 0 else
                    f"– (the terms sum to {_fmt(Stat.of(terms))}, below zero)")
            lines.append(f"| {LABELS[row]} | {_fmt(Stat.of(ce))} | {part} | {_fmt(Stat.of(top1))} |")
    per_seed = {(r.seed, _size(r)): _last_epoch(r, "baseline") for r in runs if r.status == COMPLETED}
    baseline = [m for (_, size), m in per_seed.items() if m and size == min(s for _, s in per_seed)]
    if baseline:  # the narrow students' baseline, one per seed
        lines.append(f"| baseline (labels only) | {_fmt(Stat.of([m['train_ce'] for m in baseline]))} | 0% "
                     f"| {_fmt(Stat.of([m['train_top1'] for m in baseline]))} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2",
                   help="run in this order, each seed's runs before the next's; the table shows only these")
    p.add_argument("--lr", type=float, help="the students' lr (default: the recipe's 0.05)")
    p.add_argument("--norm", choices=NORMS, default="batch", help="teacher.norm and student.norm (default: batch)")
    p.add_argument("--width", type=int, default=WIDTH, help=f"the narrow students' channels per layer ({WIDTH})")
    p.add_argument("--teacher-width", type=int, default=TEACHER_WIDTH,
                   help=f"the teacher's channels per stage ({TEACHER_WIDTH}); FSP's student takes the same")
    p.add_argument("--teacher-depth", type=int, default=1,
                   help="the teacher's conv layers per stage (1); e.g. --teacher-width 12 --teacher-depth 3 "
                        "makes a deeper teacher of the students' width, as the CIFAR zoo's same-width pairs")
    p.add_argument("--labeled-only", action="store_true",
                   help="distil on the labeled training set only (distill.transfer_size=0: the published protocol)")
    p.add_argument("--also", nargs="*", default=[], help="more roots whose runs join the table (e.g. other seeds)")
    p.add_argument("--jobs", type=int, default=1, help="jobs at once (>1: Hydra's joblib launcher)")
    p.add_argument("--root", default="outputs/cpu_study", help="where the runs and the shared cache go")
    p.add_argument("--out", help="write the Markdown table here (e.g. docs/cpu_study.md's table)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("overrides", nargs="*", help="extra kdrun overrides, after --")
    args = p.parse_args()
    root = Path(args.root).resolve()
    settings = dict(lr=args.lr, norm=args.norm, width=args.width, labeled_only=args.labeled_only,
                    teacher_width=args.teacher_width, teacher_depth=args.teacher_depth)
    t0 = time.monotonic()
    if not args.report_only:
        run_sweeps(root, args.seeds.split(","), args.jobs, args.overrides, **settings)
    seeds = {int(seed) for seed in args.seeds.split(",")}  # a report of the finished seeds: --seeds 0,1
    runs = [r for r in find_runs(root, *(Path(r).resolve() for r in args.also)) if r.seed in seeds]
    text = table(runs, **settings)
    print(text)
    print("Training loss at the last epoch (mean ± std over seeds):\n\n" + loss_table(runs))
    print(f"wall time: {time.monotonic() - t0:.0f} s")
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
