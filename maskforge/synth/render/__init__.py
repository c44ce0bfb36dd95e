"""Pixels from parameters already drawn: templates and occluders, the flat warp, the mesh renderer,
light matching and blending, framing, hands. Deterministic: nothing here draws a random number
(the grain is a sampler object, `sampling.params.Grain`, handed in). Imports faces, core and
`synth.sampling.params`.
"""
