"""MLflow (``logger=mlflow``, ``pip install -e ".[mlflow]"``): one MLflow run per kdrun run, with every stage's
metrics and loss terms per epoch, the composed config as flat params, the final numbers, and the run's tables,
plots, results.json and deployed students as artifacts. A sweep's jobs are children of one parent run.

Where runs go: ``logger.mlflow.tracking_uri`` when given (a server, ``http://...``), else the standard
``MLFLOW_TRACKING_URI`` environment variable when set, else a local store under the outputs folder that
needs no server: ``sqlite:///<paths.outputs>/mlflow.db``, artifacts in ``<paths.outputs>/mlartifacts``
(``mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db``). A resumed run continues its MLflow run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kdrun.loggers.base import Logger, RunInfo, epoch_scalars
from kdrun.loggers.state import read_state, remember, shared_entry

PARAMS_PER_CALL = 100  # MLflow's limit for one log_batch
STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


def resolve_uri(given: str | None, store: str | os.PathLike) -> str:
    """The explicit URI, else MLFLOW_TRACKING_URI, else the local SQLite store in ``store``."""
    if given:
        return str(given)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(store).absolute() / 'mlflow.db'}"


class MLflowLogger(Logger):
    name = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment_name: str = "kdrun", store: str = "outputs",
                 tags: dict[str, str] | None = None) -> None:
        self.uri = resolve_uri(tracking_uri, store)
        self.local_store = None if tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") else Path(store).absolute()
        self.experiment_name = experiment_name
        self.tags = dict(tags or {})
        self.client: Any = None
        self.run_id: str | None = None

    def start(self, run: RunInfo) -> None:
        from mlflow import MlflowClient

        if self.local_store is not None:
            self.local_store.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri)
        experiment = self._experiment()
        saved = read_state(run.run_dir).get(self.name, {})
        if saved.get("run_id") and saved.get("tracking_uri") == self.uri and self._exists(saved["run_id"]):
            self.run_id = saved["run_id"]  # a resumed run: continue it (its earlier epochs are logged there)
            self.client.update_run(self.run_id, status="RUNNING")
            return
        tags = {**self.tags, "kdrun.run_dir": str(run.run_dir)}
        if run.group is not None:
            tags["mlflow.parentRunId"] = self._parent(run.group, experiment)
        self.run_id = self.client.create_run(experiment, run_name=run.name, tags=tags).info.run_id
        remember(run.run_dir, self.name, {"run_id": self.run_id, "tracking_uri": self.uri})
        self._log_params(run.params)
        for record in run.records:  # a cached teacher's curves, replayed before this run's own epochs
            self.log_epoch(record["stage"], record["epoch"], record)

    def log_epoch(self, stage: str, epoch: int, metrics: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now = _now_ms()
        batch = [Metric(k, v, now, epoch) for k, v in epoch_scalars(stage, metrics).items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_final(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = _now_ms()
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])

    def log_files(self, files: list[tuple[Path, str]]) -> None:
        for path, folder in files:
            self.client.log_artifact(self.run_id, str(path), artifact_path=folder or None)

    def close(self, status: str) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id, status=STATUS.get(status, "FAILED"))

    def _experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            return found.experiment_id
        location = (self.local_store / "mlartifacts").as_uri() if self.local_store is not None else None
        return self.client.create_experiment(self.experiment_name, artifact_location=location)

    def _exists(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
        except Exception:  # noqa: BLE001 - deleted, or another store: start a new run
            return False
        return True

    def _parent(self, sweep_dir: Path, experiment: str) -> str:
        def create() -> dict:
            parent = self.client.create_run(experiment, run_name=sweep_dir.name,
                                            tags={**self.tags, "kdrun.sweep_dir": str(sweep_dir)})
            return {"parent_run_id": parent.info.run_id, "tracking_uri": self.uri}

        entry = shared_entry(sweep_dir, self.name, lambda e: e.get("tracking_uri") == self.uri
                             and bool(e.get("parent_run_id")) and self._exists(e["parent_run_id"]), create)
        return entry["parent_run_id"]

    def _log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=items[i:i + PARAMS_PER_CALL])


def finish_sweep(sweep_dir: Path, files: list[Path], failed: bool) -> None:
    """The end of a sweep: its parent run gets the sweep's report as artifacts and is marked finished."""
    entry = read_state(sweep_dir).get(MLflowLogger.name)
    if not isinstance(entry, dict) or not entry.get("parent_run_id"):
        return
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=entry["tracking_uri"])
    for path in files:
        if Path(path).is_file():
            client.log_artifact(entry["parent_run_id"], str(path), artifact_path="report")
    client.set_terminated(entry["parent_run_id"], status="FAILED" if failed else "FINISHED")


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
