"""Int8 with the PyTorch 2 export flow of torchao (``torchao.quantization.pt2e``), for x86 CPUs.

Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference", CVPR 2018: uint8 activations (per tensor, affine) and int8 weights (per output channel,
symmetric), trained with simulated quantization (fake-quant, straight-through gradients).

``X86InductorQuantizer`` annotates conv2d, linear and their fused activations; conv1d stays float
(only reported, see :func:`kernel_counts`). The converted graph is a *reference* model (int8
weights, quantize/dequantize ops around float ops); ``torch.compile`` with freezing pattern-matches
those into oneDNN int8 kernels (``onednn.qconv_pointwise``, ``onednn.qlinear_pointwise``).
"""

from __future__ import annotations

import copy
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from kdrun.io import atomic_path
from kdrun.quant.exported import ExportedModel, export_model

# call sites in Inductor's output code ("name(" or "name.overload("), not its comments or metadata checks
INT8_KERNEL = re.compile(r"torch\.ops\.onednn\.(q\w+)(?:\.\w+)?\(")
FLOAT_KERNEL = re.compile(r"(?:torch\.ops\.(?:aten|mkldnn|mkl)|extern_kernels)\.(convolution|_convolution_pointwise|"
                          r"_linear_pointwise|mm|addmm|bmm|linear|_mkl_linear)(?:\.\w+)?\(")


def _import_torchao() -> None:
    """Import torchao's x86 quantizer: it registers the quantize/dequantize ops of converted graphs and
    the Inductor passes that fuse them into int8 kernels (without those, torch.compile silently folds
    int8 weights back to float)."""
    # importing torchao logs a pytree deprecation warning that concerns torchao, not the user
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401


def needs_reduced_range() -> bool:
    """True on x86 CPUs without VNNI. Their int8 kernels multiply uint8 activations by int8 weights
    with ``vpmaddubsw``, whose pairwise sums saturate at 16 bits: with full-range (8-bit) activations
    the compiled model's outputs drift from the int8 model it was converted from (measured here, an
    AVX2 EPYC: 66.3% vs 76.8% top-1 for the default student). 7-bit activations cannot saturate;
    VNNI's ``vpdpbusd`` accumulates in 32 bits and needs no such care."""
    is_vnni = getattr(torch.cpu, "_is_vnni_supported", None)  # private; assume the worst without it
    return not (is_vnni is not None and is_vnni())


def _quantizer(is_qat: bool, reduce_range: bool):
    _import_torchao()
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer, get_default_x86_inductor_quantization_config)

    quantizer = X86InductorQuantizer()
    quantizer.set_global(get_default_x86_inductor_quantization_config(is_qat=is_qat, reduce_range=reduce_range))
    return quantizer


def prepare_qat(model: nn.Module, example: torch.Tensor, reduce_range: bool | None = None) -> ExportedModel:
    """``model`` with fake quantization inserted (BN folded into conv for training), ready to train.
    ``reduce_range``: 7-bit activations (None: when this CPU needs them, :func:`needs_reduced_range`)."""
    _import_torchao()
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    reduce_range = needs_reduced_range() if reduce_range is None else reduce_range
    quantizer = _quantizer(True, reduce_range)
    return ExportedModel(prepare_qat_pt2e(export_model(model, example, train=True), quantizer))


def prepare_ptq(model: nn.Module, example: torch.Tensor, reduce_range: bool | None = None) -> ExportedModel:
    """``model`` with observers inserted, for calibration (post-training quantization)."""
    _import_torchao()
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    reduce_range = needs_reduced_range() if reduce_range is None else reduce_range
    quantizer = _quantizer(False, reduce_range)
    return ExportedModel(prepare_pt2e(export_model(model, example, train=False), quantizer)).eval()


@torch.no_grad()
def calibrate(prepared: ExportedModel, batches: Iterable[torch.Tensor]) -> int:
    """Run ``batches`` through the observers (eval mode: no dropout, running BN statistics)."""
    prepared.eval()
    n = 0
    for x in batches:
        prepared(x.cpu())
        n += 1
    return n


