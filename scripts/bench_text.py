"""Throughput of kdrun's text distillation step against a plain PyTorch + transformers loop.

Same BERT teacher and student (transformers' BertForSequenceClassification), same batch of ListOps token
ids, same process. kdrun's side is the real engine path: DistillTask with ``method=distilbert`` (T^2 KL at
T = 2, hard CE, last-layer hidden cosine over non-padding tokens; weights 5 / 2 / 1) driven by
``train_one_epoch``, the models wrapped by kdrun/models/text.py (attention mask from padding, hidden states
and query/key/value captured by hooks). The plain side is the loop one writes by hand with transformers:
``model(input_ids, attention_mask, output_hidden_states=True)``, the same three terms, AdamW. Rounds
alternate (A B A B ...) so drifts in machine load hit both; the median round is reported; the last line is
``text step kdrun/plain: <ratio>``.

    python scripts/bench_text.py                              # 4-layer teacher -> 1-layer student, CPU
    python scripts/bench_text.py --student-layers 2 --hidden 128 --batch 64 --rounds 9
    python scripts/bench_text.py --method kd                  # logits only (kdrun's KD term)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from kdrun.data.text import load_listops
from kdrun.engine.loop import train_one_epoch
from kdrun.engine.progress import ProgressReporter
from kdrun.methods.base import LossWeights, MethodContext
from kdrun.methods.distilbert import DistilBERT
from kdrun.methods.kd import KD
from kdrun.models import create_model
from kdrun.tasks.distill import DistillTask

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the vision benchmark beside this script
from bench_step import RepeatLoader  # noqa: E402 - the same batch every step: the step, not data loading

T, ALPHA, GAMMA, BETA = 2.0, 5.0, 2.0, 1.0  # DistilBERT's README weights


def plain_loop(student, teacher, optimizer, ids, y, steps, method) -> None:
    """The hand-written transformers loop: what one would write without kdrun."""
    student.train()
    mask = (ids != 0).long()
    hidden = method == "distilbert"
    for _ in range(steps):
        with torch.no_grad():
            t = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=hidden)
        s = student(input_ids=ids, attention_mask=mask, output_hidden_states=hidden)
        kl = F.kl_div(F.log_softmax(s.logits / T, 1), F.log_softmax(t.logits / T, 1), reduction="batchmean",
                      log_target=True) * T * T
        loss = ALPHA * kl + GAMMA * F.cross_entropy(s.logits, y)
        if hidden:
            keep = mask.bool()
            hs, ht = s.hidden_states[-1][keep], t.hidden_states[-1][keep]
            loss = loss + BETA * (1 - F.cosine_similarity(hs, ht, dim=-1)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher-layers", type=int, default=4)
    p.add_argument("--student-layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--method", default="distilbert", choices=["distilbert", "kd"])
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    data = load_listops(num_train=a.batch, num_test=1)
    ids = data.train.inputs(data.train.x, torch.arange(a.batch))  # padded to the batch's longest sequence
    y = data.train.y[: a.batch]
    torch.manual_seed(0)
    make = lambda layers: create_model(  # noqa: E731
        "bert", num_classes=10, in_channels=data.info.in_channels, input_size=data.info.input_size,
        data_facts={"pad_id": 0}, layers=layers, hidden=a.hidden, heads=a.heads, intermediate=4 * a.hidden)
    teacher, student = make(a.teacher_layers).eval(), make(a.student_layers)
    ctx = MethodContext(student.feature_info, teacher.feature_info, data.info, data.train_targets)
    method = DistilBERT(ctx) if a.method == "distilbert" else KD(ctx)
    weights = LossWeights(T=T, alpha=ALPHA, gamma=GAMMA, beta=BETA if a.method == "distilbert" else 0.0)
    task = DistillTask(student, teacher, method, weights)
    opt_kdrun = torch.optim.AdamW(task.trainable_parameters(), lr=1e-5)
    opt_plain = torch.optim.AdamW(student.hf.parameters(), lr=1e-5)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    reporter = ProgressReporter(rich=False)
    loader = RepeatLoader((ids, y), a.steps)

    def kdrun_round() -> None:
        reporter.start_epoch(1, len(loader))
        train_one_epoch(task, loader, opt_kdrun, scaler, torch.device("cpu"), None, 1, 1, reporter)

    runs = {"plain": lambda: plain_loop(student.hf, teacher.hf, opt_plain, ids, y, a.steps, a.method),
            "kdrun": kdrun_round}
    for fn in runs.values():  # warm-up (allocator, lazy init)
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(a.rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    thr = {k: a.steps * a.batch / statistics.median(v) for k, v in times.items()}
    print(f"cpu threads={torch.get_num_threads()} method={a.method} bert L{a.teacher_layers}->L{a.student_layers} "
          f"hidden={a.hidden} heads={a.heads} batch={a.batch}x{ids.shape[1]} tokens steps/round={a.steps} "
          f"rounds={a.rounds}")
    print(f"plain PyTorch + transformers: {thr['plain']:9.1f} samples/s")
    print(f"kdrun step:                   {thr['kdrun']:9.1f} samples/s")
    print(f"text step kdrun/plain: {thr['kdrun'] / thr['plain']:.3f}")


if __name__ == "__main__":
    main()
