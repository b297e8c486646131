"""kdrun's losses against the golden values (``scripts/golden/<name>.py`` -> ``tests/golden/<name>.json``).

One function per method, registered under its config name with ``@golden_check``; test_methods.py
runs it for every method config, so a method without a check fails there. The golden scripts
compute each published formula independently (plain numpy/torch); these functions feed the same
inputs to kdrun's implementation and compare.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from kdrun.data.base import DataInfo
from kdrun.methods.base import MethodContext
from kdrun.models.features import FeatureInfo, Features

CHECKS: dict[str, Callable[[dict], None]] = {}
IMAGES = DataInfo("fake", "image", 3, (8, 8), 4, 16, 8)


def golden_check(name: str) -> Callable:
    def register(fn: Callable[[dict], None]) -> Callable[[dict], None]:
        CHECKS[name] = fn
        return fn
    return register


def approx_equal(got, want, where: str, rel: float = 1e-9) -> None:
    """Nested JSON values equal up to ``rel`` (BLAS may change the last bits between machines)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            approx_equal(got[k], want[k], f"{where}.{k}", rel)
    elif isinstance(want, list):
        assert isinstance(got, list | tuple) and len(got) == len(want), f"{where}: length differs"
        for i, (a, b) in enumerate(zip(got, want)):
            approx_equal(a, b, f"{where}[{i}]", rel)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=rel, abs=1e-300), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got} != {want}"


def t64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def batch_of(n: int, y=None, index=None):
    from kdrun.engine.task import Batch

    return Batch(torch.zeros(n, 1), torch.zeros(n, dtype=torch.long) if y is None else torch.as_tensor(y), index)


def progress(epoch: int = 1, epochs: int = 1):
    from kdrun.engine.task import Progress

    return Progress(epoch, epochs)


# --- contexts: feature maps (shapes taken from the golden inputs) and vectors --------------------------------------


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


# --- logits ---------------------------------------------------------------------------------------------------------


@golden_check("kd")
def check_kd(g: dict) -> None:
    from kdrun.methods.kd import kd_loss

    s, t = t64(g["student"]), t64(g["teacher"])
    for T in (1.0, 4.0):
        assert kd_loss(s, t, T).item() == pytest.approx(g[f"T={T}"], rel=1e-9)


@golden_check("dkd")
def check_dkd(g: dict) -> None:
    from kdrun.methods.dkd import DKD, nckd_loss, tckd_loss

    s, t, y = t64(g["student"]), t64(g["teacher"]), torch.tensor(g["target"])
    for T in (1.0, 4.0):
        assert tckd_loss(s, t, y, T).item() == pytest.approx(g[f"tckd_T={T}"], rel=1e-10)
        assert nckd_loss(s, t, y, T).item() == pytest.approx(g[f"nckd_T={T}"], rel=1e-10)
    method = DKD(vector_context(4, 4))  # the method weights and warms up its terms (epoch 10 of 240)
    terms = method(Features(s), Features(t), batch_of(len(y), y, torch.arange(len(y))), progress(10, 240))
    assert {k: v.item() for k, v in terms.items()} == pytest.approx(g["terms_epoch10"], rel=1e-10)


# --- feature maps ---------------------------------------------------------------------------------------------------


@golden_check("at")
def check_at(g: dict) -> None:
    from kdrun.methods.at import AT

    s, t = [t64(v) for v in g["student"]], [t64(v) for v in g["teacher"]]
    assert AT(map_context(s, t))(maps(s), maps(t), batch_of(2), progress())["at"].item() == pytest.approx(g["at"], rel=1e-9)


@golden_check("nst")
def check_nst(g: dict) -> None:
    from kdrun.methods.nst import NST

    s, t = [t64(v) for v in g["student"]], [t64(v) for v in g["teacher"]]
    value = NST(map_context(s, t))(maps(s), maps(t), batch_of(3), progress())["nst"]
    assert value.item() == pytest.approx(g["nst"], rel=1e-9)


@golden_check("fsp")
def check_fsp(g: dict) -> None:
    from kdrun.methods.fsp import FSP

    s, t = [t64(v) for v in g["student"]], [t64(v) for v in g["teacher"]]
    value = FSP(map_context(s, t)).init_terms(maps(s), maps(t), batch_of(2), progress())["fsp"]
    assert value.item() == pytest.approx(g["fsp"], rel=1e-9)


