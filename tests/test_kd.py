"""The KD term and the total loss against independently computed values (scripts/golden/kd.py)."""

import json
from pathlib import Path

import pytest
import torch

from kdrun.engine.task import Batch, Progress
from kdrun.methods.base import LossWeights
from kdrun.methods.kd import KD, kd_loss
from kdrun.schemes.distill_task import DistillTask

GOLDEN = json.loads((Path(__file__).parent / "golden" / "kd.json").read_text())


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_kd_loss_matches_definition(T):
    s = torch.tensor(GOLDEN["student"], dtype=torch.float64)
    t = torch.tensor(GOLDEN["teacher"], dtype=torch.float64)
    assert kd_loss(s, t, T).item() == pytest.approx(GOLDEN[f"T={T}"], rel=1e-9)


def test_kd_loss_is_zero_for_identical_logits():
    x = torch.randn(8, 10)
    assert kd_loss(x, x.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-6)


def test_ce_weight_defaults_to_one_minus_alpha():
    assert LossWeights(alpha=0.9).ce_weight == pytest.approx(0.1)
    assert LossWeights(alpha=0.9, gamma=1.0).ce_weight == 1.0


class Linear(torch.nn.Linear):
    def forward_features(self, x, preact=False):  # pragma: no cover - not used by KD
        raise AssertionError("KD must not extract features")


def test_total_loss_and_gradients_reach_only_the_student():
    torch.manual_seed(0)
    student, teacher = Linear(6, 5), Linear(6, 5)
    task = DistillTask(student, teacher, KD.__new__(KD), LossWeights(T=2.0, alpha=0.7, gamma=0.5))
    torch.nn.Module.__init__(task.method)
    batch = Batch(torch.randn(4, 6), torch.tensor([0, 1, 2, 3]))
    out = task(batch, Progress(1, 1))
    expected = 0.5 * torch.nn.functional.cross_entropy(student(batch.x), batch.y) + 0.7 * kd_loss(
        student(batch.x), teacher(batch.x), 2.0)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    out.loss.backward()
    assert student.weight.grad is not None and student.weight.grad.abs().sum() > 0
    assert teacher.weight.grad is None
    assert not any(p is teacher.weight for p in task.trainable_parameters())
    assert all(not k.startswith("teacher") for k in task.state_dict())
