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
from kdrun.build import build_data, resolve_device
from kdrun.data.loaders import make_loader
from kdrun.engine.cache import StageCache
from kdrun.engine.checkpoint import load_weights
from kdrun.engine.fit import EngineEnv, StageOutcome, fit
from kdrun.engine.loop import evaluate
from kdrun.engine.progress import ProgressReporter
from kdrun.logs import console, output
from kdrun.report.table import rich_table, table_rows, write_tables
from kdrun.report.writer import RunWriter
from kdrun.schemes.registry import SCHEMES, scheme_name
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.stage import Stage

log = logging.getLogger("kdrun")


def library_versions() -> dict[str, str]:
    import hydra

    return {"kdrun": kdrun.__version__, "torch": torch.__version__, "hydra": hydra.__version__,
            "python": platform.python_version()}


def make_env(cfg: DictConfig, data, device: torch.device, run_dir: Path, writer: RunWriter) -> EngineEnv:
    t = cfg.trainer

    def train_loader(with_index: bool):
        return make_loader(data.train, batch_size=t.batch_size, shuffle=True, seed_for_epoch=cfg.seed,
                           num_workers=t.num_workers, device=device, with_index=with_index,
                           max_batches=t.max_train_batches)

    test_loader = make_loader(data.test, batch_size=max(t.batch_size, 256), shuffle=False, seed_for_epoch=cfg.seed,
                              num_workers=t.num_workers, device=device, max_batches=t.max_eval_batches)
    return EngineEnv(device=device, amp=cfg.device.amp, train_loader=train_loader, test_loader=test_loader,
                     checkpoint_dir=run_dir / "checkpoints", sink=writer,
                     reporter=ProgressReporter(console()), seed=cfg.seed,
                     meta={"num_classes": data.info.num_classes, "dataset": data.info.name})


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run every stage of the configured scheme in ``run_dir``; resumes whatever is already there."""
    device = resolve_device(cfg.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)  # .hydra/config.yaml keeps interpolations
    data = build_data(cfg)
    writer = RunWriter(run_dir)
    env = make_env(cfg, data, device, run_dir, writer)
    cache = StageCache(cfg.paths.cache)
    ctx = SchemeContext(cfg, data)
    ctx.check_pair()
    results = {"status": "running", "seed": cfg.seed, "device": str(device), "dataset": data.info.name,
               "method": cfg.method.name, "scheme": scheme_name(cfg), "distill": OmegaConf.to_container(cfg.distill),
               "versions": library_versions(), "stages": {}}
    log.info("run directory: %s", run_dir)
    for stage in SCHEMES[scheme_name(cfg)](ctx):
        outcome, source = run_stage(stage, env, cache)
        ctx.stage_outcomes[stage.name] = outcome
        results["stages"][stage.name] = stage_record(stage, outcome, source)
        writer.write_results(results)
    results["status"] = "completed"
    writer.write_results(results)
    rows = table_rows(results)
    write_tables(rows, run_dir)
    output().print(rich_table(rows, title=f"kdrun: {data.info.name}, method={cfg.method.name}"))
    log.info("results: %s", run_dir / "results.json")
    return results


def stage_record(stage: Stage, outcome: StageOutcome, source: str) -> dict[str, Any]:
    model = stage.task.eval_model
    return {"role": stage.role, "arch": stage.arch, "method": stage.method, "in_table": stage.in_table,
            "best_top1": outcome.best_top1, "last_top1": outcome.last_top1, "best_epoch": outcome.best_epoch,
            "epochs": outcome.epochs, "params": sum(p.numel() for p in model.parameters()),
            "checkpoint": outcome.checkpoint, "wall_time": outcome.wall_time, "source": source, **stage.info}


def run_stage(stage: Stage, env: EngineEnv, cache: StageCache) -> tuple[StageOutcome, str]:
    """Train the stage, or reuse it from a given checkpoint or the shared cache."""
    if stage.info.get("checkpoint"):
        return _loaded(stage, env, stage.info["checkpoint"], f"{stage.role}.checkpoint"), "checkpoint"
    if stage.cache_key is None:
        return fit(stage, env), "trained"
    with cache.lock(stage.cache_key):
        hit = cache.get(stage.cache_key)
        if hit is not None:
            path, recorded = hit
            log.info("%s: reusing cached %s %s from %s", stage.name, stage.arch, stage.role, path.parent)
            outcome = _loaded(stage, env, path, f"cached {stage.name}")
            outcome.history, outcome.wall_time = recorded["history"], recorded["wall_time"]
            outcome.best_top1, outcome.best_epoch = recorded["best_top1"], recorded["best_epoch"]
            outcome.epochs = recorded["epochs"]
            _replay_history(stage, env, outcome.history)
            return outcome, "cache"
        outcome = fit(stage, env)
        cache.put(stage.cache_key, Path(outcome.checkpoint), asdict(outcome))
        return outcome, "trained"


def _loaded(stage: Stage, env: EngineEnv, path, key: str) -> StageOutcome:
    """Load weights into the stage's model and evaluate it (the teacher is checked before distilling)."""
    t0 = time.monotonic()
    model = stage.task.eval_model
    load_weights(model, path, stage.arch, key)
    model.to(env.device)
    top1 = evaluate(model, env.test_loader, env.device, env.amp)["top1"]
    log.info("%s: %s loaded from %s, test top-1 %.2f%%", stage.name, stage.arch, path, top1)
    return StageOutcome(top1, 0, top1, 0, time.monotonic() - t0, str(path), [])


def _replay_history(stage: Stage, env: EngineEnv, history: list[dict]) -> None:
    """Copy a cached stage's curves into this run's logs, so every run directory is complete."""
    env.sink.begin_stage(stage.name, 1)
    for record in history:
        env.sink.log_epoch(stage.name, record["epoch"], record)
    env.sink.end_stage(stage.name)
