"""DKD, RKD, SP, CC, PKT: each loss against its independently computed formula
(scripts/golden/<method>.py -> tests/golden/<method>.json), invariants, gradients, configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose_config

from kdrun.build import build_method, loss_weights
from kdrun.data.base import DataInfo
from kdrun.engine.task import Batch, Progress
from kdrun.methods.base import LossWeights, MethodContext
from kdrun.methods.cc import CC
from kdrun.methods.dkd import DKD, nckd_loss, tckd_loss, warmup_factor
from kdrun.methods.kd import kd_loss
from kdrun.methods.pkt import PKT
from kdrun.methods.rkd import RKD, rkd_angle_loss, rkd_distance_loss
from kdrun.methods.sp import SP
from kdrun.models.features import FeatureInfo, Features
from kdrun.models.registry import create_model
from kdrun.schemes.distill_task import DistillTask

GOLDEN = Path(__file__).parent / "golden"
METHODS = ("dkd", "rkd", "sp", "cc", "pkt", "crd")
# (gamma, alpha, beta) of the reference table (../shared/reference/cifar100-benchmark.md)
REFERENCE_WEIGHTS = {"dkd": (1.0, 0.0, 1.0), "rkd": (1.0, 0.0, 1.0), "sp": (1.0, 0.0, 3000.0),
                     "cc": (1.0, 0.0, 0.02), "pkt": (1.0, 0.0, 30000.0), "crd": (1.0, 0.0, 0.8)}


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def t64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def vector_info(dim: int, classes: int = 7) -> FeatureInfo:
    return FeatureInfo(stage_channels=(dim,), stage_sizes=((),), pooled_dim=dim, num_classes=classes)


def context(student: FeatureInfo, teacher: FeatureInfo, targets: torch.Tensor | None = None) -> MethodContext:
    targets = torch.arange(40) % student.num_classes if targets is None else targets
    data = DataInfo("test", "signal", 1, (40,), student.num_classes, len(targets), 10)
    return MethodContext(student, teacher, data, targets)


def batch(y: list[int] | torch.Tensor) -> Batch:
    y = torch.as_tensor(y)
    return Batch(torch.zeros(len(y), 1), y, torch.arange(len(y)))


# --- golden values ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_dkd_terms_match_the_paper(T):
    g = golden("dkd")
    s, t, y = t64(g["student"]), t64(g["teacher"]), torch.tensor(g["target"])
    assert tckd_loss(s, t, y, T).item() == pytest.approx(g[f"tckd_T={T}"], rel=1e-10)
    assert nckd_loss(s, t, y, T).item() == pytest.approx(g[f"nckd_T={T}"], rel=1e-10)


def test_dkd_method_weights_and_warms_up_its_terms():
    g = golden("dkd")
    method = DKD(context(vector_info(4), vector_info(4)))
    terms = method(Features(t64(g["student"])), Features(t64(g["teacher"])), batch(g["target"]), Progress(10, 240))
    assert {k: v.item() for k, v in terms.items()} == pytest.approx(g["terms_epoch10"], rel=1e-10)


def test_rkd_matches_the_paper():
    g = golden("rkd")
    s, t = t64(g["student"]), t64(g["teacher"])
    assert rkd_distance_loss(s, t).item() == pytest.approx(g["distance"], rel=1e-9)
    assert rkd_angle_loss(s, t).item() == pytest.approx(g["angle"], rel=1e-9)
    method = RKD(context(vector_info(5), vector_info(9)))
    terms = method(Features(s[:, :1], pooled=s), Features(t[:, :1], pooled=t), batch([0] * 6), Progress(1, 1))
    assert {k: v.item() for k, v in terms.items()} == pytest.approx(g["terms"], rel=1e-9)


def test_sp_matches_the_paper():
    g = golden("sp")
    s, t = t64(g["student"]), t64(g["teacher"])
    method = SP(context(vector_info(48), vector_info(24)))
    terms = method(Features(s[:, 0, 0], stages=[s]), Features(t[:, 0, 0], stages=[t]), batch([0] * 5), Progress(1, 1))
    assert terms["sp"].item() == pytest.approx(g["sp"], rel=1e-10)


def test_pkt_matches_the_paper():
    g = golden("pkt")
    s, t = t64(g["student"]), t64(g["teacher"])
    terms = PKT(context(vector_info(4), vector_info(10)))(Features(s, pooled=s), Features(t, pooled=t),
                                                          batch([0] * 6), Progress(1, 1))
    assert terms["pkt"].item() == pytest.approx(g["pkt"], rel=1e-9)


@pytest.mark.parametrize("form", ["reference", "gaussian"])
def test_cc_matches_its_formula_with_fixed_embeddings(form):
    g = golden("cc")
    method = CC(context(vector_info(6), vector_info(8)), feat_dim=4, form=form).double()
    with torch.no_grad():
        for embed, key in ((method.embed_s, "s"), (method.embed_t, "t")):
            embed.linear.weight.copy_(t64(g[f"w_{key}"]))
            embed.linear.bias.copy_(t64(g[f"b_{key}"]))
    s, t = t64(g["pooled_s"]), t64(g["pooled_t"])
    terms = method(Features(s, pooled=s), Features(t, pooled=t), batch([0] * 5), Progress(1, 1))
    assert terms["cc"].item() == pytest.approx(g[form], rel=1e-10)


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


# --- through the task: gradients, KD combination, configs ---------------------------------------------------------


def cross_family_pair():
    """mlp student, cnn1d teacher on 1 x 40 signals (MNIST-1D's shape), 7 classes."""
    torch.manual_seed(0)
    student = create_model("mlp", num_classes=7, in_channels=1, input_size=(40,), hidden=[16, 12])
    teacher = create_model("cnn1d", num_classes=7, in_channels=1, input_size=(40,), channels=[6, 8])
    return student, teacher


def built_method(name: str, student, teacher, extra: list[str] = ()):
    cfg = compose_config([f"method={name}", *extra])
    targets = torch.arange(60) % 7
    ctx = MethodContext(student.feature_info, teacher.feature_info,
                        DataInfo("test", "signal", 1, (40,), 7, 60, 10), targets)
    return build_method(cfg, ctx), loss_weights(cfg)


@pytest.mark.parametrize("name", METHODS)
def test_config_sets_the_reference_weights(name):
    w = loss_weights(compose_config([f"method={name}"]))
    assert (w.ce_weight, w.alpha, w.beta) == REFERENCE_WEIGHTS[name]


@pytest.mark.parametrize("name", METHODS)
def test_gradients_reach_student_and_extra_modules_never_the_teacher(name):
    student, teacher = cross_family_pair()
    method, weights = built_method(name, student, teacher)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    task = DistillTask(student, teacher, method, weights)
    x, y = torch.randn(10, 1, 40), torch.randint(0, 7, (10,))
    out = task(Batch(x, y, torch.arange(10) * 5), Progress(3, 10))
    out.loss.backward()
    assert all(p.grad is not None for p in student.parameters())
    assert sum(p.grad.abs().sum() for p in student.parameters()) > 0
    for pname, p in method.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient for {pname}"
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    trainable = {id(p) for p in task.trainable_parameters()}
    assert not trainable & {id(p) for p in teacher.parameters()}
    assert trainable >= {id(p) for p in method.parameters()}
    assert not any(k.startswith("teacher") for k in task.state_dict())
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items())


