"""The int8 path: training-mode handling of exported graphs, real int8 kernels, accuracy measured with the
converted model, resumable conversion -- end to end through the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from conftest import TINY, compose_config, read_metrics, read_results, run_kdrun
from in_process import skip_run_plots
from kdrun.tasks.build import build_data
from kdrun.data.loaders import make_loader
from kdrun.engine.finish import FixedBatch
from kdrun.engine.loop import evaluate
from kdrun.models.registry import create_model
from kdrun.quant.exported import ExportedModel
from kdrun.quant.measure import Compiled, MeasureSettings, latency
from kdrun.quant.pt2e import (calibrate, convert, int8_state, kernel_counts, load_int8, needs_reduced_range,
                              prepare_ptq, prepare_qat)

# compile int8 models (their accuracy is measured on int8 kernels) but skip the timing of every row
QUANT = [*TINY, "measure.enabled=false", "measure.compile=true",
         "stages=[teacher,distilled,quantized,quantized_ptq]", "hydra.run.dir=outputs/run"]


def tb_tags(run_dir) -> set[str]:
    """The scalar tags of the run's TensorBoard log (one writer per run, tags ``<stage>/...``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def dropout_args(model: ExportedModel) -> list[tuple]:
    return [n.args[1:] for n in model.graph.graph.nodes if n.target == torch.ops.aten.dropout.default]


def test_exported_model_switches_modes_keeping_dropout_p_and_freezing_ranges_in_eval():
    mlp = create_model("mlp", num_classes=3, in_channels=1, input_size=(8,), hidden=[6], dropout=0.25)
    model = prepare_qat(mlp, torch.randn(4, 1, 8))
    assert dropout_args(model) == [(0.25, True)]
    model(torch.randn(16, 1, 8))  # training observes ranges
    model.eval()
    assert dropout_args(model) == [(0.25, False)]
    ranges = {k: v.clone() for k, v in model.state_dict().items() if k.endswith(("min_val", "max_val"))}
    assert len(ranges) == 8  # input, hidden and output activations, and the two weights
    model(torch.randn(16, 1, 8) * 100)  # evaluating must not move the quantization ranges
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in ranges.items())
    model.train()
    assert dropout_args(model) == [(0.25, True)]
    model(torch.randn(16, 1, 8) * 100)
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in ranges.items())


def test_converted_model_stores_int8_weights_and_compiles_to_int8_kernels():
    torch.manual_seed(0)
    mlp = create_model("mlp", num_classes=3, in_channels=1, input_size=(8,), hidden=[6])
    prepared = prepare_qat(mlp, torch.randn(4, 1, 8))
    prepared(torch.randn(32, 1, 8))  # observe some ranges
    int8 = convert(prepared)
    weights = [v for v in int8_state(int8).values() if v.dim() == 2]
    assert len(weights) == 2 and all(w.dtype == torch.int8 for w in weights)
    compiled = Compiled(int8)
    out = compiled(torch.randn(5, 1, 8))
    assert out.shape == (5, 3)
    assert kernel_counts(compiled.code[0]) == {"int8": {"qlinear_pointwise": 2}, "float": {}}


@pytest.mark.slow  # torchao exports the conv2d fold patterns (~5 s); conversion is covered quickly above
def test_convert_folds_batch_norm_into_the_convs_the_graph_has():
    # kdrun runs torchao's conv + BN folding for the conv kinds present only (kdrun/quant/pt2e.py): the BN
    # must still be gone from the int8 graph, its scale in the int8 conv weights (eval outputs unchanged)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    x = torch.randn(8, 1, 8, 8)
    prepared = prepare_qat(model, x)
    for _ in range(3):
        prepared(x)  # BN statistics and activation ranges
    prepared.eval()
    int8 = convert(prepared)
    code = int8.graph.code
    assert "batch_norm" not in code and "conv2d" in code
    conv_weight = next(v for v in int8_state(int8).values() if v.dim() == 4)
    assert conv_weight.dtype == torch.int8
    with torch.no_grad():
        assert torch.allclose(int8(x), prepared(x), atol=0.05)


def test_kernel_counts_read_call_sites_only():
    code = """# Topologically Sorted Source Nodes: [conv1d], Original ATen: [aten.convolution]
buf0 = extern_kernels.convolution(arg0_1, _frozen_param0, _frozen_param1, stride=(2,))
assert_tensor_metadata(buf0, (4, 64, 19), (1216, 19, 1), torch.float32, 'torch.ops.aten.convolution.default')
buf2 = torch.ops.onednn.qconv_pointwise.tensor(buf1, x_scale, x_zp, _frozen_param2)
torch.ops.onednn.qconv2d_pointwise.binary_tensor(buf2, x_scale_1, x_zp_1, buf1)
buf6 = torch.ops.onednn.qlinear_pointwise.tensor(buf5, x_scale_2, x_zp_2, _frozen_param6)"""
    assert kernel_counts(code) == {"int8": {"qconv_pointwise": 1, "qconv2d_pointwise": 1, "qlinear_pointwise": 1},
                                   "float": {"convolution": 1}}


