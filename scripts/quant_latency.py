"""Measure what int8 buys on this CPU: float vs int8 CPU latency of registry models, eager and compiled.

    python scripts/quant_latency.py resnet8x4 resnet32x4 wrn_16_2 --batch-sizes 1 64 --threads 1

Each model is built for CIFAR-shaped inputs (3x32x32, 100 classes; ``--signal`` for 1x40 MNIST-1D
inputs), converted to int8 with the same path as the ``quantized_ptq`` row (torchao PT2E,
X86InductorQuantizer, calibrated on random batches -- latency does not depend on the weights), and
timed with kdrun's measurement code. Prints a markdown table: median milliseconds per forward pass,
the int8/float speed-ups, and which compute kernels the compiled int8 model calls.
"""

from __future__ import annotations

import argparse
import copy

import torch

from kdrun.models.registry import create_model
from kdrun.quant.measure import Compiled, MeasureSettings, inputs_for, latency
from kdrun.quant.pt2e import calibrate, convert, kernel_counts, prepare_ptq


def measure(arch: str, signal: bool, settings: MeasureSettings) -> dict:
    shape, classes = ((1, 40), 10) if signal else ((3, 32, 32), 100)
    torch.manual_seed(0)
    model = create_model(arch, num_classes=classes, in_channels=shape[0], input_size=shape[1:]).eval()
    inputs = inputs_for(torch.randn(max(settings.batch_sizes), *shape), settings.batch_sizes)
    prepared = prepare_ptq(model, inputs[max(inputs)][:2])
    calibrate(prepared, [torch.randn(32, *shape) for _ in range(4)])
    int8 = convert(prepared)
    torch._dynamo.reset()
    fp32 = latency(copy.deepcopy(model), inputs, settings)
    torch._dynamo.reset()
    compiled = Compiled(int8)
    q = latency(int8, inputs, settings, compiled)
    return {"fp32": fp32, "int8": q, "kernels": kernel_counts(compiled.code[0])}  # one graph (batch size)


def row(arch: str, r: dict, sizes: tuple[int, ...]) -> str:
    def ms(result: dict, mode: str, b: int) -> float | None:
        times = result.get(f"{mode}_ms") or {}
        return times.get(str(b))

    cells = [arch]
    for b in sizes:
        fe, fc, qc = ms(r["fp32"], "eager", b), ms(r["fp32"], "compiled", b), ms(r["int8"], "compiled", b)
        cells += [f"{fe:.2f}", f"{fc:.2f}" if fc else "n/a", f"{qc:.2f}" if qc else "n/a",
                  f"{fe / qc:.2f}x" if qc else "n/a", f"{fc / qc:.2f}x" if fc and qc else "n/a"]
    k = r["kernels"]
    cells.append(", ".join(f"{n} x{c}" for n, c in sorted(k["int8"].items())) or "none")
    cells.append(", ".join(f"{n} x{c}" for n, c in sorted(k["float"].items())) or "none")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("archs", nargs="+")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--signal", action="store_true", help="1x40 signal inputs (MNIST-1D) instead of 3x32x32 images")
    args = p.parse_args()
    sizes = tuple(args.batch_sizes)
    settings = MeasureSettings(batch_sizes=sizes, warmup=3, max_seconds=3.0, threads=args.threads)
    head = ["model"]
    for b in sizes:
        head += [f"fp32 eager b{b}", f"fp32 compiled b{b}", f"int8 compiled b{b}", "vs eager", "vs compiled"]
    print(f"CPU: {torch.get_num_threads()} threads available, timed with {args.threads}; ms per forward pass\n")
    print("| " + " | ".join(head + ["int8 kernels", "float kernels left"]) + " |")
    print("|" + "---|" * (len(head) + 2))
    for arch in args.archs:
        print(row(arch, measure(arch, args.signal, settings), sizes), flush=True)


if __name__ == "__main__":
    main()
