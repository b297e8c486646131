"""Texts -> padded token ids, with the teacher's tokenizer or one built locally (no download).

- ``tokenizer=<hub name or folder>``: transformers' ``AutoTokenizer`` (the pretrained teacher's own);
- ``tokenizer=null``: a word-level ``tokenizers.Tokenizer`` built here: from a fixed vocabulary (ListOps,
  whose symbols are known), or trained on the training texts (lower-cased words and punctuation, the
  ``vocab_size`` most frequent). Ids 0-3 are [PAD], [UNK], [CLS], [SEP]; every sequence is
  ``[CLS] words [SEP]``, truncated and padded to ``max_length``, as BERT's tokenizers make them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


@dataclass
class Tokenized:
    ids: torch.Tensor  # (N, max_length) int64
    pad_id: int
    vocab_size: int  # the embedding rows a model needs (a trained tokenizer's cap: its size before it sees data)
    name: str  # the hub name or folder, or "corpus:<dataset>" for a tokenizer built here
    tokenizer: Any = None


def with_padding(tok):
    """GPT-style tokenizers have no padding token: pad with the end-of-text token, as is usual for them (the
    attention mask and the next-token targets then leave those positions out)."""
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def pretrained_facts(name: str) -> tuple[int, int]:
    """(vocabulary size, padding id) of a hub or local tokenizer (reads its files, no data)."""
    from transformers import AutoTokenizer

    from kdrun.errors import KdrunError

    try:
        tok = with_padding(AutoTokenizer.from_pretrained(name))
    except (OSError, ValueError) as e:
        raise KdrunError(f"dataset.tokenizer={name}: cannot load it ({str(e).splitlines()[0]}); offline, use a local "
                         "folder or leave teacher.pretrained null (a tokenizer built from the corpus)") from None
    return len(tok), int(tok.pad_token_id if tok.pad_token_id is not None else 0)


def word_tokenizer(texts: list[str], fixed_vocab: tuple[str, ...] | None, vocab_size: int):
    """A word-level tokenizer: over ``fixed_vocab`` (whitespace-separated symbols), else trained on ``texts``."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer

    if fixed_vocab is not None:
        tok = Tokenizer(WordLevel({w: i for i, w in enumerate(fixed_vocab)}, unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    else:
        tok = Tokenizer(WordLevel(unk_token="[UNK]"))
        tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(),
                                               normalizers.StripAccents()])
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.train_from_iterator(texts, WordLevelTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS)))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")),
                                                 ("[SEP]", tok.token_to_id("[SEP]"))])
    return tok


def _encode_word(tok, texts: list[str], max_length: int) -> torch.Tensor:
    pad = tok.token_to_id("[PAD]")
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=pad, pad_token="[PAD]", length=max_length)
    return torch.tensor([e.ids for e in tok.encode_batch(texts)], dtype=torch.long)


def tokenize(texts: list[str], max_length: int, tokenizer: str | None, fixed_vocab: tuple[str, ...] | None = None,
             vocab_size: int = 8000, corpus_name: str = "", fit_on: Tokenized | None = None) -> Tokenized:
    """``texts`` as ids (N, ``max_length``); ``fit_on``: reuse that split's tokenizer (the test split)."""
    if fit_on is not None and fit_on.tokenizer is not None and not tokenizer:
        return Tokenized(_encode_word(fit_on.tokenizer, texts, max_length), fit_on.pad_id, fit_on.vocab_size,
                         fit_on.name, fit_on.tokenizer)
    if tokenizer:
        from transformers import AutoTokenizer

        tok = with_padding(AutoTokenizer.from_pretrained(str(tokenizer)))
        ids = tok(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        return Tokenized(ids["input_ids"].long(), int(tok.pad_token_id), len(tok), str(tokenizer))
    tok = word_tokenizer(texts, fixed_vocab, vocab_size)
    size = len(fixed_vocab) if fixed_vocab is not None else vocab_size
    return Tokenized(_encode_word(tok, texts, max_length), tok.token_to_id("[PAD]"), size, f"corpus:{corpus_name}",
                     tok)
