"""Next-token (causal language modelling) data: token ids and their next-token targets, one row per text.

A causal-LM dataset declares the input kind ``next_tokens``: ``x`` holds the padded ids (N, L) and ``y`` the
token each position must predict (N, L): ``y[:, t] = x[:, t + 1]``, and -100 (PyTorch's and transformers'
``ignore_index``) where the next token is padding or past the end. ``num_classes`` is the vocabulary size,
so cross-entropy, token accuracy and the distillation losses read (B, V, L) logits against (B, L) targets,
and every -100 position is left out of all of them.

The embedded corpus is ListOps (kdrun/data/listops.py) written as a language: each expression followed by
its value, ``[CLS] [MAX 2 9 [MIN 4 7 ] 0 ] 9 [SEP]``. The generator is published and runs offline in
milliseconds; most tokens are bracket/argument structure a small model learns quickly, while the final
value token needs the expression evaluated, which a larger teacher does better (docs/language_models.md).
"""

from __future__ import annotations

from typing import Any

import torch

from kdrun.data.base import DataBundle, DataInfo, TensorData
from kdrun.data.tokenize import tokenize

IGNORE = -100


def next_token_targets(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(N, L) ids -> (N, L) targets: the next id, or -100 where it is padding or beyond the sequence."""
    y = torch.full_like(ids, IGNORE)
    nxt = ids[:, 1:]
    y[:, :-1] = torch.where(nxt != pad_id, nxt, torch.full_like(nxt, IGNORE))
    return y


def load_listops_lm(max_length: int = 64, num_train: int = 4000, num_test: int = 1000, max_depth: int = 3,
                    tree_p: float = 0.25, max_args: int = 5, seed: int = 0, tokenizer: str | None = None,
                    **_: Any) -> DataBundle:
    """ListOps expressions with their values appended, as next-token data (train and test disjoint draws)."""
    from kdrun.data.listops import VOCAB, generate

    texts, labels = generate(num_train + num_test, seed, max_length - 1, max_depth, tree_p, max_args)
    texts = [f"{text} {label}" for text, label in zip(texts, labels)]
    tok = tokenize(texts, max_length, tokenizer, fixed_vocab=VOCAB, corpus_name="listops_lm")
    y = next_token_targets(tok.ids, tok.pad_id)
    info = DataInfo("listops_lm", "next_tokens", tok.vocab_size, (max_length,), tok.vocab_size, num_train, num_test,
                    pad_id=tok.pad_id, tokenizer=tok.name)
    train = TensorData(tok.ids[:num_train], y[:num_train])
    test = TensorData(tok.ids[num_train:], y[num_train:])
    return DataBundle(info, train, test, y[:num_train])
