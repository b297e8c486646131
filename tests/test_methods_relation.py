"""DKD, RKD, SP, CC, PKT: invariants, reference weights, options. Golden values, gradients, the sum with
the KD term and bf16 autocast are checked for every method in test_methods.py."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_config

from kdrun.tasks.build import loss_weights
from kdrun.data.base import DataInfo
from kdrun.engine.task import Batch, Progress
from kdrun.methods.base import LossWeights, MethodContext
from kdrun.methods.cc import CC
from kdrun.methods.dkd import DKD, nckd_loss, tckd_loss, warmup_factor
from kdrun.methods.kd import kd_loss
from kdrun.methods.pkt import PKT
from kdrun.methods.rkd import RKD
from kdrun.methods.sp import SP
from kdrun.models.features import FeatureInfo, Features
from kdrun.tasks.distill import DistillTask

# (gamma, alpha, beta) of the reference table (../shared/reference/cifar100-benchmark.md)
REFERENCE_WEIGHTS = {"dkd": (1.0, 0.0, 1.0), "rkd": (1.0, 0.0, 1.0), "sp": (1.0, 0.0, 3000.0),
                     "cc": (1.0, 0.0, 0.02), "pkt": (1.0, 0.0, 30000.0), "crd": (1.0, 0.0, 0.8)}


def vector_info(dim: int, classes: int = 7) -> FeatureInfo:
    return FeatureInfo(stage_channels=(dim,), stage_sizes=((),), pooled_dim=dim, num_classes=classes)


def context(student: FeatureInfo, teacher: FeatureInfo, targets: torch.Tensor | None = None) -> MethodContext:
    targets = torch.arange(40) % student.num_classes if targets is None else targets
    data = DataInfo("test", "signal", 1, (40,), student.num_classes, len(targets), 10)
    return MethodContext(student, teacher, data, targets)


def batch(y: list[int] | torch.Tensor) -> Batch:
    y = torch.as_tensor(y)
    return Batch(torch.zeros(len(y), 1), y, torch.arange(len(y)))


# --- invariants -------------------------------------------------------------------------------------------------


def test_dkd_warmup_is_linear_over_one_based_epochs():
    assert [warmup_factor(e, 20) for e in (1, 10, 20, 30)] == [0.05, 0.5, 1.0, 1.0]
    assert warmup_factor(1, 0) == 1.0


def test_dkd_is_zero_for_identical_logits_and_decomposes_kd():
    torch.manual_seed(0)
    z, y = torch.randn(16, 10, dtype=torch.float64) * 3, torch.randint(0, 10, (16,))
    assert tckd_loss(z, z.clone(), y, 4.0).item() == pytest.approx(0.0, abs=1e-12)
    assert nckd_loss(z, z.clone(), y, 4.0).item() == pytest.approx(0.0, abs=1e-12)
    # the paper's eq. 7 for one sample: KD = TCKD + (1 - p_t^target) * NCKD
    s, t, y1 = z[:1], torch.randn(1, 10, dtype=torch.float64) * 3, y[:1]
    p_t = torch.softmax(t / 4.0, dim=1)[0, y1[0]]
    decomposed = tckd_loss(s, t, y1, 4.0) + (1 - p_t) * nckd_loss(s, t, y1, 4.0)
    assert decomposed.item() == pytest.approx(kd_loss(s, t, 4.0).item(), rel=1e-9)


def relation_losses(name: str, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    method = {"rkd": RKD, "sp": SP, "pkt": PKT}[name](context(vector_info(s.shape[1]), vector_info(t.shape[1])))
    terms = method(Features(s, [s], pooled=s), Features(t, [t], pooled=t), batch([0] * len(s)), Progress(1, 1))
    return sum(terms.values())


@pytest.mark.parametrize("name", ["rkd", "sp", "pkt"])
def test_relation_losses_vanish_for_identical_and_rescaled_features(name):
    torch.manual_seed(1)
    f = torch.randn(8, 12, dtype=torch.float64)
    assert relation_losses(name, f, f.clone()).item() == pytest.approx(0.0, abs=1e-10)
    # relations, not values: a teacher whose features are 3x larger teaches the same thing
    assert relation_losses(name, f, 3 * f).item() == pytest.approx(0.0, abs=1e-10)
    assert relation_losses(name, f, torch.randn(8, 12, dtype=torch.float64)).item() > 1e-6


@pytest.mark.parametrize("form", ["reference", "gaussian"])
def test_cc_is_zero_when_embeddings_agree(form):
    method = CC(context(vector_info(6), vector_info(6)), feat_dim=5, form=form)
    method.embed_t.load_state_dict(method.embed_s.state_dict())
    f = torch.randn(8, 6)
    terms = method(Features(f, pooled=f), Features(f, pooled=f.clone()), batch([0] * 8), Progress(1, 1))
    assert terms["cc"].item() == pytest.approx(0.0, abs=1e-7)


# --- configs and the task -----------------------------------------------------------------------------------------
# (gradients, the weighted sum with the KD term and bf16 autocast: every method, in test_methods.py)


@pytest.mark.parametrize("name", sorted(REFERENCE_WEIGHTS))
def test_config_sets_the_reference_weights(name):
    w = loss_weights(compose_config([f"method={name}"]))
    assert (w.ce_weight, w.alpha, w.beta) == REFERENCE_WEIGHTS[name]


class LogitsOnly(torch.nn.Linear):
    def forward_features(self, x, preact=False):  # pragma: no cover - must not be called
        raise AssertionError("a logit-only method must not extract features")


def test_dkd_never_extracts_features():
    student, teacher = LogitsOnly(6, 7), LogitsOnly(6, 7)
    method = DKD(context(vector_info(6), vector_info(6)))
    out = DistillTask(student, teacher, method, LossWeights(alpha=0.0, gamma=1.0, beta=1.0))(
        Batch(torch.randn(4, 6), torch.tensor([0, 1, 2, 3])), Progress(20, 20))
    assert set(out.terms) == {"ce", "tckd", "nckd"}


def test_cc_form_is_checked():
    from kdrun.errors import KdrunError

    with pytest.raises(KdrunError, match="method.form=taylor .*valid choices: gaussian, reference"):
        CC(context(vector_info(6), vector_info(6)), form="taylor")
