"""maskforge: synthesize masked-face datasets, split them, train and evaluate classifiers."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_templates", "mask_face"]


def __getattr__(name: str):
    # Lazy so that `import maskforge` (and `maskforge --help`) stays fast: dlib/cv2 load on use.
    if name == "mask_face":
        from maskforge.synth.api import mask_face

        return mask_face
    if name == "load_templates":
        from maskforge.synth.templates import load_templates

        return load_templates
    raise AttributeError(f"module 'maskforge' has no attribute {name!r}")
