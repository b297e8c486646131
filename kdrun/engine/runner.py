"""Running a stage and finishing its row: train it, or load it (a given checkpoint, the shared cache),
or only evaluate it (a stage that trains nothing); then, for a table row, deploy, size and time it."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kdrun.distributed.state import is_main
from kdrun.engine.cache import StageCache
from kdrun.engine.checkpoint import load_weights
from kdrun.engine.finite import first_non_finite, floating_tensors
from kdrun.engine.finish import finish_stage
from kdrun.engine.fit import EngineEnv, StageOutcome, fit
from kdrun.engine.loop import evaluate
from kdrun.engine.stage import Stage
from kdrun.errors import KdrunError
from kdrun.quant.measure import MeasureSettings

log = logging.getLogger("kdrun")


def run_and_record(stage: Stage, env: EngineEnv, cache: StageCache, settings: MeasureSettings) -> dict[str, Any]:
    """Run ``stage`` and return its record for results.json (a table row is also deployed and measured)."""
    outcome, source = run_stage(stage, env, cache)
    record = stage_record(stage, outcome, source, env.eval_set)
    if stage.in_table and is_main():  # data-parallel: rank 0 deploys and measures, the others go on
        merge_records(record, finish_stage(stage, outcome, env, settings))
    return record


def stage_record(stage: Stage, outcome: StageOutcome, source: str, eval_set: str = "test") -> dict[str, Any]:
    """best/last top-1 are on ``eval_set`` (results.json's ``evaluation`` says which); test_top1 on the test set."""
    model = stage.task.eval_model
    record = {"role": stage.role, "arch": stage.arch, "method": stage.method, "in_table": stage.in_table,
              "best_top1": outcome.best_top1, "last_top1": outcome.last_top1, "best_epoch": outcome.best_epoch,
              "test_top1": outcome.test_top1, "epochs": outcome.epochs,
              "params": sum(p.numel() for p in model.parameters()),
              "checkpoint": outcome.checkpoint, "wall_time": outcome.wall_time, "source": source, **stage.info}
    last = outcome.history[-1] if outcome.history else {}
    if "test_perplexity" in last:  # next-token data: the last epoch's test perplexity
        record["perplexity"] = last["test_perplexity"]
    models = stage.task.eval_models
    if len(models) > 1:  # a task that trains several models: one sub-record (and table row) each
        history, key = outcome.history, f"{eval_set}_top1/"
        record["models"] = {name: {"params": sum(p.numel() for p in m.parameters()),
                                   "last_top1": history[-1].get(key + name) if history else None,
                                   "best_top1": max((h.get(key + name, -1.0) for h in history), default=None),
                                   "test_top1": outcome.test_models.get(name)}
                            for name, m in models.items()}
    return record


def test_once(stage: Stage, env: EngineEnv, outcome: StageOutcome) -> StageOutcome:
    """The test set's top-1 of the model the stage keeps, computed once and never used to choose. Without a
    validation split the last epoch was already evaluated on the test set: that is the number."""
    models = stage.task.eval_models
    if env.val_loader is None:
        last = outcome.history[-1] if outcome.history else {}
        outcome.test_top1 = outcome.last_top1
        outcome.test_models = {name: last.get(f"test_top1/{name}") for name in models} if len(models) > 1 else {}
        return outcome
    tops = {name: evaluate(m.to(env.device), env.test_loader, env.device, env.amp)["top1"]
            for name, m in models.items()}
    outcome.test_top1 = next(iter(tops.values()))
    outcome.test_models = tops if len(models) > 1 else {}
    log.info("%s: test top-1 %.2f%% (epoch %d, chosen on validation top-1 %.2f%%)", stage.name,
             outcome.test_top1, outcome.best_epoch, outcome.best_top1)
    return outcome


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
        return test_once(stage, env, fit(stage, env)), "trained"
    with cache.lock(stage.cache_key):
        hit = cache.get(stage.cache_key)
        if hit is not None:
            try:
                return _reused(stage, env, *hit), "cache"
            except KdrunError as e:  # verified, yet not loadable into this model: never a permanent block
                cache.set_aside(stage.cache_key, str(e))
        outcome = test_once(stage, env, fit(stage, env))
        cache.put(stage.cache_key, Path(outcome.checkpoint), asdict(outcome))
        return outcome, "trained"


def _reused(stage: Stage, env: EngineEnv, path: Path, recorded: dict) -> StageOutcome:
    log.info("%s: reusing cached %s %s from %s", stage.name, stage.arch, stage.role, path.parent)
    outcome = _loaded(stage, env, path, f"cached {stage.name}")
    outcome.history, outcome.wall_time = _history_named(recorded["history"], env.eval_set), recorded["wall_time"]
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
    chosen = top1 if env.val_loader is None else evaluate(model, env.val_loader, env.device, env.amp)["top1"]
    return StageOutcome(chosen, 0, chosen, 0, time.monotonic() - t0, str(path), [], test_top1=top1)


def _evaluated(stage: Stage, env: EngineEnv) -> StageOutcome:
    """A stage that trains nothing (an ensemble of trained models): evaluate it, log it like an epoch 0."""
    t0 = time.monotonic()
    model = stage.task.to_device(env.device).eval_model
    test = evaluate(model, env.test_loader, env.device, env.amp)
    record = {"epoch": 0, "lr": 0.0, "test_top1": test["top1"], "test_loss": test["loss"]}
    if env.val_loader is not None:
        val = evaluate(model, env.val_loader, env.device, env.amp)
        record.update({"val_top1": val["top1"], "val_loss": val["loss"]})
    record["epoch_time"] = time.monotonic() - t0
    env.sink.begin_stage(stage.name, 0)
    env.sink.log_epoch(stage.name, 0, record)
    env.sink.end_stage(stage.name)
    log.info("%s: %s evaluated, test top-1 %.2f%%", stage.name, stage.arch, test["top1"])
    chosen = record[f"{env.eval_set}_top1"]
    return StageOutcome(chosen, 0, chosen, 0, record["epoch_time"], "", [record], test_top1=test["top1"])


def _history_named(history: list[dict], eval_set: str) -> list[dict]:
    """Cached records written before the sets were named (``val_top1`` then meant the test set) -> today's keys."""
    if eval_set != "test":
        return history
    return [{(k.replace("val_", "test_", 1) if k.startswith("val_") else k): v for k, v in r.items()}
            for r in history]


def _replay_history(stage: Stage, env: EngineEnv, history: list[dict]) -> None:
    """Copy a cached stage's curves into this run's logs, so every run directory is complete."""
    env.sink.begin_stage(stage.name, 1)
    for record in history:
        env.sink.log_epoch(stage.name, record["epoch"], record)
    env.sink.end_stage(stage.name)
