"""Why the batch-norm-free cnn1d 8-8-8 student collapses under distillation at lr 0.05 (docs/cpu_study.md).

Trains a cnn1d 64-64-64 teacher on MNIST-1D with kdrun's default recipe (SGD momentum 0.9, weight decay 5e-4,
batch 64, lr 0.05), then the 8-8-8 student, with and without batch norm (``norm``), under three losses at their
reference weights: CE alone (the baseline), KD (T=4, alpha 0.9: 0.1 CE + 0.9 T^2 KL) and AT (CE + 1000 x AT).
Every step it records the loss, the gradient norm of the logits (per sample) and of the parameters, and the
largest |logit|; after every epoch the test top-1 and the share of dead ReLU channels (never positive on the
test set: a layer whose channels are all dead passes nothing, and the student then predicts one class).

    PYTHONPATH=. python scripts/cpu_study_diagnose.py --epochs 5
    PYTHONPATH=. python scripts/cpu_study_diagnose.py --epochs 18 --losses ce,kd --every 3  # the lr-0.05 epochs
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdrun.data.mnist1d import load_mnist1d  # noqa: E402
from kdrun.methods.at import at_loss  # noqa: E402
from kdrun.methods.kd import kd_loss  # noqa: E402
from kdrun.models.registry import create_model  # noqa: E402

LR, MOMENTUM, WD, BATCH, T, ALPHA, AT_BETA = 0.05, 0.9, 5e-4, 64, 4.0, 0.9, 1000.0


def make(channels: list[int], norm: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("cnn1d", num_classes=10, in_channels=1, input_size=(40,), channels=channels, norm=norm)


def loss_of(kind: str, s, t, y: torch.Tensor) -> torch.Tensor:
    if kind == "ce":
        return F.cross_entropy(s.logits, y)
    if kind == "kd":
        return (1 - ALPHA) * F.cross_entropy(s.logits, y) + ALPHA * kd_loss(s.logits, t.logits, T)
    # AT at every stage after the first, as kdrun's AT pairs them (stages[1:])
    return F.cross_entropy(s.logits, y) + AT_BETA * sum(at_loss(a, b) for a, b in zip(s.stages[1:], t.stages[1:]))


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(top-1 %, share of ReLU channels that are never positive on x)."""
    model.eval()
    f = model.forward_features(x)
    dead = [(s.amax(dim=(0, 2)) <= 0).float().mean().item() for s in f.stages]
    return 100 * (f.logits.argmax(1) == y).float().mean().item(), statistics.fmean(dead)


def train(student, teacher, kind: str, data, epochs: int, seed: int) -> list[dict]:
    opt = torch.optim.SGD(student.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    x, y = data.train.x, data.train.y
    g = torch.Generator().manual_seed(seed)
    rows = []
    for epoch in range(1, epochs + 1):
        student.train()
        logit_g, param_g, top, losses, bad = [], [], [], [], None
        for step, idx in enumerate(torch.randperm(len(y), generator=g).split(BATCH)):
            with torch.no_grad():
                t = teacher.forward_features(x[idx]) if teacher is not None else None
            s = student.forward_features(x[idx])
            s.logits.retain_grad()
            loss = loss_of(kind, s, t, y[idx])
            opt.zero_grad()
            loss.backward()
            if not math.isfinite(loss.item()) and bad is None:
                bad = step
            logit_g.append(s.logits.grad.norm(dim=1).mean().item() * len(idx))  # per sample, not / batch
            param_g.append(torch.cat([p.grad.flatten() for p in student.parameters()]).norm().item())
            top.append(s.logits.abs().max().item())
            losses.append(loss.item())
            opt.step()
        acc, dead = evaluate(student, data.test.x, data.test.y)
        rows.append({"epoch": epoch, "loss": statistics.fmean(losses[-10:]), "logit_grad": statistics.median(logit_g),
                     "param_grad_med": statistics.median(param_g), "param_grad_max": max(param_g),
                     "max_logit": max(top), "top1": acc, "dead": dead, "nonfinite_step": bad})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--teacher-epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="data")
    p.add_argument("--losses", default="ce,kd,at")
    p.add_argument("--norms", default="none,batch")
    p.add_argument("--every", type=int, default=1, help="print every n-th epoch (and the last)")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_mnist1d(args.data)
    teacher = make([64, 64, 64], "none", args.seed)
    train(teacher, None, "ce", data, args.teacher_epochs, args.seed)
    teacher.eval()
    print(f"teacher cnn1d 64-64-64: {evaluate(teacher, data.test.x, data.test.y)[0]:.1f}% "
          f"({args.teacher_epochs} epochs at lr {LR})")
    print("| student | loss | epoch | loss (last 10 steps) | |dL/dlogits| per sample (median) "
          "| param grad norm (median / max) | max |logit| | test top-1 | dead ReLU channels | first non-finite step |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for norm in args.norms.split(","):
        for kind in args.losses.split(","):
            rows = train(make([8, 8, 8], norm, args.seed), None if kind == "ce" else teacher, kind, data,
                         args.epochs, args.seed)
            for r in rows:
                if r["epoch"] % args.every and r["epoch"] != args.epochs:
                    continue
                print(f"| 8-8-8 norm={norm} | {kind} | {r['epoch']} | {r['loss']:.3g} | {r['logit_grad']:.3g} "
                      f"| {r['param_grad_med']:.3g} / {r['param_grad_max']:.3g} | {r['max_logit']:.3g} "
                      f"| {r['top1']:.1f} | {100 * r['dead']:.0f}% | {r['nonfinite_step'] or '-'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
