"""Evaluation: inference on a manifest or folder, metrics, plots, Grad-CAM and the report."""
