"""Attention transfer (Zagoruyko & Komodakis 2017, as coded by the authors and RepDistiller), from its formula.

Per stage: Q = channel mean of f^2, flattened, L2-normalized per sample; loss = mean over batch
and positions of (Q_s - Q_t)^2 after average-pooling the larger map to the smaller; summed over stages.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _maps import l2_normalize, listed, match_sizes, rng  # noqa: E402


def attention(f: np.ndarray, p: float) -> np.ndarray:
    return l2_normalize((f ** p).mean(axis=1).reshape(len(f), -1))


def golden() -> dict:
    g = rng(1)
    student = [g.normal(size=(2, 3, 2, 2)), g.normal(size=(2, 3, 4, 4)), g.normal(size=(2, 4, 4, 4))]
    teacher = [g.normal(size=(2, 5, 2, 2)), g.normal(size=(2, 5, 2, 2)), g.normal(size=(2, 6, 4, 4))]
    total = 0.0
    for s, t in zip(student[1:], teacher[1:]):  # stages 1..n-1
        s, t = match_sizes(s, t)
        total += ((attention(s, 2.0) - attention(t, 2.0)) ** 2).mean()
    return {"student": [listed(x) for x in student], "teacher": [listed(x) for x in teacher], "at": float(total)}


def check(g: dict) -> None:
    from _kdrun import approx, batch_of, map_context, maps, progress, t64
    from kdrun.methods.at import AT

    s, t = [t64(v) for v in g["student"]], [t64(v) for v in g["teacher"]]
    assert AT(map_context(s, t))(maps(s), maps(t), batch_of(2), progress())["at"].item() == approx(g["at"], rel=1e-9)
