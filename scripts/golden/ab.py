"""Activation-boundary loss (Heo et al. 2019, the authors' code and RepDistiller) from its formula.

Per stage i of n (pre-activation maps of stages 1..n-1, identity connectors for equal shapes):
sum over elements of (s + m)^2 where s > -m and t <= 0, plus (s - m)^2 where s <= m and t > 0;
weighted 2^(i - n + 1), summed, divided by the batch size, times 3/1000. Margin m = 1.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _maps import listed, rng  # noqa: E402


def boundary(s: np.ndarray, t: np.ndarray, m: float) -> float:
    total = 0.0
    for a, b in zip(s.ravel(), t.ravel()):
        if b <= 0 and a > -m:
            total += (a + m) ** 2
        elif b > 0 and a <= m:
            total += (a - m) ** 2
    return total


def golden() -> dict:
    g = rng(6)
    shapes = [(2, 3, 4, 4), (2, 4, 2, 2), (2, 5, 2, 2)]
    student = [g.normal(size=sh) * 1.5 for sh in shapes]
    teacher = [g.normal(size=sh) for sh in shapes]
    n = len(shapes)
    loss = sum(2.0 ** (i - n + 1) * boundary(s, t, 1.0) for i, (s, t) in enumerate(zip(student, teacher)))
    return {"student": [listed(x) for x in student], "teacher": [listed(x) for x in teacher],
            "ab": float(loss / 2 * 3 / 1000)}


def check(g: dict) -> None:
    import torch
    from _kdrun import approx, batch_of, map_context, maps, progress, t64
    from kdrun.methods.ab import AB

    s, t = [t64(v) for v in g["student"]], [t64(v) for v in g["teacher"]]
    stem = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    method = AB(map_context([stem, *s], [stem, *t]))  # equal shapes: identity connectors
    value = method.init_terms(maps([stem, *s], preact=True), maps([stem, *t], preact=True), batch_of(2), progress())
    assert value["ab"].item() == approx(g["ab"], rel=1e-9)
