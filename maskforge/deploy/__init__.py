"""Deployment: predict on photos, folders and videos; export to ONNX and TorchScript."""
