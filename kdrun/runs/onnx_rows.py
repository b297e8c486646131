"""``export.onnx=true``: the float rows named in ``export.rows`` as ONNX files, checked and timed with onnxruntime.

Runs after the row is trained and measured, on the process that writes the run (rank 0): the stage's model is
exported to ``checkpoints/<stage>/student.onnx``, both it and the PyTorch model are run on the test batches the
run evaluates, and onnxruntime's top-1 must equal PyTorch's within ``export.tolerance`` points (else the run
fails, naming both numbers: an export that changes the answers is not a deployment). The record gets the file,
its size, both top-1s, the logits' max-abs difference and onnxruntime's CPU latency (when ``measure.enabled``).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig

from kdrun.engine.fit import EngineEnv
from kdrun.engine.loop import to_batch
from kdrun.engine.stage import Stage
from kdrun.errors import KdrunError
from kdrun.export.onnx import check, export_onnx, latency

log = logging.getLogger("kdrun")
ONNX_FILE = "student.onnx"
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
    return out
