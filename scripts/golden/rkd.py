"""RKD from its definition (Park et al., CVPR 2019, eqs. 4-7), with explicit loops in numpy.

Distance potential: ||a_i - a_j|| / mu, mu = mean over pairs i != j; angle potential at vertex i:
cos of the angle between a_j - a_i and a_k - a_i (0 when either vector is zero). Huber (smooth-L1,
delta 1) between teacher and student potentials, averaged over all B^2 pairs and B^3 triples as in
the reference code. Weights 25 (distance) and 50 (angle).
"""

import itertools

import numpy as np


def huber(x):
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def distances(a):
    b = len(a)
    d = np.zeros((b, b))
    for i, j in itertools.product(range(b), range(b)):
        if i != j:
            d[i, j] = np.sqrt(np.sum((a[i] - a[j]) ** 2))
    return d / d[~np.eye(b, dtype=bool)].mean()


def angles(a):
    b = len(a)
    out = np.zeros((b, b, b))
    for i, j, k in itertools.product(range(b), range(b), range(b)):
        e, f = a[j] - a[i], a[k] - a[i]
        ne, nf = np.linalg.norm(e), np.linalg.norm(f)
        out[i, j, k] = 0.0 if ne == 0 or nf == 0 else e @ f / (ne * nf)
    return out


def golden() -> dict:
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(6, 5)), rng.normal(size=(6, 9)) * 2
    dist = float(np.mean([huber(x) for x in (distances(s) - distances(t)).ravel()]))
    angle = float(np.mean([huber(x) for x in (angles(s) - angles(t)).ravel()]))
    return {"student": s.tolist(), "teacher": t.tolist(), "distance": dist, "angle": angle,
            "terms": {"rkd_distance": 25 * dist, "rkd_angle": 50 * angle}}


def check(g: dict) -> None:
    from _kdrun import Features, approx, batch_of, progress, t64, vector_context
    from kdrun.methods.rkd import RKD, rkd_angle_loss, rkd_distance_loss

    s, t = t64(g["student"]), t64(g["teacher"])
    assert rkd_distance_loss(s, t).item() == approx(g["distance"], rel=1e-9)
    assert rkd_angle_loss(s, t).item() == approx(g["angle"], rel=1e-9)
    terms = RKD(vector_context(5, 9))(Features(s[:, :1], pooled=s), Features(t[:, :1], pooled=t), batch_of(6),
                                      progress())
    assert {k: v.item() for k, v in terms.items()} == approx(g["terms"], rel=1e-9)
