"""Every table row's CPU latency timed in the same interleaved rounds, so ratios between rows compare like with like.

Timing one model after another lets the machine's load change between them: on a shared machine identical models
came out 13x, 14x and 18x faster than the teacher, and one baseline 14x in one run and 35x in the next. Here each
round times one block of calls of every row (eager and compiled, at each batch size), in an order that rotates
from round to round, so a burst of load hits all rows alike. A row's latency is the median of its rounds' block
means with their interquartile range. Rows that compute the same thing -- the same module type with the same
parameter shapes and dtypes (a baseline, a distilled and a self-distilled student of one architecture: dense
kernels do not depend on the weights' values) -- pool their rounds and report one latency, so identical models
come out equal by construction.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import nn

from kdrun.io import one_line
from kdrun.quant.measure import Compiled, MeasureSettings, threads

Key = tuple[str, str, int]  # (row, mode, batch size)


def compute_signature(model: nn.Module) -> Hashable:
    """What determines a model's latency: its module type and its tensors' names, shapes and dtypes."""
    state = model.state_dict()
    return type(model).__name__, tuple((k, tuple(v.shape), str(v.dtype)) for k, v in state.items()
                                       if isinstance(v, torch.Tensor))


def _callables(models: dict[str, tuple[nn.Module, Compiled | None]], inputs: dict[int, torch.Tensor],
               s: MeasureSettings, records: dict[str, dict]) -> dict[tuple[str, str], Callable]:
    """(row, mode) -> what to time; compiling happens here, before any round (a failure is recorded)."""
    fns: dict[tuple[str, str], Callable] = {}
    for row, (model, compiled) in models.items():
        fns[(row, "eager")] = model.eval()
        if not s.compile:
            continue
        try:
            compiled = compiled or Compiled(model)
            with torch.no_grad():
                for x in inputs.values():
                    compiled(x)  # one compile per input shape, outside the timed rounds
            fns[(row, "compiled")] = compiled
            records[row]["compile_s"] = compiled.seconds
        except Exception as e:  # an unsupported op or a missing C++ toolchain: record, don't fail the run
            records[row]["compiled_ms"] = None
            records[row]["compile_error"] = f"{type(e).__name__}: {one_line(e, lines=1)}"
    return fns


def _block_calls(fn: Callable, x: torch.Tensor, s: MeasureSettings, block_seconds: float) -> int:
    """Calls per block: warm up, then as many as fill ``block_seconds``."""
    for _ in range(max(1, s.warmup)):
        fn(x)
    t0 = time.perf_counter()
    fn(x)
    return max(1, int(block_seconds / max(time.perf_counter() - t0, 1e-7)))


@torch.no_grad()
def time_rows(models: dict[str, tuple[nn.Module, Compiled | None]], inputs: dict[int, torch.Tensor],
              s: MeasureSettings) -> dict[str, dict[str, Any]]:
    """Row -> latency record (``<mode>_ms`` medians and ``<mode>_iqr_ms`` quartiles per batch size), every row
    timed in the same ``s.rounds`` rounds, rows that compute the same thing pooled."""
    from torch.utils.benchmark import Timer

    rounds = max(3, s.rounds)
    records = {row: {"threads": s.threads or torch.get_num_threads(), "rounds": rounds,
                     "timer": "torch.utils.benchmark, interleaved rounds"} for row in models}
    with threads(s.threads), _room_to_compile(len(models) * len(inputs) if s.compile else 0):
        fns = _callables(models, inputs, s, records)
        keys: list[Key] = [(row, mode, b) for (row, mode) in fns for b in inputs]
        block = s.max_seconds / rounds
        calls = {k: _block_calls(fns[k[:2]], inputs[k[2]], s, block) for k in keys}
        timers = {k: Timer(stmt="fn(x)", globals={"fn": fns[k[:2]], "x": inputs[k[2]]},
                           num_threads=torch.get_num_threads()) for k in keys}
        samples: dict[Key, list[float]] = {k: [] for k in keys}
        for r in range(rounds):
            for k in keys[r % len(keys):] + keys[:r % len(keys)]:  # each round starts elsewhere
                samples[k].append(1000.0 * timers[k].timeit(calls[k]).mean)
    _pool(samples, {row: compute_signature(m) for row, (m, _) in models.items()})
    for (row, mode, b), times in samples.items():
        q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
        records[row].setdefault(f"{mode}_ms", {})[str(b)] = median
        records[row].setdefault(f"{mode}_iqr_ms", {})[str(b)] = [q1, q3]
    return records


def _room_to_compile(graphs: int) -> contextlib.AbstractContextManager:
    """Every row's module is another guard on the same forward code: room for all of them, so none falls back to
    eager silently (dynamo's default is 8 per code object)."""
    if not graphs:
        return contextlib.nullcontext()
    import torch._dynamo

    limit = max(8, 2 * graphs)
    return torch._dynamo.config.patch(recompile_limit=limit, accumulated_recompile_limit=8 * limit)


def _pool(samples: dict[Key, list[float]], signature: dict[str, Hashable]) -> None:
    """Rows with the same signature share all their rounds' samples (in place)."""
    groups: dict[tuple, list[Key]] = {}
    for key in samples:
        groups.setdefault((signature[key[0]], key[1], key[2]), []).append(key)
    for members in groups.values():
        pooled = [t for k in members for t in samples[k]]
        for k in members:
            samples[k] = pooled
