"""CPU and runtime acceleration: re-parameterised kernels, ONNX Runtime, worker processes."""
