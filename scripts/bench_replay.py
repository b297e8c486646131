"""A 4-job temperature sweep with KD, with and without replayed teacher outputs (distill.teacher_outputs).

Shaped like resnet56 -> resnet20 (the published CIFAR-100 pair) on the embedded digits data, so it
runs on a CPU. Both sweeps run in this one process, their jobs alternating (compute T1, replay T1,
compute T2, ...) so drifts in machine load hit both; each job is a real kdrun run (pipeline.run)
sharing one cache, so the teacher is trained once. The replay sweep's first job records the
teacher's logits, the other three replay them. Reported: the students' (distilled) stages' wall
time per sweep and their ratio, whether every replayed student equals its computed twin bit for
bit, the disk an epoch takes, and the error of storing logits in fp16.

    python scripts/bench_replay.py                      # 4 jobs x 3 epochs, digits, resnet56 -> resnet20
    python scripts/bench_replay.py --epochs 5 --teacher wrn_40_2 --student wrn_16_2
    python scripts/bench_replay.py --epochs 2 --batches 4 --eval-batches 1     # a loaded machine: fewer steps
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # compose_config: the configs exactly as the CLI composes them

from conftest import compose_config  # noqa: E402
from kdrun.pipeline import run  # noqa: E402


def job(root: Path, name: str, args: argparse.Namespace, T: float, mode: str) -> tuple[float, dict, dict]:
    cfg = compose_config([f"paths.outputs={root}", "dataset=digits", f"teacher={args.teacher}",
                          f"student={args.student}", "stages=[teacher,distilled]", "measure.enabled=false",
                          f"trainer.epochs={args.epochs}", "trainer.milestones=[]", f"distill.T={T}",
                          f"trainer.max_train_batches={args.batches}", f"trainer.max_eval_batches={args.eval_batches}",
                          f"distill.teacher_outputs={mode}"])
    stage = run(cfg, root / name)["stages"]["distilled"]
    weights = torch.load(root / name / "checkpoints/distilled/last.pt", weights_only=True)["model"]
    return stage["wall_time"], stage.get("teacher_outputs") or {"compute": args.epochs}, weights


def fp16_error(folder: Path) -> str:
    z = torch.from_numpy(np.fromfile(next(folder.glob("*/epoch0001.fp32")), dtype=np.float32))
    err = (z - z.half().float()).abs()
    return f"fp16 logits: max |error| {err.max():.2e}, mean {err.mean():.2e} (logits up to |{z.abs().max():.1f}|)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="resnet56")
    p.add_argument("--student", default="resnet20")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batches", default="null", help="training batches per epoch (trainer.max_train_batches)")
    p.add_argument("--eval-batches", default="null", help="test batches per evaluation (trainer.max_eval_batches)")
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_replay_") as tmp:
        root = Path(tmp)
        time_compute = time_replay = 0.0
        exact = True
        for T in args.temperatures:
            t_c, _, w_c = job(root, f"compute_T{T}", args, T, "compute")
            t_r, sources, w_r = job(root, f"replay_T{T}", args, T, "replay")
            exact &= all(torch.equal(w_c[k], w_r[k]) for k in w_c)
            time_compute, time_replay = time_compute + t_c, time_replay + t_r
            print(f"T={T:g}: computed {t_c:.1f} s, with replay {t_r:.1f} s ({dict(sources)})", flush=True)
        folder = root / "cache/teacher_outputs"
        epoch_file = next(folder.glob("*/epoch0001.fp32"))
        print(f"students' stages, {len(args.temperatures)} jobs x {args.epochs} epochs ({args.batches} batches), {args.teacher} -> "
              f"{args.student} on digits: {time_compute:.1f} s computed, {time_replay:.1f} s with replay: "
              f"{time_compute / time_replay:.2f}x; replayed students bit-identical: {exact}")
        print(f"disk: {epoch_file.stat().st_size / 1e3:.1f} kB per epoch ({epoch_file.name}); {fp16_error(folder)}")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
