"""export.onnx=true: the distilled student (and any float row asked for) as student.onnx, checked with onnxruntime
on the test set (its top-1 equal to PyTorch's), timed, and in the table beside the PyTorch columns."""

from __future__ import annotations

import numpy as np
import onnxruntime  # noqa: F401 - the onnx extra, installed by CI (.ci/run)
import pytest
from conftest import TINY, compose_config, read_results, run_kdrun

from kdrun.errors import KdrunError

RUN = [*TINY, "stages=[teacher,baseline,distilled]", "export.onnx=true", "export.rows=[baseline,distilled]",
       "export.onnx_int8=true",
       "measure.enabled=true", "measure.compile=false", "measure.max_seconds=0.2", "hydra.run.dir=run"]


def test_onnx_is_off_by_default_and_its_rows_are_checked_before_running(tmp_path, monkeypatch):
    import kdrun

    assert compose_config([]).export.onnx is False and list(compose_config([]).export.rows) == ["distilled"]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KdrunError, match="export.rows=nope is not valid") as e:
        kdrun.compose([*TINY, "export.onnx=true", "export.rows=[nope]"])
    assert "\n" not in str(e.value) and not (tmp_path / "outputs").exists()
    with pytest.raises(KdrunError, match="export.onnx_int8=true quantizes the ONNX export; add export.onnx=true"):
        kdrun.compose([*TINY, "export.onnx_int8=true"])


@pytest.mark.slow  # a tiny run with two ONNX exports (the torch.export-based exporter takes seconds each)
def test_the_onnx_students_top1_equals_pytorchs_and_the_table_shows_it(workdir):
    import kdrun
    from kdrun.export.onnx import INPUT, OUTPUT, session

    run_kdrun(RUN, workdir)
    results = read_results(workdir / "run")
    for stage in ("baseline", "distilled"):
        record = results["stages"][stage]
        path = workdir / "run" / "checkpoints" / stage / "student.onnx"
        assert record["onnx_file"] == str(path) and record["onnx_bytes"] == path.stat().st_size > 0
        assert record["onnx_top1"] == record["onnx_torch_top1"] == record["last_top1"]  # the row's own number
        assert record["onnx_max_abs_diff"] < 1e-4 and set(record["onnx_ms"]) == {"1", "256"}
    assert "onnx_top1" not in results["stages"]["teacher"]  # not asked for
    int8 = results["stages"]["distilled"]  # onnxruntime's static int8 quantization: its own top-1, honestly its own
    assert int8["onnx_int8_bytes"] == (workdir / "run" / "checkpoints" / "distilled" / "student_int8.onnx").stat().st_size
    assert 0 <= int8["onnx_int8_top1"] <= 100 and int8["onnx_int8_calibration_batches"] == 2  # quant.calibration_batches
    assert set(int8["onnx_int8_ms"]) == {"1", "256"}

    # the file alone, run by onnxruntime here, against the PyTorch student kdrun.load gives back
    result = kdrun.Result.of(workdir / "run")
    student = kdrun.load(workdir / "run", "distilled")
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype("float32")
    import torch

    expected = student(torch.from_numpy(x)).detach().numpy()
    got = session(workdir / "run" / "checkpoints" / "distilled" / "student.onnx").run([OUTPUT], {INPUT: x})[0]
    assert np.abs(got - expected).max() < 1e-4
    assert result.row("distilled").columns["onnx_top1"] == results["stages"]["distilled"]["last_top1"]
    table = (workdir / "run" / "table.md").read_text()
    assert "ONNX top-1" in table and "ONNX ms, batch 1" in table and "onnxruntime" in table
    assert "ONNX int8 top-1" in table and "static quantization" in table
