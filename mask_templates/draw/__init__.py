"""Draw every mask template and occluder PNG and templates.json, deterministically.

    python -m mask_templates.draw [OUT_DIR] [--only NAME ...]   (from the repository root)

A developer tool: it writes the PNGs and templates.json committed in mask_templates/, and is
not part of the installed package. Each mask is modelled as a 3D surface worn on a simple head
model and rendered with numpy: dense surface samples are shaded under a soft light, z-buffered
at 3x resolution and downsampled with INTER_AREA (anti-aliasing). The anchors are 3D face
points projected by the same camera, so anchors and pixels agree exactly in every view.

Modules:
    head        the face model (sections, FaceDepth), the Hull fabric follows, the anchors
    surfaces    Part and surface sampling, tube/sphere/ribbon, noise helpers, render, mirror
    shapes      building blocks: bands, tapers, shells cut by the face, discs, strap stubs
    masks       surgical, n95, kn95, cloth, gas, and MASKS (a MaskSpec per template)
    coverings   gaiter, bandana, sports
    occluders   hand, phone, notebook, scarf, and OCCLUDERS (an OccluderSpec each)
    output      template_meta, draw_all: render the views, write PNGs and templates.json
    __main__    the command line

Units: 1 = the vertical distance from the nose-bridge landmark (dlib 28) to the chin (dlib 8);
see head for the axes.
"""

from .head import ANCHOR_NAMES, face_anchors_3d
from .masks import MASKS, MaskSpec
from .occluders import OCCLUDERS, OccluderSpec
from .output import draw_all, template_meta
from .surfaces import PX_PER_UNIT

__all__ = [
    "ANCHOR_NAMES",
    "MASKS",
    "OCCLUDERS",
    "PX_PER_UNIT",
    "MaskSpec",
    "OccluderSpec",
    "draw_all",
    "face_anchors_3d",
    "template_meta",
]
