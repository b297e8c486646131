"""Latency rows timed in the same interleaved rounds: identical models get identical speed-up labels."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from kdrun.quant.measure import MeasureSettings
from kdrun.quant.rounds import compute_signature, time_rows
from kdrun.report.table import OVERLAP, _speedup, speedup

FAST = MeasureSettings(compile=False, batch_sizes=(1, 64), warmup=1, max_seconds=0.05, rounds=5, threads=1)


def _latencies(record: dict) -> dict:
    return {"eager_ms_full": record["eager_ms"]["64"], "eager_iqr_ms_full": record["eager_iqr_ms"]["64"]}


def test_one_model_timed_twice_gets_one_latency_and_one_label():
    small = nn.Sequential(nn.Linear(40, 16), nn.ReLU(), nn.Linear(16, 10))
    big = nn.Sequential(nn.Linear(40, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    other_weights = copy.deepcopy(small)
    torch.nn.init.normal_(other_weights[0].weight)
    inputs = {1: torch.randn(1, 40), 64: torch.randn(64, 40)}
    timed = time_rows({"teacher": (big, None), "baseline": (small, None), "distilled": (other_weights, None)},
                      inputs, FAST)
    assert compute_signature(small) == compute_signature(other_weights) != compute_signature(big)
    assert timed["baseline"] == timed["distilled"]  # the same computation: pooled, one latency
    assert timed["baseline"]["rounds"] == 5 and timed["teacher"]["timer"].endswith("interleaved rounds")
    teacher, base, dist = (_latencies(timed[r]) for r in ("teacher", "baseline", "distilled"))
    assert _speedup(speedup(teacher, base, "eager")) == _speedup(speedup(teacher, dist, "eager"))


def test_a_ratio_is_printed_only_where_the_intervals_separate():
    ref = {"eager_ms_full": 10.0, "eager_iqr_ms_full": [9.0, 11.0]}
    close = {"eager_ms_full": 9.5, "eager_iqr_ms_full": [8.5, 10.5]}
    apart = {"eager_ms_full": 1.0, "eager_iqr_ms_full": [0.9, 1.1]}
    assert _speedup(speedup(ref, close, "eager")) == OVERLAP
    assert _speedup(speedup(ref, apart, "eager")) == "10x"


@pytest.mark.slow  # a run with latency timing
def test_a_run_times_its_rows_together_at_the_end(tmp_path):
    from conftest import TINY, read_results, run_kdrun
    from kdrun.report.table import table_rows

    run_kdrun([*TINY, "stages=[teacher,baseline,distilled]", "measure.enabled=true", "measure.compile=false",
               "measure.max_seconds=0.05", "measure.batch_sizes=[1,32]", "hydra.run.dir=run"], tmp_path)
    results = read_results(tmp_path / "run")
    stages = results["stages"]
    assert all(s["latency"]["rounds"] == 7 for s in stages.values())
    assert stages["baseline"]["latency"] == stages["distilled"]["latency"]  # one student architecture
    rows = {r["stage"]: r for r in table_rows(results)}
    assert rows["baseline"]["speedup_vs_teacher_eager"] == rows["distilled"]["speedup_vs_teacher_eager"]