@golden_check("ft")
def check_ft(g: dict) -> None:
    from kdrun.methods.ft import ft_loss

    fs, ft = t64(g["factor_s"]), t64(g["factor_t"])
    for form in ("map", "paper"):
        assert ft_loss(fs, ft, form).item() == pytest.approx(g[form], rel=1e-9)


@golden_check("ab")
def check_ab(g: dict) -> None:
    from kdrun.methods.ab import AB

    s, t = [t64(v) for v in g["student"]], [t64(v) for v in g["teacher"]]
    stem = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    method = AB(map_context([stem, *s], [stem, *t]))  # equal shapes: identity connectors
    value = method.init_terms(maps([stem, *s], preact=True), maps([stem, *t], preact=True), batch_of(2), progress())
    assert value["ab"].item() == pytest.approx(g["ab"], rel=1e-9)


@golden_check("fitnet")
def check_fitnet(g: dict) -> None:
    from kdrun.methods.fitnet import FitNet

    s, t = t64(g["student"]), t64(g["teacher"])
    method = FitNet(map_context([s, s, s], [t, t, t])).double()
    with torch.no_grad():
        method.regressor.conv.weight.copy_(t64(g["weight"])[:, :, None, None])
        method.regressor.conv.bias.copy_(t64(g["bias"]))
    value = method(maps([s, s, s]), maps([t, t, t]), batch_of(4), progress())["hint"]
    assert value.item() == pytest.approx(g["hint"], rel=1e-9)


@golden_check("vid")
def check_vid(g: dict) -> None:
    from kdrun.methods.vid import VID

    s, t = [t64(v) for v in g["student"]], [t64(v) for v in g["teacher"]]
    method = VID(map_context(s, t)).double()
    with torch.no_grad():
        for k, (w, log_scale) in enumerate(zip(g["weights"], g["log_scales"])):
            for layer, weight in zip((0, 2, 4), w):
                method.regressors[k][layer].weight.copy_(t64(weight)[:, :, None, None])
            method.log_scales[k].copy_(t64(log_scale))
    assert method(maps(s), maps(t), batch_of(2), progress())["vid"].item() == pytest.approx(g["vid"], rel=1e-9)


# --- relations and embeddings ---------------------------------------------------------------------------------------


@golden_check("rkd")
def check_rkd(g: dict) -> None:
    from kdrun.methods.rkd import RKD, rkd_angle_loss, rkd_distance_loss

    s, t = t64(g["student"]), t64(g["teacher"])
    assert rkd_distance_loss(s, t).item() == pytest.approx(g["distance"], rel=1e-9)
    assert rkd_angle_loss(s, t).item() == pytest.approx(g["angle"], rel=1e-9)
    terms = RKD(vector_context(5, 9))(Features(s[:, :1], pooled=s), Features(t[:, :1], pooled=t), batch_of(6),
                                      progress())
    assert {k: v.item() for k, v in terms.items()} == pytest.approx(g["terms"], rel=1e-9)


@golden_check("sp")
def check_sp(g: dict) -> None:
    from kdrun.methods.sp import SP

    s, t = t64(g["student"]), t64(g["teacher"])
    terms = SP(vector_context(48, 24))(Features(s[:, 0, 0], stages=[s]), Features(t[:, 0, 0], stages=[t]),
                                       batch_of(5), progress())
    assert terms["sp"].item() == pytest.approx(g["sp"], rel=1e-10)


@golden_check("pkt")
def check_pkt(g: dict) -> None:
    from kdrun.methods.pkt import PKT

    s, t = t64(g["student"]), t64(g["teacher"])
    terms = PKT(vector_context(4, 10))(Features(s, pooled=s), Features(t, pooled=t), batch_of(6), progress())
    assert terms["pkt"].item() == pytest.approx(g["pkt"], rel=1e-9)


def set_embeddings(method: torch.nn.Module, g: dict) -> None:
    with torch.no_grad():
        for embed, key in ((method.embed_s, "s"), (method.embed_t, "t")):
            embed.linear.weight.copy_(t64(g[f"w_{key}"]))
            embed.linear.bias.copy_(t64(g[f"b_{key}"]))


