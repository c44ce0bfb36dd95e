"""Data files fitted by the project's scripts (e.g. scripts/calibrate_faces.py)."""
