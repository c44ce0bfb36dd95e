"""Synthesis: put a mask on every face the faces wing finds, write the pairs and synthesis.csv.

Four rooms, each importing only the rooms before it (and faces, core, choices):
- `sampling/`: every random draw (the sampler) and the parameters it draws;
- `render/`: pixels from parameters already drawn (templates, warping, mesh, light, blending);
- `run/`: one photo (`pipeline`), the batch (`runner`), its journal, stems and the synthesis.csv
  contract (`records`);
- `preview/`: contact sheets of an output folder and of the templates.
`api.py` is the public `mask_face` for a user's own image.
"""
