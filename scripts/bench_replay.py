"""A 4-job temperature sweep with KD, with and without replayed teacher outputs (distill.teacher_outputs).

resnet56 -> resnet20 (the published CIFAR-100 pair) on CIFAR-100-shaped data: ``--fraction`` of the
50,000 training images written to disk in CIFAR-100's real format (random images, as
scripts/bench_epoch.py), read with the CIFAR recipe's augmentation. Each sweep is a real
``kdrun -m distill.T=1,2,4,8 ...`` (its own process, the teacher shared through one cache and
trained once beforehand), run three ways per round:

* ``compute``: ``distill.teacher_outputs=compute``, every job runs the teacher;
* ``record``: ``distill.teacher_outputs=replay`` with no recording: job 1 records, jobs 2-4 replay
  (what a user's first sweep gets);
* ``present``: the same with the recording already on disk: every job replays.

Rounds alternate the order (compute first, then last) so drifts in machine load hit every way.
Each job's distilled-stage time (train + evaluation epochs, ``wall_time`` in its results.json) is
summed over the sweep; the medians over rounds are compared. Also reported: whether every replayed
student equals its computed twin bit for bit, the disk an epoch takes, and the error of storing
logits in fp16. The last line is ``students' stages speed-up with replay: <ratio>x`` (the
``record`` sweep against ``compute``).

    python scripts/bench_replay.py                                  # 2 rounds, 2 epochs of 640 images
    python scripts/bench_replay.py --fraction 0.05 --epochs 3 --rounds 3
    python scripts/bench_replay.py --only-steps --rounds 7 --steps 10   # only the step-level ratio (8x8 inputs)
    python scripts/bench_replay.py --only-steps --size 32 --classes 100 --rounds 3 --steps 4   # CIFAR-shaped steps
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_epoch import write_cifar100  # noqa: E402

WAYS = ("compute", "record", "present")


def kdrun(root: Path, args: argparse.Namespace, *overrides: str, multirun: bool = False) -> float:
    """One ``python -m kdrun`` process on the generated CIFAR-100 files, output under ``root/out``; returns the
    CPU seconds it used (user + system: less sensitive than wall time to other load on a shared machine)."""
    common = ["dataset=cifar100", f"dataset.root={root / 'data'}", "dataset.verify=false", "dataset.download=false",
              "trainer=cifar", f"teacher={args.teacher}", f"student={args.student}", "stages=[teacher,distilled]",
              f"trainer.epochs={args.epochs}", "trainer.milestones=[]", f"trainer.max_eval_batches={args.eval_batches}",
              "measure.enabled=false", f"paths.outputs={root / 'out'}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "kdrun", *(["-m"] if multirun else []), *common, *overrides], cwd=root, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"kdrun {' '.join(overrides)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def sweep(root: Path, args: argparse.Namespace, name: str, way: str) -> tuple[dict[float, dict], float]:
    """One ``kdrun -m distill.T=...`` sweep: per temperature the distilled stage's results and folder, and the
    CPU seconds of the whole sweep process."""
    if way == "record":
        shutil.rmtree(root / "out/cache/teacher_outputs", ignore_errors=True)
    mode = "compute" if way == "compute" else "replay"
    temperatures = ",".join(f"{T:g}" for T in args.temperatures)
    cpu = kdrun(root, args, f"distill.T={temperatures}", f"distill.teacher_outputs={mode}", f"name={name}",
                multirun=True)
    jobs = {}
    for results in (root / "out/sweeps" / name).glob("*/results.json"):
        r = json.loads(results.read_text())
        jobs[float(r["distill"]["T"])] = {**r["stages"]["distilled"], "folder": results.parent}
    if len(jobs) != len(args.temperatures):
        sys.exit(f"sweep {name}: {len(jobs)} of {len(args.temperatures)} jobs wrote results.json")
    return jobs, cpu


def sweep_rounds(args: argparse.Namespace, root: Path) -> None:
    n_train = round(args.fraction * 50_000)
    write_cifar100(root / "data", n_train, n_test=args.eval_batches * 64)
    t0 = time.perf_counter()
    kdrun(root, args, "stages=[teacher]", "name=teacher")  # trains and caches the teacher every sweep then loads
    print(f"teacher {args.teacher} trained and cached ({n_train} images x {args.epochs} epochs) in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    totals: dict[str, list[float]] = {way: [] for way in WAYS}
    cpu: dict[str, list[float]] = {way: [] for way in WAYS}
    exact = True
    for i in range(args.rounds):
        order = WAYS if i % 2 == 0 else ("record", "present", "compute")  # present needs record's recording
        jobs = {}
        for way in order:
            jobs[way], seconds = sweep(root, args, f"round{i + 1}_{way}", way)
            times = [jobs[way][T]["wall_time"] for T in args.temperatures]
            sources = [dict(jobs[way][T].get("teacher_outputs") or {}) for T in args.temperatures]
            totals[way].append(sum(times))
            cpu[way].append(seconds)
            print(f"round {i + 1} {way:8s}: students' stages {sum(times):6.1f} s  (jobs {[round(t, 1) for t in times]}, "
                  f"teacher outputs {sources}); whole sweep process {seconds:.0f} CPU s, load average "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
        for T in args.temperatures:
            w_c = torch.load(jobs["compute"][T]["folder"] / "checkpoints/distilled/last.pt", weights_only=True)["model"]
            for way in ("record", "present"):
                w_r = torch.load(jobs[way][T]["folder"] / "checkpoints/distilled/last.pt", weights_only=True)["model"]
                exact &= all(torch.equal(w_c[k], w_r[k]) for k in w_c)
    c, r, p = (statistics.median(totals[way]) for way in WAYS)
    cc, cr, cp = (statistics.median(cpu[way]) for way in WAYS)
    folder = root / "out/cache/teacher_outputs"
    epoch_file = next(folder.glob("*/epoch0001.fp32"))
    print(f"disk: {epoch_file.stat().st_size / 1e6:.2f} MB per epoch ({n_train} images); {fp16_error(folder)}")
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{len(args.temperatures)}-job sweeps, {args.teacher} -> {args.student}, {n_train} CIFAR-shaped images x "
          f"{args.epochs} epochs, median of {args.rounds} rounds: computed {c:.1f} s, first job recording {r:.1f} s "
          f"({c / r:.2f}x), recording present {p:.1f} s ({c / p:.2f}x); replayed students bit-identical: {exact}")
    print(f"whole sweep processes (startup, data, teacher load, evaluation, report included), CPU seconds: computed "
          f"{cc:.0f}, first job recording {cr:.0f} ({cc / cr:.2f}x), recording present {cp:.0f} ({cc / cp:.2f}x)")
    print(f"students' stages speed-up with replay: {c / r:.2f}x")


def fp16_error(folder: Path) -> str:
    z = torch.from_numpy(np.fromfile(next(folder.glob("*/epoch0001.fp32")), dtype=np.float32))
    err = (z - z.half().float()).abs()
    return f"fp16 logits: max |error| {err.max():.2e}, mean {err.mean():.2e} (logits up to |{z.abs().max():.1f}|)"


def step_rounds(args: argparse.Namespace, root: Path) -> None:
    """The same ratio at the level of training steps, robust to a loaded machine: rounds of ``--steps`` real
    engine steps (DistillTask + SGD through train_one_epoch) alternate between computing the teacher and
    replaying its recorded logits; the median round of each is compared. A third timing per round, the
    teacher's forward alone on the same batches (no_grad, eval mode), gives its share of a computed step:
    the most replay can save (``--size 32 --classes 100``: CIFAR-100-shaped batches)."""
    from kdrun.engine.loop import train_one_epoch
    from kdrun.engine.progress import ProgressReporter
    from kdrun.engine.teacher_outputs import TeacherLogits
    from kdrun.methods.base import LossWeights
    from kdrun.methods.kd import KD
    from kdrun.models import create_model
    from kdrun.tasks.distill import DistillTask

    torch.manual_seed(0)
    channels = 1 if args.size == 8 else 3
    shape = dict(num_classes=args.classes, in_channels=channels, input_size=(args.size, args.size))
    teacher, student = create_model(args.teacher, **shape).eval(), create_model(args.student, **shape)
    batches = [(torch.randn(64, channels, args.size, args.size), torch.randint(0, args.classes, (64,)))
               for _ in range(args.steps)]
    weights = LossWeights(T=4.0, alpha=0.9)
    kd = KD.__new__(KD)  # as scripts/bench_step.py: KD has no terms of its own (the task adds the KD term)
    torch.nn.Module.__init__(kd)
    task = DistillTask(student, teacher, kd, weights)
    optimizer = torch.optim.SGD(task.trainable_parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    reporter = ProgressReporter(rich=False)
    recorder = TeacherLogits(task.teacher, teacher, root / "steps", {"num_classes": args.classes}, "replay", "fp32")
    replayer = TeacherLogits(task.teacher, teacher, root / "steps", {"num_classes": args.classes}, "auto", "fp32")

    def one_round(outputs) -> float:
        task.outputs = outputs
        t0 = time.perf_counter()
        train_one_epoch(task, batches, optimizer, scaler, torch.device("cpu"), None, 1, 1, reporter)
        return time.perf_counter() - t0

    def teacher_round() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for x, _ in batches:
                teacher(x)
        return time.perf_counter() - t0

    one_round(recorder)  # records epoch 1
    computed, replayed, forward = [], [], []
    for i in range(args.rounds):
        computed.append(one_round(None))
        replayed.append(one_round(replayer))
        forward.append(teacher_round())
        print(f"round {i + 1}: computed {computed[-1]:.2f} s, replayed {replayed[-1]:.2f} s, teacher forward alone "
              f"{forward[-1]:.2f} s", flush=True)
    c, r, f = statistics.median(computed), statistics.median(replayed), statistics.median(forward)
    print(f"steps: {args.rounds} alternating rounds of {args.steps} steps, {args.teacher} -> {args.student}, batch 64 "
          f"of {channels}x{args.size}x{args.size}: median round {c:.2f} s computed, {r:.2f} s replayed: {c / r:.2f}x "
          f"(rounds computed {[round(v, 2) for v in computed]}, replayed {[round(v, 2) for v in replayed]}); "
          f"the teacher's forward alone takes {f / c:.0%} of a computed round's time (removing it: "
          f"{c / (c - f):.2f}x expected)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="resnet56")
    p.add_argument("--student", default="resnet20")
    p.add_argument("--fraction", type=float, default=0.0128, help="share of CIFAR-100's 50,000 training images")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--eval-batches", type=int, default=1, help="test batches of 64 per evaluation")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (sweeps, or steps with --only-steps)")
    p.add_argument("--steps", type=int, default=10, help="steps per round of the step-level comparison")
    p.add_argument("--only-steps", action="store_true", help="only the step-level comparison (no sweeps)")
    p.add_argument("--size", type=int, default=8, help="step-level comparison: image side (8: 1x8x8; else 3 channels)")
    p.add_argument("--classes", type=int, default=10, help="step-level comparison: classes")
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    p.add_argument("--work", type=Path, help="keep data, runs and recordings in this new folder (default: a temporary one)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_replay_") as tmp:
        root = Path(tmp) if args.work is None else args.work
        root.mkdir(parents=True, exist_ok=True)
        if args.only_steps:
            step_rounds(args, root)
        else:
            sweep_rounds(args, root)


if __name__ == "__main__":
    main()