@pytest.mark.parametrize("reduce_range, quant_max", [(True, 127), (False, 255)])
def test_reduced_range_quantizes_activations_to_7_bits(reduce_range, quant_max):
    mlp = create_model("mlp", num_classes=3, in_channels=1, input_size=(8,), hidden=[6])
    prepared = prepare_ptq(mlp, torch.randn(4, 1, 8), reduce_range)
    calibrate(prepared, [torch.randn(16, 1, 8)])
    graph = convert(prepared).graph.graph
    quantize = [n for n in graph.nodes if n.target == torch.ops.quantized_decomposed.quantize_per_tensor.default]
    assert len(quantize) == 2 and all(n.args[3:5] == (0, quant_max) for n in quantize)


def test_a_model_that_fails_to_compile_is_recorded_not_fatal(monkeypatch):
    class Broken:
        seconds = 0.0

        def __call__(self, x):
            raise RuntimeError("no C++ compiler\nmore detail")

    s = MeasureSettings(batch_sizes=(1, 4), warmup=1, max_seconds=0.1)
    result = latency(torch.nn.Linear(3, 2), {1: torch.randn(1, 3), 4: torch.randn(4, 3)}, s, compiled=Broken())
    assert set(result["eager_ms"]) == {"1", "4"} and all(v > 0 for v in result["eager_ms"].values())
    assert result["compiled_ms"] is None and result["compile_error"] == "RuntimeError: no C++ compiler"
    # torch.utils.benchmark's blocks: the median lies within the recorded interquartile range
    assert result["timer"] == "torch.utils.benchmark"
    assert all(q1 <= result["eager_ms"][b] <= q3 for b, (q1, q3) in result["eager_iqr_ms"].items())


@pytest.mark.slow
def test_quantized_rows_end_to_end(workdir, monkeypatch):
    skip_run_plots(monkeypatch)  # tests/in_process.py says why
    run_kdrun(QUANT, cwd=workdir)
    run = workdir / "outputs/run"
    stages = read_results(run)["stages"]
    for name in ("quantized", "quantized_ptq"):
        s = stages[name]
        assert s["precision"] == "int8" and "oneDNN int8 kernels" in s["int8_runtime"]
        # both linear layers of the mlp student run on int8 kernels, none on float ones
        assert s["kernels"] == {"int8": {"qlinear_pointwise": 2}, "float": {}}
        # the kernels compute what the converted model defines (7-bit activations where the CPU needs them)
        assert abs(s["reference_top1"] - s["last_top1"]) <= 1.0
        assert s["activation_bits"] == (7 if needs_reduced_range() else 8)
        assert s["size_bytes"] < stages["distilled"]["size_bytes"]
        assert_top1_is_the_int8_models(Path(s["artifact"]), s["last_top1"])
    assert stages["quantized"]["trained_top1"] is not None and stages["quantized"]["method"] == "kd+qat"
    logged = {r["stage"]: r for r in read_metrics(run)}
    assert logged["quantized/int8"]["test_top1"] == stages["quantized"]["last_top1"] == stages["quantized"]["test_top1"]
    assert {"quantized/int8/top1/test", "quantized/top1/test", "quantized_ptq/int8/top1/test"} <= tb_tags(run)

    # resuming reuses the conversion and its measurements: nothing is rewritten
    artifact = run / "checkpoints/quantized/int8.pt2"
    mtime = artifact.stat().st_mtime_ns
    run_kdrun(QUANT, cwd=workdir)
    assert artifact.stat().st_mtime_ns == mtime
    assert read_results(run)["stages"]["quantized"] == stages["quantized"]


def assert_top1_is_the_int8_models(artifact, reported: float) -> None:
    """Load the saved int8 model, run it on int8 kernels over the run's test batches: same top-1."""
    model = load_int8(artifact)
    assert [w.dtype for w in int8_state(model).values() if w.dim() == 2] == [torch.int8, torch.int8]
    compiled = Compiled(model)
    cfg = compose_config(QUANT)
    loader = make_loader(build_data(cfg).test, batch_size=256, shuffle=False, seed_for_epoch=cfg.seed,
                         max_batches=cfg.trainer.max_eval_batches)
    top1 = evaluate(FixedBatch(compiled), loader, torch.device("cpu"))["top1"]
    assert re.search(r"onednn\.qlinear_pointwise", compiled.code[0])
    assert top1 == pytest.approx(reported, abs=1e-9)
