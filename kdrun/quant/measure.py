"""Measured (never estimated) CPU latency and size on disk of a model, eagerly and under torch.compile.

Latency is the median wall time of a forward pass after a few warm-up calls, timed until ``iters``
calls or ``max_seconds`` have passed (at least three calls), at batch 1 and at a full batch.
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
    iters: int = 20
    max_seconds: float = 2.0  # per model, batch size and mode
    threads: int | None = None  # torch intra-op threads while timing; None = torch's default


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


@torch.no_grad()
def time_ms(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, s: MeasureSettings) -> float:
    for _ in range(max(1, s.warmup)):
        fn(x)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max(s.iters, 1) and (len(times) < 3 or time.perf_counter() - start < s.max_seconds):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


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
    """Median latency (ms) per batch size, eager and (if enabled) compiled; ``n/a`` where compiling fails."""
    model = model.eval()
    result: dict = {"threads": s.threads or torch.get_num_threads()}
    with threads(s.threads):
        result["eager_ms"] = {str(b): time_ms(model, x, s) for b, x in inputs.items()}
        if not s.compile:
            return result
        try:
            compiled = compiled or Compiled(model)
            result["compiled_ms"] = {str(b): time_ms(compiled, x, s) for b, x in inputs.items()}
            result["compile_s"] = compiled.seconds
        except Exception as e:  # an unsupported op or a missing C++ toolchain: record, don't fail the run
            result["compiled_ms"] = None
            result["compile_error"] = f"{type(e).__name__}: {one_line(e, lines=1)}"
    return result
