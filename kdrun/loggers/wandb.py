"""Weights & Biases (``logger=wandb``, ``pip install -e ".[wandb]"``): one W&B run per kdrun run, every stage's
metrics against its own epoch axis (``<stage>/epoch``), the composed config, the final numbers as the run's
summary, and the run's tables, plots, results.json and deployed students as one artifact. A sweep's jobs share a
W&B group (the sweep folder's name). ``WANDB_MODE=offline`` (or ``logger.wandb.mode=offline``) writes the run
under ``<run>/wandb/`` for a later ``wandb sync``; online it goes to ``logger.wandb.project``. A resumed run
continues its W&B run (the same id)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from kdrun.loggers.base import Logger, RunInfo, epoch_scalars
from kdrun.loggers.state import read_state, remember


class WandbLogger(Logger):
    name = "wandb"

    def __init__(self, project: str = "kdrun", entity: str | None = None, mode: str | None = None,
                 tags: list[str] | None = None) -> None:
        self.project, self.entity, self.mode, self.tags = project, entity, mode, list(tags or [])
        self.run: Any = None
        self.stages: set[str] = set()

    def start(self, run: RunInfo) -> None:
        import wandb

        saved = read_state(run.run_dir).get(self.name, {})
        run_id = saved.get("id") or secrets.token_hex(4)  # W&B's own ids are 8 characters of [0-9a-z] too
        self.run = wandb.init(project=self.project, entity=self.entity, mode=self.mode, id=run_id, resume="allow",
                              name=run.name, group=run.group.name if run.group is not None else None,
                              dir=str(run.run_dir), config=run.params, tags=self.tags, reinit="finish_previous",
                              settings=wandb.Settings(silent=True, console="off"))
        remember(run.run_dir, self.name, {"id": run_id, "project": self.project})
        if not saved.get("id"):  # a new run: the cached stages' curves first; a resumed one has them
            for record in run.records:
                self.log_epoch(record["stage"], record["epoch"], record)

    def log_epoch(self, stage: str, epoch: int, metrics: dict[str, Any]) -> None:
        if stage not in self.stages:
            self.run.define_metric(f"{stage}/epoch")
            self.run.define_metric(f"{stage}/*", step_metric=f"{stage}/epoch")
            self.stages.add(stage)
        self.run.log({f"{stage}/epoch": epoch, **epoch_scalars(stage, metrics)})

    def log_final(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        self.run.summary.update(metrics)

    def log_files(self, files: list[tuple[Path, str]]) -> None:
        import wandb

        artifact = wandb.Artifact(f"run-{self.run.id}", type="kdrun-run")
        for path, folder in files:
            artifact.add_file(str(path), name=f"{folder}/{Path(path).name}" if folder else Path(path).name)
        self.run.log_artifact(artifact)

    def close(self, status: str) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if status == "completed" else 1)
            self.run = None
