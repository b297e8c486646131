"""DistilBERT's cosine term from the reference code (distiller.py): the last hidden states of the non-padding
tokens, CosineEmbeddingLoss with target 1 = the mean over those tokens of 1 - cos. Plain loops in numpy."""

import importlib.util
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("_text", Path(__file__).with_name("_text.py"))
_text = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_text)


def golden() -> dict:
    rng = np.random.default_rng(11)
    s, t = _text.model_states(rng, 2, 6), _text.model_states(rng, 4, 6)
    hs, ht = s["hidden"][-1], t["hidden"][-1]
    values = []
    for b in range(_text.B):
        for i in range(_text.L):
            if _text.MASK[b, i]:
                u, v = hs[b, i], ht[b, i]
                values.append(1.0 - float(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v)))
    return {"student": _text.as_json(s), "teacher": _text.as_json(t), "mask": _text.MASK.tolist(),
            "cos": float(np.mean(values))}


def check(g: dict) -> None:
    from _kdrun import approx, batch_of, progress, text_context, text_pair
    from kdrun.methods.distilbert import DistilBERT

    s, t = text_pair(g)
    assert DistilBERT(text_context(g))(s, t, batch_of(2), progress())["cos"].item() == approx(g["cos"], rel=1e-9)
