"""The names the README documents stay importable, and `import maskforge` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import maskforge


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("mask_face", "maskforge.synth.api"),
        ("load_templates", "maskforge.synth.render.templates"),
        ("read_image", "maskforge.core.imageio"),
        ("make_sheet", "maskforge.synth.preview.sheet"),
    ],
)
def test_public_names_come_from_their_wing(name, module):
    obj = getattr(maskforge, name)
    assert callable(obj) and obj.__module__ == module


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        maskforge.nope  # noqa: B018


def test_import_maskforge_loads_no_heavy_library():
    code = "import sys, maskforge; print(sorted({'cv2', 'torch', 'dlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
