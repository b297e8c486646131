"""Experiment trackers (the ``logger`` config group, kdrun/loggers/): MLflow's local store read back with MlflowClient
(metrics, params, artifacts, one run per kdrun run, a sweep's parent, a resumed run continuing its run), W&B's
offline run files, CSV, several at once, and a tracker that raises never failing the run."""

from __future__ import annotations

import csv
import glob
import json
import logging
from pathlib import Path

import mlflow  # noqa: F401 - the mlflow extra, installed by CI (.ci/run)
import pytest
import wandb  # noqa: F401 - the wandb extra
from conftest import TINY, compose_config, read_metrics, read_results, run_kdrun
from mlflow import MlflowClient

from kdrun.loggers.base import Logger, RunInfo
from kdrun.loggers.fanout import Loggers
from kdrun.loggers.mlflow import resolve_uri

RUN = [*TINY, "stages=[teacher,baseline,distilled]", "trainer.epochs=2", "trainer.max_epochs=2"]


class Raising(Logger):
    """A tracker whose server is down: every call raises."""

    name = "broken"

    def __init__(self, when: str = "start") -> None:
        self.when = when

    def start(self, run):
        if self.when == "start":
            raise ConnectionError("connection refused: http://tracker:5000\nretrying did not help")

    def log_epoch(self, stage, epoch, metrics):
        raise ConnectionError("connection reset")


class Recording(Logger):
    name = "recording"

    def __init__(self):
        self.calls = []

    def start(self, run):
        self.calls.append("start")

    def log_epoch(self, stage, epoch, metrics):
        self.calls.append(f"{stage}/{epoch}")

    def close(self, status):
        self.calls.append(status)


@pytest.mark.parametrize("when", ["start", "log_epoch"])
def test_a_failing_tracker_is_one_warning_and_the_others_go_on(tmp_path, caplog, when):
    good = Recording()
    loggers = Loggers([Raising(when), good])
    with caplog.at_level(logging.WARNING, logger="kdrun"):
        loggers.start(RunInfo(tmp_path, "run"))
        for epoch in (1, 2):
            loggers.log_epoch("teacher", epoch, {"lr": 0.1, "test_top1": 50.0})
        loggers.close("completed")
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("logger=broken failed (ConnectionError: connection re") and "\n" not in line
    assert "the run goes on without it" in line
    assert good.calls == ["start", "teacher/1", "teacher/2", "completed"]


def test_mlflow_store_is_the_option_else_the_environment_else_local(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri(None, tmp_path / "outputs") == f"sqlite:///{tmp_path}/outputs/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.lab:5000")
    assert resolve_uri(None, "outputs") == "http://mlflow.lab:5000"
    assert resolve_uri("http://other:5000", "outputs") == "http://other:5000"


def test_logger_options_compose_alone_together_and_as_many():
    assert list(compose_config([]).logger) == ["tensorboard"]  # today's behaviour, the default
    assert list(compose_config(["logger=[tensorboard,mlflow]"]).logger) == ["tensorboard", "mlflow"]
    assert list(compose_config(["logger=many"]).logger) == ["tensorboard", "csv", "mlflow"]
    assert compose_config(["logger=mlflow"]).logger.mlflow.store == "outputs"
    from kdrun.loggers.wandb import WandbLogger
    from kdrun.objects import from_config

    built = from_config(compose_config(["logger=wandb"]).logger.wandb)  # options only: wandb starts with the run
    assert isinstance(built, WandbLogger) and built.project == "kdrun" and built.mode is None
    from kdrun.loggers.csv import CSVLogger

    assert isinstance(from_config(compose_config(["logger=csv"]).logger.csv), CSVLogger)


@pytest.mark.slow  # a tiny run of three stages (~10-20 s on a loaded 2-core machine)
def test_a_raising_tracker_does_not_fail_the_run(workdir):
    proc = run_kdrun([*RUN, "logger=[csv,tensorboard]", "+logger.broken._target_=test_trackers.Raising",
                      "hydra.run.dir=run"], workdir)
    assert proc.returncode == 0
    warnings = [line for line in proc.stderr.splitlines() if "logger=broken failed" in line]
    assert len(warnings) == 1 and "ConnectionError" in warnings[0]
    results = read_results(workdir / "run")
    assert results["status"] == "completed"
    rows = list(csv.DictReader((workdir / "run" / "csv" / "metrics.csv").open()))
    assert [(r["stage"], r["epoch"]) for r in rows] == [(s, e) for s in ("teacher", "baseline", "distilled")
                                                        for e in ("1", "2")]
    distilled = [r for r in rows if r["stage"] == "distilled"]
    assert float(distilled[-1]["top1/test"]) == results["stages"]["distilled"]["last_top1"]
    assert float(distilled[-1]["loss/kd"]) > 0
    assert any((workdir / "run" / "tb").iterdir())


