"""Datasets: collect sources, find duplicates, split into manifests, compute channel stats."""
