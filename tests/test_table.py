"""The run's table: a compact terminal view that fits 80 columns, the full table.md, honest sizes and speed-ups."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import run_kdrun
from rich.console import Console

from kdrun.report.table import OVERLAP, markdown_table, rich_table, table_rows, table_title, write_tables


def timed(full_ms: float, spread: float, b1_ms: float = 0.1) -> dict:
    """A latency record as kdrun/quant/measure.py writes it (eager and compiled alike)."""
    out = {}
    for mode in ("eager", "compiled"):
        out[f"{mode}_ms"] = {"1": b1_ms, "256": full_ms}
        out[f"{mode}_iqr_ms"] = {"1": [b1_ms * 0.9, b1_ms * 1.1], "256": [full_ms - spread, full_ms + spread]}
    return out


def stage(role: str, arch: str, method: str, top1: float, params: int, size: int, latency: dict | None,
          **extra) -> dict:
    return {"role": role, "arch": arch, "method": method, "in_table": True, "last_top1": top1, "best_top1": top1,
            "params": params, "size_bytes": size, "wall_time": 12.3, **({"latency": latency} if latency else {}),
            **extra}


def results(measured: bool = True) -> dict:
    t = timed if measured else (lambda *a, **k: None)
    return {"dataset": "cifar100", "method": "rkd", "stages": {
        "teacher": stage("teacher", "resnet32x4", "ce", 79.42, 7_433_860, 29_800_000, t(40.0, 1.0)),
        "baseline": stage("baseline", "resnet8x4", "ce", 72.50, 1_233_540, 4_970_000, t(10.0, 0.5)),
        "distilled": stage("distilled", "resnet8x4", "rkd", 73.35, 1_233_540, 4_970_000, t(10.2, 0.5)),
        "self_distilled": stage("self_distilled", "resnet8x4", "rkd", 73.01, 1_233_540, 4_970_000, t(9.9, 0.5)),
        "quantized": stage("quantized", "resnet8x4", "rkd+qat", 72.80, 1_233_540, 1_300_000, t(4.0, 0.2),
                           precision="int8", float_reference="distilled", artifact="/x/int8.pt2",
                           artifact_bytes=1_412_345, int8_runtime="torch.compile"),
        "pruned": stage("pruned", "resnet8x4", "rkd+prune", 71.90, 1_233_540, 4_970_000, t(10.1, 0.5),
                        float_reference="distilled", sparsity=0.5, compressed_bytes=3_100_000,
                        compressed_format="state dict, zlib"),
    }}


@pytest.mark.parametrize("width", [80, 100])
def test_the_terminal_table_fits_the_terminal(width: int):
    console = Console(file=io.StringIO(), width=width)
    rows = table_rows(results())
    console.print(rich_table(rows, title=table_title(results())))
    lines = console.file.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    for row in rows:  # one line per row: no row wraps
        assert sum(line.lstrip().startswith(row["stage"] + " ") for line in lines) == 1, row["stage"]
    text = "\n".join(lines)
    assert "cifar100, resnet32x4 → resnet8x4, method=rkd" in text
    assert "rkd+qat" in text and OVERLAP in text


def test_speedups_whose_ranges_overlap_are_not_a_ratio():
    rows = {r["stage"]: r for r in table_rows(results())}
    assert rows["teacher"]["speedup_vs_teacher_eager"] == {"ratio": 1.0, "overlap": False}
    assert rows["baseline"]["speedup_vs_teacher_eager"] == {"ratio": 4.0, "overlap": False}
    # distilled (10.2 ± 0.5) vs self_distilled (9.9 ± 0.5) and pruned vs distilled: indistinguishable
    assert rows["pruned"]["speedup_vs_float_eager"]["overlap"]
    assert not rows["quantized"]["speedup_vs_float_eager"]["overlap"]
    md = markdown_table(list(rows.values()))
    assert OVERLAP in md and "2.55x" in md  # quantized vs distilled: 10.2 / 4.0


def test_sizes_are_the_deployed_files():
    rows = {r["stage"]: r for r in table_rows(results())}
    assert rows["quantized"]["size_bytes"] == 1_412_345 and rows["quantized"]["size_file"] == "int8.pt2"
    assert rows["pruned"]["size_bytes"] == 3_100_000 and rows["pruned"]["sparsity"] == 0.5
    assert rows["distilled"]["size_file"] == "state dict"
    md = markdown_table(list(rows.values()))
    assert "50.0%" in md and "sparsity 50.0%" in md


def test_without_timings_no_latency_columns(tmp_path: Path):
    rows = table_rows(results(measured=False))
    console = Console(file=io.StringIO(), width=80)
    console.print(rich_table(rows))
    printed = console.file.getvalue()
    assert "speed-up" not in printed and "–  –" not in printed
    md = write_tables(rows, tmp_path).read_text()
    assert " ms" not in md.splitlines()[0] and "compiled" not in md and "eager" not in md


def test_eager_only_timings_name_only_eager(tmp_path: Path):
    res = results()
    for s in res["stages"].values():
        for key in ("compiled_ms", "compiled_iqr_ms"):
            s["latency"].pop(key)
    md = markdown_table(table_rows(res))
    assert "eager ms, batch N" in md and "compiled" not in md.splitlines()[0]


@pytest.mark.slow  # the table's layout in-process: test_the_terminal_table_fits_the_terminal
@pytest.mark.parametrize("columns, in_process", [("80", False), ("100", True)])
def test_a_runs_printed_table_fits_columns_and_names_table_md(tmp_path: Path, columns: str, in_process: bool):
    """At 80 columns in a process of its own (what a user's terminal gets: the first import of torch's
    CUDA_HOME warning, Hydra's own log lines), at 100 through the same entry point in this process."""
    args = ["debug=fast", "dataset=digits", "teacher=mlp", "student=mlp", "teacher.hidden=[16]", "student.hidden=[8]",
            "stages=[teacher,baseline,distilled]", f"paths.outputs={tmp_path}", "name=run"]
    done = run_kdrun(args, tmp_path, env={"COLUMNS": columns}, in_process=in_process)
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines[:-1]) <= int(columns)  # the table; the path on the last line may not
    assert len(lines) > 5 and any(line.lstrip().startswith("distilled ") for line in lines)  # a table it is
    assert lines[-1].endswith(str(tmp_path / "runs" / "run" / "table.md"))
    assert "[HYDRA]" not in done.stdout + done.stderr and "CUDA_HOME" not in done.stderr
