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
    python scripts/bench_replay.py --only-steps --rounds 7 --steps 10          # only the step-level ratio
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
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


def step_rounds(args: argparse.Namespace, root: Path) -> None:
    """The same ratio at the level of training steps, robust to a loaded machine: rounds of ``--steps`` real
    engine steps (DistillTask + SGD through train_one_epoch) alternate between computing the teacher and
    replaying its recorded logits; the median round of each is compared."""
    from kdrun.engine.loop import train_one_epoch
    from kdrun.engine.progress import ProgressReporter
    from kdrun.engine.teacher_outputs import TeacherLogits
    from kdrun.methods.base import LossWeights
    from kdrun.methods.kd import KD
    from kdrun.models import create_model
    from kdrun.schemes.distill_task import DistillTask

    torch.manual_seed(0)
    shape = dict(num_classes=10, in_channels=1, input_size=(8, 8))
    teacher, student = create_model(args.teacher, **shape).eval(), create_model(args.student, **shape)
    batches = [(torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))) for _ in range(args.steps)]
    weights = LossWeights(T=4.0, alpha=0.9)
    kd = KD.__new__(KD)  # as scripts/bench_step.py: KD has no terms of its own (the task adds the KD term)
    torch.nn.Module.__init__(kd)
    task = DistillTask(student, teacher, kd, weights)
    optimizer = torch.optim.SGD(task.trainable_parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    reporter = ProgressReporter(rich=False)
    recorder = TeacherLogits(task.teacher, teacher, root / "steps", {"num_classes": 10}, "replay", "fp32")
    replayer = TeacherLogits(task.teacher, teacher, root / "steps", {"num_classes": 10}, "auto", "fp32")

    def one_round(outputs) -> float:
        task.outputs = outputs
        t0 = time.perf_counter()
        train_one_epoch(task, batches, optimizer, scaler, torch.device("cpu"), None, 1, 1, reporter)
        return time.perf_counter() - t0

    one_round(recorder)  # records epoch 1
    computed, replayed = [], []
    for i in range(args.rounds):
        computed.append(one_round(None))
        replayed.append(one_round(replayer))
        print(f"round {i + 1}: computed {computed[-1]:.2f} s, replayed {replayed[-1]:.2f} s", flush=True)
    c, r = statistics.median(computed), statistics.median(replayed)
    print(f"steps: {args.rounds} alternating rounds of {args.steps} steps, {args.teacher} -> {args.student}, batch 64 "
          f"of 1x8x8: median round {c:.2f} s computed, {r:.2f} s replayed: {c / r:.2f}x "
          f"(rounds computed {[round(v, 2) for v in computed]}, replayed {[round(v, 2) for v in replayed]})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="resnet56")
    p.add_argument("--student", default="resnet20")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batches", default="null", help="training batches per epoch (trainer.max_train_batches)")
    p.add_argument("--eval-batches", default="null", help="test batches per evaluation (trainer.max_eval_batches)")
    p.add_argument("--steps", type=int, default=10, help="steps per round of the step-level comparison")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of the step-level comparison")
    p.add_argument("--only-steps", action="store_true", help="skip the sweep; only the step-level comparison")
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_replay_") as tmp:
        root = Path(tmp)
        step_rounds(args, root)
        if args.only_steps:
            return
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
