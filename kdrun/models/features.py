"""What a model exposes to distillation methods, besides its logits.

``forward(x)`` always returns plain logits, so evaluation, export and quantization see an
ordinary classifier. ``forward_features(x)`` returns a :class:`Features` bundle; the
layout follows the reference implementations (RepDistiller's ``feat`` list):

* ``stages[0]`` is the stem output, ``stages[1..n-1]`` the output of each stage
  (RepDistiller's ``feat[0..n-1]``); ``stages[-1]`` is the last conv map (``feat[-2]``).
* ``preact[i]`` is ``stages[i]`` before its final ReLU (used by AB); only filled when asked.
* ``pooled`` is the embedding that enters the classifier (``feat[-1]``).

Transformers on token inputs (kdrun/models/text.py) fill three more fields, and ``stages`` is
``[pooled]`` (the [CLS] token's last hidden state), so the relation methods see one vector per sample:

* ``hidden`` holds the embedding output and every layer's output, each (B, L, H) (transformers'
  ``hidden_states``);
* ``qkv[i]`` is layer i's (query, key, value) projections, each (B, heads, L, head_dim), from which
  attention scores and value relations are computed (TinyBERT, MiniLM);
* ``mask`` is the attention mask (B, L), 1 for real tokens and 0 for padding.

:class:`FeatureInfo` is the static description of those tensors, so that methods can size
their extra modules (regressors, embeddings, connectors) without a dummy forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Features:
    logits: torch.Tensor
    stages: list[torch.Tensor] = field(default_factory=list)
    preact: list[torch.Tensor] = field(default_factory=list)
    pooled: torch.Tensor | None = None
    hidden: list[torch.Tensor] = field(default_factory=list)
    qkv: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    mask: torch.Tensor | None = None


@dataclass(frozen=True)
class FeatureInfo:
    """Static shape facts of a model's features for a given input.

    ``stage_channels[i]`` and ``stage_sizes[i]`` describe ``stages[i]``: channels and spatial
    size (``()`` for a vector feature such as an MLP layer, ``(L,)`` for 1-D signals,
    ``(H, W)`` for images).
    """

    stage_channels: tuple[int, ...]
    stage_sizes: tuple[tuple[int, ...], ...]
    pooled_dim: int
    num_classes: int
    layers: int = 0  # transformers: encoder layers (``hidden`` has layers + 1 entries) and attention heads
    heads: int = 0

    @property
    def num_stages(self) -> int:
        return len(self.stage_channels)

    def stage_shape(self, index: int) -> tuple[int, ...]:
        """(C, *spatial) of ``stages[index]``; negative indices count from the end."""
        return (self.stage_channels[index], *self.stage_sizes[index])

    @property
    def spatial(self) -> bool:
        """True when stages are maps (1-D or 2-D), not plain vectors."""
        return all(len(s) > 0 for s in self.stage_sizes)