@golden_check("cc")
def check_cc(g: dict) -> None:
    from kdrun.methods.cc import CC

    s, t = t64(g["pooled_s"]), t64(g["pooled_t"])
    for form in ("reference", "gaussian"):
        method = CC(vector_context(6, 8), feat_dim=4, form=form).double()
        set_embeddings(method, g)
        terms = method(Features(s, pooled=s), Features(t, pooled=t), batch_of(5), progress())
        assert terms["cc"].item() == pytest.approx(g[form], rel=1e-10), form


class FixedNegatives(torch.nn.Module):
    """CRD's sampler replaced by the golden script's draws."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[torch.Tensor] = []

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.queue.pop(0)


@golden_check("crd")
def check_crd(g: dict) -> None:
    """Two batches: the loss, then the memory banks and normalizers the first batch left behind."""
    from kdrun.methods.crd import CRD

    targets = torch.tensor(g["targets"])
    method = CRD(vector_context(6, 8, targets, classes=3), feat_dim=4, nce_k=5).double()
    with torch.no_grad():
        method.memory.memory_s.copy_(t64(g["memory_s"]))
        method.memory.memory_t.copy_(t64(g["memory_t"]))
    set_embeddings(method, g)
    method.sampler = FixedNegatives()
    for b in g["batches"]:
        method.sampler.queue.append(torch.tensor(b["negatives"]))
        s, t = t64(b["pooled_s"]), t64(b["pooled_t"])
        terms = method(Features(s, pooled=s), Features(t, pooled=t), batch_of(3, index=torch.tensor(b["index"])),
                       progress())
        assert terms["crd_s"].item() == pytest.approx(b["crd_s"], rel=1e-9)
        assert terms["crd_t"].item() == pytest.approx(b["crd_t"], rel=1e-9)
    assert method.memory.normalizer.tolist() == pytest.approx(g["normalizer"], rel=1e-10)
    assert torch.allclose(method.memory.memory_s, t64(g["memory_s_after"]), atol=1e-12)
    assert torch.allclose(method.memory.memory_t, t64(g["memory_t_after"]), atol=1e-12)


# --- transformers (token inputs): hidden states, query/key/value projections, attention mask -----------------------

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


@golden_check("distilbert")
def check_distilbert(g: dict) -> None:
    from kdrun.methods.distilbert import DistilBERT

    s, t = text_pair(g)
    assert DistilBERT(text_context(g))(s, t, batch_of(2), progress())["cos"].item() == pytest.approx(g["cos"], rel=1e-9)


@golden_check("tinybert")
def check_tinybert(g: dict) -> None:
    from kdrun.methods.tinybert import TinyBERT

    s, t = text_pair(g)
    method = TinyBERT(text_context(g)).double()
    with torch.no_grad():
        method.fit_dense.weight.copy_(t64(g["fit_weight"]))
        method.fit_dense.bias.copy_(t64(g["fit_bias"]))
    terms = method.init_terms(s, t, batch_of(2), progress())
    assert terms["att"].item() == pytest.approx(g["att"], rel=1e-9)
    assert terms["hidden"].item() == pytest.approx(g["hidden"], rel=1e-9)
    for T in (1.0, 2.0):
        method = TinyBERT(text_context(g), temperature=T)
        assert method(s, t, batch_of(2), progress())["pred"].item() == pytest.approx(g[f"pred_T={T}"], rel=1e-9)


@golden_check("minilm")
def check_minilm(g: dict) -> None:
    from kdrun.methods.minilm import MiniLM

    s, t = text_pair(g)
    v1 = MiniLM(text_context(g))(s, t, batch_of(2), progress())
    assert {k: v.item() for k, v in v1.items()} == pytest.approx(g["v1"], rel=1e-9)
    v2 = MiniLM(text_context(g), relation_heads=4)(s, t, batch_of(2), progress())
    assert {k: v.item() for k, v in v2.items()} == pytest.approx(g["v2"], rel=1e-9)
    layers = MiniLM(text_context(g), relation_heads=4, teacher_layer=1, student_layer=0)(s, t, batch_of(2), progress())
    assert layers["qq"].item() == pytest.approx(g["qq_layers_t1_s0"], rel=1e-9)
