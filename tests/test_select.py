"""Selective distillation (distill.select): the mask, the scaling, gradients only from selected samples,
the warm-up, the logged share, and one-line refusals."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import TINY, compose_config, read_metrics
from in_process import run_here
from kdrun.config.checks import check_config
from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.base import LossWeights, Method
from kdrun.methods.dkd import DKD
from kdrun.methods.kd import kd_loss
from kdrun.tasks.distill import DistillTask
from kdrun.tasks.select import SampleSelection

B, C = 8, 5


class Logits(nn.Module):
    """A 'model' whose logits are its input: the gradient w.r.t. the input is the gradient w.r.t. the logits."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, C, generator=g) * 2
    t = torch.randn(B, C, generator=g) * 3
    y = torch.randint(0, C, (B,), generator=g)
    return s, t, y


class Fixed(nn.Module):
    """A teacher that answers ``t`` whatever it is given."""

    def __init__(self, t: torch.Tensor) -> None:
        super().__init__()
        self.t = t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.t.clone()


def _step(select: SampleSelection | None, method: Method | None = None, weights=None, epoch: int = 5, seed: int = 0):
    s, t, y = _inputs(seed)
    x = s.clone().requires_grad_(True)
    task = DistillTask(Logits(), Fixed(t), method or Method(None),
                       weights or LossWeights(T=4.0, alpha=1.0, gamma=0.0, beta=0.0), select=select)
    out = task(Batch(x, y), Progress(epoch, 10))
    out.loss.backward()
    return out, x.grad, s, t, y


def test_student_ce_fraction_picks_the_highest_ce():
    s, t, y = _inputs()
    mask = SampleSelection("student_ce", fraction=0.25).mask(s, t, y)
    ce = F.cross_entropy(s, y, reduction="none")
    assert mask.sum() == 2 and set(mask.nonzero().flatten().tolist()) == set(ce.topk(2).indices.tolist())


def test_teacher_confidence_picks_the_least_confident_and_thresholds():
    s, t, y = _inputs()
    conf = F.softmax(t, 1).amax(1)
    mask = SampleSelection("teacher_confidence", fraction=0.5).mask(s, t, y)
    assert set(mask.nonzero().flatten().tolist()) == set((-conf).topk(4).indices.tolist())
    limit = conf.median().item()
    assert torch.equal(SampleSelection("teacher_confidence", threshold=limit).mask(s, t, y), conf < limit)
    ce = F.cross_entropy(s, y, reduction="none")
    assert torch.equal(SampleSelection("student_ce", threshold=1.0).mask(s, t, y), ce > 1.0)


def test_teacher_correct_is_a_filter():
    s, t, y = _inputs()
    y[:3] = t[:3].argmax(1)
    mask = SampleSelection("teacher_correct").mask(s, t, y)
    assert torch.equal(mask, t.argmax(1) == y) and mask[:3].all()


def test_kd_gradients_only_from_selected_samples_and_the_sum_over_the_batch():
    select = SampleSelection("student_ce", fraction=0.5)
    out, grad, s, t, y = _step(select)
    mask = select.mask(s, t, y)
    assert mask.sum() == 4
    assert (grad[~mask] == 0).all() and (grad[mask].abs().sum(1) > 0).all()
    per_sample = torch.stack([kd_loss(s[i:i + 1], t[i:i + 1], 4.0) for i in range(B)])
    torch.testing.assert_close(out.terms["kd"], per_sample[mask].sum() / B)  # the paper: sum over selected / B
    assert out.terms["selected"].item() == 0.5


def test_ce_still_sees_every_sample():
    select = SampleSelection("student_ce", fraction=0.25)
    _, grad, s, t, y = _step(select, weights=LossWeights(T=4.0, alpha=0.9, gamma=0.1))
    assert (grad.abs().sum(1) > 0).all()


def test_dkd_is_selected_too():
    select = SampleSelection("teacher_confidence", fraction=0.5)
    dkd = DKD(None, warmup_epochs=0)
    out, grad, s, t, y = _step(select, method=dkd, weights=LossWeights(T=4.0, alpha=0.0, gamma=0.0, beta=1.0))
    mask = select.mask(s, t, y)
    assert (grad[~mask] == 0).all() and (grad[mask].abs().sum(1) > 0).all()
    full = dkd(*_features(s[mask], t[mask]), Batch(s[mask], y[mask]), Progress(5, 10))
    for name in ("tckd", "nckd"):
        torch.testing.assert_close(out.terms[name], full[name] * mask.float().mean())


