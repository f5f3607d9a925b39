"""trainer: turns train requests into verified ONNX models registered with their lineage."""
