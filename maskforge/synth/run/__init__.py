"""Running synthesis: one photo (`pipeline.Synthesizer`), the batch (`runner`: engines, resume,
summary), its journal and lock, output stems, and the synthesis.csv contract (`records`).
Imports render, sampling, faces and core; the batch runner does not know how a face is masked.
"""
