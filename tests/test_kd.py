"""The KD term and the total loss of the distillation task (the golden values of kd_loss are checked by
test_methods.py through scripts/golden/kd.py's check)."""

import pytest
import torch

from kdrun.engine.task import Batch, Progress
from kdrun.methods.base import LossWeights
from kdrun.methods.kd import kd_loss
from kdrun.tasks.distill import DistillTask


def test_kd_loss_is_zero_for_identical_logits():
    x = torch.randn(8, 10)
    assert kd_loss(x, x.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-6)


def test_ce_weight_defaults_to_one_minus_alpha():
    assert LossWeights(alpha=0.9).ce_weight == pytest.approx(0.1)
    assert LossWeights(alpha=0.9, gamma=1.0).ce_weight == 1.0


class Linear(torch.nn.Linear):
    def forward_features(self, x, preact=False):  # pragma: no cover - not used by KD
        raise AssertionError("KD must not extract features")


def kd_method(classes: int):
    """method=kd built from its config, as a run builds it."""
    from conftest import compose_config

    from kdrun.tasks.build import build_method
    from kdrun.data.base import DataInfo
    from kdrun.methods.base import MethodContext
    from kdrun.models.features import FeatureInfo

    info = FeatureInfo(stage_channels=(classes,), stage_sizes=((),), pooled_dim=classes, num_classes=classes)
    data = DataInfo("test", "signal", 1, (6,), classes, 4, 4)
    return build_method(compose_config(["method=kd"]), MethodContext(info, info, data, torch.arange(4) % classes))


def test_total_loss_and_gradients_reach_only_the_student():
    torch.manual_seed(0)
    student, teacher = Linear(6, 5), Linear(6, 5)
    method = kd_method(5)
    assert not method.has_terms  # the task adds the KD term; the method adds nothing
    task = DistillTask(student, teacher, method, LossWeights(T=2.0, alpha=0.7, gamma=0.5))
    batch = Batch(torch.randn(4, 6), torch.tensor([0, 1, 2, 3]))
    out = task(batch, Progress(1, 1))
    expected = 0.5 * torch.nn.functional.cross_entropy(student(batch.x), batch.y) + 0.7 * kd_loss(
        student(batch.x), teacher(batch.x), 2.0)
    assert set(out.terms) == {"ce", "kd"}
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    out.loss.backward()
    assert student.weight.grad is not None and student.weight.grad.abs().sum() > 0
    assert teacher.weight.grad is None
    assert not any(p is teacher.weight for p in task.trainable_parameters())
    assert all(not k.startswith("teacher") for k in task.state_dict())
