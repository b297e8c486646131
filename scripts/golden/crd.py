"""CRD's loss and memory updates from the paper (Tian et al., ICLR 2020, eqs. 10-18) and the
reference code's constants, in plain numpy, over two consecutive batches with fixed negatives.

v = normalize(x W^T + b) per side. Scores h = exp(v . m / T) / Z, with the student embedding scored
against the teacher bank and vice versa; column 0 is the positive (the sample's own bank entry).
Z = mean of the first batch's exp scores x N, then fixed. NCE (eq. 18, eps 1e-7 as in the code):
-(log(h+/(h+ + K/N)) + sum log((K/N)/(h- + K/N))) / B. After each batch: m_i <- normalize(0.5 m_i + 0.5 v_i).
"""

import numpy as np

N, D, T, MOMENTUM, EPS = 12, 4, 0.07, 0.5, 1e-7


def normalize(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def nce(h, k):
    noise = k / N
    per_sample = [np.log(row[0] / (row[0] + noise + EPS)) + sum(np.log(noise / (x + noise + EPS)) for x in row[1:])
                  for row in h]
    return float(-np.sum(per_sample) / len(h))


def golden() -> dict:
    rng = np.random.default_rng(5)
    targets = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    stdv = 1 / np.sqrt(D / 3)
    mem_s, mem_t = rng.uniform(-stdv, stdv, size=(N, D)), rng.uniform(-stdv, stdv, size=(N, D))
    w_s, b_s = rng.normal(size=(D, 6)), rng.normal(size=D) * 0.1
    w_t, b_t = rng.normal(size=(D, 8)), rng.normal(size=D) * 0.1
    out = {"targets": targets.tolist(), "memory_s": mem_s.tolist(), "memory_t": mem_t.tolist(), "w_s": w_s.tolist(),
           "b_s": b_s.tolist(), "w_t": w_t.tolist(), "b_t": b_t.tolist(), "batches": []}
    z = None
    for index in ([0, 5, 9], [3, 7, 11]):
        others = [np.flatnonzero(targets != targets[i]) for i in index]
        negatives = np.stack([rng.choice(o, size=5, replace=False) for o in others])
        x_s, x_t = rng.normal(size=(3, 6)), rng.normal(size=(3, 8))
        v_s, v_t = normalize(x_s @ w_s.T + b_s), normalize(x_t @ w_t.T + b_t)
        contrast = np.concatenate([np.array(index)[:, None], negatives], axis=1)
        e_s = np.exp(np.einsum("bkd,bd->bk", mem_t[contrast], v_s) / T)
        e_t = np.exp(np.einsum("bkd,bd->bk", mem_s[contrast], v_t) / T)
        if z is None:
            z = (e_s.mean() * N, e_t.mean() * N)
        loss_s, loss_t = nce(e_s / z[0], 5), nce(e_t / z[1], 5)
        mem_s, mem_t = mem_s.copy(), mem_t.copy()
        mem_s[index] = normalize(MOMENTUM * mem_s[index] + (1 - MOMENTUM) * v_s)
        mem_t[index] = normalize(MOMENTUM * mem_t[index] + (1 - MOMENTUM) * v_t)
        out["batches"].append({"index": index, "negatives": negatives.tolist(), "pooled_s": x_s.tolist(),
                               "pooled_t": x_t.tolist(), "crd_s": loss_s, "crd_t": loss_t})
    out.update(normalizer=list(z), memory_s_after=mem_s.tolist(), memory_t_after=mem_t.tolist())
    return out


def check(g: dict) -> None:
    """Two batches: the loss, then the memory banks and normalizers the first batch left behind."""
    import torch
    from _kdrun import Features, FixedNegatives, approx, batch_of, progress, set_embeddings, t64, vector_context
    from kdrun.methods.crd import CRD

    targets = torch.tensor(g["targets"])
    method = CRD(vector_context(6, 8, targets, classes=3), feat_dim=4, nce_k=5).double()
    with torch.no_grad():
        method.memory.memory_s.copy_(t64(g["memory_s"]))
        method.memory.memory_t.copy_(t64(g["memory_t"]))
    set_embeddings(method, g)
    method.sampler = FixedNegatives()
    for b in g["batches"]:
        method.sampler.queue.append(torch.tensor(b["negatives"]))
        s, t = t64(b["pooled_s"]), t64(b["pooled_t"])
        terms = method(Features(s, pooled=s), Features(t, pooled=t), batch_of(3, index=torch.tensor(b["index"])),
                       progress())
        assert terms["crd_s"].item() == approx(b["crd_s"], rel=1e-9)
        assert terms["crd_t"].item() == approx(b["crd_t"], rel=1e-9)
    assert method.memory.normalizer.tolist() == approx(g["normalizer"], rel=1e-10)
    assert torch.allclose(method.memory.memory_s, t64(g["memory_s_after"]), atol=1e-12)
    assert torch.allclose(method.memory.memory_t, t64(g["memory_t_after"]), atol=1e-12)
