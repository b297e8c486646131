"""Run one stage: optimizer, schedule, epochs, evaluation, checkpoints, resume."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch

from kdrun.distributed.state import barrier, is_main
from kdrun.engine.data_parallel import average_buffers, data_parallel
from kdrun.engine.finite import NonFiniteError, check_weights
from kdrun.engine.compile import compile_step, decompile
from kdrun.engine.loop import autocast, evaluate, to_batch, train_one_epoch
from kdrun.engine.optim import make_optimizer, make_scheduler, per_step
from kdrun.engine.progress import ProgressReporter
from kdrun.engine.stage import Stage
from kdrun.io import load_checkpoint, save_atomic


class MetricsSink(Protocol):
    def begin_stage(self, stage: str, first_epoch: int, done: list[dict[str, Any]] = ...) -> None: ...
    def log_epoch(self, stage: str, epoch: int, metrics: dict[str, float]) -> None: ...
    def end_stage(self, stage: str) -> None: ...


@dataclass
class EngineEnv:
    """What the engine needs from the run: where to compute, data, where to write."""

    device: torch.device
    amp: str | None
    train_loader: Callable[..., Any]  # (with_index, with_transfer=False) -> loader with set_epoch(epoch)
    test_loader: Any
    checkpoint_dir: Path
    sink: MetricsSink
    reporter: ProgressReporter
    seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)  # stored in every checkpoint (arch, classes, ...)
    # the whole test set, for work one process does alone (deployment on rank 0); None: test_loader is whole
    whole_test_loader: Any = None
    channels_last: bool = False  # NHWC weights (kdrun/engine/speed.py decides)
    compile: bool = False  # trainer.compile: torch.compile the step's models
    compiled: dict[str, bool | str] = field(default_factory=dict)  # per stage: True, or why it fell back
    # held out of the training set (dataset.val_split): evaluated every epoch, picks the best epoch, whose
    # weights the stage then keeps; the test set is evaluated once per stage. None: every epoch on the test set
    val_loader: Any = None
    # (stage, model name) -> (CPU model, its compiled form or None): the rows timed together at the end of the run
    to_time: dict[tuple[str, str], tuple[Any, Any]] = field(default_factory=dict)

    @property
    def eval_set(self) -> str:
        """The set evaluated every epoch: ``val`` (held out of training) or ``test``."""
        return "test" if self.val_loader is None else "val"

    @property
    def eval_loader(self) -> Any:
        return self.test_loader if self.val_loader is None else self.val_loader


@dataclass
class StageOutcome:
    """Top-1 on the set evaluated every epoch (``EngineEnv.eval_set``): the best epoch's and the last one's;
    ``test_top1``: the test set, once, of the model the stage keeps (per model for a task training several)."""

    best_top1: float
    best_epoch: int
    last_top1: float
    epochs: int
    wall_time: float
    checkpoint: str
    history: list[dict[str, float]]
    test_top1: float | None = None
    test_models: dict[str, float] = field(default_factory=dict)


def seed_epoch(seed: int, epoch: int) -> None:
    """Every epoch's randomness is a function of (seed, epoch): resuming at an epoch boundary is exact."""
    s = (seed * 1_000_003 + epoch) % (2**31)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _outcome(state: dict, path: Path, eval_set: str) -> StageOutcome:
    h = state["history"]
    return StageOutcome(state["best_top1"], state["best_epoch"], h[-1][f"{eval_set}_top1"] if h else float("nan"),
                        state["epoch"], state["wall_time"], str(path), h)


def _keep_best(task, env: EngineEnv, outcome: StageOutcome) -> StageOutcome:
    """With a validation split: the stage keeps (and hands on, and caches) its best epoch's weights."""
    if env.val_loader is None or not outcome.history:
        return outcome
    barrier()  # data-parallel: rank 0 wrote best.pt
    best = Path(outcome.checkpoint).with_name("best.pt")
    saved = load_checkpoint(best, f"best checkpoint of stage {outcome.checkpoint}",
                            remedy="delete the stage's checkpoints to train it again")
    states = saved.get("models") or {next(iter(task.eval_models)): saved["model"]}
    for name, model in task.eval_models.items():
        model.load_state_dict(states[name])
    outcome.checkpoint = str(best)
    return outcome


