"""Factor transfer loss (Kim et al. 2018) from its formulas, on given factors.

RepDistiller's form ("map"): factor = channel mean of f^2, flattened, L2-normalized; loss = mean
absolute difference. The paper's form ("paper"): the vectorized C x H x W factor L2-normalized;
loss = L1 norm of the difference, averaged over the batch. The larger factor map is average-pooled
to the smaller first.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _maps import l2_normalize, listed, match_sizes, rng  # noqa: E402


def golden() -> dict:
    g = rng(5)
    fs, ft = g.normal(size=(3, 4, 4, 4)), g.normal(size=(3, 4, 2, 2))
    s, t = match_sizes(fs, ft)
    flat = lambda f: f.reshape(len(f), -1)  # noqa: E731
    map_form = np.abs(l2_normalize(flat((s ** 2).mean(axis=1))) - l2_normalize(flat((t ** 2).mean(axis=1)))).mean()
    paper_form = np.abs(l2_normalize(flat(s)) - l2_normalize(flat(t))).sum(axis=1).mean()
    return {"factor_s": listed(fs), "factor_t": listed(ft), "map": float(map_form), "paper": float(paper_form)}


def check(g: dict) -> None:
    from _kdrun import approx, t64
    from kdrun.methods.ft import ft_loss

    fs, ft = t64(g["factor_s"]), t64(g["factor_t"])
    for form in ("map", "paper"):
        assert ft_loss(fs, ft, form).item() == approx(g[form], rel=1e-9)
