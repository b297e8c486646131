"""Layer 2: a trained model in formats other than PyTorch's (ONNX, checked and timed with onnxruntime)."""
