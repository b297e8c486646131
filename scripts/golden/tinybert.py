"""TinyBERT's losses from the reference code (task_distill.py, transformer/modeling.py), numpy loops.

Teacher 4 layers, student 2: k = 2; student layer m (1-based) <- teacher layer 2m for attention; hidden state
m (0 = embeddings) <- teacher state 2m, the student's through fit_dense (W h + b). Scores: q.k / sqrt(d) +
(1 - mask_key) * -10000, then entries <= -100 -> 0 in each; MSE means over batch x heads x L x L.
Prediction: -softmax(z_t / T) . log_softmax(z_s / T) averaged over batch and classes.
"""

import importlib.util
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("_text", Path(__file__).with_name("_text.py"))
_text = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_text)


def scores(q, k):
    b_, h_, n, d = q.shape
    out = np.zeros((b_, h_, n, n))
    for b in range(b_):
        for h in range(h_):
            for i in range(n):
                for j in range(n):
                    x = float(q[b, h, i] @ k[b, h, j]) / np.sqrt(d) + (1 - _text.MASK[b, j]) * -10000.0
                    out[b, h, i, j] = 0.0 if x <= -100 else x
    return out


def golden() -> dict:
    rng = np.random.default_rng(12)
    s, t = _text.model_states(rng, 2, 4), _text.model_states(rng, 4, 6)
    w, bias = rng.normal(size=(6, 4)), rng.normal(size=6)
    att = sum(float(np.mean((scores(*s["qkv"][m][:2]) - scores(*t["qkv"][2 * (m + 1) - 1][:2])) ** 2))
              for m in range(2))
    hidden = 0.0
    for m in range(3):
        hs, ht = s["hidden"][m], t["hidden"][2 * m]
        proj = np.einsum("bld,od->blo", hs, w) + bias
        hidden += float(np.mean((proj - ht) ** 2))
    preds = {}
    for T in (1.0, 2.0):
        total = 0.0
        for b in range(_text.B):
            pt = _text.softmax(t["logits"][b] / T)
            log_ps = np.log(_text.softmax(s["logits"][b] / T))
            total += float(np.sum(-pt * log_ps))
        preds[f"pred_T={T}"] = total / (_text.B * len(t["logits"][0]))
    return {"student": _text.as_json(s), "teacher": _text.as_json(t), "mask": _text.MASK.tolist(),
            "fit_weight": w.tolist(), "fit_bias": bias.tolist(), "att": att, "hidden": hidden, **preds}


def check(g: dict) -> None:
    import torch
    from _kdrun import approx, batch_of, progress, t64, text_context, text_pair
    from kdrun.methods.tinybert import TinyBERT

    s, t = text_pair(g)
    method = TinyBERT(text_context(g)).double()
    with torch.no_grad():
        method.fit_dense.weight.copy_(t64(g["fit_weight"]))
        method.fit_dense.bias.copy_(t64(g["fit_bias"]))
    terms = method.init_terms(s, t, batch_of(2), progress())
    assert terms["att"].item() == approx(g["att"], rel=1e-9)
    assert terms["hidden"].item() == approx(g["hidden"], rel=1e-9)
    for T in (1.0, 2.0):
        method = TinyBERT(text_context(g), temperature=T)
        assert method(s, t, batch_of(2), progress())["pred"].item() == approx(g[f"pred_T={T}"], rel=1e-9)
