"""TensorBoard: one event file per run (stage-prefixed tags), HParams in it, rebuilt exactly on resume."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import compose_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from kdrun.report.hparams import final_metrics, run_hparams
from kdrun.runs.writer import RunWriter


def record(epoch: int, top1: float) -> dict:
    return {"epoch": epoch, "lr": 0.05, "train_loss": 1.0 / epoch, "train_ce": 1.0 / epoch, "train_top1": top1 - 5,
            "val_top1": top1, "val_loss": 2.0 / epoch, "epoch_time": 0.1, "is_best": True}


def log_stage(writer: RunWriter, stage: str, epochs: range, top1: float) -> None:
    writer.begin_stage(stage, epochs.start)
    for e in epochs:
        writer.log_epoch(stage, e, record(e, top1 + e))
    writer.end_stage(stage)


def scalars(tb: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(tb))
    acc.Reload()
    return [(e.step, round(e.value, 4)) for e in acc.Scalars(tag)]


def test_one_event_file_per_run_with_hparams(tmp_path: Path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["distill.T=2", "trainer.momentum=0.8"]))
    cfg = compose_config(["distill.T=2", "trainer.momentum=0.8"])
    results = {"dataset": "mnist1d", "scheme": "offline", "stages": {
        "teacher": {"last_top1": 90.0, "best_top1": 91.0}, "baseline": {"last_top1": 60.0, "best_top1": 61.0},
        "distilled": {"last_top1": 70.0, "best_top1": 72.0}}}
    writer = RunWriter(tmp_path)
    log_stage(writer, "teacher", range(1, 3), 80.0)
    log_stage(writer, "distilled", range(1, 3), 60.0)
    writer.write_hparams(run_hparams(cfg, results, tmp_path), final_metrics(results))
    writer.close()

    tb = tmp_path / "tb"
    assert [p.is_file() and p.name.startswith("events.out.tfevents") for p in tb.iterdir()] == [True]
    assert scalars(tb, "distilled/top1/val") == [(1, 61.0), (2, 62.0)]
    assert scalars(tb, "final/delta_vs_baseline") == [(0, 10.0)]
    acc = EventAccumulator(str(tb))
    acc.Reload()
    content = acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["distill.T"].number_value == 2.0 and hparams["method.name"].string_value == "kd"
    assert hparams["trainer.momentum"].number_value == 0.8  # an overridden key joins the usual ones
    assert hparams["dataset"].string_value == "mnist1d" and hparams["distill.gamma"].string_value == "null"


def test_resume_rebuilds_the_log_from_metrics(tmp_path: Path):
    writer = RunWriter(tmp_path)
    log_stage(writer, "teacher", range(1, 3), 80.0)
    log_stage(writer, "distilled", range(1, 5), 60.0)  # epochs 3 and 4 ran after the last checkpoint...
    writer.close()
    resumed = RunWriter(tmp_path)  # ...so the resumed process starts the stage again at epoch 3
    resumed.begin_stage("distilled", 3)
    for e in (3, 4):
        resumed.log_epoch("distilled", e, record(e, 50.0 + e))
    resumed.close()
    tb = tmp_path / "tb"
    assert len(list(tb.iterdir())) == 1
    assert scalars(tb, "teacher/top1/val") == [(1, 81.0), (2, 82.0)]
    assert scalars(tb, "distilled/top1/val") == [(1, 61.0), (2, 62.0), (3, 53.0), (4, 54.0)]
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"], r["val_top1"]) for r in lines] == [
        ("teacher", 1, 81.0), ("teacher", 2, 82.0), ("distilled", 1, 61.0), ("distilled", 2, 62.0),
        ("distilled", 3, 53.0), ("distilled", 4, 54.0)]


def test_an_epoch_checkpointed_but_not_logged_is_restored_from_the_checkpoint(tmp_path: Path):
    writer = RunWriter(tmp_path)
    log_stage(writer, "distilled", range(1, 2), 60.0)  # epoch 2 reached its checkpoint, then the kill came
    writer.close()
    resumed = RunWriter(tmp_path)
    resumed.begin_stage("distilled", 3, [record(1, 61.0), record(2, 62.0)])
    resumed.log_epoch("distilled", 3, record(3, 63.0))
    resumed.close()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["val_top1"]) for r in lines] == [(1, 61.0), (2, 62.0), (3, 63.0)]
    assert scalars(tmp_path / "tb", "distilled/top1/val") == [(1, 61.0), (2, 62.0), (3, 63.0)]


def test_disabled_writer_writes_nothing(tmp_path: Path):
    writer = RunWriter(tmp_path, enabled=False)  # a data-parallel rank other than 0
    log_stage(writer, "teacher", range(1, 3), 80.0)
    writer.write_hparams({"seed": 0}, {"final/x": 1.0})
    writer.write_results({"status": "completed"})
    writer.close()
    assert list(tmp_path.iterdir()) == []
