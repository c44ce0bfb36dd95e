"""The sampler: the only place in synth that draws random numbers (tests/test_architecture.py).

`specs` parses weighted option and colour specs and derives each face's seed; `draws` turns a
face's seed into parameters (`FaceSampler`: mask type, colour, pattern, wear, negative, look,
framing, a hand); `patterns` draws procedural fabric textures and novelty prints; `params` holds
the parameter dataclasses render/ reads, and `Grain`, the one draw render asks for while it
composites. Imports numpy, OpenCV and core only: the lowest of synth's rooms.
"""
