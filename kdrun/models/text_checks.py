"""What a transformer pair must agree on with its data, checked while the models are built (before any data
work when the dataset's facts are static): one tokenizer, a vocabulary that holds every id, a sequence length
the position embeddings cover. Each problem is a ``ValueError`` that kdrun/tasks/build.py turns into one line."""

from __future__ import annotations

from typing import Any

INSTALL = 'pip install -e ".[text]" (from a checkout) or pip install "kdrun[text]"'


def require_transformers() -> None:
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ValueError(f"transformer models need Hugging Face transformers; install it with {INSTALL}") from None


def check_sequence(config: Any, vocab_size: int, seq_len: int) -> None:
    """The data's ids and length fit the model: ``vocab_size`` ids, ``seq_len`` positions."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and seq_len > positions:
        raise ValueError(f"sequence length {seq_len} (dataset.max_length) is longer than the model's {positions} "
                         f"position embeddings; lower dataset.max_length to at most {positions}")
    if vocab_size > config.vocab_size:
        raise ValueError(f"tokenizer mismatch: the data's tokenizer has {vocab_size} ids but the model's embedding "
                         f"holds {config.vocab_size}; teacher and student must share the teacher's tokenizer")


def tokenizer_vocab(name: str) -> dict[str, int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name).get_vocab()


def check_tokenizer(pretrained: str, data_tokenizer: str) -> None:
    """A released model reads ids of its own tokenizer: the data must have been tokenized by the same one
    (the same name, or a tokenizer with the same vocabulary)."""
    require_transformers()
    if not data_tokenizer or data_tokenizer == pretrained:
        return
    if data_tokenizer.startswith("corpus:"):
        raise ValueError(f"tokenizer mismatch: {pretrained} reads ids of its own tokenizer, but the data was "
                         f"tokenized by one built from the corpus; set dataset.tokenizer={pretrained} (the teacher's)")
    try:
        same = tokenizer_vocab(pretrained) == tokenizer_vocab(data_tokenizer)
    except OSError as e:
        raise ValueError(f"cannot read the tokenizer of {pretrained} or {data_tokenizer}: {e}") from None
    if not same:
        raise ValueError(f"tokenizer mismatch: {pretrained} has another vocabulary than the data's tokenizer "
                         f"({data_tokenizer}); teacher and student must share the teacher's tokenizer")
