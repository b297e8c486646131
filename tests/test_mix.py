"""Function matching's mixing (kdrun/data/mix.py) and how DistillTask uses it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdrun.data.mix import BatchMix, cutmix, draw_lambda, mixup
from kdrun.engine.task import Batch, Progress
from kdrun.methods.base import LossWeights
from kdrun.methods.kd import KD, kd_loss
from kdrun.models.registry import create_model
from kdrun.tasks.distill import DistillTask

SHAPES = [(6, 1, 40), (6, 3, 8, 12)]  # MNIST-1D signals, images


def test_lambda_is_folded_into_upper_half():
    torch.manual_seed(0)
    lams = [draw_lambda(1.0) for _ in range(200)]
    assert all(0.5 <= lam <= 1.0 for lam in lams)
    assert max(lams) - min(lams) > 0.3, "Beta(1, 1) folded should spread over [0.5, 1]"
    torch.manual_seed(0)
    assert max(draw_lambda(100.0) for _ in range(50)) < 0.7, "a large alpha concentrates lam near 0.5"


@pytest.mark.parametrize("shape", SHAPES)
def test_mixup_is_the_convex_combination(shape):
    x = torch.randn(shape)
    perm = torch.tensor([1, 2, 3, 4, 5, 0])
    out = mixup(x, 0.7, perm)
    assert out.shape == x.shape
    assert torch.allclose(out[0], 0.7 * x[0] + 0.3 * x[1])
    assert torch.allclose(out[5], 0.7 * x[5] + 0.3 * x[0])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lam", [0.5, 0.75, 0.9])
def test_cutmix_pastes_one_box_of_the_partner(shape, lam):
    torch.manual_seed(1)
    x = torch.randn(shape)
    perm = torch.roll(torch.arange(shape[0]), 1)
    out = cutmix(x, lam, perm)
    assert out.shape == x.shape
    from_partner = (out == x[perm]) & (out != x)
    assert bool((from_partner | (out == x)).all()), "every value comes from the input or its partner"
    mask = from_partner[0, 0]
    assert torch.equal(from_partner, mask.expand_as(out)), "one box, same for every sample and channel"
    area = mask.float().mean().item()
    assert area == pytest.approx(1 - lam, abs=0.12)
    # the pasted region is a box: its extent along each axis covers exactly its nonzero rows/columns
    idx = mask.nonzero()
    box = tuple(slice(int(idx[:, d].min()), int(idx[:, d].max()) + 1) for d in range(mask.dim()))
    assert bool(mask[box].all())


def test_cutmix_leaves_vector_inputs_unchanged():
    x = torch.randn(4, 10)
    assert torch.equal(cutmix(x, 0.6, torch.tensor([1, 0, 3, 2])), x)


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_batch_mix_is_reproducible_under_the_global_seed(kind):
    x = torch.randn(*SHAPES[1])
    mix = BatchMix(kind, alpha=1.0)
    torch.manual_seed(3)
    a = mix(x)
    torch.manual_seed(3)
    b = mix(x)
    torch.manual_seed(4)
    c = mix(x)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)


def test_batch_mix_rejects_bad_settings():
    with pytest.raises(ValueError, match="mixup, cutmix"):
        BatchMix("blend")
    with pytest.raises(ValueError, match="positive"):
        BatchMix("mixup", alpha=0.0)


# ---------------------------------------------------------------- DistillTask with mixing


def tiny_pair(in_shape=(1, 40)):
    torch.manual_seed(0)
    student = create_model("mlp", num_classes=5, in_channels=in_shape[0], input_size=in_shape[1:], hidden=[8])
    teacher = create_model("mlp", num_classes=5, in_channels=in_shape[0], input_size=in_shape[1:], hidden=[16])
    return student, teacher


def record_inputs(module: torch.nn.Module) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    module.register_forward_hook(lambda m, args, out: seen.append(args[0].detach().clone()))
    return seen


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_teacher_and_student_see_the_same_mixed_input_and_ce_stays_clean(kind):
    student, teacher = tiny_pair()
    task = DistillTask(student, teacher, KD.__new__(KD), LossWeights(T=2.0, alpha=0.6, gamma=0.4),
                       mix=BatchMix(kind, 1.0))
    torch.nn.Module.__init__(task.method)
    s_seen, t_seen = record_inputs(student), record_inputs(teacher)
    batch = Batch(torch.randn(6, 1, 40), torch.tensor([0, 1, 2, 3, 4, 0]))
    torch.manual_seed(7)
    out = task(batch, Progress(1, 1))
    torch.manual_seed(7)
    mixed = BatchMix(kind, 1.0)(batch.x)

    assert len(t_seen) == 1 and torch.equal(t_seen[0], mixed) and not torch.equal(mixed, batch.x)
    assert len(s_seen) == 2 and torch.equal(s_seen[0], mixed) and torch.equal(s_seen[1], batch.x)
    with torch.no_grad():
        ce = F.cross_entropy(student(batch.x), batch.y)
        kd = kd_loss(student(mixed), teacher(mixed), 2.0)
    assert out.terms["ce"].item() == pytest.approx(ce.item(), rel=1e-6)
    assert out.terms["kd"].item() == pytest.approx(kd.item(), rel=1e-6)
    assert out.loss.item() == pytest.approx(0.4 * ce.item() + 0.6 * kd.item(), rel=1e-6)
    assert torch.equal(out.logits.argmax(1), student(batch.x).argmax(1)), "train top-1 is measured on clean inputs"
    out.loss.backward()
    assert student.layers[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_without_ce_the_clean_pass_carries_no_gradient():
    student, teacher = tiny_pair()
    task = DistillTask(student, teacher, KD.__new__(KD), LossWeights(alpha=1.0, gamma=0.0), mix=BatchMix("mixup"))
    torch.nn.Module.__init__(task.method)
    out = task(Batch(torch.randn(4, 1, 40), torch.tensor([0, 1, 2, 3])), Progress(1, 1))
    assert set(out.terms) == {"kd"} and not out.logits.requires_grad


def test_no_mix_means_one_student_pass_on_the_labeled_batch():
    student, teacher = tiny_pair()
    task = DistillTask(student, teacher, KD.__new__(KD), LossWeights(alpha=0.9))
    torch.nn.Module.__init__(task.method)
    s_seen, t_seen = record_inputs(student), record_inputs(teacher)
    batch = Batch(torch.randn(4, 1, 40), torch.tensor([0, 1, 2, 3]))
    task(batch, Progress(1, 1))
    assert len(s_seen) == 1 and torch.equal(s_seen[0], batch.x) and torch.equal(t_seen[0], batch.x)
