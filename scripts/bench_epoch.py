"""One knowledge-distillation epoch, kdrun's path against a RepDistiller-style reference loop.

resnet56 -> resnet20 (KD, T=4) on CIFAR-100-shaped data, written to disk in CIFAR-100's real
format (``cifar-100-python/`` pickles of random images; ``--fraction`` of the 50,000 train images).

* reference: torchvision's CIFAR-100 dataset, PIL transforms (RandomCrop(32, 4), flip, ToTensor,
  Normalize) in DataLoader workers, float32, torch's default threads -- the loop of RepDistiller's
  ``train_distill`` (teacher forward under no_grad, CE + KL, SGD);
* kdrun: ``load_cifar100`` (uint8 tensors), ``make_loader`` (batched crop/flip/normalize on the
  training device), ``DistillTask`` + ``train_one_epoch``, with the speed settings a run would pick
  (kdrun/engine/speed.py: bf16 autocast and channels_last on a GPU, threads = cores / processes).

Both run in this process, in alternating rounds (R K R K ...), so load drifts hit both; the median
epoch time of each is compared. The last line is ``epoch speed-up vs reference loop: <ratio>x``.

    python scripts/bench_epoch.py --fraction 0.02                 # CPU, 1,000 images per epoch
    python scripts/bench_epoch.py --device cuda --fraction 0.2 --workers 8
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdrun.data.cifar import CIFAR100_MEAN, CIFAR100_STD, CIFAR100Files, cifar_transforms, load_cifar100  # noqa: E402
from kdrun.data.loaders import make_loader  # noqa: E402
from kdrun.engine.loop import autocast, train_one_epoch  # noqa: E402
from kdrun.engine.progress import ProgressReporter  # noqa: E402
from kdrun.engine.speed import (apply_tf32, apply_threads, cpu_cores, resolve_amp,  # noqa: E402
                                resolve_channels_last, threads_for)
from kdrun.methods.base import LossWeights  # noqa: E402
from kdrun.methods.kd import KD  # noqa: E402
from kdrun.models import create_model  # noqa: E402
from kdrun.tasks.distill import DistillTask  # noqa: E402

T, ALPHA, GAMMA, BATCH, LR = 4.0, 0.9, 0.1, 64, 0.05  # KD's reference weights in RepDistiller (-r 0.1 -a 0.9)


def write_cifar100(root: Path, n_train: int, n_test: int = 100) -> None:
    """CIFAR-100's python version: pickles of uint8 rows (3072 = 3 x 32 x 32) with fine labels."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "fine_labels": rng.integers(0, 100, n).tolist(), "coarse_labels": [0] * n, "filenames": [f"{i}.png" for i in range(n)]}
        with (folder / name).open("wb") as f:
            pickle.dump(entry, f, protocol=2)
    with (folder / "meta").open("wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": ["c"]}, f, protocol=2)


def models(device: torch.device, channels_last: bool = False) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    layout = {"memory_format": torch.channels_last} if channels_last else {}
    make = lambda name: create_model(name, num_classes=100, in_channels=3, input_size=(32, 32))  # noqa: E731
    return make("resnet56").to(device, **layout).eval(), make("resnet20").to(device, **layout)


def sgd(params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=LR, momentum=0.9, weight_decay=5e-4)


class Reference:
    """RepDistiller's data pipeline and ``train_distill`` loop for KD, in float32."""

    def __init__(self, root: Path, device: torch.device, workers: int) -> None:
        train_tf, _ = cifar_transforms(CIFAR100_MEAN, CIFAR100_STD)
        dataset = CIFAR100Files(str(root), train=True, transform=train_tf)  # torchvision's class, no md5 check
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers,
                                                  pin_memory=device.type == "cuda")
        self.teacher, self.student = models(device)
        self.optimizer, self.device = sgd(self.student.parameters()), device

    def epoch(self) -> None:
        self.student.train()
        for x, y in self.loader:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            s = self.student(x)
            with torch.no_grad():
                t = self.teacher(x)
            kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * T * T
            loss = GAMMA * F.cross_entropy(s, y) + ALPHA * kl
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()


class Kdrun:
    """kdrun's path: in-memory uint8 data batched on the device, the engine's epoch."""

    def __init__(self, root: Path, device: torch.device, amp: str | None, channels_last: bool) -> None:
        data = load_cifar100(str(root), verify=False)  # generated files: no official md5s
        self.loader = make_loader(data.train, BATCH, shuffle=True, seed_for_epoch=0, device=device)
        teacher, student = models(device, channels_last)
        method = KD.__new__(KD)
        torch.nn.Module.__init__(method)
        self.task = DistillTask(student, teacher, method, LossWeights(T=T, alpha=ALPHA, gamma=GAMMA)).to_device(device)
        self.optimizer = sgd(self.task.trainable_parameters())
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        self.device, self.amp, self.epochs = device, amp, 0
        self.reporter = ProgressReporter(rich=False)

    def epoch(self) -> None:
        self.epochs += 1
        self.loader.set_epoch(self.epochs)
        self.reporter.start_epoch(self.epochs, len(self.loader))
        train_one_epoch(self.task, self.loader, self.optimizer, self.scaler, self.device, self.amp, self.epochs,
                        1000, self.reporter)


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fraction", type=float, default=1.0, help="share of the 50,000 train images per epoch")
    p.add_argument("--rounds", type=int, default=3, help="timed epochs of each loop (after one warm-up each)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=None, help="reference DataLoader workers (default: cores, max 8)")
    p.add_argument("--root", default=None, help="where to write the CIFAR-100 files (default: a temporary folder)")
    a = p.parse_args()
    device = torch.device(a.device)
    n_train = max(BATCH, round(50_000 * a.fraction))
    workers = a.workers if a.workers is not None else min(8, cpu_cores())
    default_threads = torch.get_num_threads()
    kdrun_threads = threads_for(None, cpu_cores(), 1)
    amp = resolve_amp("auto", device)
    channels_last = resolve_channels_last("auto", device, "image")
    tf32 = apply_tf32(True, device)
    with tempfile.TemporaryDirectory(prefix="bench_epoch_") as tmp:
        root = Path(a.root or tmp)
        write_cifar100(root, n_train)
        ref, fast = Reference(root, device, workers), Kdrun(root, device, amp, channels_last)
        runs = {"reference": (ref.epoch, default_threads), "kdrun": (fast.epoch, kdrun_threads)}
        times: dict[str, list[float]] = {k: [] for k in runs}
        for i in range(a.rounds + 1):  # round 0 warms up both (allocator, cuDNN autotuning, worker start)
            for name, (fn, threads) in runs.items():
                apply_threads(threads)
                t = timed(fn, device)
                if i:
                    times[name].append(t)
                print(f"round {i} {name:9s} {t:7.2f} s{'  (warm-up)' if not i else ''}", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"device={device} images/epoch={n_train} batch={BATCH} reference: fp32, {workers} workers, "
          f"{default_threads} threads | kdrun: amp={amp} channels_last={channels_last} tf32={tf32} "
          f"threads={kdrun_threads}")
    for name, t in med.items():
        print(f"{name:9s} median epoch {t:7.2f} s  ({n_train / t:8.1f} images/s)")
    print(f"epoch speed-up vs reference loop: {med['reference'] / med['kdrun']:.2f}x")


if __name__ == "__main__":
    main()
