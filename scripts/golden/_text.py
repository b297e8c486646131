"""Shared inputs of the transformer methods' golden scripts: seeded random states of a 4-layer teacher and a
2-layer student (2 heads), with padding in the second sequence. Numpy only (no kdrun, no torch)."""

import numpy as np

B, L, HEADS = 2, 5, 2
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=np.float64)


def model_states(rng, layers: int, hidden: int, classes: int = 3) -> dict:
    d = hidden // HEADS
    return {
        "hidden": [rng.normal(size=(B, L, hidden)) for _ in range(layers + 1)],
        "qkv": [[rng.normal(size=(B, HEADS, L, d)) for _ in range(3)] for _ in range(layers)],
        "logits": rng.normal(size=(B, classes)) * 2,
    }


def as_json(states: dict) -> dict:
    return {"hidden": [h.tolist() for h in states["hidden"]],
            "qkv": [[x.tolist() for x in layer] for layer in states["qkv"]],
            "logits": states["logits"].tolist()}


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()
