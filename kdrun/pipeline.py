"""A run: build the data and the scheme's stages, run each stage, record results, print the table."""

from __future__ import annotations

import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import kdrun
from kdrun.build import build_data, measure_settings, resolve_device, transfer_batch_size
from kdrun.data.loaders import make_loader
from kdrun.data.transfer import pair_with_transfer
from kdrun.distributed.data import eval_shard, per_rank_batch_size
from kdrun.distributed.state import is_main, local_device, main_process_first, rank, world_size
from kdrun.engine.cache import StageCache
from kdrun.engine.fit import EngineEnv
from kdrun.engine.progress import ProgressReporter
from kdrun.engine.runner import run_and_record
from kdrun.errors import write_error
from kdrun.logs import console
from kdrun.report.run_end import finish_run
from kdrun.report.writer import RunWriter
from kdrun.schemes.context import SchemeContext, check_before_data
from kdrun.schemes.requires import needed
from kdrun.schemes.registry import SCHEMES, scheme_name

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
    check_before_data(cfg)  # the CLI's preflight did this already; API callers get it here, still before data
    device = local_device(resolve_device(cfg.device))
    if is_main():  # data-parallel: rank 0 writes, the others compute
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)  # .hydra/config.yaml keeps interpolations
        except OSError as e:
            raise write_error(run_dir / "config.yaml", "the resolved config", e) from None
    log.info("data: preparing dataset=%s (a first use downloads or generates it)", _dataset_choice(cfg))
    t0 = time.monotonic()
    with main_process_first():  # data-parallel: one rank downloads or generates, the others then read
        data = build_data(cfg)
    log.info("data: %s ready in %.1f s", data.info.name, time.monotonic() - t0)
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
    done, planned = 0, len(planned_stages(cfg))
    for stage in SCHEMES[scheme_name(cfg)](ctx):
        planned = max(planned, done + 1)  # init stages and extra generations count with the row they feed
        log.info("stage %d/%d: %s (%s, %s, %d epoch%s)", done + 1, planned, stage.name, stage.arch, stage.method,
                 stage.epochs, "" if stage.epochs == 1 else "s")
        env.reporter.set_position(done + 1, planned)
        results["stages"][stage.name] = run_and_record(stage, env, cache, settings)
        done += stage.in_table
        writer.write_results(results)
    results["status"] = "completed"
    writer.write_results(results)
    if is_main():
        finish_run(cfg, run_dir, results, writer)  # TensorBoard hparams, tables, plots, pointers to the report
    writer.close()
    return results


def _dataset_choice(cfg: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get("dataset"))
    return str(cfg.dataset.get("_target_", "?")).rsplit(".", 1)[-1]


def planned_stages(cfg: DictConfig) -> set[str]:
    """The table stages a run will have: those asked for and those they need (the scheme's ``REQUIRES``)."""
    scheme = sys.modules[SCHEMES[scheme_name(cfg)].__module__]
    return needed(cfg.stages, getattr(scheme, "REQUIRES", {}))