def _mlflow_runs(store: Path) -> tuple[MlflowClient, list]:
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("kdrun")
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.mark.slow  # MLflow creates its SQLite store (~10 s), two runs
def test_mlflow_keeps_one_run_per_kdrun_run_with_metrics_params_and_files_and_a_resume_continues_it(workdir):
    args = [*RUN, "logger=mlflow", "hydra.run.dir=run"]
    run_kdrun(args, workdir, env={"MLFLOW_TRACKING_URI": ""})
    client, (run,) = _mlflow_runs(workdir / "outputs")
    results = read_results(workdir / "run")
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["distill.T"] == "4.0" and run.data.params["student.arch"] == "mlp"
    history = client.get_metric_history(run.info.run_id, "distilled/top1/test")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], r["test_top1"]) for r in read_metrics(workdir / "run")
                                                    if r["stage"] == "distilled"]
    assert {"distilled/loss/kd", "teacher/loss/ce", "distilled/lr"} <= set(run.data.metrics)
    assert run.data.metrics["final/distilled/top1_last"] == results["stages"]["distilled"]["last_top1"]
    files = {a.path for folder in ("", "tables", "plots", "students/distilled")
             for a in client.list_artifacts(run.info.run_id, folder or None)}
    assert {"results.json", "tables/table.md", "tables/table.csv", "plots/curves.png",
            "students/distilled/last.pt"} <= files

    # an interrupted run (its distilled stage lost) resumes into the same MLflow run
    results["status"] = "interrupted"
    del results["stages"]["distilled"]
    (workdir / "run" / "results.json").write_text(json.dumps(results))
    for f in (workdir / "run" / "checkpoints" / "distilled").iterdir():
        f.unlink()
    run_kdrun(args, workdir, env={"MLFLOW_TRACKING_URI": ""})
    client, runs = _mlflow_runs(workdir / "outputs")
    assert [r.info.run_id for r in runs] == [run.info.run_id] and runs[0].info.status == "FINISHED"
    assert read_results(workdir / "run")["status"] == "completed"


@pytest.mark.slow  # a sweep of two jobs into a fresh MLflow store
def test_a_sweeps_runs_are_children_of_one_parent_run(workdir):
    run_kdrun(["-m", *RUN, "distill.T=1,2", "logger=mlflow"], workdir, env={"MLFLOW_TRACKING_URI": ""})
    client, runs = _mlflow_runs(workdir / "outputs")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert sorted(c.data.params["distill.T"] for c in children) == ["1", "2"]
    assert parents[0].info.status == "FINISHED"  # finished by the sweep's end, with its report
    assert "report/report.md" in {a.path for a in client.list_artifacts(parents[0].info.run_id, "report")}


@pytest.mark.slow  # W&B's offline service process
def test_wandb_offline_run_files_hold_the_metrics(workdir):
    run_kdrun([*RUN, "logger=wandb", "hydra.run.dir=run"], workdir, env={"WANDB_MODE": "offline"})
    results = read_results(workdir / "run")
    (record,) = glob.glob(str(workdir / "run" / "wandb" / "offline-run-*" / "run-*.wandb"))
    data = Path(record).read_bytes()  # W&B's binary record log: keys and JSON values are stored as text
    assert b"distilled/top1/test" in data and b"teacher/loss/ce" in data and b"final/distilled/top1_last" in data
    assert repr(results["stages"]["distilled"]["last_top1"]).encode() in data
    assert b"distill.T" in data and b"table.md" in data
    run_id = json.loads((workdir / "run" / "trackers.json").read_text())["wandb"]["id"]
    assert run_id in record

    # an interrupted run (its distilled stage lost) resumes its W&B run: the same id, continued
    results["status"] = "interrupted"
    del results["stages"]["distilled"]
    (workdir / "run" / "results.json").write_text(json.dumps(results))
    for f in (workdir / "run" / "checkpoints" / "distilled").iterdir():
        f.unlink()
    run_kdrun([*RUN, "logger=wandb", "hydra.run.dir=run"], workdir, env={"WANDB_MODE": "offline"})
    records = glob.glob(str(workdir / "run" / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(records) == 2 and all(r.endswith(f"run-{run_id}.wandb") for r in records)  # wandb sync joins them
    assert read_results(workdir / "run")["status"] == "completed"


def test_your_own_tracker_is_added_by_its_target_and_nothing_else_passes(tmp_path, monkeypatch):
    import kdrun
    from kdrun.errors import KdrunError

    monkeypatch.chdir(tmp_path)
    cfg = kdrun.compose([*TINY, "+logger.mine._target_=test_trackers.Recording"])
    assert list(cfg.logger) == ["tensorboard", "mine"]
    with pytest.raises(KdrunError, match="logger.mine.verbose is not a config key"):
        kdrun.compose([*TINY, "+logger.mine.verbose=true"])  # no _target_: nothing would read it


@pytest.mark.slow  # two tiny runs: MLflow's package missing, its server down
def test_mlflow_missing_or_its_server_down_is_one_warning_and_the_run_completes(workdir, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the mlflow extra were not installed
    proc = run_kdrun([*RUN, "logger=[csv,mlflow]", "hydra.run.dir=missing"], workdir)
    monkeypatch.delitem(sys.modules, "mlflow")
    (line,) = [line for line in proc.stderr.splitlines() if "logger=mlflow failed" in line]
    assert "ModuleNotFoundError" in line and read_results(workdir / "missing")["status"] == "completed"
    assert (workdir / "missing" / "csv" / "metrics.csv").is_file()

    # nothing listens on port 9 (discard): connection refused; MLflow's retries shortened for the test
    down = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    proc = run_kdrun([*RUN, "logger=mlflow", "logger.mlflow.tracking_uri=http://127.0.0.1:9", "hydra.run.dir=down"],
                     workdir, env=down)
    (line,) = [line for line in proc.stderr.splitlines() if "logger=mlflow failed" in line]
    assert "the run goes on without it" in line and read_results(workdir / "down")["status"] == "completed"
