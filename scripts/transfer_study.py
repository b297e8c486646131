"""Measure what a transfer set and function matching's mixing do on the default experiment.

Runs ``kdrun`` (the default experiment: MNIST-1D, cnn1d -> mlp, method=kd, full schedule) once per
option set below, sharing one output folder so the teacher and the baseline train once and are
reused from the cache; then prints a markdown table of the distilled student's top-1.

    python scripts/transfer_study.py                       # every option set
    python scripts/transfer_study.py --only 0 2 --seeds 0 1 # some of them, several seeds
    python scripts/transfer_study.py --extra trainer.epochs=10  # appended to every run

Slow by design (about a minute per run on 2 CPU cores); not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

OPTION_SETS: list[list[str]] = [
    ["distill.transfer_size=0"],  # distil on the labeled batch only
    ["distill.transfer_size=0", "distill.mix=mixup"],
    ["distill.transfer_size=0", "distill.mix=cutmix"],
    ["distill.transfer_size=20000"],
    ["distill.transfer_size=50000"],
    ["distill.transfer_size=20000", "distill.mix=mixup"],
    ["distill.transfer_size=50000", "distill.mix=mixup"],
    ["distill.transfer_size=50000", "distill.transfer_batch_size=256"],
]


def run(options: list[str], seed: int, out: Path, extra: list[str]) -> dict:
    name = "_".join(o.split(".")[-1].replace("=", "") for o in options) + f"_seed{seed}"
    run_dir = out / "runs" / name
    args = [*options, *extra, f"seed={seed}", f"paths.outputs={out}", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "kdrun", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"kdrun {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return json.loads((run_dir / "results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, nargs="*", help="indices into OPTION_SETS")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "transfer_study")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides added to every run")
    args = parser.parse_args()
    chosen = [OPTION_SETS[i] for i in args.only] if args.only else OPTION_SETS
    print("| options | seed | teacher | baseline | distilled (last) | distilled (best) | distilled time (s) |")
    print("|---|---|---|---|---|---|---|")
    for options in chosen:
        for seed in args.seeds:
            stages = run(options, seed, args.out, args.extra)["stages"]
            t, b, d = stages["teacher"], stages["baseline"], stages["distilled"]
            print(f"| {' '.join(options)} | {seed} | {t['last_top1']:.2f} | {b['last_top1']:.2f} | "
                  f"{d['last_top1']:.2f} | {d['best_top1']:.2f} | {d['wall_time']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
