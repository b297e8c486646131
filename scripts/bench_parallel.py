"""Two sweep jobs at once (joblib, ``hydra.launcher.n_jobs=2``) against the same two jobs one after the other.

Each kdrun process takes cores / processes-at-once threads (kdrun/engine/speed.py), so the two parallel
jobs share the cores instead of each spinning up every core. Rounds alternate (sequential, parallel,
...) in fresh output folders (no cache reuse); the last line is the wall-time ratio.

    python scripts/bench_parallel.py                       # 2 seeds of a small digits distillation
    python scripts/bench_parallel.py --rounds 2 -- trainer.epochs=10
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
JOBS = ["dataset=digits", "teacher=mlp", "student=mlp", "teacher.hidden=[256]", "student.hidden=[64]",
        "trainer.epochs=4", "stages=[teacher,distilled]", "measure.enabled=false", "seed=0,1"]


def sweep(folder: Path, parallel: bool, extra: list[str]) -> float:
    launcher = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if parallel else []
    command = [sys.executable, "-m", "kdrun", "-m", *JOBS, *launcher, f"paths.outputs={folder}",
               f"paths.cache={folder / 'cache'}", f"hydra.sweep.dir={folder / 'sweep'}", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("extra", nargs="*", help="kdrun overrides after --")
    a = p.parse_args()
    times: dict[str, list[float]] = {"sequential": [], "parallel": []}
    with tempfile.TemporaryDirectory(prefix="bench_parallel_") as tmp:
        for r in range(a.rounds):
            for name in times:
                t = sweep(Path(tmp) / f"{name}{r}", name == "parallel", a.extra)
                times[name].append(t)
                print(f"round {r} {name:10s} {t:7.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"cores={len(os.sched_getaffinity(0))} load average={os.getloadavg()[0]:.1f} (1 min, at the end)")
    print(f"parallel sweep speed-up vs one after another: {med['sequential'] / med['parallel']:.2f}x")


if __name__ == "__main__":
    main()