def _features(s, t):
    from kdrun.models.features import Features

    return Features(logits=s), Features(logits=t)


def test_warmup_distils_every_sample():
    select = SampleSelection("student_ce", fraction=0.25, warmup_epochs=2)
    out, grad, *_ = _step(select, epoch=2)
    assert out.terms["selected"].item() == 1.0 and (grad.abs().sum(1) > 0).all()
    out, grad, *_ = _step(select, epoch=3)
    assert out.terms["selected"].item() == 0.25 and (grad.abs().sum(1) == 0).sum() == 6


def test_nothing_selected_is_a_zero_term_not_nan():
    out, grad, *_ = _step(SampleSelection("student_ce", threshold=1e9))
    assert out.terms["kd"].item() == 0.0 and out.terms["selected"].item() == 0.0
    assert torch.isfinite(grad).all() and (grad == 0).all()


def test_off_costs_nothing_and_logs_nothing():
    plain, grad, *_ = _step(None)
    assert "selected" not in plain.terms
    everything, grad_all, *_ = _step(SampleSelection("student_ce", fraction=1.0))
    torch.testing.assert_close(plain.loss, everything.loss)
    torch.testing.assert_close(grad, grad_all)


@pytest.mark.parametrize("overrides, fragment", [
    (["distill.select.by=hardest"], "distill.select.by=hardest"),
    (["distill.select.by=student_ce"], "exactly one of"),
    (["distill.select.by=student_ce", "distill.select.fraction=1.5"], "(0, 1]"),
    (["distill.select.by=teacher_correct", "distill.select.fraction=0.5"], "is a filter"),
    (["distill.select.by=teacher_correct"], "distill.transfer_size=0"),  # mnist1d distils on a transfer set
    (["distill.select.by=student_ce", "distill.select.fraction=0.5", "distill.select.warmup_epochs=-1"],
     "warmup_epochs=-1"),
    (["distill.select.by=student_ce", "distill.select.fraction=0.5", "scheme=dml"], "scheme=dml"),
])
def test_bad_select_is_one_line(overrides, fragment):
    cfg = compose_config(overrides)
    with pytest.raises(KdrunError, match=None) as err:
        check_config(cfg, ("teacher", "baseline", "distilled", "self_distilled", "quantized", "mutual"))
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow  # two end-to-end runs; selection on its own above
def test_cli_logs_the_share_and_refuses_feature_methods(workdir, monkeypatch):
    select = ["distill.select.by=student_ce", "distill.select.fraction=0.5", "distill.select.warmup_epochs=1",
              "trainer.epochs=2", "trainer.max_epochs=2", "stages=[teacher,distilled]", "measure.enabled=false"]
    run_here([*TINY, *select, "hydra.run.dir=outputs/runs/sel"], workdir, monkeypatch)
    shares = [r["train_selected"] for r in read_metrics(workdir / "outputs/runs/sel") if r["stage"] == "distilled"]
    assert shares == [1.0, 0.5]  # warm-up epoch, then half of every batch
    # RKD: relations within the batch
    proc = run_here([*TINY, *select, "method=rkd"], workdir, monkeypatch, check=False)
    assert proc.returncode == 2 and "method=rkd uses features" in proc.stderr and "Traceback" not in proc.stderr


def test_share_is_a_tensorboard_scalar_of_its_own():
    from kdrun.loggers.base import epoch_scalars

    class Board:
        def __init__(self):
            self.tags = epoch_scalars("distilled", {"train_loss": 1.0, "train_kd": 0.5, "train_selected": 0.5,
                                                    "train_top1": 90.0, "val_top1": 80.0, "val_loss": 0.7, "lr": 0.05})

    tb = Board()
    assert tb.tags["distilled/selected"] == 0.5 and "distilled/loss/selected" not in tb.tags
    assert tb.tags["distilled/loss/kd"] == 0.5
