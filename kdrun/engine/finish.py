"""After a stage trains: the model it deploys (e.g. its int8 conversion), that model's top-1 and size on disk --
computed once, saved next to the stage's checkpoints, reused on resume. At the end of the run every row's CPU
latency is timed in the same interleaved rounds (:func:`time_queued`)."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdrun.engine.fit import EngineEnv, StageOutcome
from kdrun.engine.loop import evaluate
from kdrun.engine.progress import duration
from kdrun.quant.measure import inputs_for, timing_budget
from kdrun.quant.rounds import time_rows
from kdrun.engine.stage import Stage
from kdrun.io import one_line, write_json_atomic
from kdrun.quant.measure import Compiled, MeasureSettings, weights_bytes

FINISH_FILE = "finish.json"
log = logging.getLogger("kdrun")
CPU = torch.device("cpu")


@dataclass
class Deployment:
    """The model a stage reports when it is not the trained model itself."""

    model: nn.Module  # runs eagerly, on the CPU
    label: str  # its metrics are logged as stage "<stage>/<label>"
    state: dict[str, torch.Tensor]  # the tensors it stores: its size on disk
    record: dict[str, Any]  # stored with the stage; its test_top1 (and test_loss) are this model's
    compiled: Compiled | None = None  # its compiled form, reused for timing


class FixedBatch(nn.Module):
    """Pads short batches to the first batch's size, so a compiled model sees a single shape."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        self.size: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        self.size = self.size or n
        if n < self.size:
            x = torch.cat([x, x.new_zeros(self.size - n, *x.shape[1:])])
        return self.fn(x)[:n]


def evaluate_alone(model: nn.Module, env: EngineEnv) -> dict[str, float]:
    """Top-1 on the whole test set, on the CPU, by this process alone (data-parallel runs deploy on rank 0
    while the other ranks go on: no collective may run here)."""
    return evaluate(model, env.whole_test_loader or env.test_loader, CPU, across_ranks=False)


def evaluate_deployed(model: nn.Module, env: EngineEnv, compile: bool) -> tuple[dict, Compiled | None, str | None]:
    """Top-1 of ``model`` on the test set, on its compiled kernels when ``compile`` (falling back to
    eager execution, with the reason, if compiling fails)."""
    if compile:
        try:
            compiled = Compiled(model)
            return evaluate_alone(FixedBatch(compiled), env), compiled, None
        except Exception as e:  # unsupported op, no C++ toolchain: still report the model's accuracy
            return evaluate_alone(model, env), None, f"{type(e).__name__}: {one_line(e, lines=1)}"
    return evaluate_alone(model, env), None, None


def finish_stage(stage: Stage, outcome: StageOutcome, env: EngineEnv, settings: MeasureSettings) -> dict[str, Any]:
    """Deploy (if the stage says how) and size every model the stage reports; queue each for the latency timing
    at the end of the run (``env.to_time``: every row in the same interleaved rounds, kdrun/quant/rounds.py)."""
    path = Path(env.checkpoint_dir) / stage.name / FINISH_FILE
    # what was trained (not where it is stored: a cached teacher's path differs between run and resume)
    key = {"epochs": outcome.epochs, "top1": str(outcome.last_top1), "settings": asdict(settings)}
    cached = _read(path)
    if cached is not None and cached.get("key") == json.loads(json.dumps(key)):
        _queue_saved(stage, cached["record"], env, settings)
        return cached["record"]
    torch._dynamo.reset()  # every model compiles afresh: no recompile limit shared between rows
    if stage.deploy is not None:
        deployed = stage.deploy(env, settings)
        record = {"trained_top1": outcome.test_top1, **deployed.record}  # the deployed model's test top-1
        if env.val_loader is None:  # its only evaluation is on the test set: the row's last and best epoch too
            record["last_top1"] = record["best_top1"] = record["test_top1"]
        _log(env, f"{stage.name}/{deployed.label}", outcome.epochs, record)
        models = {"": (deployed.model, deployed.state, deployed.compiled)}
    else:
        record = {}
        models = {name: (_cpu_copy(m), m.state_dict(), None) for name, m in stage.task.eval_models.items()}
    record.setdefault("precision", "fp32")
    for name, (model, state, compiled) in models.items():
        target = record.setdefault("models", {}).setdefault(name, {}) if name else record
        target["size_bytes"] = weights_bytes(state)
        if settings.enabled:
            env.to_time[(stage.name, name)] = (model, compiled)
    write_json_atomic(path, {"key": key, "record": record}, "the measurements")
    return record


def _queue_saved(stage: Stage, record: dict[str, Any], env: EngineEnv, settings: MeasureSettings) -> None:
    """A stage finished before (a resumed run): its models for the end-of-run timing, from memory or its file."""
    if not settings.enabled:
        return
    if stage.deploy is None:
        for name, m in stage.task.eval_models.items():
            env.to_time[(stage.name, name)] = (_cpu_copy(m), None)
    elif record.get("artifact"):  # an int8 program: loaded as exported
        env.to_time[(stage.name, "")] = (torch.export.load(record["artifact"]).module(), None)


def time_queued(env: EngineEnv, settings: MeasureSettings, stages: dict[str, dict[str, Any]]) -> None:
    """Time every queued row in the same interleaved rounds and put each latency into its stage's record."""
    if not settings.enabled or not env.to_time:
        return
    inputs = inputs_for(next(iter(env.whole_test_loader or env.test_loader))[0], settings.batch_sizes)
    rows = {f"{stage}/{name}" if name else stage: model for (stage, name), model in env.to_time.items()}
    log.info("latency: %d models, %d interleaved rounds, %s, batch %s (compiling, then up to %s)", len(rows),
             settings.rounds,
             "eager + compiled" if settings.compile else "eager", " and ".join(map(str, settings.batch_sizes)),
             duration(timing_budget(settings, len(rows))))
    timed = time_rows(rows, inputs, settings)
    for (stage, name), row in zip(env.to_time, rows):
        if stage in stages:
            target = stages[stage].setdefault("models", {}).setdefault(name, {}) if name else stages[stage]
            target["latency"] = timed[row]
    env.to_time.clear()


def _cpu_copy(model: nn.Module) -> nn.Module:
    """Timing and compiling work on a copy: the trained model may still teach later stages."""
    return copy.deepcopy(model).to(CPU).eval()


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _log(env: EngineEnv, name: str, epoch: int, record: dict) -> None:
    """The deployed model's test metrics, as its own series in metrics.jsonl and TensorBoard."""
    metrics = {"epoch": epoch, "lr": 0.0, "test_top1": record["test_top1"], "test_loss": record.get("test_loss", 0.0)}
    env.sink.begin_stage(name, epoch)
    env.sink.log_epoch(name, epoch, metrics)
    env.sink.end_stage(name)
