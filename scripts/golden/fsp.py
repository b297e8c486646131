"""FSP (Yim et al. 2017) from its formula: G_ij = mean over positions of F1_i * F2_j between consecutive maps.

The larger of the two maps is average-pooled to the smaller; the loss is the sum over consecutive
pairs (stem and stage outputs) of the mean squared difference of student and teacher matrices.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _maps import listed, match_sizes, rng  # noqa: E402


def fsp(bottom: np.ndarray, top: np.ndarray) -> np.ndarray:
    bottom, top = match_sizes(bottom, top)
    out = np.zeros((len(bottom), top.shape[1], bottom.shape[1]))
    for n in range(len(bottom)):
        b, t = bottom[n].reshape(bottom.shape[1], -1), top[n].reshape(top.shape[1], -1)
        for j in range(t.shape[0]):
            for i in range(b.shape[0]):
                out[n, j, i] = (t[j] * b[i]).mean()
    return out


def golden() -> dict:
    g = rng(3)
    shapes = [(2, 3, 4, 4), (2, 3, 4, 4), (2, 4, 2, 2), (2, 5, 2, 2)]
    student = [g.normal(size=s) for s in shapes]
    teacher = [g.normal(size=s) * 1.5 for s in shapes]
    total = sum(((fsp(student[i], student[i + 1]) - fsp(teacher[i], teacher[i + 1])) ** 2).mean()
                for i in range(len(shapes) - 1))
    return {"student": [listed(x) for x in student], "teacher": [listed(x) for x in teacher], "fsp": float(total)}


def check(g: dict) -> None:
    from _kdrun import approx, batch_of, map_context, maps, progress, t64
    from kdrun.methods.fsp import FSP

    s, t = [t64(v) for v in g["student"]], [t64(v) for v in g["teacher"]]
    value = FSP(map_context(s, t)).init_terms(maps(s), maps(t), batch_of(2), progress())["fsp"]
    assert value.item() == approx(g["fsp"], rel=1e-9)
