"""A model captured with ``torch.export`` that trains and evaluates like an ordinary module.

Exported graphs ignore ``model.train()``/``model.eval()``: dropout and batch norm are frozen into
the graph in the mode they were traced in (pytorch/pytorch#103681). torchao's
``move_exported_model_to_train/eval`` rewrites them with fixed patterns that reset dropout's ``p``
to 0.5 and batch norm's momentum/eps to defaults; here only the ``training`` argument of each op is
flipped, so every op keeps its own settings. Observers are switched off in eval mode, so evaluating
a model under quantization-aware training never moves its quantization ranges (no test-set leakage).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

# index of the ``training`` argument of the ops whose behaviour depends on the mode
_TRAINING_ARG = {
    torch.ops.aten.dropout.default: 2,
    torch.ops.aten.dropout_.default: 2,
    torch.ops.aten.feature_dropout.default: 2,
    torch.ops.aten.batch_norm.default: 5,
}


def export_model(model: nn.Module, example: torch.Tensor, train: bool) -> torch.fx.GraphModule:
    """Capture ``model`` (a copy, on the CPU) with a dynamic batch dimension."""
    model = copy.deepcopy(model).cpu().train(train)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (example.cpu(),), dynamic_shapes=({0: batch},))
    return program.module()


def set_graph_training(graph_module: torch.fx.GraphModule, mode: bool) -> None:
    """Flip the ``training`` argument of dropout and batch-norm nodes; nothing else changes."""
    changed = False
    for node in graph_module.graph.nodes:
        index = _TRAINING_ARG.get(node.target)
        if node.op == "call_function" and index is not None and node.args[index] != mode:
            args = list(node.args)
            args[index] = mode
            node.args = tuple(args)
            changed = True
    if changed:
        graph_module.recompile()


def _set_observers(module: nn.Module, enabled: bool) -> None:
    for m in module.modules():
        if hasattr(m, "enable_observer") and hasattr(m, "disable_observer"):
            m.enable_observer(enabled)


class ExportedModel(nn.Module):
    """Wraps an exported (and usually quantization-prepared) graph; ``forward(x) -> logits``."""

    def __init__(self, graph_module: torch.fx.GraphModule) -> None:
        super().__init__()
        self.graph = graph_module
        self.train(True)

    def train(self, mode: bool = True) -> "ExportedModel":
        # Not nn.Module.train's recursion: the graph's own mode flag means nothing to its ops.
        self.training = mode
        set_graph_training(self.graph, mode)
        _set_observers(self.graph, mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)
