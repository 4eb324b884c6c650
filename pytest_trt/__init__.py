"""pytest-trt: accuracy and speed gates for ONNX models run through TensorRT or onnxruntime."""

__version__ = "0.1.0"
