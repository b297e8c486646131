"""CC in both forms, from their definitions, in plain numpy, with fixed embedding weights.

e = x W^T + b (the 128-d linear embeddings, here 4-d with fixed weights).
reference (RepDistiller, authors' code): delta = |e_s - e_t|; mean over i of sum_d delta_i,d delta_i+1,d.
gaussian (Peng et al., ICCV 2019, eq. 6-8): C_ij = exp(-gamma ||u_i - u_j||^2) for unit u, written as
its Taylor series sum_{p<=P} exp(-2 gamma) (2 gamma)^p / p! (u_i . u_j)^p; loss = 1/B^2 ||C_s - C_t||_F^2.
"""

import math

import numpy as np


def kernel(e, gamma, order):
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    b = len(u)
    c = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            x = float(u[i] @ u[j])
            c[i, j] = sum(math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * x**p for p in range(order + 1))
    return c


def golden() -> dict:
    rng = np.random.default_rng(4)
    x_s, x_t = rng.normal(size=(5, 6)), rng.normal(size=(5, 8))
    w_s, b_s = rng.normal(size=(4, 6)) * 0.5, rng.normal(size=4) * 0.1
    w_t, b_t = rng.normal(size=(4, 8)) * 0.5, rng.normal(size=4) * 0.1
    e_s, e_t = x_s @ w_s.T + b_s, x_t @ w_t.T + b_t
    delta = np.abs(e_s - e_t)
    reference = float(np.mean([np.sum(delta[i] * delta[i + 1]) for i in range(len(delta) - 1)]))
    gaussian = float(np.mean((kernel(e_s, 0.4, 2) - kernel(e_t, 0.4, 2)) ** 2))
    return {"pooled_s": x_s.tolist(), "pooled_t": x_t.tolist(), "w_s": w_s.tolist(), "b_s": b_s.tolist(),
            "w_t": w_t.tolist(), "b_t": b_t.tolist(), "reference": reference, "gaussian": gaussian}


def check(g: dict) -> None:
    from _kdrun import Features, approx, batch_of, progress, set_embeddings, t64, vector_context
    from kdrun.methods.cc import CC

    s, t = t64(g["pooled_s"]), t64(g["pooled_t"])
    for form in ("reference", "gaussian"):
        method = CC(vector_context(6, 8), feat_dim=4, form=form).double()
        set_embeddings(method, g)
        terms = method(Features(s, pooled=s), Features(t, pooled=t), batch_of(5), progress())
        assert terms["cc"].item() == approx(g[form], rel=1e-10), form
