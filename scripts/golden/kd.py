"""Hinton KD term from its definition: T^2 * mean over the batch of sum_c p_t log(p_t / p_s)."""

import math

import torch


def golden() -> dict:
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(4, 5, generator=g, dtype=torch.float64) * 3).tolist()
    t = (torch.randn(4, 5, generator=g, dtype=torch.float64) * 3).tolist()
    out = {"student": s, "teacher": t}
    for T in (1.0, 4.0):
        total = 0.0
        for srow, trow in zip(s, t):
            zs = sum(math.exp(v / T) for v in srow)
            zt = sum(math.exp(v / T) for v in trow)
            for a, b in zip(srow, trow):
                pt, ps = math.exp(b / T) / zt, math.exp(a / T) / zs
                total += pt * math.log(pt / ps)
        out[f"T={T}"] = T * T * total / len(s)
    return out


def check(g: dict) -> None:
    from _kdrun import approx, t64
    from kdrun.methods.kd import kd_loss

    s, t = t64(g["student"]), t64(g["teacher"])
    for T in (1.0, 4.0):
        assert kd_loss(s, t, T).item() == approx(g[f"T={T}"], rel=1e-9)
