"""`--boxes FILE.csv`: user-given faces are used as given; malformed files get one-line errors."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.synth.run.runner import read_boxes

PHOTO = "120.jpg"


def test_boxes_and_landmark_rows_are_read(tmp_path):
    (tmp_path / "b.csv").write_text(
        "image,left,top,right,bottom\na.jpg,1,2,30,40\na.jpg,50,5,90,45\nsub/c.png,0,0,9,9\n"
    )
    boxes = read_boxes(tmp_path / "b.csv")
    assert sorted(boxes) == ["a.jpg", "sub/c.png"]
    np.testing.assert_array_equal(boxes["a.jpg"][1], [50, 5, 90, 45])
    header = "image," + ",".join(f"x{i},y{i}" for i in range(68))
    values = ",".join(f"{i},{i + 100}" for i in range(68))
    (tmp_path / "l.csv").write_text(f"{header}\nd.jpg,{values}\n")
    lm = read_boxes(tmp_path / "l.csv")["d.jpg"][0]
    assert lm.shape == (68, 2) and lm[5].tolist() == [5, 105]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"b\.csv is empty"),
        ("file,left,top,right,bottom\na.jpg,1,2,3,4\n", "needs an 'image' column"),
        ("image,x,y\na.jpg,1,2\n", "needs columns left,top,right,bottom"),
        ("image,left,top,right,bottom\na.jpg,1,2,three,4\n", "row 2: right is 'three'"),
        ("image,left,top,right,bottom\na.jpg,1,2,3,4\nb.jpg,10,2,5,4\n", "row 3 has right <= left"),
        ("image,left,top,right,bottom\n,1,2,30,40\n", r"row 2 has an empty image name"),
        ("image,left,top,right,bottom\n  ,1,2,30,40\n", r"row 2 has an empty image name"),
        (
            "image,left,top,right,bottom\na.jpg,1,2,30,40\nb.jpg,1,2,30,40,7\n",
            r"row 3 has 6 fields but the header has 5",
        ),
        (
            "image,left,top,right,bottom\na.jpg,1,2,30,40,7\n",
            r"row 2 has 6 fields but the header has 5",
        ),
        ("image,left,top,right,bottom\na.jpg,1,2,inf,40\n", r"row 2: right is 'inf'"),
        ("image,left,top,right,bottom\na.jpg,1,2,1e300,40\n", r"row 2: right is '1e300'"),
        ("image,left,top,right,bottom\na.jpg,nan,2,30,40\n", r"row 2: left is 'nan'"),
        ("image,left,top,right,bottom\na.jpg,1,2,30,\n", r"row 2: bottom is ''"),
        (
            "image," + ",".join(f"x{i},y{i}" for i in range(68)) + "\n"
            "a.jpg," + ",".join(["5"] * 135) + ",-1e20\n",
            r"row 2: y67 is '-1e20'",
        ),
    ],
)
def test_malformed_boxes_file(tmp_path, text, message):
    (tmp_path / "b.csv").write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_boxes(tmp_path / "b.csv")
    assert str(tmp_path / "b.csv") in str(info.value) and "\n" not in str(info.value)


def test_cli_uses_given_boxes_and_reports_bad_files(unmasked_dir: Path, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(unmasked_dir / PHOTO, raw / PHOTO)
    (tmp_path / "boxes.csv").write_text(f"image,left,top,right,bottom\n{PHOTO},60,90,250,290\n")
    result = CliRunner().invoke(
        cli,
        [
            "synthesize",
            str(raw),
            str(tmp_path / "out"),
            "--workers",
            "1",
            "--boxes",
            str(tmp_path / "boxes.csv"),
            "--mask-type",
            "surgical",
        ],
    )
    with open(tmp_path / "out" / "synthesis.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["detector"], r["box"]) for r in rows] == [("boxes", "60 90 250 290")]
    (tmp_path / "bad.csv").write_text("image,left\nx.jpg,1\n")
    result = CliRunner().invoke(
        cli, ["synthesize", str(raw), str(tmp_path / "out2"), "--boxes", str(tmp_path / "bad.csv")]
    )
    assert result.exit_code == 2 and "needs columns left,top,right,bottom" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out2").exists()
