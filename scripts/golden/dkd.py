"""DKD from the paper's definitions (Zhao et al., CVPR 2022, eqs. 1-7), in plain numpy.

TCKD = KL(b_t || b_s) of the binary split (p_target, 1 - p_target); NCKD = KL(p^_t || p^_s) of
the softmax over the non-target logits only (the target class removed, not masked). Both at
temperature T, times T^2, averaged over the batch. Warm-up: min(epoch / 20, 1).
"""

import numpy as np


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def kl(p, q):
    return float(np.sum(p * np.log(p / q)))


def tckd_nckd(s, t, y, T):
    tckd = nckd = 0.0
    for zs, zt, c in zip(s, t, y):
        ps, pt = softmax(zs / T), softmax(zt / T)
        tckd += kl(np.array([pt[c], 1 - pt[c]]), np.array([ps[c], 1 - ps[c]]))
        others = [k for k in range(len(zs)) if k != c]
        nckd += kl(softmax(zt[others] / T), softmax(zs[others] / T))
    return T * T * tckd / len(y), T * T * nckd / len(y)


def golden() -> dict:
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(6, 7)) * 3, rng.normal(size=(6, 7)) * 3
    y = rng.integers(0, 7, size=6)
    out = {"student": s.tolist(), "teacher": t.tolist(), "target": y.tolist()}
    for T in (1.0, 4.0):
        out[f"tckd_T={T}"], out[f"nckd_T={T}"] = tckd_nckd(s, t, y, T)
    # the method's terms at epoch 10 of a 20-epoch warm-up, tckd_weight 1, nckd_weight 8, T 4
    out["terms_epoch10"] = {"tckd": 0.5 * 1.0 * out["tckd_T=4.0"], "nckd": 0.5 * 8.0 * out["nckd_T=4.0"]}
    return out


def check(g: dict) -> None:
    import torch
    from _kdrun import Features, approx, batch_of, progress, t64, vector_context
    from kdrun.methods.dkd import DKD, nckd_loss, tckd_loss

    s, t, y = t64(g["student"]), t64(g["teacher"]), torch.tensor(g["target"])
    for T in (1.0, 4.0):
        assert tckd_loss(s, t, y, T).item() == approx(g[f"tckd_T={T}"], rel=1e-10)
        assert nckd_loss(s, t, y, T).item() == approx(g[f"nckd_T={T}"], rel=1e-10)
    method = DKD(vector_context(4, 4))  # the method weights and warms up its terms (epoch 10 of 240)
    terms = method(Features(s), Features(t), batch_of(len(y), y, torch.arange(len(y))), progress(10, 240))
    assert {k: v.item() for k, v in terms.items()} == approx(g["terms_epoch10"], rel=1e-10)
