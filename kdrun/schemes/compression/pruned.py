"""A magnitude-pruned student: Han, Pool, Tran and Dally, "Learning both Weights and Connections for
Efficient Neural Networks", NeurIPS 2015 -- remove the smallest weights, then retrain the rest.

The distilled student's conv and linear weights are pruned globally by magnitude to
``prune.amount`` sparsity (``torch.nn.utils.prune``; the masks stay fixed), then fine-tuned on
CE + KD to the teacher's soft targets. Unstructured zeros do not make dense CPU kernels faster or
the dense weights file smaller; the row shows what accuracy survives at that sparsity, and the size
of the pruned state dict saved compressed (``pruned.pt.gz``: what the zeros save on disk).
"""

from __future__ import annotations

import copy
import gzip
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from kdrun.engine.finish import Deployment, evaluate_alone
from kdrun.engine.fit import EngineEnv
from kdrun.engine.stage import Stage
from kdrun.io import atomic_path
from kdrun.models.base import KDModel
from kdrun.quant.measure import MeasureSettings
from kdrun.schemes.compression.finetune import kd_finetune_stage
from kdrun.schemes.context import SchemeContext

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


def pruned_stage(ctx: SchemeContext, student: KDModel, teacher: nn.Module, name: str = "pruned") -> Stage:
    p = ctx.cfg.prune
    model = copy.deepcopy(student)
    weights = [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE)]
    prune.global_unstructured(weights, pruning_method=prune.L1Unstructured, amount=p.amount)
    stage = kd_finetune_stage(ctx, name, "pruned", f"{ctx.cfg.method.name}+prune", model, student, teacher, p)
    stage.info["target_sparsity"] = p.amount
    stage.deploy = partial(pruned_deployment, model, name)
    return stage


def sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero weights over all conv and linear layers."""
    ws = [m.weight for m in model.modules() if isinstance(m, PRUNABLE)]
    return float(sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws))


def save_compressed(state: dict[str, torch.Tensor], path: Path) -> int:
    """``state`` saved with torch.save into a gzip file (level 9); returns its size in bytes."""
    with atomic_path(path, "the pruned model") as tmp, gzip.open(tmp, "wb", compresslevel=9) as f:
        torch.save({k: v.detach().cpu() for k, v in state.items()}, f)
    return path.stat().st_size


def pruned_deployment(model: nn.Module, name: str, env: EngineEnv, settings: MeasureSettings) -> Deployment:
    """The pruned model with its masks applied for good: an ordinary dense model with zeros."""
    with torch.no_grad():  # the masked weight is recomputed each forward; make it a plain tensor to copy it
        for m in model.modules():
            if hasattr(m, "weight_mask"):
                m.weight = m.weight_orig * m.weight_mask
    dense = copy.deepcopy(model).cpu().eval()
    for m in dense.modules():
        if isinstance(m, PRUNABLE) and prune.is_pruned(m) and hasattr(m, "weight_mask"):
            prune.remove(m, "weight")
    test = evaluate_alone(dense, env)
    path = Path(env.checkpoint_dir) / name / "pruned.pt.gz"
    record = {"test_top1": test["top1"], "test_loss": test["loss"], "precision": "fp32",
              "sparsity": sparsity(dense), "compressed_file": str(path),
              "compressed_bytes": save_compressed(dense.state_dict(), path), "compressed_format": path.name}
    return Deployment(dense, "dense", dense.state_dict(), record)
