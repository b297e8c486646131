"""MiniLM (v1) and MiniLMv2 relation losses from the papers' formulas, with the third-party normalisation
(minilmv2.bb / PaddleNLP): per sequence, the KL(teacher row || student row) over valid keys, summed over the
valid query rows and the heads, divided by heads x valid length; the batch mean. Plain loops in numpy.

v1: the last layers; attention = softmax(q.k / sqrt(d_head)), value = softmax(v.v / sqrt(d_head)).
v2: each of q, k, v concatenated over heads and re-split into R relation heads; softmax(x.x / sqrt(hidden / R)).
"""

import importlib.util
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("_text", Path(__file__).with_name("_text.py"))
_text = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_text)


def rows(a, b, valid):
    """Softmax rows of a_i . b_j / sqrt(d) over the valid keys j."""
    d = a.shape[-1]
    return [_text.softmax(np.array([float(a[i] @ b[j]) / np.sqrt(d) for j in valid])) for i in range(len(a))]


def relation_loss(xt, xs, yt=None, ys=None) -> float:
    """xt, xs: (B, heads, L, d) per model (the heads' counts equal; d may differ)."""
    yt, ys = (xt, xs) if yt is None else (yt, ys)
    per_seq = []
    for b in range(_text.B):
        valid = [j for j in range(_text.L) if _text.MASK[b, j]]
        heads = xt.shape[1]
        total = 0.0
        for h in range(heads):
            rt, rs = rows(xt[b, h], yt[b, h], valid), rows(xs[b, h], ys[b, h], valid)
            for i in valid:
                total += float(np.sum(rt[i] * (np.log(rt[i]) - np.log(rs[i]))))
        per_seq.append(total / (heads * len(valid)))
    return float(np.mean(per_seq))


def resplit(x, r):
    b, h, n, d = x.shape
    out = np.zeros((b, r, n, h * d // r))
    for bb in range(b):
        for i in range(n):
            concat = np.concatenate([x[bb, hh, i] for hh in range(h)])
            for rr in range(r):
                size = h * d // r
                out[bb, rr, i] = concat[rr * size:(rr + 1) * size]
    return out


def golden() -> dict:
    rng = np.random.default_rng(13)
    s, t = _text.model_states(rng, 2, 4), _text.model_states(rng, 4, 8)
    (qs, ks, vs), (qt, kt, vt) = s["qkv"][-1], t["qkv"][-1]
    v1 = {"attention": relation_loss(qt, qs, kt, ks), "value": relation_loss(vt, vs)}
    v2 = {name: relation_loss(resplit(xt, 4), resplit(xs, 4))
          for name, xs, xt in (("qq", qs, qt), ("kk", ks, kt), ("vv", vs, vt))}
    # v2 with the teacher's second layer (0-based 1) against the student's first (0-based 0)
    (q0, _, _), (q1, _, _) = s["qkv"][0], t["qkv"][1]
    return {"student": _text.as_json(s), "teacher": _text.as_json(t), "mask": _text.MASK.tolist(), "v1": v1,
            "v2": v2, "qq_layers_t1_s0": relation_loss(resplit(q1, 4), resplit(q0, 4))}


def check(g: dict) -> None:
    from _kdrun import approx, batch_of, progress, text_context, text_pair
    from kdrun.methods.minilm import MiniLM

    s, t = text_pair(g)
    v1 = MiniLM(text_context(g))(s, t, batch_of(2), progress())
    assert {k: v.item() for k, v in v1.items()} == approx(g["v1"], rel=1e-9)
    v2 = MiniLM(text_context(g), relation_heads=4)(s, t, batch_of(2), progress())
    assert {k: v.item() for k, v in v2.items()} == approx(g["v2"], rel=1e-9)
    layers = MiniLM(text_context(g), relation_heads=4, teacher_layer=1, student_layer=0)(s, t, batch_of(2), progress())
    assert layers["qq"].item() == approx(g["qq_layers_t1_s0"], rel=1e-9)
