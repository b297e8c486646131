"""``export.onnx=true``: the float rows named in ``export.rows`` as ONNX files, checked and timed with onnxruntime.

Runs after the row is trained and measured, on the process that writes the run (rank 0): the stage's model is
exported to ``checkpoints/<stage>/student.onnx``, both it and the PyTorch model are run on the test batches the
run evaluates, and onnxruntime's top-1 must equal PyTorch's within ``export.tolerance`` points (else the run
fails, naming both numbers: an export that changes the answers is not a deployment). The record gets the file,
its size, both top-1s, the logits' max-abs difference and onnxruntime's CPU latency (when ``measure.enabled``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from kdrun.engine.fit import EngineEnv
from kdrun.engine.loop import to_batch
from kdrun.engine.stage import Stage
from kdrun.errors import KdrunError
from kdrun.export.onnx import check, export_onnx, latency, quantize_int8

log = logging.getLogger("kdrun")
ONNX_FILE, ONNX_INT8_FILE = "student.onnx", "student_int8.onnx"
CPU = torch.device("cpu")


def wants_onnx(cfg: DictConfig, stage: Stage, record: dict[str, Any]) -> bool:
    node = cfg.get("export") or {}
    return bool(node.get("onnx")) and stage.in_table and stage.name in list(node.get("rows") or []) \
        and record.get("precision", "fp32") == "fp32"


def export_row(cfg: DictConfig, stage: Stage, env: EngineEnv, record: dict[str, Any]) -> dict[str, Any]:
    """The ONNX fields of ``stage``'s record (empty when the row is not asked for)."""
    if not wants_onnx(cfg, stage, record):
        return {}
    model = stage.task.eval_model
    loader = env.whole_test_loader or env.test_loader
    example = to_batch(next(iter(loader)), CPU).x[:2]
    path = env.checkpoint_dir / stage.name / ONNX_FILE
    log.info("%s: exporting to ONNX (torch.onnx.export, opset %d) and checking it with onnxruntime", stage.name,
             cfg.export.opset)
    export_onnx(model, example, path, int(cfg.export.opset))
    checked = check(path, model, ((b.x, b.y) for b in (to_batch(raw, CPU) for raw in loader)))
    gap = abs(checked["onnx_top1"] - checked["torch_top1"])
    if gap > float(cfg.export.tolerance):
        raise KdrunError(f"{stage.name}: the ONNX model's top-1 {checked['onnx_top1']:.2f}% differs from PyTorch's "
                         f"{checked['torch_top1']:.2f}% by {gap:.2f} points (export.tolerance={cfg.export.tolerance}); "
                         f"{path} is kept for inspection")
    out = {"onnx_file": str(path), "onnx_bytes": path.stat().st_size, "onnx_top1": checked["onnx_top1"],
           "onnx_torch_top1": checked["torch_top1"], "onnx_max_abs_diff": checked["max_abs_diff"],
           "onnx_checked_samples": checked["samples"]}
    if cfg.measure.enabled:
        out["onnx_ms"] = latency(path, example, [int(b) for b in cfg.measure.batch_sizes])
    log.info("%s: ONNX top-1 %.2f%% (PyTorch %.2f%%, logits max-abs difference %.2g), %s", stage.name,
             checked["onnx_top1"], checked["torch_top1"], checked["max_abs_diff"], path)
    if cfg.export.get("onnx_int8"):
        out.update(_int8(cfg, stage, env, path, example))
    return out


def _int8(cfg: DictConfig, stage: Stage, env: EngineEnv, fp32: Path, example: torch.Tensor) -> dict[str, Any]:
    """export.onnx_int8=true: onnxruntime's static int8 quantization of the ONNX file, calibrated on training
    batches; its own top-1 on the same test batches (no tolerance: it is another model, and says how far it
    moved), its size and latency."""
    batches = []
    for raw in env.train_loader(False):
        batches.append(to_batch(raw, CPU).x)
        if len(batches) >= int(cfg.quant.calibration_batches):
            break
    path = quantize_int8(fp32, fp32.with_name(ONNX_INT8_FILE), batches)
    loader = env.whole_test_loader or env.test_loader
    checked = check(path, stage.task.eval_model, ((b.x, b.y) for b in (to_batch(raw, CPU) for raw in loader)))
    out = {"onnx_int8_file": str(path), "onnx_int8_bytes": path.stat().st_size, "onnx_int8_top1": checked["onnx_top1"],
           "onnx_int8_calibration_batches": len(batches)}
    if cfg.measure.enabled:
        out["onnx_int8_ms"] = latency(path, example, [int(b) for b in cfg.measure.batch_sizes])
    log.info("%s: ONNX int8 top-1 %.2f%% (float %.2f%%), %s", stage.name, checked["onnx_top1"], checked["torch_top1"],
             path)
    return out