def fit(stage: Stage, env: EngineEnv) -> StageOutcome:
    task = stage.task.to_device(env.device, env.channels_last)
    params = task.trainable_parameters()
    o = stage.optim
    optimizer = make_optimizer(params, o)
    # a per-step schedule is sized by the epoch's steps; an epoch schedule needs no loader for a finished stage
    train_loader = env.train_loader(stage.needs_index, stage.uses_transfer) if per_step(o) else None
    scheduler = make_scheduler(optimizer, o, stage.epochs, len(train_loader) if train_loader is not None else 0)
    scaler = torch.amp.GradScaler(env.device.type, enabled=env.amp == "fp16" and stage.mixed_precision)
    ckpt_dir = env.checkpoint_dir / stage.name
    last_path = ckpt_dir / "last.pt"
    state = {"epoch": 0, "best_top1": -1.0, "best_epoch": 0, "wall_time": 0.0, "history": []}
    if last_path.exists():
        saved = load_checkpoint(last_path, f"checkpoint of stage {stage.name}",
                                remedy="delete it to train the stage again from its first epoch")
        task.load_state_dict(saved["task"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        state = {k: saved[k] for k in state}
    if state["epoch"] >= stage.epochs:
        env.reporter.start_stage(stage.name, stage.epochs, state["epoch"] + 1)
        env.reporter.end_stage()
        return _keep_best(task, env, _outcome(state, last_path, env.eval_set))
    if train_loader is None:
        train_loader = env.train_loader(stage.needs_index, stage.uses_transfer)
    if env.compile:
        example = to_batch(next(iter(train_loader)), env.device).x
        amp = env.amp if stage.mixed_precision else None
        env.compiled[stage.name] = compile_step(list(task.eval_models.values()), task.frozen_models(), example,
                                                lambda: autocast(env.device, amp))
    step_module = data_parallel(task)  # DDP wrapper when data-parallel, else the task itself
    env.sink.begin_stage(stage.name, state["epoch"] + 1, state["history"])
    env.reporter.start_stage(stage.name, stage.epochs, state["epoch"] + 1)
    try:
        for epoch in range(state["epoch"] + 1, stage.epochs + 1):
            try:
                _run_epoch(stage, env, task, step_module, train_loader, optimizer, scheduler, scaler, state, epoch)
            except NonFiniteError as e:  # raised before this epoch's checkpoint: last.pt stays the last good one
                raise e.in_stage(stage.name, str(last_path) if last_path.exists() else "") from None
            if is_main():  # every rank holds the same weights; one writes them
                _save(stage, env, task, optimizer, scheduler, scaler, state, ckpt_dir)
            env.sink.log_epoch(stage.name, epoch, state["history"][-1])
    finally:
        env.reporter.end_stage()
        env.sink.end_stage(stage.name)
        if env.compile:  # later stages (export, a teacher of the next generation) get plain modules
            for model in [*task.eval_models.values(), *task.frozen_models()]:
                decompile(model)
    return _keep_best(task, env, _outcome(state, last_path, env.eval_set))


def _run_epoch(stage, env, task, step_module, loader, optimizer, scheduler, scaler, state, epoch) -> None:
    t0 = time.monotonic()
    amp = env.amp if stage.mixed_precision else None
    seed_epoch(env.seed, epoch)
    loader.set_epoch(epoch)
    env.reporter.start_epoch(epoch, len(loader))
    lr = optimizer.param_groups[0]["lr"]
    stepwise = per_step(stage.optim)
    after_step = task.after_step if not stepwise else lambda: (task.after_step(), scheduler.step())
    train = train_one_epoch(step_module, loader, optimizer, scaler, env.device, amp, epoch, stage.epochs,
                            env.reporter, after_step=after_step, grad_clip=stage.optim.grad_clip)
    if not stepwise:
        scheduler.step()
    check_weights(task, epoch)
    average_buffers(task.eval_model)  # data-parallel: one set of batch-norm statistics on every rank
    vals = {name: evaluate(m, env.eval_loader, env.device, amp) for name, m in task.eval_models.items()}
    val = next(iter(vals.values()))  # the stage's own model (task.eval_model)
    s = env.eval_set  # named for what it is: the test set, or the validation split
    record = {"epoch": epoch, "lr": lr, **{f"train_{k}": v for k, v in train.items()},
              f"{s}_top1": val["top1"], f"{s}_loss": val["loss"], "epoch_time": time.monotonic() - t0}
    if "perplexity" in val:  # next-token data (kdrun/data/causal.py)
        record[f"{s}_perplexity"] = val["perplexity"]
    if len(vals) > 1:  # a task training several models reports each one
        record.update({f"{s}_top1/{name}": v["top1"] for name, v in vals.items()})
    state["history"].append(record)
    state["epoch"] = epoch
    state["wall_time"] += record["epoch_time"]
    is_best = val["top1"] > state["best_top1"]
    if is_best:
        state["best_top1"], state["best_epoch"] = val["top1"], epoch
    record["is_best"] = is_best
    env.reporter.end_epoch(epoch, stage.epochs, f"loss {train.get('loss', float('nan')):.4f}  "
                           f"train {train.get('top1', 0):.2f}%  {s} {val['top1']:.2f}%  lr {lr:.4g}")


def _save(stage, env, task, optimizer, scheduler, scaler, state, ckpt_dir: Path) -> None:
    meta = {**env.meta, "arch": stage.arch, "stage": stage.name, "method": stage.method}
    model_sd = task.eval_model.state_dict()
    # "best" is written first: a kill between the two writes leaves last.pt at the previous
    # epoch, which resume then repeats (and rewrites best.pt identically).
    if state["history"][-1]["is_best"]:
        models = task.eval_models  # a task training several: all of them, so the best epoch can be restored
        others = {"models": {name: m.state_dict() for name, m in models.items()}} if len(models) > 1 else {}
        save_atomic({"model": model_sd, **meta, "epoch": state["epoch"], "top1": state["best_top1"], **others},
                    ckpt_dir / "best.pt")
    save_atomic({"model": model_sd, "task": task.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), **meta, **state},
                ckpt_dir / "last.pt")
