"""maskforge: synthesize masked-face datasets, split them, train and evaluate classifiers."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# The public names the README documents, and the module each lives in. Imported on first use so
# that `import maskforge` (and `maskforge --help`) stays fast: dlib, OpenCV and torch load later.
_PUBLIC = {
    "mask_face": "maskforge.synth.api",
    "load_templates": "maskforge.synth.render.templates",
    "read_image": "maskforge.core.imageio",
    "make_sheet": "maskforge.synth.preview.sheet",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'maskforge' has no attribute {name!r}")
