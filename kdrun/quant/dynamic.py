"""Dynamic int8 quantization of a model's Linear layers: int8 weights, activations quantized per batch at run
time (no calibration, no fine-tuning). The standard int8 path for transformers on CPUs (PyTorch's dynamic
quantization of BERT; ONNX Runtime's ``quantize_dynamic``): their cost is in the Linear layers.

``torch.ao.quantization.quantize_dynamic`` runs on fbgemm/oneDNN int8 kernels in eager mode. torch marks it
deprecated in favour of torchao, whose eager int8 dynamic path (``Int8DynamicActivationInt8WeightConfig``)
was measured here 5x *slower* than float on a small BERT (no fused kernel without torch.compile), so kdrun
keeps the torch.ao kernels while they exist and falls back to torchao's when they are removed.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn


def quantize_linear_dynamic(model: nn.Module) -> tuple[nn.Module, str]:
    """A CPU copy of ``model`` with int8 dynamic Linear layers, and which implementation made it."""
    model = copy.deepcopy(model).cpu().eval()
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(model, Int8DynamicActivationInt8WeightConfig())
        return model, "torchao Int8DynamicActivationInt8WeightConfig"
    with warnings.catch_warnings():  # its deprecation notice is for torch's maintainers' plans, not the user
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*", category=UserWarning)
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8), "torch.ao quantize_dynamic (qint8 Linear)"


def dynamic_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors the quantized model stores (packed Linear parameters unpacked into weight and bias)."""
    state = {}
    for key, value in model.state_dict().items():
        if isinstance(value, tuple):  # torch.ao's packed (int8 weight, float bias)
            state[f"{key}.weight"], bias = value[0], value[1]
            if bias is not None:
                state[f"{key}.bias"] = bias
        elif isinstance(value, torch.Tensor):
            state[key] = value
    return state
