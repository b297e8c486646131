"""GPT-style causal language models from Hugging Face ``transformers`` (the ``text`` extra).

A :class:`CausalLM` keeps kdrun's model contract on next-token data (kdrun/data/causal.py):
``forward(ids) -> logits`` of shape (B, V, L), the vocabulary on dimension 1 as a classifier's classes, so
``cross_entropy(logits, targets)`` with (B, L) targets (-100 ignored), token accuracy (``argmax(1)``) and the
distillation losses read it like any other classifier's output. The attention mask comes from the padding id.

``gpt2`` builds ``GPT2LMHeadModel`` from a ``GPT2Config`` (random initialisation, offline) or, with
``pretrained=<hub name or folder>``, loads a released checkpoint (its own sizes win; the dataset must then use
its tokenizer: ``dataset.tokenizer`` defaults to ``teacher.pretrained``). GPT-2's ``Conv1D`` projections become
the equal ``nn.Linear`` layers once built (:func:`linear_layers`), so the int8 row quantizes them.
"""

from __future__ import annotations

import torch
from torch import nn

from kdrun.models.base import KDModel
from kdrun.models.features import FeatureInfo, Features


class CausalLM(KDModel):
    """A ``*ForCausalLM`` model on padded token ids; logits (B, V, L)."""

    def __init__(self, hf_model: nn.Module, pad_id: int, seq_len: int) -> None:
        super().__init__()
        self.hf = hf_model
        self.pad_id = int(pad_id)
        self.seq_len = seq_len
        config = hf_model.config
        hidden, vocab = config.hidden_size, config.vocab_size
        self.feature_info = FeatureInfo(stage_channels=(hidden,), stage_sizes=((),), pooled_dim=hidden,
                                        num_classes=vocab, layers=config.num_hidden_layers,
                                        heads=config.num_attention_heads)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != self.pad_id).long()
        return self.hf(input_ids=ids, attention_mask=mask).logits.transpose(1, 2)

    def forward_features(self, ids: torch.Tensor, preact: bool = False) -> Features:
        """Logits, every layer's hidden states and, as the pooled feature, the mean of the last layer's states over
        the non-padding tokens (a causal LM has no [CLS] token)."""
        mask = (ids != self.pad_id).long()
        out = self.hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        hidden = list(out.hidden_states)
        weights = mask.unsqueeze(-1).to(hidden[-1].dtype)
        pooled = (hidden[-1] * weights).sum(1) / weights.sum(1).clamp(min=1)
        return Features(logits=out.logits.transpose(1, 2), stages=[pooled], preact=[pooled] if preact else [],
                        pooled=pooled, hidden=hidden, mask=mask)


def gpt2_config(vocab_size: int, layers: int, hidden: int, heads: int, max_positions: int, dropout: float,
                pad_id: int):
    from transformers import GPT2Config

    if hidden % heads:
        raise ValueError(f"hidden={hidden} is not a multiple of heads={heads}")
    return GPT2Config(vocab_size=vocab_size, n_positions=max_positions, n_embd=hidden, n_layer=layers, n_head=heads,
                      resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout, pad_token_id=pad_id,
                      bos_token_id=pad_id, eos_token_id=pad_id)


def _pretrained(name: str) -> nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    if torch.empty(0).device.type == "meta":  # the checks before any data work read the config only
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(name))
    return AutoModelForCausalLM.from_pretrained(name)


def gpt2(num_classes: int, in_channels: int, input_size: tuple[int, ...], layers: int, hidden: int, heads: int,
         max_positions: int, dropout: float, pretrained: str | None, pad_id: int = 0, tokenizer: str = "") -> CausalLM:
    """GPT-2 causal LM (transformers) for next-token distillation; ``pretrained``: a hub name or local folder."""
    from kdrun.models.text_checks import check_sequence, check_tokenizer, require_transformers

    require_transformers()
    if pretrained:
        check_tokenizer(str(pretrained), tokenizer)
        model = _pretrained(str(pretrained))
    else:
        from transformers import GPT2LMHeadModel

        model = GPT2LMHeadModel(gpt2_config(in_channels, layers, hidden, heads, max_positions, dropout, pad_id))
    check_sequence(model.config, in_channels, input_size[0])
    return CausalLM(linear_layers(model), pad_id, input_size[0])


def linear_layers(model: nn.Module) -> nn.Module:
    """GPT-2's ``Conv1D`` projections (y = x W + b, W of shape (in, out)) replaced by the equal ``nn.Linear``
    (weight W^T), so dynamic int8 quantization of Linear layers (the int8 row) covers attention and MLP too."""
    from transformers.pytorch_utils import Conv1D

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                n_in, n_out = child.weight.shape
                linear = nn.Linear(n_in, n_out, device=child.weight.device, dtype=child.weight.dtype)
                with torch.no_grad():
                    linear.weight.copy_(child.weight.t())
                    linear.bias.copy_(child.bias)
                setattr(parent, name, linear)
    return model
