"""SP from its definition (Tung & Mori, ICCV 2019, eqs. 1-4), with explicit loops in numpy.

G = Q Q^T for the flattened batch Q, each row divided by its L2 norm; loss = 1/b^2 ||G_t - G_s||_F^2.
"""

import numpy as np


def similarity(f):
    q = f.reshape(len(f), -1)
    b = len(q)
    g = np.array([[float(q[i] @ q[j]) for j in range(b)] for i in range(b)])
    return np.array([row / np.sqrt(np.sum(row**2)) for row in g])


def golden() -> dict:
    rng = np.random.default_rng(2)
    s, t = rng.normal(size=(5, 3, 4, 4)), rng.normal(size=(5, 6, 2, 2))
    b = len(s)
    loss = float(np.sum((similarity(t) - similarity(s)) ** 2) / (b * b))
    return {"student": s.tolist(), "teacher": t.tolist(), "sp": loss}


def check(g: dict) -> None:
    from _kdrun import Features, approx, batch_of, progress, t64, vector_context
    from kdrun.methods.sp import SP

    s, t = t64(g["student"]), t64(g["teacher"])
    terms = SP(vector_context(48, 24))(Features(s[:, 0, 0], stages=[s]), Features(t[:, 0, 0], stages=[t]),
                                       batch_of(5), progress())
    assert terms["sp"].item() == approx(g["sp"], rel=1e-10)
