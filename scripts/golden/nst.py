"""Neuron selectivity transfer (Huang & Wang 2017) from its formula: squared MMD, kernel k(x, y) = (x.y)^2.

Per stage: each channel flattened over positions and L2-normalized; MMD^2 = mean_ij k(t_i, t_j) +
mean_ij k(s_i, s_j) - 2 mean_ij k(s_i, t_j), averaged over the batch; summed over stages 1..n-1.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _maps import l2_normalize, listed, match_sizes, rng  # noqa: E402


def mmd2(s: np.ndarray, t: np.ndarray) -> float:
    total = 0.0
    for sb, tb in zip(s, t):  # per sample: channels x positions
        sb = l2_normalize(sb.reshape(len(sb), -1))
        tb = l2_normalize(tb.reshape(len(tb), -1))
        k = lambda a, b: ((a @ b.T) ** 2).mean()  # noqa: E731
        total += k(tb, tb) + k(sb, sb) - 2 * k(sb, tb)
    return total / len(s)


def golden() -> dict:
    g = rng(2)
    student = [g.normal(size=(3, 2, 6, 6)), g.normal(size=(3, 4, 6, 6)), g.normal(size=(3, 3, 2, 2))]
    teacher = [g.normal(size=(3, 2, 6, 6)), g.normal(size=(3, 5, 3, 3)), g.normal(size=(3, 6, 2, 2))]
    total = sum(mmd2(*match_sizes(s, t)) for s, t in zip(student[1:], teacher[1:]))
    return {"student": [listed(x) for x in student], "teacher": [listed(x) for x in teacher], "nst": float(total)}


def check(g: dict) -> None:
    from _kdrun import approx, batch_of, map_context, maps, progress, t64
    from kdrun.methods.nst import NST

    s, t = [t64(v) for v in g["student"]], [t64(v) for v in g["teacher"]]
    value = NST(map_context(s, t))(maps(s), maps(t), batch_of(3), progress())["nst"]
    assert value.item() == approx(g["nst"], rel=1e-9)
