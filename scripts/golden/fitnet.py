"""FitNet hint (Romero et al. 2015, RepDistiller's single-stage form) from its formula.

The regressor is a 1x1 convolution (student and teacher maps of equal size) with weights fixed
here, then batch normalization in training mode (batch statistics over batch and positions,
biased variance, eps 1e-5, unit scale, zero shift), then ReLU; the hint loss is the mean squared
error to the teacher's map.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _maps import listed, rng  # noqa: E402


def golden() -> dict:
    g = rng(4)
    s = g.normal(size=(4, 2, 4, 4))
    t = np.abs(g.normal(size=(4, 3, 4, 4)))
    w = g.normal(size=(3, 2)) * 0.5
    b = g.normal(size=3) * 0.1
    z = np.einsum("oc,bchw->bohw", w, s) + b[None, :, None, None]
    mean = z.mean(axis=(0, 2, 3), keepdims=True)
    var = z.var(axis=(0, 2, 3), keepdims=True)
    r = np.maximum((z - mean) / np.sqrt(var + 1e-5), 0.0)
    return {"student": listed(s), "teacher": listed(t), "weight": listed(w), "bias": listed(b),
            "hint": float(((r - t) ** 2).mean())}


def check(g: dict) -> None:
    import torch
    from _kdrun import approx, batch_of, map_context, maps, progress, t64
    from kdrun.methods.fitnet import FitNet

    s, t = t64(g["student"]), t64(g["teacher"])
    method = FitNet(map_context([s, s, s], [t, t, t])).double()
    with torch.no_grad():
        method.regressor.conv.weight.copy_(t64(g["weight"])[:, :, None, None])
        method.regressor.conv.bias.copy_(t64(g["bias"]))
    value = method(maps([s, s, s]), maps([t, t, t]), batch_of(4), progress())["hint"]
    assert value.item() == approx(g["hint"], rel=1e-9)
