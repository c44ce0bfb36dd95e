"""Occluder images (hands, objects, scarves) for the hard negatives; data only."""
