"""Throughput of kdrun's distillation step against a plain hand-written PyTorch KD loop.

Same models, same batch, same process. kdrun's side is the real engine path: DistillTask
(gamma*CE + alpha*T^2*KL through the method interface) driven by ``train_one_epoch`` with its
meters and progress reporting. The plain side is the textbook loop. Rounds alternate (A B A B ...)
so drifts in machine load hit both; the median round is reported.

    python scripts/bench_step.py                                   # resnet56 -> resnet20, CIFAR shape, CPU
    python scripts/bench_step.py --teacher cnn1d --student mlp --input 1x40 --batch 64 --steps 200
    python scripts/bench_step.py --device cuda --amp bf16 --batch 128
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from kdrun.engine.loop import autocast, train_one_epoch
from kdrun.engine.progress import ProgressReporter
from kdrun.methods.base import LossWeights
from kdrun.methods.kd import KD
from kdrun.models import create_model
from kdrun.tasks.distill import DistillTask


class RepeatLoader:
    """The same batch ``steps`` times: measures the step, not data loading."""

    def __init__(self, batch: tuple[torch.Tensor, torch.Tensor], steps: int) -> None:
        self.batch, self.steps = batch, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return iter([self.batch] * self.steps)


def plain_loop(student, teacher, optimizer, x, y, steps, T, alpha, device, amp) -> None:
    student.train()
    for _ in range(steps):
        with autocast(device, amp):
            with torch.no_grad():
                t = teacher(x)
            s = student(x)
            kl = F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t / T, 1), reduction="batchmean", log_target=True)
            loss = (1 - alpha) * F.cross_entropy(s, y) + alpha * T * T * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def kdrun_loop(task, optimizer, scaler, loader, device, amp, reporter) -> None:
    reporter.start_epoch(1, len(loader))
    train_one_epoch(task, loader, optimizer, scaler, device, amp, 1, 1, reporter)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="resnet56")
    p.add_argument("--student", default="resnet20")
    p.add_argument("--input", default="3x32x32", help="CxHxW or CxL")
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default=None, choices=[None, "bf16", "fp16"])
    a = p.parse_args()
    device = torch.device(a.device)
    shape = tuple(int(v) for v in a.input.split("x"))
    torch.manual_seed(0)
    make = lambda name: create_model(name, num_classes=a.classes, in_channels=shape[0],  # noqa: E731
                                     input_size=shape[1:]).to(device)
    teacher, student = make(a.teacher).eval(), make(a.student)
    x = torch.randn(a.batch, *shape, device=device)
    y = torch.randint(0, a.classes, (a.batch,), device=device)
    T, alpha = 4.0, 0.9
    opt_plain = torch.optim.SGD(student.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
    method = KD.__new__(KD)
    torch.nn.Module.__init__(method)
    task = DistillTask(student, teacher, method, LossWeights(T=T, alpha=alpha)).to_device(device)
    opt_kdrun = torch.optim.SGD(task.trainable_parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=a.amp == "fp16")
    reporter = ProgressReporter(rich=False)
    loader = RepeatLoader((x, y), a.steps)
    runs = {"plain": lambda: plain_loop(student, teacher, opt_plain, x, y, a.steps, T, alpha, device, a.amp),
            "kdrun": lambda: kdrun_loop(task, opt_kdrun, scaler, loader, device, a.amp, reporter)}
    for fn in runs.values():  # warm-up (allocator, kernels, lazy init)
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(a.rounds):
        for name, fn in runs.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    thr = {k: a.steps * a.batch / statistics.median(v) for k, v in times.items()}
    print(f"device={device} amp={a.amp} threads={torch.get_num_threads()} {a.teacher}->{a.student} "
          f"input={a.input} batch={a.batch} steps/round={a.steps} rounds={a.rounds}")
    print(f"plain PyTorch loop: {thr['plain']:9.1f} samples/s")
    print(f"kdrun step:         {thr['kdrun']:9.1f} samples/s")
    print(f"kdrun / plain:      {thr['kdrun'] / thr['plain']:9.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()
