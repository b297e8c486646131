"""A run: build the data and the scheme's stages, run each stage, record results, print the table."""

from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from kdrun.config.checked import was_checked
from kdrun.config.checks import check_config
from kdrun.data.fingerprint import data_fingerprint
from kdrun.tasks.build import build_data, measure_settings, resolve_device, transfer_batch_size
from kdrun.data.loaders import batch_on_device, make_loader
from kdrun.data.transfer import pair_with_transfer
from kdrun.distributed.data import eval_shard, per_rank_batch_size
from kdrun.distributed.state import is_main, local_device, main_process_first, rank, world_size
from kdrun.engine.cache import StageCache
from kdrun.engine.finish import time_queued
from kdrun.engine.fit import EngineEnv
from kdrun.engine.progress import ProgressReporter
from kdrun.engine.runner import run_and_record
from kdrun.engine.speed import (SpeedSettings, apply_tf32, apply_threads, cpu_cores, parallel_processes,
                                resolve_amp, resolve_channels_last, threads_for)
from kdrun.errors import write_error
from kdrun.logs import console
from kdrun.report.jobs import objective_record
from kdrun.runs.end import finish_run
from kdrun.runs.onnx_rows import export_row
from kdrun.runs.trackers import run_loggers
from kdrun.runs.writer import RunWriter
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.registry import (STAGE_NAMES, check_before_data, check_scheme, described_before_data,
                                   scheme_from_config)
from kdrun.version import __version__

log = logging.getLogger("kdrun")
RANK_SEED_STRIDE = 1_000_003


# What a run's numbers depend on besides the command: these libraries (numpy, scipy and mnist1d generate the
# default dataset; torch computes), the data's bits (data_fingerprint), the threads and the CPU (results.json).
NUMERIC_LIBRARIES = ("torchvision", "torchao", "numpy", "scipy", "mnist1d", "scikit-learn")


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import hydra

    versions = {"kdrun": __version__, "torch": torch.__version__, "hydra": hydra.__version__,
                "python": platform.python_version()}
    for name in NUMERIC_LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def speed_settings(cfg: DictConfig, data, device: torch.device) -> SpeedSettings:
    """Decide (and apply the process-wide parts of) how fast this process computes; see kdrun/engine/speed.py."""
    d = cfg.device
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))
    threads = apply_threads(threads_for(d.get("threads"), cpu_cores(), parallel_processes(ranks)))
    on_device = batch_on_device(cfg.trainer.get("loader", "auto"), data.train, device)
    channels_last = resolve_channels_last(d.get("channels_last", "auto"), device, data.info.input_kind)
    return SpeedSettings(amp=resolve_amp(d.amp, device), channels_last=channels_last,
                         tf32=apply_tf32(d.get("tf32", True), device), threads=threads,
                         compile=bool(cfg.trainer.get("compile", False)),
                         data_path="device" if on_device else "dataloader")


