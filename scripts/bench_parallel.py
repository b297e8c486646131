"""Two sweep jobs at once (joblib, ``hydra.launcher.n_jobs=2``) against the same two jobs one after the other.

Each kdrun process takes cores / processes-at-once threads (kdrun/engine/speed.py), so the two parallel
jobs share the cores instead of each spinning up every core; the sweep's own process imports no torch
and its workers are warmed while it checks the command (kdrun/config/sweep_workers.py). Two sweeps:

* ``small`` (the headline, last line): 2 seeds of a small CNN sweep -- MNIST-1D, a cnn1d teacher for 15
  epochs, then an mlp student distilled for 15 -- where the training, not the start-up, takes the time;
* ``tiny``: 2 seeds of a 4-epoch digits mlp teacher + distillation, ~1 s of training per job: what is
  left is mostly process start-up, which a parallel worker pays once more (it is a fresh interpreter).

Rounds alternate (sequential, parallel, ...) in fresh output folders (no cache reuse) after one untimed
run that prepares the datasets; medians are compared. The last line is the ``small`` sweep's ratio.

    python scripts/bench_parallel.py --rounds 2                   # both sweeps
    python scripts/bench_parallel.py --sweeps tiny -- trainer.epochs=10
    python scripts/bench_parallel.py --sweeps tiny --trace        # where each sweep's time goes

``--trace`` runs each sweep once in order and once in parallel with ``scripts/sweep_trace`` on the path
(every process stamps its start, its phases and some imports) and prints the timelines, seconds since
the sweep's command started: compare the gaps, which a loaded machine distorts less than the totals.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMON = ["stages=[teacher,distilled]", "measure.enabled=false", "seed=0,1"]
SWEEPS = {
    "small": ["dataset=mnist1d", "teacher=cnn1d", "student=mlp", "distill.transfer_size=0", "trainer.epochs=15"],
    "tiny": ["dataset=digits", "teacher=mlp", "student=mlp", "teacher.hidden=[256]", "student.hidden=[64]",
             "trainer.epochs=4"],
}


def kdrun(args: list[str], folder: Path, trace: Path | None = None) -> float:
    command = [sys.executable, "-m", "kdrun", *args, f"paths.outputs={folder}", f"paths.cache={folder / 'cache'}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if trace is not None:
        env.update(PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'scripts' / 'sweep_trace'}", KDRUN_TRACE=str(trace))
    t0 = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(command)}\nfailed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def sweep(jobs: list[str], folder: Path, parallel: bool, extra: list[str], trace: Path | None = None) -> float:
    launcher = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if parallel else []
    return kdrun(["-m", *jobs, *COMMON, *launcher, f"hydra.sweep.dir={folder / 'sweep'}", *extra], folder, trace)


def print_trace(trace: Path, started: float, wall: float) -> None:
    """The stamps of every process, in seconds since the sweep's command was started; ``sweep`` is that
    command's process, ``w<n>`` its joblib workers (loky's helper processes are left out)."""
    rows = [line.split(" ", 2) for line in trace.read_text().splitlines()]
    rows.sort(key=lambda r: float(r[0]))
    t0, sweep_pid = started, rows[0][1]
    workers = [pid for _, pid, event in rows if pid != sweep_pid and ("prepare_worker" in event or "execute_job" in event)]
    names = {sweep_pid: "sweep", **{pid: f"w{i + 1}" for i, pid in enumerate(dict.fromkeys(workers))}}
    for t, pid, event in rows:
        if pid in names:
            print(f"  {float(t) - t0:6.2f}  {names[pid]:5s} {event}")
    print(f"  {wall:6.2f}  sweep process ended (what the timings measure)")


def trace_sweeps(names: list[str], tmp: Path, extra: list[str]) -> None:
    for name in names:
        for mode in ("sequential", "parallel"):
            trace, started = tmp / f"{name}_{mode}_trace.txt", time.time()
            wall = sweep(SWEEPS[name], tmp / f"{name}_{mode}_traced", mode == "parallel", extra, trace)
            print(f"{name} {mode}: {wall:.1f} s", flush=True)
            print_trace(trace, started, wall)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--sweeps", default="tiny,small", help="which sweeps, comma-separated: " + ", ".join(SWEEPS))
    p.add_argument("--trace", action="store_true", help="print where one sequential and one parallel run's time goes")
    p.add_argument("extra", nargs="*", help="kdrun overrides after --")
    a = p.parse_args()
    names = [n for n in SWEEPS if n in a.sweeps.split(",")]
    unknown = sorted(set(a.sweeps.split(",")) - set(SWEEPS))
    if unknown or not names:
        p.error(f"--sweeps={a.sweeps}: unknown {', '.join(unknown) or 'empty'}; choose from {', '.join(SWEEPS)}")
    ratios = {}
    with tempfile.TemporaryDirectory(prefix="bench_parallel_") as tmp:
        for name in names:  # datasets generated or read once, outside the timings
            kdrun([*SWEEPS[name], "debug=fast", "stages=[teacher]", "measure.enabled=false"], Path(tmp) / f"prepare_{name}")
        if a.trace:
            trace_sweeps(names, Path(tmp), a.extra)
            return
        for name in names:
            times: dict[str, list[float]] = {"sequential": [], "parallel": []}
            for r in range(a.rounds):
                for mode in times:
                    t = sweep(SWEEPS[name], Path(tmp) / f"{name}_{mode}{r}", mode == "parallel", a.extra)
                    times[mode].append(t)
                    print(f"{name:5s} round {r} {mode:10s} {t:7.1f} s", flush=True)
            med = {k: statistics.median(v) for k, v in times.items()}
            ratios[name] = med["sequential"] / med["parallel"]
            print(f"{name:5s} sequential {med['sequential']:.1f} s, parallel {med['parallel']:.1f} s (medians): "
                  f"{ratios[name]:.2f}x", flush=True)
    print(f"cores={len(os.sched_getaffinity(0))} load average={os.getloadavg()[0]:.1f} (1 min, at the end)")
    headline = "small" if "small" in ratios else names[-1]
    print(f"parallel sweep speed-up vs one after another: {ratios[headline]:.2f}x")


if __name__ == "__main__":
    main()
