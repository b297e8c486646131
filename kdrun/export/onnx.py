"""A float model as ONNX (``torch.onnx.export``, the torch.export-based exporter), checked and timed with
onnxruntime on the CPU: the deployment a non-PyTorch stack gets, measured like the PyTorch rows.

``check`` runs the exported file and the PyTorch model on the same test batches and reports both top-1s and
the largest absolute difference of their logits; ``latency`` times onnxruntime's CPU session (one thread, as
the table's PyTorch latencies) at the given batch sizes, median of repeated runs.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdrun.io import atomic_path

OPSET = 18
INPUT, OUTPUT = "input", "logits"


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int = OPSET) -> Path:
    """Write ``model`` (on the CPU, eval mode; batch size left dynamic) to ``path`` atomically."""
    model = copy.deepcopy(model).cpu().eval()
    example = example.cpu()
    batch = torch.export.Dim("batch", min=1)
    with atomic_path(path, "the ONNX model") as tmp, torch.no_grad():
        torch.onnx.export(model, (example,), str(tmp), input_names=[INPUT], output_names=[OUTPUT], opset_version=opset,
                          dynamo=True, dynamic_shapes=({0: batch},), external_data=False, verbose=False)
    return path


def session(path: Path, threads: int = 1) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def check(path: Path, model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """onnxruntime's and PyTorch's top-1 (%) on the same batches, and their logits' max-abs difference."""
    sess = session(path)
    model = copy.deepcopy(model).cpu().eval()
    correct_onnx = correct_torch = seen = 0
    max_diff = 0.0
    for x, y in batches:
        x, y = x.cpu().float(), y.cpu()
        expected = model(x)
        got = torch.from_numpy(sess.run([OUTPUT], {INPUT: x.contiguous().numpy()})[0])
        max_diff = max(max_diff, float((got - expected).abs().max()))
        correct_onnx += int((got.argmax(1) == y).sum())
        correct_torch += int((expected.argmax(1) == y).sum())
        seen += len(y)
    return {"onnx_top1": 100.0 * correct_onnx / max(seen, 1), "torch_top1": 100.0 * correct_torch / max(seen, 1),
            "max_abs_diff": max_diff, "samples": seen}


def latency(path: Path, example: torch.Tensor, batch_sizes: Iterable[int], budget_s: float = 0.5,
            max_runs: int = 200) -> dict[str, float]:
    """Median milliseconds per onnxruntime run (one thread) at each batch size: {"1": ..., "256": ...}."""
    sess = session(path)
    out: dict[str, float] = {}
    for size in batch_sizes:
        x = example[:1].cpu().float().repeat(size, *([1] * (example.dim() - 1))).contiguous().numpy()
        for _ in range(3):  # warm-up: allocations, the first run's graph optimizations
            sess.run([OUTPUT], {INPUT: x})
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < max_runs and (len(times) < 5 or time.perf_counter() - start < budget_s):
            t0 = time.perf_counter()
            sess.run([OUTPUT], {INPUT: x})
            times.append(1000.0 * (time.perf_counter() - t0))
        out[str(size)] = statistics.median(times)
    return out


def quantize_int8(fp32: Path, int8: Path, calibration: Iterable[torch.Tensor]) -> Path:
    """onnxruntime's static quantization of ``fp32`` into ``int8`` (QDQ format: int8 weights per channel, uint8
    activations per tensor), calibrated on ``calibration`` batches (training inputs)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{INPUT: x.cpu().float().contiguous().numpy()} for x in calibration])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(dir=int8.parent) as scratch, atomic_path(int8, "the int8 ONNX model") as tmp:
        pre = Path(scratch) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre))  # shape inference and graph clean-up, as onnxruntime advises
        quantize_static(str(pre), str(tmp), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return int8
