"""Variational information distillation (Ahn et al. 2019, as in the authors' code) from its formula.

Per stage 1..n-1: the larger map is average-pooled to the smaller; mu = W3 relu(W2 relu(W1 s))
(1x1 convolutions without bias, weights fixed here); variance = log(1 + exp(log_scale)) + eps per
channel; loss = mean of 0.5 * ((mu - t)^2 / variance + log variance); summed over stages.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _maps import listed, match_sizes, rng  # noqa: E402

EPS = 1e-5


def conv1x1(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.einsum("oc,bchw->bohw", w, x)


def golden() -> dict:
    g = rng(7)
    student = [g.normal(size=(2, 2, 4, 4)), g.normal(size=(2, 3, 4, 4)), g.normal(size=(2, 4, 2, 2))]
    teacher = [g.normal(size=(2, 2, 4, 4)), g.normal(size=(2, 5, 2, 2)), g.normal(size=(2, 6, 2, 2))]
    weights, log_scales, total = [], [], 0.0
    for s, t in zip(student[1:], teacher[1:]):
        s, t = match_sizes(s, t)
        c_s, c_t = s.shape[1], t.shape[1]
        w = [g.normal(size=(c_t, c_s)) * 0.5, g.normal(size=(c_t, c_t)) * 0.5, g.normal(size=(c_t, c_t)) * 0.5]
        log_scale = g.normal(size=c_t)
        mu = conv1x1(w[2], np.maximum(conv1x1(w[1], np.maximum(conv1x1(w[0], s), 0)), 0))
        var = (np.log1p(np.exp(log_scale)) + EPS)[None, :, None, None]
        total += (0.5 * ((mu - t) ** 2 / var + np.log(var))).mean()
        weights.append([listed(x) for x in w])
        log_scales.append(listed(log_scale))
    return {"student": [listed(x) for x in student], "teacher": [listed(x) for x in teacher],
            "weights": weights, "log_scales": log_scales, "vid": float(total)}


def check(g: dict) -> None:
    import torch
    from _kdrun import approx, batch_of, map_context, maps, progress, t64
    from kdrun.methods.vid import VID

    s, t = [t64(v) for v in g["student"]], [t64(v) for v in g["teacher"]]
    method = VID(map_context(s, t)).double()
    with torch.no_grad():
        for k, (w, log_scale) in enumerate(zip(g["weights"], g["log_scales"])):
            for layer, weight in zip((0, 2, 4), w):
                method.regressors[k][layer].weight.copy_(t64(weight)[:, :, None, None])
            method.log_scales[k].copy_(t64(log_scale))
    assert method(maps(s), maps(t), batch_of(2), progress())["vid"].item() == approx(g["vid"], rel=1e-9)