def convert(prepared: ExportedModel) -> ExportedModel:
    """The int8 reference model: weights stored as int8, activations quantized per tensor."""
    _import_torchao()
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    model = copy.deepcopy(prepared).cpu().eval()  # inference-mode graph, frozen ranges
    with _fold_only_present_convs(model.graph):
        converted = convert_pt2e(model.graph)
    _drop_unused(converted)
    return ExportedModel(converted).eval()


CONV_KINDS = ("conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d")


@contextmanager
def _fold_only_present_convs(gm: torch.fx.GraphModule) -> Iterator[None]:
    """Fold batch norm into the conv kinds the graph has, not all four.

    ``convert_pt2e`` folds each QAT conv + BN by matching the graph against patterns that it exports
    afresh on every call, two dozen per conv kind (conv1d, conv2d and their transposes), three quarters
    of them for kinds the graph does not contain and so cannot match. torchao folds kind by kind
    (``qat_utils._fold_conv_bn_qat_helper``); this skips the absent kinds. The converted graph is the
    same, code and outputs (checked for resnet8 and a batch-norm cnn1d), and the convert of resnet8 took
    5.0 s instead of 19.4 s on the 2-core CPU. Should torchao's private helper move, the convert runs as
    it is."""
    try:
        from torchao.quantization.pt2e import qat_utils
        fold_kind = qat_utils._fold_conv_bn_qat_helper
    except (ImportError, AttributeError):
        yield
        return
    present = {getattr(getattr(n.target, "_overloadpacket", None), "__name__", None)
               for n in gm.graph.nodes if n.op == "call_function"} & set(CONV_KINDS)
    if not present:  # batch norm without a conv (or an op torchao names otherwise): torchao's own path
        yield
        return

    def fold_if_present(m, conv_fn, *args, **kwargs):
        kind = getattr(conv_fn, "__name__", None)
        if kind in CONV_KINDS and kind not in present:  # none in the graph: no pattern can match
            return m
        return fold_kind(m, conv_fn, *args, **kwargs)  # present, or a kind kdrun does not know: as torchao does

    qat_utils._fold_conv_bn_qat_helper = fold_if_present
    try:
        yield
    finally:
        qat_utils._fold_conv_bn_qat_helper = fold_kind


def _drop_unused(gm: torch.fx.GraphModule) -> None:
    """Delete the float weights that conversion replaced by int8 constants, so they are not saved."""
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    names = [k for k, _ in gm.named_parameters()] + [k for k, _ in gm.named_buffers()]
    for name in names:
        if name not in used:
            owner, _, attr = name.rpartition(".")
            delattr(gm.get_submodule(owner), attr)


def int8_state(model: ExportedModel) -> dict[str, torch.Tensor]:
    """Every tensor the int8 graph reads: int8 weights, their scales and zero points, float biases."""
    gm, state = model.graph, {}
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            value = gm
            for part in node.target.split("."):
                value = getattr(value, part)
            if isinstance(value, torch.Tensor):
                state[node.target] = value.detach()
    return state


def save_int8(model: ExportedModel, example: torch.Tensor, path: Path) -> None:
    """Write the int8 model as a ``torch.export`` archive (loadable with ``torch.export.load``)."""
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model.graph, (example.cpu(),), dynamic_shapes=({0: batch},))
    with atomic_path(path, "the int8 model") as tmp:  # keeps the .pt2 suffix torch.export.save wants
        torch.export.save(program, str(tmp))


def load_int8(path: Path) -> ExportedModel:
    """Load a model written by :func:`save_int8`; ``torch.compile`` it to run on int8 kernels."""
    _import_torchao()

    return ExportedModel(torch.export.load(str(path)).module()).eval()


def kernel_counts(code: str) -> dict[str, dict[str, int]]:
    """Which int8 and float compute kernels the compiled (Inductor) code calls, and how often."""
    return {"int8": dict(Counter(INT8_KERNEL.findall(code))), "float": dict(Counter(FLOAT_KERNEL.findall(code)))}
