"""GKD's generalized Jensen-Shannon divergence (Agarwal et al., ICLR 2024) as TRL's GKDTrainer computes it
(generalized_jsd_loss): per next-token position, p_S = softmax(z_s / T), p_T = softmax(z_t / T);
beta 0: KL(p_T || p_S); beta 1: KL(p_S || p_T); else beta KL(p_T || M) + (1 - beta) KL(p_S || M) with
M = beta p_T + (1 - beta) p_S; summed over the positions whose label is not -100, divided by their count.
Plain loops in numpy over probabilities (kdrun works on log-probabilities and logsumexp)."""

import numpy as np

B, V, L = 2, 6, 5
LABELS = [[3, 1, 4, -100, -100], [2, 5, 0, 1, -100]]  # -100: padding / past the end


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _kl(p, q) -> float:
    return float(np.sum(p * np.log(p / q)))


def jsd(zs, zt, beta: float, T: float) -> float:
    values = []
    for b in range(B):
        for i in range(L):
            if LABELS[b][i] == -100:
                continue
            ps, pt = _softmax(zs[b, :, i] / T), _softmax(zt[b, :, i] / T)
            if beta == 0:
                values.append(_kl(pt, ps))
            elif beta == 1:
                values.append(_kl(ps, pt))
            else:
                m = beta * pt + (1 - beta) * ps
                values.append(beta * _kl(pt, m) + (1 - beta) * _kl(ps, m))
    return float(np.sum(values) / len(values))


CASES = [(0.0, 1.0), (1.0, 1.0), (0.5, 1.0), (0.1, 1.0), (0.9, 2.0), (0.5, 0.5)]


def golden() -> dict:
    rng = np.random.default_rng(25)
    zs, zt = rng.normal(size=(B, V, L)) * 2, rng.normal(size=(B, V, L)) * 2
    return {"student": zs.tolist(), "teacher": zt.tolist(), "labels": LABELS,
            "cases": [{"beta": beta, "temperature": T, "loss": jsd(zs, zt, beta, T)} for beta, T in CASES]}


def check(g: dict) -> None:
    import torch
    from _kdrun import approx, batch_of, progress, t64

    from kdrun.data.base import DataInfo
    from kdrun.methods.base import MethodContext
    from kdrun.methods.gkd import GKD
    from kdrun.models.features import FeatureInfo, Features

    info = FeatureInfo(stage_channels=(8,), stage_sizes=((),), pooled_dim=8, num_classes=V)
    data = DataInfo("listops_lm", "next_tokens", V, (L,), V, 4, 4)
    ctx = MethodContext(info, info, data, torch.zeros(4, dtype=torch.long))
    labels = torch.tensor(g["labels"])
    s, t = Features(logits=t64(g["student"])), Features(logits=t64(g["teacher"]))
    for case in g["cases"]:
        method = GKD(ctx, beta=case["beta"], temperature=case["temperature"])
        got = method(s, t, batch_of(B, y=labels), progress())["jsd"].item()
        assert got == approx(case["loss"], rel=1e-9), case
