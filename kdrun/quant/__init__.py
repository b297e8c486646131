"""The int8 path: export a trained student, prepare it for quantization-aware training or calibration,
convert it to int8, and measure models (latency, size) the same way for every row of the table.

Built on the maintained PyTorch 2 export quantization flow (``torchao.quantization.pt2e``):
``torch.export`` -> ``prepare_qat_pt2e`` / ``prepare_pt2e`` with ``X86InductorQuantizer`` ->
``convert_pt2e`` -> ``torch.compile`` (Inductor lowers the quantize/dequantize patterns to oneDNN
int8 kernels). See docs/quantization.md for why this path and what was measured.
"""
