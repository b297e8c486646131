"""What the golden scripts' ``check`` functions share: kdrun's side of each comparison.

Each ``scripts/golden/<name>.py`` has ``golden()``, the method's formula written independently of kdrun (plain
numpy), and ``check(g)``, which feeds the stored inputs ``g`` (tests/golden/<name>.json) to kdrun's
implementation and compares; tests/test_methods.py runs both for every method. This module is imported only by
``check``: ``golden()`` and scripts/make_golden.py never load kdrun or torch.
"""

from __future__ import annotations

import pytest
import torch

from kdrun.data.base import DataInfo
from kdrun.methods.base import MethodContext
from kdrun.models.features import FeatureInfo, Features

IMAGES = DataInfo("fake", "image", 3, (8, 8), 4, 16, 8)
approx = pytest.approx


def t64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def batch_of(n: int, y=None, index=None):
    from kdrun.engine.task import Batch

    return Batch(torch.zeros(n, 1), torch.zeros(n, dtype=torch.long) if y is None else torch.as_tensor(y), index)


def progress(epoch: int = 1, epochs: int = 1):
    from kdrun.engine.task import Progress

    return Progress(epoch, epochs)


def map_context(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> MethodContext:
    def info(maps):
        shapes = [tuple(m.shape[1:]) for m in maps]
        return FeatureInfo(tuple(s[0] for s in shapes), tuple(tuple(s[1:]) for s in shapes), shapes[-1][0], 4)

    return MethodContext(info(student), info(teacher), IMAGES, torch.zeros(IMAGES.num_train, dtype=torch.long),
                         student_arch="s", teacher_arch="t")


def maps(values: list[torch.Tensor], preact: bool = False) -> Features:
    logits = values[0].new_zeros(len(values[0]), 4)
    return Features(logits, stages=[] if preact else values, preact=values if preact else [])


def vector_context(s_dim: int, t_dim: int, targets: torch.Tensor | None = None, classes: int = 7) -> MethodContext:
    def info(dim):
        return FeatureInfo(stage_channels=(dim,), stage_sizes=((),), pooled_dim=dim, num_classes=classes)

    targets = torch.arange(40) % classes if targets is None else targets
    data = DataInfo("test", "signal", 1, (40,), int(targets.max()) + 1, len(targets), 10)
    return MethodContext(info(s_dim), info(t_dim), data, targets)


def set_embeddings(method: torch.nn.Module, g: dict) -> None:
    with torch.no_grad():
        for embed, key in ((method.embed_s, "s"), (method.embed_t, "t")):
            embed.linear.weight.copy_(t64(g[f"w_{key}"]))
            embed.linear.bias.copy_(t64(g[f"b_{key}"]))


class FixedNegatives(torch.nn.Module):
    """CRD's sampler replaced by the golden script's draws."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[torch.Tensor] = []

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.queue.pop(0)


# transformers (token inputs): hidden states, query/key/value projections, attention mask

TOKENS = DataInfo("fake_text", "tokens", 30, (5,), 3, 16, 8)


def text_features(g: dict) -> Features:
    mask = torch.tensor(g["mask"], dtype=torch.long) if "mask" in g else None
    hidden = [t64(h) for h in g["hidden"]]
    return Features(t64(g["logits"]), stages=[hidden[-1][:, 0]], pooled=hidden[-1][:, 0], hidden=hidden,
                    qkv=[tuple(t64(x) for x in layer) for layer in g["qkv"]], mask=mask)


def text_context(g: dict) -> MethodContext:
    def info(m: dict) -> FeatureInfo:
        hidden = len(m["hidden"][0][0][0])
        heads = len(m["qkv"][0][0][0])
        return FeatureInfo((hidden,), ((),), hidden, len(m["logits"][0]), layers=len(m["qkv"]), heads=heads)

    return MethodContext(info(g["student"]), info(g["teacher"]), TOKENS, torch.zeros(16, dtype=torch.long),
                         student_arch="bert", teacher_arch="bert")


def text_pair(g: dict) -> tuple[Features, Features]:
    return (text_features({**g["student"], "mask": g["mask"]}), text_features({**g["teacher"], "mask": g["mask"]}))