def make_env(cfg: DictConfig, data, device: torch.device, run_dir: Path, writer: RunWriter,
             speed: SpeedSettings) -> EngineEnv:  # fmt: skip
    """Loaders and sinks for this process. Data-parallel: each rank trains on its shard with
    ``trainer.batch_size / world_size`` per step and evaluates its part of the test set."""
    t = cfg.trainer
    batch_size = per_rank_batch_size(t.batch_size, world_size())
    batched = speed.data_path == "device"

    def train_loader(with_index: bool, with_transfer: bool = False):
        labeled = make_loader(data.train, batch_size=batch_size, shuffle=True, seed_for_epoch=cfg.seed,
                              num_workers=t.num_workers, device=device, with_index=with_index,
                              max_batches=t.max_train_batches, rank=rank(), world_size=world_size(), batched=batched)
        if not with_transfer:
            return labeled
        return pair_with_transfer(labeled, data.transfer, per_rank_batch_size(transfer_batch_size(cfg), world_size()),
                                  cfg.seed, t.num_workers, device)

    eval_batch = max(t.batch_size, 256)

    def test_loader(shard: int, shards: int, dataset=data.test):
        return make_loader(eval_shard(dataset, eval_batch, t.max_eval_batches, shard, shards),
                           batch_size=eval_batch, shuffle=False, seed_for_epoch=cfg.seed,
                           num_workers=t.num_workers, device=device, batched=batched)

    # rank 0 keeps the run's seed (so one process and rank 0 draw alike); other ranks get their
    # own stream for dropout and sampling, instead of repeating rank 0's masks on other samples
    seed = cfg.seed + RANK_SEED_STRIDE * rank()
    return EngineEnv(device=device, amp=speed.amp, channels_last=speed.channels_last, compile=speed.compile,
                     train_loader=train_loader,
                     test_loader=test_loader(rank(), world_size()),
                     whole_test_loader=test_loader(0, 1) if world_size() > 1 and is_main() else None,
                     val_loader=None if data.val is None else test_loader(rank(), world_size(), data.val),
                     checkpoint_dir=run_dir / "checkpoints", sink=writer,
                     reporter=ProgressReporter(console(), rich=None if is_main() else False), seed=seed,
                     meta={"num_classes": data.info.num_classes, "dataset": data.info.name})


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run every stage of the configured scheme in ``run_dir``; resumes whatever is already there."""
    if not was_checked(cfg):  # the command's preflight checked this very config (kdrun/config/checked.py);
        check_config(cfg, STAGE_NAMES)  # a sweeper's sampled trial or a direct call is checked here, before any data
        check_scheme(cfg)
        check_before_data(cfg)
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
    writer = RunWriter(run_dir, is_main(), *run_loggers(cfg, run_dir)) if is_main() else RunWriter(run_dir, False)
    try:
        return _run_stages(cfg, run_dir, data, device, writer)
    except BaseException as e:  # the trackers' runs end too (marked failed or interrupted); results.json says why
        writer.close("interrupted" if isinstance(e, KeyboardInterrupt) else "failed")
        raise


def _run_stages(cfg: DictConfig, run_dir: Path, data, device, writer: RunWriter) -> dict[str, Any]:
    speed = speed_settings(cfg, data, device)
    env = make_env(cfg, data, device, run_dir, writer, speed)
    cache = StageCache(cfg.paths.cache)
    scheme = scheme_from_config(cfg)
    ctx = SchemeContext(cfg, data)
    if described_before_data(cfg) is None:  # the pairs could not be checked on the dataset's static facts
        ctx.check_pairs(scheme.pairs(cfg), scheme.name)
    results = {"status": "running", "seed": cfg.seed, "device": str(device), "dataset": data.info.name,
               "method": cfg.method.name, "scheme": scheme.name, "distill": OmegaConf.to_container(cfg.distill),
               "versions": library_versions(), "cpu": platform.processor() or platform.machine(),
               "speed": speed.record(), "primary_stage": scheme.primary, "reference_stage": scheme.reference,
               "evaluation": evaluation_record(cfg, data.info), "data_fingerprint": data_fingerprint(data),
               "stages": {}}
    log.info("run directory: %s", run_dir)
    settings = measure_settings(cfg)
    done, planned = 0, len(scheme.wanted(cfg))
    for stage in scheme.stages(ctx):
        planned = max(planned, done + 1)  # init stages and extra generations count with the row they feed
        log.info("stage %d/%d: %s (%s, %s, %d epoch%s)", done + 1, planned, stage.name, stage.arch, stage.method,
                 stage.epochs, "" if stage.epochs == 1 else "s")
        env.reporter.set_position(done + 1, planned)
        results["stages"][stage.name] = record = run_and_record(stage, env, cache, settings)
        if is_main():  # export.onnx=true: the row as ONNX, checked and timed with onnxruntime
            record.update(export_row(cfg, stage, env, record))
        done += stage.in_table
        if env.compiled:
            results["speed"]["compiled"] = dict(env.compiled)  # per stage: true, or why it fell back to eager
        writer.write_results(results)
    if is_main():  # every row timed in the same interleaved rounds: ratios between rows compare like with like
        time_queued(env, settings, results["stages"])
    results["status"] = "completed"
    results["objective"] = objective_record(results)  # what -m sweeps and Optuna optimize (cli.sweep_value)
    writer.write_results(results)
    if is_main():
        finish_run(cfg, run_dir, results, writer)  # trackers' summaries and files, tables, plots, the report
    writer.close("completed")
    return results


def evaluation_record(cfg: DictConfig, info) -> dict[str, Any]:
    """Which set each top-1 in results.json comes from, and what chose the kept epoch."""
    sizes = {"num_train": info.num_train, "num_val": info.num_val, "num_test": info.num_test}
    if not info.num_val:
        return {"per_epoch": "test", "best_top1": "test set, best epoch", "last_top1": "test set, last epoch",
                "test_top1": "test set, last epoch (the model kept)", "selection": "none: the last epoch is kept "
                "(the published tables' protocol; best_top1 is chosen on the test set)", "val_split": 0.0, **sizes}
    return {"per_epoch": "val", "best_top1": "validation split, best epoch", "last_top1": "validation split, last "
            "epoch", "test_top1": "test set, once, the model of the best validation epoch (the model kept)",
            "selection": "best validation top-1", "val_split": float(cfg.dataset.val_split),
            "val_seed": int(cfg.dataset.get("val_seed") or 0), **sizes}


def _dataset_choice(cfg: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig

    what = cfg.dataset.get("name") or cfg.dataset.get("path")  # torchvision's or hf's name, an .npz file
    if HydraConfig.initialized():
        choice = str(HydraConfig.get().runtime.choices.get("dataset"))
        if choice == "custom" or not str(cfg.dataset.get("_target_", "")).startswith("kdrun."):
            what = cfg.dataset.get("_target_")  # the user's loader
        return f"{choice} ({what})" if what else choice
    return str(cfg.dataset.get("_target_", "?")).rsplit(".", 1)[-1]