@pytest.mark.parametrize("name", METHODS)
def test_every_method_combines_with_the_kd_term(name):
    student, teacher = cross_family_pair()
    method, _ = built_method(name, student, teacher, ["distill.alpha=1"])
    weights = LossWeights(T=4.0, alpha=1.0, gamma=1.0, beta=REFERENCE_WEIGHTS[name][2])
    out = DistillTask(student, teacher, method, weights)(
        Batch(torch.randn(10, 1, 40), torch.randint(0, 7, (10,)), torch.arange(10)), Progress(1, 1))
    own = {k: v for k, v in out.terms.items() if k not in ("ce", "kd")}
    assert "kd" in out.terms and own
    expected = out.terms["ce"] + out.terms["kd"] + weights.beta * sum(own.values())
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


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


@pytest.mark.parametrize("name", METHODS)
def test_methods_run_under_bf16_autocast_with_float32_terms(name):
    student, teacher = cross_family_pair()
    method, weights = built_method(name, student, teacher)
    task = DistillTask(student, teacher, method, weights)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = task(Batch(torch.randn(10, 1, 40), torch.randint(0, 7, (10,)), torch.arange(10)), Progress(1, 1))
    own = [v for k, v in out.terms.items() if k not in ("ce", "kd")]
    assert own and all(v.dtype == torch.float32 and torch.isfinite(v) for v in own)
    out.loss.backward()
