"""Int8 students: quantization-aware distillation, and post-training quantization for contrast.

Quantization-aware distillation fine-tunes the distilled student with simulated int8 (fake
quantization; Jacob et al., CVPR 2018) while it keeps learning from the teacher's soft targets
(Polino, Pascanu and Alistarh, "Model compression via distillation and quantization", ICLR 2018;
Mishra and Marr, "Apprentice", ICLR 2018), then converts it to a real int8 model. Post-training
quantization converts the distilled student after calibrating activation ranges on training
batches, without any fine-tuning.
"""

from __future__ import annotations

import copy
import logging
from functools import partial
from itertools import islice

import torch
from torch import nn

from kdrun.models.foreign_nodes import model_label
from kdrun.engine.finish import Deployment, evaluate_alone, evaluate_deployed
from kdrun.engine.fit import EngineEnv
from kdrun.engine.stage import Stage
from kdrun.io import save_atomic
from kdrun.models.base import KDModel
from kdrun.quant.exported import ExportedModel
from kdrun.quant.measure import MeasureSettings
from kdrun.quant.pt2e import (calibrate, convert, int8_state, kernel_counts, needs_reduced_range, prepare_ptq,
                              prepare_qat, save_int8)
from kdrun.schemes.compression.finetune import kd_finetune_stage
from kdrun.schemes.context import SchemeContext

QUANTIZER = "torchao X86InductorQuantizer (uint8 activations per tensor, int8 weights per channel)"
KERNEL_TOLERANCE = 1.0  # top-1 points between int8 kernels and the reference graph (rounding differs slightly)
log = logging.getLogger("kdrun")


def qat_stage(ctx: SchemeContext, student: KDModel, teacher: nn.Module, name: str = "quantized") -> Stage:
    """Fine-tune a fake-quantized copy of ``student`` on CE + KD to ``teacher``; deploy it as int8."""
    q = ctx.cfg.quant
    example = ctx.example_input()
    reduce_range = reduced_range(q)
    log.info("%s: capturing the student with torch.export for quantization-aware training", name)
    model = prepare_qat(student, example, reduce_range)
    # the row names how its student was distilled (rkd+qat: the RKD student, then QAT with CE + KD)
    stage = kd_finetune_stage(ctx, name, "quantized", f"{ctx.cfg.method.name}+qat", model, student, teacher, q,
                              mixed_precision=False)
    stage.info.update(precision="int8", quantizer=QUANTIZER, activation_bits=7 if reduce_range else 8)
    stage.deploy = partial(int8_deployment, model, example, name)
    return stage


def ptq_stage(ctx: SchemeContext, student: KDModel, name: str = "quantized_ptq") -> Stage:
    """Calibrate and convert ``student`` as it is: the row that shows what fine-tuning adds."""
    q = ctx.cfg.quant
    model = copy.deepcopy(student)
    stage = ctx.eval_stage(name, "quantized", model_label(ctx.cfg.student), model)
    stage.method = f"{ctx.cfg.method.name}+ptq"
    reduce_range = reduced_range(q)
    stage.info.update(precision="int8", float_reference="distilled", quantizer=QUANTIZER,
                      calibration_batches=q.calibration_batches, activation_bits=7 if reduce_range else 8)
    stage.deploy = partial(ptq_deployment, model, ctx.example_input(), q.calibration_batches, reduce_range, name)
    return stage


def dynamic_int8_stage(ctx: SchemeContext, student: KDModel, name: str = "quantized") -> Stage:
    """Transformers: the distilled student with dynamic int8 Linear layers (kdrun/quant/dynamic.py), measured
    as it is (no fine-tuning): top-1, size and CPU latency. torch.export-based QAT is for the CNN zoo."""
    model = copy.deepcopy(student)
    stage = ctx.eval_stage(name, "quantized", ctx.cfg.student.arch, model)
    stage.method = f"{ctx.cfg.method.name}+int8dyn"
    stage.info.update(precision="int8", float_reference="distilled", quantizer="dynamic int8 Linear layers")
    stage.deploy = partial(dynamic_deployment, model, name)
    return stage


def dynamic_deployment(student: nn.Module, name: str, env: EngineEnv, settings: MeasureSettings) -> Deployment:
    from kdrun.quant.dynamic import dynamic_state, quantize_linear_dynamic

    converted, how = quantize_linear_dynamic(student)
    val = evaluate_alone(converted, env)
    # the deployable file: the quantized state dict (load it into quantize_linear_dynamic(<the float student>))
    path = env.checkpoint_dir / name / "int8_dynamic.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(converted.state_dict(), path)
    record = {"test_top1": val["top1"], "test_loss": val["loss"], "precision": "int8",
              "int8_runtime": how, "artifact": str(path), "artifact_bytes": path.stat().st_size}
    if "perplexity" in val:  # a causal LM on next-token data
        record["perplexity"] = val["perplexity"]
    return Deployment(converted, "int8", dynamic_state(converted), record)


def reduced_range(q) -> bool:
    """``quant.reduce_range``: null decides for this CPU (7-bit activations without VNNI)."""
    return needs_reduced_range() if q.get("reduce_range") is None else bool(q.reduce_range)


def int8_deployment(prepared: ExportedModel, example: torch.Tensor, name: str, env: EngineEnv,
                    settings: MeasureSettings) -> Deployment:
    """Convert to int8, save it (``int8.pt2``), and measure its top-1 on int8 kernels."""
    path = env.checkpoint_dir / name / "int8.pt2"
    log.info("%s: converting to int8 and exporting %s", name, path.name)
    converted = convert(prepared)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_int8(converted, example, path)
    if settings.compile:
        log.info("%s: compiling the int8 model (Inductor) and evaluating it on its kernels", name)
    test, compiled, error = evaluate_deployed(converted, env, settings.compile)
    runtime = ("torch.compile (Inductor + oneDNN int8 kernels)" if compiled else
               "eager reference graph (int8 weights dequantized into float kernels)")
    record = {"test_top1": test["top1"], "test_loss": test["loss"], "precision": "int8",
              "int8_runtime": runtime, "artifact": str(path), "artifact_bytes": path.stat().st_size}
    if compiled is not None:
        # the kernels must compute what the converted model defines: check against its reference graph
        record["reference_top1"] = evaluate_alone(converted, env)["top1"]
        if abs(record["reference_top1"] - test["top1"]) > KERNEL_TOLERANCE:
            log.warning("%s: int8 kernels give top-1 %.2f%%, the int8 reference graph %.2f%%; the CPU's int8 "
                        "arithmetic saturates (try quant.reduce_range=true)", name, test["top1"],
                        record["reference_top1"])
        # the graph the top-1 was measured with (no code at all would show as no kernels)
        record["kernels"] = kernel_counts(compiled.code[0] if compiled.code else "")
    if error:
        record["compile_error"] = error
    return Deployment(converted, "int8", int8_state(converted), record, compiled)


def ptq_deployment(student: KDModel, example: torch.Tensor, batches: int, reduce_range: bool, name: str,
                   env: EngineEnv, settings: MeasureSettings) -> Deployment:
    prepared = prepare_ptq(student, example, reduce_range)
    loader = env.train_loader(False)
    loader.set_epoch(0)  # the same calibration batches on every run and resume
    calibrate(prepared, (raw[0] for raw in islice(loader, batches)))
    return int8_deployment(prepared, example, name, env, settings)
