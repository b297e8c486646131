"""PKT from its definition (Passalis & Tefas, ECCV 2018, eqs. 9-12 with the cosine kernel), numpy loops.

K(a, b) = (cos(a, b) + 1) / 2; p_{j|i} = K(a_i, a_j) / sum_k K(a_i, a_k) (rows include i itself, as
the reference code does); loss = mean over (i, j) of p^t log(p^t / p^s), with the reference's eps 1e-7
inside the log and on the norms.
"""

import numpy as np

EPS = 1e-7


def conditional(a):
    u = a / (np.sqrt(np.sum(a**2, axis=1, keepdims=True)) + EPS)
    b = len(a)
    k = np.array([[(float(u[i] @ u[j]) + 1) / 2 for j in range(b)] for i in range(b)])
    return k / k.sum(axis=1, keepdims=True)


def golden() -> dict:
    rng = np.random.default_rng(3)
    s, t = rng.normal(size=(6, 4)), rng.normal(size=(6, 10))
    ps, pt = conditional(s), conditional(t)
    loss = float(np.mean(pt * np.log((pt + EPS) / (ps + EPS))))
    return {"student": s.tolist(), "teacher": t.tolist(), "pkt": loss}


def check(g: dict) -> None:
    from _kdrun import Features, approx, batch_of, progress, t64, vector_context
    from kdrun.methods.pkt import PKT

    s, t = t64(g["student"]), t64(g["teacher"])
    terms = PKT(vector_context(4, 10))(Features(s, pooled=s), Features(t, pooled=t), batch_of(6), progress())
    assert terms["pkt"].item() == approx(g["pkt"], rel=1e-9)
