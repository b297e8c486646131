"""A run: build the data and the scheme's stages, run each stage, record results, print the table."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import kdrun
from kdrun.build import build_data, resolve_device, transfer_batch_size
from kdrun.data.loaders import make_loader
from kdrun.data.transfer import pair_with_transfer
from kdrun.distributed.data import eval_shard, per_rank_batch_size
from kdrun.distributed.state import is_main, local_device, main_process_first, rank, world_size
from kdrun.engine.cache import StageCache
from kdrun.engine.checkpoint import load_weights
from kdrun.engine.finite import first_non_finite, floating_tensors
from kdrun.engine.fit import EngineEnv, StageOutcome, fit
from kdrun.engine.loop import evaluate
from kdrun.engine.progress import ProgressReporter
from kdrun.errors import KdrunError, write_error
from kdrun.logs import console, output
from kdrun.quant.deploy import finish_stage
from kdrun.quant.measure import MeasureSettings
from kdrun.report.run_end import finish_run
from kdrun.report.table import rich_table, table_rows, write_tables
from kdrun.report.writer import RunWriter
from kdrun.schemes.registry import SCHEMES, scheme_name
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.stage import Stage

log = logging.getLogger("kdrun")
RANK_SEED_STRIDE = 1_000_003


def library_versions() -> dict[str, str]:
    import hydra

    return {"kdrun": kdrun.__version__, "torch": torch.__version__, "hydra": hydra.__version__,
            "python": platform.python_version()}


def make_env(cfg: DictConfig, data, device: torch.device, run_dir: Path, writer: RunWriter) -> EngineEnv:
    """Loaders and sinks for this process. Data-parallel: each rank trains on its shard with
    ``trainer.batch_size / world_size`` per step and evaluates its part of the test set."""
    t = cfg.trainer
    batch_size = per_rank_batch_size(t.batch_size, world_size())

    def train_loader(with_index: bool, with_transfer: bool = False):
        labeled = make_loader(data.train, batch_size=batch_size, shuffle=True, seed_for_epoch=cfg.seed,
                              num_workers=t.num_workers, device=device, with_index=with_index,
                              max_batches=t.max_train_batches, rank=rank(), world_size=world_size())
        if not with_transfer:
            return labeled
        return pair_with_transfer(labeled, data.transfer, per_rank_batch_size(transfer_batch_size(cfg), world_size()),
                                  cfg.seed, t.num_workers, device)

    eval_batch = max(t.batch_size, 256)

    def test_loader(shard: int, shards: int):
        return make_loader(eval_shard(data.test, eval_batch, t.max_eval_batches, shard, shards),
                           batch_size=eval_batch, shuffle=False, seed_for_epoch=cfg.seed,
                           num_workers=t.num_workers, device=device)

    # rank 0 keeps the run's seed (so one process and rank 0 draw alike); other ranks get their
    # own stream for dropout and sampling, instead of repeating rank 0's masks on other samples
    seed = cfg.seed + RANK_SEED_STRIDE * rank()
    return EngineEnv(device=device, amp=cfg.device.amp, train_loader=train_loader,
                     test_loader=test_loader(rank(), world_size()),
                     whole_test_loader=test_loader(0, 1) if world_size() > 1 and is_main() else None,
                     checkpoint_dir=run_dir / "checkpoints", sink=writer,
                     reporter=ProgressReporter(console(), rich=None if is_main() else False), seed=seed,
                     meta={"num_classes": data.info.num_classes, "dataset": data.info.name})


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run every stage of the configured scheme in ``run_dir``; resumes whatever is already there."""
    device = local_device(resolve_device(cfg.device))
    if is_main():  # data-parallel: rank 0 writes, the others compute
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)  # .hydra/config.yaml keeps interpolations
        except OSError as e:
            raise write_error(run_dir / "config.yaml", "the resolved config", e) from None
    with main_process_first():  # data-parallel: one rank downloads or generates, the others then read
        data = build_data(cfg)
    writer = RunWriter(run_dir, enabled=is_main())
    env = make_env(cfg, data, device, run_dir, writer)
    cache = StageCache(cfg.paths.cache)
    ctx = SchemeContext(cfg, data)
    ctx.check_pair()
    results = {"status": "running", "seed": cfg.seed, "device": str(device), "dataset": data.info.name,
               "method": cfg.method.name, "scheme": scheme_name(cfg), "distill": OmegaConf.to_container(cfg.distill),
               "versions": library_versions(), "cpu": platform.processor() or platform.machine(), "stages": {}}
    log.info("run directory: %s", run_dir)
    settings = measure_settings(cfg)
    for stage in SCHEMES[scheme_name(cfg)](ctx):
        outcome, source = run_stage(stage, env, cache)
        ctx.stage_outcomes[stage.name] = outcome
        record = stage_record(stage, outcome, source)
        if stage.in_table and is_main():  # data-parallel: rank 0 deploys and measures, the others go on
            merge_records(record, finish_stage(stage, outcome, env, settings))
        results["stages"][stage.name] = record
        writer.write_results(results)
    results["status"] = "completed"
    writer.write_results(results)
    if is_main():
        rows = table_rows(results)
        write_tables(rows, run_dir)
        output().print(rich_table(rows, title=f"kdrun: {data.info.name}, method={cfg.method.name}"))
        log.info("results: %s", run_dir / "results.json")
        finish_run(cfg, run_dir, results, writer)  # TensorBoard hparams, plots, pointers to the report
    writer.close()
    return results


