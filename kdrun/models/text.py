"""Transformer encoders for text classification, from Hugging Face ``transformers`` (the ``text`` extra).

A :class:`TextClassifier` keeps kdrun's model contract on token ids: ``forward(ids) -> logits``, with
the attention mask derived from the padding id (``ids != pad_id``), so evaluation, int8 conversion and
latency timing treat it as any other classifier; ``forward_features`` asks transformers for its own
``hidden_states`` and captures each layer's query/key/value projections with forward hooks (what TinyBERT's
attention scores and MiniLM's relations are computed from), without re-implementing the model.

``bert`` builds ``BertForSequenceClassification`` from a ``BertConfig`` (random initialisation, offline)
or, with ``pretrained=<hub name or folder>``, loads a released checkpoint (its own sizes win).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kdrun.models.base import KDModel
from kdrun.models.features import FeatureInfo, Features


class TextClassifier(KDModel):
    """A ``*ForSequenceClassification`` model on padded token ids."""

    def __init__(self, hf_model: nn.Module, pad_id: int, seq_len: int) -> None:
        super().__init__()
        self.hf = hf_model
        self.pad_id = int(pad_id)
        config = hf_model.config
        hidden, layers = config.hidden_size, config.num_hidden_layers
        self.feature_info = FeatureInfo(stage_channels=(hidden,), stage_sizes=((),), pooled_dim=hidden,
                                        num_classes=config.num_labels, layers=layers,
                                        heads=config.num_attention_heads)
        self.seq_len = seq_len  # the dataset's padded length (the model accepts any length up to its positions)

    def attention_mask(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids != self.pad_id).long()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=ids, attention_mask=self.attention_mask(ids)).logits

    def attention_modules(self) -> list[nn.Module]:
        """Each layer's self-attention module holding the ``query``, ``key`` and ``value`` projections."""
        found = [m for m in self.hf.modules() if all(isinstance(getattr(m, n, None), nn.Module)
                                                     for n in ("query", "key", "value"))]
        if len(found) != self.feature_info.layers:
            raise RuntimeError(f"{type(self.hf).__name__}: found {len(found)} query/key/value attention modules "
                               f"for {self.feature_info.layers} layers")
        return found

    def forward_features(self, ids: torch.Tensor, preact: bool = False) -> Features:
        mask = self.attention_mask(ids)
        captured: dict[tuple[int, str], torch.Tensor] = {}
        handles = []
        for i, attn in enumerate(self.attention_modules()):
            for name in ("query", "key", "value"):
                handles.append(getattr(attn, name).register_forward_hook(_keep(captured, (i, name))))
        try:
            out = self.hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        finally:
            for h in handles:
                h.remove()
        heads = self.feature_info.heads
        qkv = [tuple(_split_heads(captured[(i, n)], heads) for n in ("query", "key", "value"))
               for i in range(self.feature_info.layers)]
        hidden = list(out.hidden_states)
        pooled = hidden[-1][:, 0]  # the [CLS] token's last hidden state
        return Features(logits=out.logits, stages=[pooled], preact=[pooled] if preact else [], pooled=pooled,
                        hidden=hidden, qkv=qkv, mask=mask)  # no activation follows the [CLS] state: preact = stage

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The embeddings' and the layers' parameters: all but the pooler and the classifier (what
        intermediate-layer distillation trains)."""
        return [p for n, p in self.hf.named_parameters() if not any(part in ("pooler", "classifier")
                                                                   for part in n.split("."))]


def _keep(store: dict, key: tuple[int, str]):
    def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
        store[key] = output
    return hook


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, L, H) -> (B, heads, L, H / heads), as the attention module splits it."""
    b, n, h = x.shape
    return x.view(b, n, heads, h // heads).transpose(1, 2)


def _on_meta() -> bool:
    return torch.empty(0).device.type == "meta"


def bert_config(vocab_size: int, num_classes: int, layers: int, hidden: int, heads: int, intermediate: int,
                max_positions: int, dropout: float, pad_id: int):
    from transformers import BertConfig

    if hidden % heads:
        raise ValueError(f"hidden={hidden} is not a multiple of heads={heads}")
    return BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=intermediate, max_position_embeddings=max_positions,
                      hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, num_labels=num_classes,
                      pad_token_id=pad_id, type_vocab_size=2)


def pretrained_model(name: str, num_classes: int) -> nn.Module:
    """A released checkpoint with a classifier of ``num_classes`` (a new head when the count differs).
    On the meta device (the checks before any data work) only its config is read."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if _on_meta():
        config = AutoConfig.from_pretrained(name, num_labels=num_classes)
        return AutoModelForSequenceClassification.from_config(config)
    return AutoModelForSequenceClassification.from_pretrained(name, num_labels=num_classes,
                                                              ignore_mismatched_sizes=True)


def bert(num_classes: int, in_channels: int, input_size: tuple[int, ...], layers: int, hidden: int, heads: int,
         intermediate: int, max_positions: int, dropout: float, pretrained: str | None, init_from_teacher=None,
         pad_id: int = 0, tokenizer: str = "") -> TextClassifier:
    """BERT encoder for sequence classification (transformers); ``pretrained``: a hub name or local folder."""
    # init_from_teacher (DistilBERT's initialisation) is applied by the scheme once the teacher is trained
    from kdrun.models.text_checks import check_sequence, check_tokenizer, require_transformers

    require_transformers()
    if pretrained:
        check_tokenizer(str(pretrained), tokenizer)
        model = pretrained_model(str(pretrained), num_classes)
    else:
        model = _random_bert(bert_config(in_channels, num_classes, layers, hidden, heads, intermediate,
                                         max_positions, dropout, pad_id))
    check_sequence(model.config, in_channels, input_size[0])
    return TextClassifier(model, pad_id, input_size[0])


def _random_bert(config) -> nn.Module:
    from transformers import BertForSequenceClassification

    return BertForSequenceClassification(config)
