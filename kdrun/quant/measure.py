"""Measured (never estimated) CPU latency and size on disk of a model, eagerly and under torch.compile.

Latency is timed with ``torch.utils.benchmark`` (``Timer.adaptive_autorange``: blocks of calls sized so
the timer's own overhead is negligible, repeated until the interquartile range is below
``target_iqr`` of the median or ``max_seconds`` have passed), at batch 1 and at a full batch. Each
timing records the median and the interquartile range of the per-call times, so a reader can tell a
real speed-up from noise (two rows whose ranges overlap are not told apart).
Compiled timings use Inductor with freezing: weights become constants, so float convolutions and
linears run on prepacked oneDNN kernels and quantize/dequantize patterns fuse into int8 kernels --
the setting PyTorch documents for CPU inference. A model that fails to compile is recorded as such.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from kdrun.io import one_line


@dataclass(frozen=True)
class MeasureSettings:
    """The ``measure`` config node."""

    enabled: bool = True
    compile: bool = True  # also time under torch.compile (and evaluate int8 models on compiled kernels)
    batch_sizes: tuple[int, ...] = (1, 256)
    warmup: int = 3
    max_seconds: float = 2.0  # per model, batch size and mode
    target_iqr: float = 0.05  # stop timing once IQR / median is below this
    threads: int | None = None  # torch intra-op threads while timing; None = torch's default
    rounds: int = 7  # interleaved rounds every row is timed in at the end of a run (kdrun/quant/rounds.py)


def weights_bytes(state: dict[str, torch.Tensor]) -> int:
    """Size of ``state`` saved with ``torch.save``: what the weights file of the model takes on disk."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
    return buf.getbuffer().nbytes


class Compiled:
    """``torch.compile`` for CPU inference; compiles once per input shape and keeps the generated code."""

    def __init__(self, model: nn.Module) -> None:
        self.fn = torch.compile(model, dynamic=False)
        self.shapes: set[tuple[int, ...]] = set()
        self.code: list[str] = []  # Inductor's output code, one entry per graph compiled (shape)
        self.seconds = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape) in self.shapes:
            return self.fn(x)
        from torch._inductor import config
        from torch._inductor.utils import run_and_get_code

        t0 = time.perf_counter()
        with torch.no_grad(), config.patch(freezing=True), warnings.catch_warnings():
            # Inductor's int8 lowering copies a tensor the way torch warns about; not the user's concern
            warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning)
            out, code = run_and_get_code(self.fn, x)
        self.seconds += time.perf_counter() - t0
        self.shapes.add(tuple(x.shape))
        self.code.append("\n".join(code))
        return out


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call: the median and the interquartile range (first and third quartiles)."""

    median: float
    q1: float
    q3: float


@torch.no_grad()
def time_ms(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, s: MeasureSettings) -> Timing:
    from torch.utils.benchmark import Timer

    for _ in range(max(1, s.warmup)):
        fn(x)
    timer = Timer(stmt="fn(x)", globals={"fn": fn, "x": x}, num_threads=torch.get_num_threads())
    m = timer.adaptive_autorange(threshold=s.target_iqr, min_run_time=min(0.1, s.max_seconds),
                                 max_run_time=s.max_seconds)
    times = sorted(1000.0 * t for t in m.times)
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else times * 3
    return Timing(1000.0 * m.median, q1, q3)


def timing_budget(s: MeasureSettings, models: int = 1) -> float:
    """The most seconds timing ``models`` models can take (compiling not included)."""
    return models * len(s.batch_sizes) * (2 if s.compile else 1) * s.max_seconds


def inputs_for(sample: torch.Tensor, batch_sizes: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Batches of real test inputs (repeated if the sample batch is smaller), on the CPU."""
    sample = sample.cpu()
    out = {}
    for b in batch_sizes:
        reps = -(-b // len(sample))
        out[b] = sample.repeat(reps, *([1] * (sample.dim() - 1)))[:b].contiguous()
    return out


def latency(model: nn.Module, inputs: dict[int, torch.Tensor], s: MeasureSettings,
            compiled: Compiled | None = None) -> dict:
    """Latency (ms) per batch size, eager and (if enabled) compiled: ``<mode>_ms`` holds the medians,
    ``<mode>_iqr_ms`` the first and third quartiles; ``compiled_ms`` is None where compiling fails."""
    model = model.eval()
    result: dict = {"threads": s.threads or torch.get_num_threads(), "timer": "torch.utils.benchmark"}
    with threads(s.threads):
        result.update(_timed("eager", model, inputs, s))
        if not s.compile:
            return result
        try:
            compiled = compiled or Compiled(model)
            result.update(_timed("compiled", compiled, inputs, s))
            result["compile_s"] = compiled.seconds
        except Exception as e:  # an unsupported op or a missing C++ toolchain: record, don't fail the run
            result["compiled_ms"] = None
            result["compile_error"] = f"{type(e).__name__}: {one_line(e, lines=1)}"
    return result


def _timed(mode: str, fn: Callable[[torch.Tensor], torch.Tensor], inputs: dict[int, torch.Tensor],
           s: MeasureSettings) -> dict:
    timings = {str(b): time_ms(fn, x, s) for b, x in inputs.items()}
    return {f"{mode}_ms": {b: t.median for b, t in timings.items()},
            f"{mode}_iqr_ms": {b: [t.q1, t.q3] for b, t in timings.items()}}