def measure_settings(cfg: DictConfig) -> MeasureSettings:
    node = OmegaConf.to_container(cfg.measure, resolve=True)
    return MeasureSettings(**{**node, "batch_sizes": tuple(node["batch_sizes"])})


def stage_record(stage: Stage, outcome: StageOutcome, source: str) -> dict[str, Any]:
    model = stage.task.eval_model
    record = {"role": stage.role, "arch": stage.arch, "method": stage.method, "in_table": stage.in_table,
              "best_top1": outcome.best_top1, "last_top1": outcome.last_top1, "best_epoch": outcome.best_epoch,
              "epochs": outcome.epochs, "params": sum(p.numel() for p in model.parameters()),
              "checkpoint": outcome.checkpoint, "wall_time": outcome.wall_time, "source": source, **stage.info}
    models = stage.task.eval_models
    if len(models) > 1:  # a task that trains several models: one sub-record (and table row) each
        history = outcome.history
        record["models"] = {name: {"params": sum(p.numel() for p in m.parameters()),
                                   "last_top1": history[-1].get(f"val_top1/{name}") if history else None,
                                   "best_top1": max((h.get(f"val_top1/{name}", -1.0) for h in history), default=None)}
                            for name, m in models.items()}
    return record


def merge_records(record: dict[str, Any], extra: dict[str, Any]) -> None:
    """Add what the finishing step measured; per-model entries merge into the per-model sub-records."""
    for name, values in extra.pop("models", {}).items():
        record.setdefault("models", {}).setdefault(name, {}).update(values)
    record.update(extra)


def run_stage(stage: Stage, env: EngineEnv, cache: StageCache) -> tuple[StageOutcome, str]:
    """Train the stage, or reuse it from a given checkpoint or the shared cache."""
    if stage.info.get("checkpoint"):
        return _loaded(stage, env, stage.info["checkpoint"], f"{stage.role}.checkpoint"), "checkpoint"
    if stage.epochs == 0:
        return _evaluated(stage, env), "evaluated"
    if stage.cache_key is None:
        return fit(stage, env), "trained"
    with cache.lock(stage.cache_key):
        hit = cache.get(stage.cache_key)
        if hit is not None:
            try:
                return _reused(stage, env, *hit), "cache"
            except KdrunError as e:  # verified, yet not loadable into this model: never a permanent block
                cache.set_aside(stage.cache_key, str(e))
        outcome = fit(stage, env)
        cache.put(stage.cache_key, Path(outcome.checkpoint), asdict(outcome))
        return outcome, "trained"


def _reused(stage: Stage, env: EngineEnv, path: Path, recorded: dict) -> StageOutcome:
    log.info("%s: reusing cached %s %s from %s", stage.name, stage.arch, stage.role, path.parent)
    outcome = _loaded(stage, env, path, f"cached {stage.name}")
    outcome.history, outcome.wall_time = recorded["history"], recorded["wall_time"]
    outcome.best_top1, outcome.best_epoch = recorded["best_top1"], recorded["best_epoch"]
    outcome.epochs = recorded["epochs"]
    _replay_history(stage, env, outcome.history)
    return outcome


def _loaded(stage: Stage, env: EngineEnv, path, key: str) -> StageOutcome:
    """Load weights into the stage's model and evaluate it (the teacher is checked before distilling)."""
    t0 = time.monotonic()
    model = stage.task.eval_model
    load_weights(model, path, stage.arch, key)
    bad = first_non_finite(floating_tensors(model.state_dict()))
    if bad is not None:
        raise KdrunError(f"{key}={path} holds a non-finite weight ('{bad}'): the model it saves diverged; "
                         "give a checkpoint of a model that trained normally")
    model.to(env.device)
    top1 = evaluate(model, env.test_loader, env.device, env.amp)["top1"]
    log.info("%s: %s loaded from %s, test top-1 %.2f%%", stage.name, stage.arch, path, top1)
    return StageOutcome(top1, 0, top1, 0, time.monotonic() - t0, str(path), [])


def _evaluated(stage: Stage, env: EngineEnv) -> StageOutcome:
    """A stage that trains nothing (an ensemble of trained models): evaluate it, log it like an epoch 0."""
    t0 = time.monotonic()
    model = stage.task.to_device(env.device).eval_model
    val = evaluate(model, env.test_loader, env.device, env.amp)
    record = {"epoch": 0, "lr": 0.0, "val_top1": val["top1"], "val_loss": val["loss"], "epoch_time": time.monotonic() - t0}
    env.sink.begin_stage(stage.name, 0)
    env.sink.log_epoch(stage.name, 0, record)
    env.sink.end_stage(stage.name)
    log.info("%s: %s evaluated, test top-1 %.2f%%", stage.name, stage.arch, val["top1"])
    return StageOutcome(val["top1"], 0, val["top1"], 0, record["epoch_time"], "", [record])


def _replay_history(stage: Stage, env: EngineEnv, history: list[dict]) -> None:
    """Copy a cached stage's curves into this run's logs, so every run directory is complete."""
    env.sink.begin_stage(stage.name, 1)
    for record in history:
        env.sink.log_epoch(stage.name, record["epoch"], record)
    env.sink.end_stage(stage.name)
