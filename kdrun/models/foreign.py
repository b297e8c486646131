"""One adapter that gives a foreign model (a user's module, timm, Hugging Face) kdrun's model contract.

``forward(x)`` returns plain logits (a tuple's first entry, an output object's ``logits``), so evaluation,
export and quantization see an ordinary classifier. ``forward_features(x)`` returns :class:`Features`:

* ``stages``: the outputs of the modules named by ``taps`` (module paths as ``named_modules`` gives them,
  e.g. ``[layer2, layer3, layer4]``), caught with forward hooks that exist only during the call; or, where
  the model gives them itself (Hugging Face's ``output_hidden_states``), those. A transformer's tokens
  ``(B, N, D)`` become ``(B, D, N)``: D channels along N positions, the layout of a 1-D feature map.
* ``pooled``: the input of the classifier head (the last ``nn.Linear`` to ``num_classes`` outputs, caught
  by a pre-hook), else the last stage averaged over its positions, else the logits.

The static :class:`FeatureInfo` comes from one dry run on a single zero input in eval mode; on the meta
device (the checks before any data work) that run computes shapes only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from kdrun.errors import KdrunError
from kdrun.models.base import KDModel
from kdrun.models.features import FeatureInfo, Features

Call = Callable[[nn.Module, torch.Tensor, bool], tuple[Any, tuple[torch.Tensor, ...]]]


def plain_call(net: nn.Module, x: torch.Tensor, hidden: bool) -> tuple[Any, tuple[torch.Tensor, ...]]:
    """A module called as ``net(x)``; it gives no hidden states of its own."""
    return net(x), ()


def logits_of(out: Any) -> torch.Tensor:
    """The logits in whatever a model returns: a tensor, an output object or dict with ``logits``, a tuple."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if logits is None and isinstance(out, dict):
        logits = out.get("logits")
    if logits is None and isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        logits = out[0]
    if not isinstance(logits, torch.Tensor):
        raise KdrunError(f"the model returned a {type(out).__name__}, not logits; its forward must return the "
                         f"class scores (a tensor, or an output with .logits)")
    return logits


def as_map(t: torch.Tensor, tokens: bool) -> torch.Tensor:
    """Tokens ``(B, N, D)`` as a 1-D map ``(B, D, N)``; anything else as it is."""
    return t.transpose(1, 2) if tokens and t.dim() == 3 else t


class ForeignModel(KDModel):
    """``net`` behind kdrun's contract; ``label`` names it in logs and errors (``timm/resnet18``)."""

    gives_preact = False
    provenance: dict = {}  # where its weights came from (a hub revision), recorded in results.json

    def __init__(self, net: nn.Module, label: str, num_classes: int, example: torch.Tensor,
                 taps: Sequence[str] | None = None, call: Call = plain_call, tap_key: str = "taps") -> None:
        super().__init__()
        self.net = net
        self.label = label
        self._call = call
        self.hidden_states = taps is None and call is not plain_call  # the library's own intermediate outputs
        self.taps = [str(t) for t in taps or ()]
        modules = dict(net.named_modules())
        for tap in self.taps:
            if tap not in modules:
                names = [n for n in modules if n and "." not in n]
                raise KdrunError(f"{tap_key}: {label} has no module {tap!r}; its top-level modules: "
                                 f"{', '.join(names[:20])} (nested ones as parent.child)")
        self._head = (_classifier_head(net, num_classes),)  # a tuple: not registered a second time as a submodule
        self.feature_info = self._measure(example, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self._call(self.net, x, False)[0])

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> Features:
        caught: dict[str, torch.Tensor] = {}
        handles = [m.register_forward_hook(_catch(caught, name))
                   for name, m in self.net.named_modules() if name in self.taps]
        if self._head[0] is not None:
            handles.append(self._head[0].register_forward_pre_hook(_catch_input(caught)))
        try:
            out, hidden = self._call(self.net, x, self.hidden_states)
        finally:
            for h in handles:
                h.remove()
        logits = logits_of(out)
        stages = [as_map(h, True) for h in hidden] if self.hidden_states else [caught[t] for t in self.taps]
        pooled = caught.get("")
        if pooled is None:
            pooled = stages[-1].flatten(2).mean(-1) if stages and stages[-1].dim() > 2 else logits
        return Features(logits=logits, stages=stages, preact=[], pooled=pooled.flatten(1))

    def _measure(self, example: torch.Tensor, num_classes: int) -> FeatureInfo:
        """The shapes of the features, from one dry run (eval mode, no grad; training mode is restored)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                f = self.forward_features(example)
        finally:
            self.train(was_training)
        if f.logits.shape[-1] != num_classes:
            raise KdrunError(f"{self.label} gives {f.logits.shape[-1]} class scores, the dataset has {num_classes} "
                             f"classes; let it take num_classes (kdrun passes it where the signature names it)")
        return FeatureInfo(stage_channels=tuple(s.shape[1] for s in f.stages),
                           stage_sizes=tuple(tuple(s.shape[2:]) for s in f.stages),
                           pooled_dim=f.pooled.shape[1], num_classes=num_classes)


def _catch(store: dict[str, torch.Tensor], name: str) -> Callable[..., None]:
    def hook(module: nn.Module, args: Any, output: Any) -> None:
        store[name] = output if isinstance(output, torch.Tensor) else logits_of(output)
    return hook


def _catch_input(store: dict[str, torch.Tensor]) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        store[""] = args[0]
    return hook


def _classifier_head(net: nn.Module, num_classes: int) -> nn.Linear | None:
    """The last linear layer with ``num_classes`` outputs: its input is the pooled embedding."""
    heads = [m for m in net.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    return heads[-1] if heads else None


def example_input(in_channels: int, input_size: Sequence[int]) -> torch.Tensor:
    """One zero input on the default device (the meta device during the checks before data work)."""
    return torch.zeros(1, in_channels, *input_size)
