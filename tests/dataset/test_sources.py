"""Collecting labelled items: synthesize output folders, class-per-subfolder trees, sources."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from maskforge.dataset.sources import (
    ITEM_COLUMNS,
    Source,
    collect_sources,
    parse_class_map,
    parse_source,
    synthesis_items,
)


@pytest.fixture(scope="module")
def photos(unmasked_dir) -> list[Path]:
    return sorted(unmasked_dir.glob("*.jpg"))[:8]


def test_synthesis_folder_yields_output_original_and_negative(
    tmp_path, photos, make_synthesis_folder, synthesis_mask_types
):
    table = make_synthesis_folder(tmp_path / "out", photos, negatives_every=2, incorrect_every=4)
    collected = collect_sources([Source("out", tmp_path / "out")])
    items = collected.items
    assert list(items.columns) == list(ITEM_COLUMNS)
    # 8 ok rows: 8 outputs + 8 originals + 4 negatives (rows 0, 2, 4, 6).
    assert len(items) == 20
    assert items["kind"].value_counts().to_dict() == {"output": 8, "original": 8, "negative": 4}
    assert items["label"].value_counts().to_dict() == {"unmasked": 12, "masked": 6, "incorrect": 2}
    assert collected.skipped == {"out": {"no_face": 2}}
    assert set(items["source"]) == {"out"}
    # Every image of one input shares its group, prefixed with the source name.
    first = items[items["group"] == f"out:p/{photos[0].name}"]
    assert sorted(first["kind"]) == ["negative", "original", "output"]
    assert items["group"].nunique() == 8
    # Mask type and wear describe the synthetic image only.
    outputs = items[items["kind"] == "output"].sort_values("abspath")
    assert set(outputs["mask_type"]) == set(synthesis_mask_types)
    assert set(items.loc[items["kind"] != "output", "mask_type"]) == {""}
    assert set(items.loc[items["kind"] != "output", "wear"]) == {""}
    assert set(outputs.loc[outputs["label"] == "incorrect", "wear"]) == {"nose_out"}
    for path in items["abspath"]:
        assert Path(path).is_absolute() and Path(path).is_file()
    assert table["status"].eq("ok").sum() == 8


def test_synthesis_items_falls_back_to_input_and_skips_failures():
    table = pd.DataFrame(
        {
            "input": ["a.jpg", "a.jpg", "b.jpg", "c.jpg"],
            "status": ["ok", "ok", "too_small", "ok"],
            "label": ["masked", "incorrect", "", "masked"],
            "output": ["masked/a_0.jpg", "incorrect/a_1.jpg", "", ""],
            "original": ["unmasked/a_0.jpg", "unmasked/a_1.jpg", "", "unmasked/c_0.jpg"],
            "negative": ["", "", "", ""],
            "group": ["", "", "", ""],
            "mask_type": ["cloth", "cloth", "", ""],
            "wear": ["correct", "chin", "", ""],
        }
    )
    items, skipped = synthesis_items(table, Path("/data/out"), "syn")
    assert skipped == {"too_small": 1, "ok without output": 1}
    assert len(items) == 4
    assert set(items["group"]) == {"syn:a.jpg"}
    assert sorted(items["abspath"]) == [
        "/data/out/incorrect/a_1.jpg",
        "/data/out/masked/a_0.jpg",
        "/data/out/unmasked/a_0.jpg",
        "/data/out/unmasked/a_1.jpg",
    ]


def test_one_image_with_two_labels_is_an_error():
    table = pd.DataFrame(
        {
            "input": ["a.jpg"],
            "status": ["ok"],
            "label": ["masked"],
            "output": ["same.jpg"],
            "original": ["same.jpg"],
            "group": ["a.jpg"],
        }
    )
    with pytest.raises(ValueError, match="with two labels"):
        synthesis_items(table.assign(negative=""), Path("/o"), "o")


def _tree(root: Path, photos: list[Path], layout: dict[str, int]) -> None:
    i = 0
    for folder, n in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for _ in range(n):
            shutil.copyfile(photos[i % len(photos)], root / folder / f"img{i}.jpg")
            i += 1


def test_class_folders_with_class_map(tmp_path, photos):
    _tree(tmp_path / "photos", photos, {"with_mask": 3, "without_mask": 2, "with_mask/deep": 1})
    (tmp_path / "photos" / "notes").mkdir()
    (tmp_path / "photos" / "notes" / "readme.txt").write_text("not an image")
    shutil.copyfile(photos[0], tmp_path / "photos" / "loose.jpg")
    source = parse_source(f"real={tmp_path / 'photos'}")
    assert source.name == "real" and source.kind == "folders"
    collected = collect_sources(
        [source], parse_class_map("with_mask=masked, without_mask=unmasked")
    )
    items = collected.items
    assert items["label"].value_counts().to_dict() == {"masked": 4, "unmasked": 2}
    assert set(items["source"]) == {"real"} and set(items["kind"]) == {"photo"}
    assert "real:with_mask/deep/img5.jpg" in set(items["group"])
    assert items["group"].nunique() == 6
    assert any("notes/ has no images" in n for n in collected.notes)
    assert any("1 image(s) directly in" in n for n in collected.notes)


def test_flat_folder_is_one_class_named_after_it(tmp_path, photos):
    _tree(tmp_path, photos, {"masked_real": 3})
    items = collect_sources(
        [parse_source(str(tmp_path / "masked_real"))], {"masked_real": "masked"}
    ).items
    assert list(items["label"]) == ["masked"] * 3
    assert set(items["source"]) == {"masked_real"}


def test_several_sources_are_tagged(tmp_path, photos, make_synthesis_folder):
    make_synthesis_folder(tmp_path / "out", photos[:4], negatives_every=0, incorrect_every=0)
    _tree(tmp_path / "real", photos[4:], {"masked": 2, "unmasked": 1})
    collected = collect_sources(
        [parse_source(str(tmp_path / "out")), parse_source(f"real={tmp_path / 'real'}")]
    )
    counts = collected.items.groupby(["source", "label"]).size().to_dict()
    assert counts == {
        ("out", "masked"): 4,
        ("out", "unmasked"): 4,
        ("real", "masked"): 2,
        ("real", "unmasked"): 1,
    }


@pytest.mark.parametrize(
    "spec, error, message",
    [
        ("nope", FileNotFoundError, "does not exist"),
        ("x=nope", FileNotFoundError, "does not exist"),
        ("bad name=.", ValueError, "Invalid source name"),
        ("x=", ValueError, "names no folder"),
    ],
)
def test_bad_source_specs(tmp_path, monkeypatch, spec, error, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        parse_source(spec)


def test_source_that_is_a_file(tmp_path):
    (tmp_path / "f.jpg").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        parse_source(str(tmp_path / "f.jpg"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("with_mask", "expected FOUND=LABEL"),
        ("with_mask=", "expected FOUND=LABEL"),
        ("=masked", "expected FOUND=LABEL"),
        ("a=masked,a=unmasked", "mapped twice"),
        (" , ", "empty"),
    ],
)
def test_bad_class_maps(text, message):
    with pytest.raises(ValueError, match=message):
        parse_class_map(text)


def test_unknown_class_in_class_map(tmp_path, photos):
    _tree(tmp_path / "photos", photos, {"with_mask": 1, "without_mask": 1})
    with pytest.raises(ValueError, match=r"--class-map names mask_on, which is not .*with_mask"):
        collect_sources([parse_source(str(tmp_path / "photos"))], {"mask_on": "masked"})


def test_empty_folder_and_duplicate_names_and_overlap(tmp_path, photos):
    (tmp_path / "empty" / "with_mask").mkdir(parents=True)
    with pytest.raises(ValueError, match="has no images"):
        collect_sources([parse_source(str(tmp_path / "empty"))])
    _tree(tmp_path / "a" / "photos", photos, {"masked": 1})
    _tree(tmp_path / "b" / "photos", photos, {"masked": 1})
    with pytest.raises(ValueError, match="Two sources are named 'photos'"):
        collect_sources(
            [parse_source(str(tmp_path / "a/photos")), parse_source(str(tmp_path / "b/photos"))]
        )
    with pytest.raises(ValueError, match="give folders that do not overlap"):
        collect_sources(
            [parse_source(f"x={tmp_path / 'a'}"), parse_source(f"y={tmp_path / 'a/photos'}")]
        )


def test_synthesis_csv_missing_columns(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "synthesis.csv").write_text("input,status\na.jpg,ok\n")
    with pytest.raises(ValueError, match="lacks column"):
        collect_sources([parse_source(str(tmp_path / "out"))])
    (tmp_path / "out" / "synthesis.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        collect_sources([parse_source(str(tmp_path / "out"))])
