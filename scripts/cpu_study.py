"""Every distillation method on the embedded MNIST-1D, several seeds, on a CPU: a study that runs anywhere.

Teacher: ``cnn1d`` 64-64-64. Student: a narrow ``cnn1d`` (16-16-16 by default, ``--width``), so that every
feature method has maps to work with (an MLP student has none) and there is a gap to close. FSP needs equal
channel counts at every stage, so its row uses a same-width student (64-64-64) and is compared with that
student's own baseline. Teacher and students have batch norm (``teacher.norm=batch student.norm=batch``)
like every CIFAR model: without it the narrow student diverges under most losses at lr 0.05
(``--norm none --width 8`` repeats that first study; docs/cpu_study.md has both).
Every method keeps its reference settings (loss weights, 30-epoch init stages) and the trainer is
kdrun's default 30-epoch MNIST-1D recipe (lr 0.05): nothing is tuned. As in the published tables,
every method distils on the labeled training set only (``distill.transfer_size=0``). ``--lr 0.02`` repeats the study
with the students' lr lowered (the teacher keeps 0.05 through ``teacher.lr``), in its own folder. The
Hydra multiruns share each seed's cached teacher and baseline.

    python scripts/cpu_study.py --out table.md         # runs (one job at a time), then writes the table
    python scripts/cpu_study.py --seeds 0,1,2 --jobs 2 --out table.md   # two jobs at once (joblib launcher)
    python scripts/cpu_study.py --report-only         # rewrite the table from the runs already there
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kdrun.benchmarks.compare import find_runs  # noqa: E402
from kdrun.report.aggregate import Stat  # noqa: E402
from kdrun.report.jobs import COMPLETED, Job  # noqa: E402

METHODS = ["kd", "fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "ab", "ft", "nst", "crd", "dkd"]
ORDER = ["kd", "fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "ab", "ft", "fsp", "nst", "crd", "crd_kd", "dkd"]
SAME = "[64,64,64]"
NORMS = ("batch", "none")  # cnn1d's option norm, for the teacher and the students
TEACHER_LR = 0.05  # the default recipe's: with --lr, only the students' lr changes
LABELS = {"kd": "KD", "fitnet": "FitNet", "at": "AT", "sp": "SP", "cc": "CC", "vid": "VID", "rkd": "RKD",
          "pkt": "PKT", "ab": "AB", "ft": "FT", "nst": "NST", "crd": "CRD", "crd_kd": "CRD+KD", "dkd": "DKD",
          "fsp": "FSP"}


def sweeps(seeds: str, lr: float | None = None, norm: str = "batch", width: int = 16) -> dict[str, list[str]]:
    """name -> kdrun multirun overrides."""
    # the rows compared here only, and the published protocol: distillation on the labeled training set
    # (no transfer set, which the default MNIST-1D experiment adds)
    common = ["dataset=mnist1d", "teacher=cnn1d", "student=cnn1d", f"seed={seeds}",
              "stages=[teacher,baseline,distilled]", "measure.enabled=false", "distill.transfer_size=0",
              f"teacher.norm={norm}", f"student.norm={norm}"]
    if lr is not None:
        common += [f"trainer.lr={lr}", f"teacher.lr={TEACHER_LR}"]
    return {
        "methods": [*common, f"student.channels={narrow(width)}", f"method={','.join(METHODS)}"],
        "crd_kd": [*common, f"student.channels={narrow(width)}", "method=crd", "distill.alpha=1"],
        "fsp": [*common, f"student.channels={SAME}", "method=fsp"],
    }


def narrow(width: int) -> str:
    return f"[{width},{width},{width}]"


def run_sweeps(root: Path, seeds: str, lr: float | None, norm: str, width: int, jobs: int, extra: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    # One intra-op thread: these models are too small to gain from two, and on a busy machine the
    # second thread's spin-waiting cost ten times the CPU per step (measured: 7 ms vs 67 ms).
    env.setdefault("OMP_NUM_THREADS", "1")
    launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}"] if jobs > 1 else []
    for name, overrides in sweeps(seeds, lr, norm, width).items():
        command = [sys.executable, "-m", "kdrun", "-m", *overrides, f"paths.outputs={root}",
                   f"hydra.sweep.dir={root / name}", *launcher, *extra]
        print("$ " + " ".join(command), flush=True)
        subprocess.run(command, env=env, check=True)


def row_of(run: Job) -> str:
    method = run.results.get("method", "?")
    alpha = (run.results.get("distill") or {}).get("alpha") or 0
    return "crd_kd" if method == "crd" and alpha > 0 else method


def _fmt(stat: Stat) -> str:
    if stat.mean is None:
        return "–"
    return f"{stat.mean:.2f}" if stat.std is None else f"{stat.mean:.2f} ± {stat.std:.2f}"


def _per_seed(runs: list[Job], stage: str) -> Stat:
    """One value per seed (a cached teacher or baseline is shared by every run of its seed)."""
    values = {r.seed: r.stages[stage]["last_top1"] for r in runs if stage in r.stages}
    return Stat.of(list(values.values()))


def _row_line(row: str, group: list[Job], norm: str, width: int) -> str:
    last = Stat.of([r.stages["distilled"]["last_top1"] for r in group])
    best = Stat.of([r.stages["distilled"]["best_top1"] for r in group])
    deltas = [r.stages["distilled"]["last_top1"] - r.stages["baseline"]["last_top1"] for r in group]
    delta = Stat.of(deltas)
    size = f"{width}-{width}-{width}" if row != "fsp" else "64-64-64 (same width as the teacher: FSP needs it)"
    bn = " + BN" if norm == "batch" else ""
    return (f"| {LABELS[row]} | cnn1d {size}{bn} | {_fmt(last)} | {_fmt(best)} | {_fmt(_per_seed(group, 'baseline'))} "
            f"| {delta.mean:+.2f} ± {delta.std or 0:.2f} | {sum(d > 0 for d in deltas)}/{len(deltas)} "
            f"| {_verdict(deltas)} |")


def table(runs: list[Job], lr: float | None, norm: str = "batch", width: int = 16) -> str:
    """One row per method: distilled top-1, its baseline, and the per-seed difference (paired by seed)."""
    distilled = [r for r in runs if r.status == COMPLETED and "distilled" in r.stages]
    by_row: dict[str, list[Job]] = {}
    for run in distilled:
        by_row.setdefault(row_of(run), []).append(run)
    recipe = "kdrun's default recipe (lr 0.05)" if lr is None else f"students at lr {lr}, the teacher at 0.05"
    models = "teacher and students with batch norm" if norm == "batch" else "no batch norm"
    bn = " + BN" if norm == "batch" else ""
    lines = [f"Teacher cnn1d 64-64-64{bn}: {_fmt(_per_seed(distilled, 'teacher'))}; {recipe}; {models}. "
             "Top-1 (%) on the 1000 "
             "test signals, mean ± std over seeds.", "",
             "| method | student | distilled (last epoch) | distilled (best epoch) | baseline (last epoch) "
             "| Δ vs baseline (last, paired by seed) | seeds better | beats the baseline? |",
             "|---|---|---|---|---|---|---|---|"]
    for row in ORDER:
        group = by_row.get(row, [])
        lines.append(_row_line(row, group, norm, width) if group else f"| {LABELS[row]} | – | not run | | | | | |")
    failed = [r for r in runs if r.status != COMPLETED]
    if failed:
        lines += ["", f"{len(failed)} run(s) failed or unfinished: " + ", ".join(str(r.path) for r in failed)]
    return "\n".join(lines) + "\n"


def _verdict(deltas: list[float]) -> str:
    """'yes' only if every seed improves; 'no' if none does or the mean is not positive; else 'mixed'."""
    if all(d > 0 for d in deltas):
        return "yes"
    if statistics.fmean(deltas) <= 0 or not any(d > 0 for d in deltas):
        return "no"
    return "mixed"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--lr", type=float, help="the students' lr (default: the recipe's 0.05)")
    p.add_argument("--norm", choices=NORMS, default="batch", help="teacher.norm and student.norm (default: batch)")
    p.add_argument("--width", type=int, default=16, help="the narrow students' channels per layer (default: 16)")
    p.add_argument("--also", nargs="*", default=[], help="more roots whose runs join the table (e.g. other seeds)")
    p.add_argument("--jobs", type=int, default=1, help="jobs at once (>1: Hydra's joblib launcher)")
    p.add_argument("--root", default="outputs/cpu_study", help="where the runs and the shared cache go")
    p.add_argument("--out", help="write the Markdown table here (e.g. docs/cpu_study.md's table)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("overrides", nargs="*", help="extra kdrun overrides, after --")
    args = p.parse_args()
    root = Path(args.root).resolve()
    t0 = time.monotonic()
    if not args.report_only:
        run_sweeps(root, args.seeds, args.lr, args.norm, args.width, args.jobs, args.overrides)
    roots = [root, *(Path(r).resolve() for r in args.also)]
    text = table(find_runs(*(r / name for r in roots for name in sweeps(args.seeds))), args.lr, args.norm, args.width)
    print(text)
    print(f"wall time: {time.monotonic() - t0:.0f} s")
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
