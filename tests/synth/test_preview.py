"""`maskforge preview`: contact sheets of a real small synthesize run, their geometry and errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.core.imageio import read_image
from maskforge.core.workspace import remember
from maskforge.synth.preview import sheet as preview
from maskforge.synth.preview.sheet import (
    GAP,
    LABEL_HEIGHT,
    TITLE_HEIGHT,
    Filters,
    build_sheet,
    make_sheet,
)

PHOTOS = ("0_0_caiguoqing_0146.jpg", "120.jpg", "125.jpg", "0_0_anhu_0025.jpg")


def run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def synth(unmasked_dir: Path, tmp_path_factory) -> Path:
    """A real synthesize output folder: 4 photos, one surgical mask each."""
    base = tmp_path_factory.mktemp("preview")
    raw = base / "raw"
    raw.mkdir()
    for name in PHOTOS:
        shutil.copy(unmasked_dir / name, raw / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)  # synthesize records its output in ./.maskforge/state.json
        code, output = run(
            "synthesize",
            raw,
            base / "out",
            "--workers",
            "1",
            "--mask-type",
            "surgical",
            "--far-camera",
            "0",
        )
    assert code == 0, output
    return base / "out"


@pytest.fixture
def copy(synth: Path, tmp_path: Path) -> Path:
    """A private copy of the synthesize output whose CSV and images a test may change."""
    return Path(shutil.copytree(synth, tmp_path / "out"))


def table_of(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "synthesis.csv", dtype=str, keep_default_na=False)


def write_table(out: Path, table: pd.DataFrame) -> None:
    table.to_csv(out / "synthesis.csv", index=False)


def tile_area(sheet: np.ndarray, layout, index: int) -> np.ndarray:
    x, y = layout.origin(index)
    return sheet[y : y + layout.tile, x : x + layout.image_w]


def label_band(sheet: np.ndarray, layout, index: int) -> np.ndarray:
    x, y = layout.origin(index)
    return sheet[y + layout.tile : y + layout.tile + LABEL_HEIGHT, x : x + layout.image_w]


def test_the_run_gives_four_square_surgical_outputs(synth):
    ok = table_of(synth).query("status == 'ok'")
    assert len(ok) == 4 and set(ok["mask_type"]) == {"surgical"}
    for rel in ok["output"]:
        h, w, _ = read_image(synth / rel).shape
        assert h == w > 64  # so a 64 px tile shrinks it


def test_sheet_size_is_rows_times_cell_height_by_columns_times_cell_width(synth):
    assert (LABEL_HEIGHT, GAP, TITLE_HEIGHT) == (56, 4, 36)
    sheet = make_sheet(synth, count=3, seed=0, tile=64, columns=2)
    # 3 tiles in 2 columns: 2 rows of (64 image + 56 label + 4 gap), 2 x (64 + 4) wide.
    assert sheet.shape == (36 + 2 * 124, 2 * 68, 3) and sheet.dtype == np.uint8
    # More columns than tiles: the grid shrinks to the tiles there are.
    assert make_sheet(synth, count=10, seed=0, tile=64).shape == (36 + 124, 4 * 68, 3)


def test_same_seed_same_sheet_other_seed_other_sample(synth):
    a = build_sheet(synth, count=4, seed=0, tile=48)
    b = build_sheet(synth, count=4, seed=0, tile=48)
    c = build_sheet(synth, count=4, seed=1, tile=48)
    np.testing.assert_array_equal(a.image, b.image)
    assert list(a.selection.rows["output"]) != list(c.selection.rows["output"])
    assert a.image.shape == c.image.shape and not np.array_equal(a.image, c.image)
    # Two of the four: the seed picks which.
    picks = {
        tuple(sorted(build_sheet(synth, 2, s, tile=32).selection.rows["input"])) for s in range(6)
    }
    assert len(picks) > 1


def test_sample_does_not_depend_on_csv_row_order(copy):
    before = make_sheet(copy, count=3, seed=7, tile=40)
    write_table(copy, table_of(copy).iloc[::-1])
    np.testing.assert_array_equal(make_sheet(copy, count=3, seed=7, tile=40), before)


def test_tile_pixels_are_the_output_resized_with_area_interpolation(synth):
    sheet = build_sheet(synth, count=4, seed=3, tile=64, columns=3)
    assert sheet.unreadable == 0
    for i, row in sheet.selection.rows.iterrows():
        image = read_image(synth / row["output"])
        expected = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(tile_area(sheet.image, sheet.layout, i), expected)
    # The gutter right of the first tile is white.
    x, y = sheet.layout.origin(0)
    assert (sheet.image[y : y + 64, x + 64 : x + 68] == 255).all()


def test_side_by_side_tiles_are_twice_as_wide_original_then_output(synth):
    sheet = build_sheet(synth, count=4, seed=0, tile=64, columns=2, side_by_side=True)
    assert sheet.layout.image_w == 128
    assert sheet.image.shape == (36 + 2 * 124, 2 * (128 + 4), 3)
    row = sheet.selection.rows.iloc[1]
    area = tile_area(sheet.image, sheet.layout, 1)
    for half, column in ((area[:, :64], "original"), (area[:, 64:], "output")):
        image = read_image(synth / row[column])
        expected = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(half, expected)
    assert not np.array_equal(area[:, :64], area[:, 64:])  # the mask changed the face


def test_label_band_shows_the_colour_swatch(copy):
    table = table_of(copy)
    table.loc[table["status"] == "ok", "color"] = "#12ab34"
    write_table(copy, table)
    sheet = build_sheet(copy, count=2, seed=0, tile=96)
    band = label_band(sheet.image, sheet.layout, 0)
    swatch = np.all(band == (0x12, 0xAB, 0x34), axis=2)
    # A 9 x 8 filled square inside its outline, on the first label line only.
    assert swatch.sum() == 72 and swatch[: LABEL_HEIGHT // 4 + 2].sum() == 72
    assert not np.all(tile_area(sheet.image, sheet.layout, 0) == (0x12, 0xAB, 0x34), axis=2).any()


def test_filters_select_only_matching_rows(copy):
    table = table_of(copy)
    ok = table.index[table["status"] == "ok"]
    table.loc[ok[0], ["mask_type", "detector"]] = ["kn95", "cnn"]
    table.loc[ok[1], ["wear", "detector"]] = ["chin", "cnn"]
    table.loc[ok[2], ["negative", "negative_kind"]] = [table.loc[ok[2], "original"], "hand"]
    write_table(copy, table)
    inputs = list(table.loc[ok, "input"])

    def chosen(**kw) -> set[str]:
        return set(build_sheet(copy, 10, 0, Filters(**kw), tile=32).selection.rows["input"])

    assert chosen() == set(inputs)
    assert chosen(mask_types=("kn95",)) == {inputs[0]}
    assert chosen(mask_types=("surgical",)) == set(inputs[1:])
    assert chosen(wears=("chin",)) == {inputs[1]}
    assert chosen(wears=("correct", "chin")) == set(inputs)
    assert chosen(detectors=("cnn",)) == set(inputs[:2])
    assert chosen(detectors=("cnn",), mask_types=("surgical",)) == {inputs[1]}
    negatives = build_sheet(copy, 10, 0, Filters(negatives=True), tile=32)
    assert list(negatives.selection.rows["input"]) == [inputs[2]]
    expected = cv2.resize(
        read_image(copy / table.loc[ok[2], "original"]), (32, 32), interpolation=cv2.INTER_AREA
    )
    np.testing.assert_array_equal(tile_area(negatives.image, negatives.layout, 0), expected)


def test_framing_and_hand_filters_and_a_run_from_before_framing(copy):
    table = table_of(copy)
    ok = table.index[table["status"] == "ok"]
    assert set(table.loc[ok, "framing"]) == {"crop"} and set(table.loc[ok, "near_hand"]) == {""}
    table.loc[ok[0], "framing"] = "closeup"
    table.loc[ok[1], ["framing", "near_hand"]] = ["wide", "hand_back"]
    write_table(copy, table)
    inputs = list(table.loc[ok, "input"])

    def chosen(**kw) -> list[str]:
        return sorted(build_sheet(copy, 10, 0, Filters(**kw), tile=32).selection.rows["input"])

    assert chosen(framings=("closeup",)) == [inputs[0]]
    assert chosen(framings=("crop", "wide")) == sorted(inputs[1:])
    assert chosen(hands_near_mask=True) == [inputs[1]]
    assert preview._framing(table.loc[ok[1]].to_dict()) == "wide +hand"
    # A synthesis.csv written before these columns existed still makes a sheet.
    write_table(copy, table.drop(columns=["framing", "frame", "near_hand"]))
    assert len(build_sheet(copy, 10, 0, tile=32).selection.rows) == len(ok)
    with pytest.raises(ValueError, match="no hands near masks at all"):
        build_sheet(copy, 10, 0, Filters(hands_near_mask=True), tile=32)


def test_failed_rows_show_the_input_photo_with_the_face_box(copy):
    table = table_of(copy)
    raw = Path(pd.read_json(copy / "run.json", typ="series")["input"])
    photo = read_image(raw / PHOTOS[1])  # 320 x 428, portrait
    h, w = photo.shape[:2]
    box = (w // 5, h // 5, 3 * w // 5, 3 * h // 5)
    failed = {
        "input": PHOTOS[1],
        "face": "1",
        "status": "too_small",
        "reason": "face is 30 px wide",
        "group": PHOTOS[1],
        "detector": "hog",
        "box": " ".join(map(str, box)),
    }
    write_table(copy, pd.concat([table, pd.DataFrame([failed])]).fillna(""))
    sheet = build_sheet(copy, 5, 0, Filters(statuses=("too_small",)), tile=64)
    assert list(sheet.selection.rows["status"]) == ["too_small"] and sheet.unreadable == 0
    area = tile_area(sheet.image, sheet.layout, 0).astype(int)
    scale = 64 / h
    x0 = (64 - round(w * scale)) // 2  # letterboxed: white bands left and right
    assert (area[:, : x0 - 1] == 255).all() and (area[:, 64 - x0 + 1 :] == 255).all()
    left, top, right, bottom = (
        round(x0 + box[0] * scale),
        round(box[1] * scale),
        round(x0 + box[2] * scale),
        round(box[3] * scale),
    )
    # Inside the box and below it, away from the outline, the tile is the photo resized.
    expected = preview.fit_image(photo, 64, 64).astype(int)
    for region in (np.s_[top + 3 : bottom - 3, left + 3 : right - 3], np.s_[bottom + 3 :, x0:-x0]):
        np.testing.assert_array_equal(area[region], expected[region])
    # The outline is red: the left edge's column, between top and bottom.
    edge = area[top + 2 : bottom - 2, left]
    assert ((edge[:, 0] > 180) & (edge[:, 1] < 100) & (edge[:, 2] < 100)).all()


def test_status_filter_mixes_ok_and_failed_rows(copy):
    table = table_of(copy)
    failed = {"input": "gone.jpg", "status": "no_face", "reason": "no face found"}
    write_table(copy, pd.concat([table, pd.DataFrame([failed])]).fillna(""))
    both = build_sheet(copy, 10, 0, Filters(statuses=("ok", "no_face")), tile=32)
    assert sorted(both.selection.rows["status"]) == ["no_face"] + ["ok"] * 4
    assert both.unreadable == 1  # the input photo gone.jpg does not exist: a grey tile
    assert Filters(statuses=preview.STATUSES).describe() == "status all"
    described = Filters(wears=("chin",), negatives=True).describe()
    assert described == "status ok, wear chin, hard negatives"


def test_unreadable_image_becomes_a_grey_tile(copy):
    table = table_of(copy)
    ok = table[table["status"] == "ok"]
    (copy / ok.iloc[0]["output"]).write_bytes(b"not a jpeg")
    (copy / ok.iloc[1]["output"]).unlink()
    table.loc[ok.index[2], "output"] = ""  # a row that names no image
    write_table(copy, table)
    sheet = build_sheet(copy, count=4, seed=0, tile=64)
    assert sheet.unreadable == 3
    broken = {ok.iloc[0]["output"], ok.iloc[1]["output"], ""}
    for i, row in sheet.selection.rows.iterrows():
        area = tile_area(sheet.image, sheet.layout, i)
        grey = np.mean(np.all(area == 128, axis=2))
        # Grey with a few lines of white text saying why, or a real image.
        assert (grey > 0.6) if row["output"] in broken else (grey < 0.1)


def test_non_square_images_are_letterboxed():
    image = np.zeros((50, 100, 3), np.uint8)
    image[:, :, 1] = 200
    tile = preview.fit_image(image, 64, 64)
    assert tile.shape == (64, 64, 3)
    assert (tile[:16] == 255).all() and (tile[48:] == 255).all()
    assert (tile[16:48, :, 1] == 200).all()


def test_cli_writes_the_png_of_the_last_synthesize(synth, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    remember("synthesize_out", synth)
    code, output = run("preview", "--count", "3", "--tile", "40", "--sheet", "s.png")
    assert code == 0, output
    assert f"Using {synth.as_posix()} (from the last synthesize)" in output
    assert "3 of 4 matching rows" in output and "1x3 tiles" in output
    np.testing.assert_array_equal(
        read_image(tmp_path / "s.png"), make_sheet(synth, count=3, seed=0, tile=40)
    )


def test_cli_filters_and_side_by_side(synth, tmp_path):
    sheet = tmp_path / "pairs.png"
    code, output = run(
        "preview",
        synth,
        "--side-by-side",
        "--tile",
        "32",
        "--columns",
        "1",
        "--mask-type",
        "surgical",
        "--wear",
        "correct",
        "--sheet",
        sheet,
    )
    assert code == 0, output
    assert read_image(sheet).shape == (36 + 4 * (32 + 56 + 4), 64 + 4, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--sheet", "s.jpg"), "the contact sheet is written as .png"),
        (("--status", "done"), "invalid status 'done'"),
        (("--wear", "sideways"), "invalid wear style 'sideways'"),
        (("--mask-type", "bandana"), "match (status ok, mask_type bandana)"),
        (("--status", "no_face"), "No rows of synthesis.csv match (status no_face)"),
        (("--negatives",), "no hard negatives at all"),
        (("--framing", "portrait"), "invalid framing 'portrait'"),
        (("--framing", "wide"), "match (status ok, framing wide)"),
        (("--count", "0"), "--count"),
    ],
)
def test_cli_bad_options_exit_2(synth, tmp_path, args, message):
    code, output = run("preview", synth, "--sheet", tmp_path / "s.png", *args)
    assert code == 2 and message in output
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist."),
        ("file", "is not a folder"),
        ("no_csv", "synthesis.csv does not exist"),
        ("empty_csv", "synthesis.csv is empty."),
        ("columns", "lacks column(s) output, original"),
        ("binary", "is not a valid CSV"),
    ],
)
def test_cli_bad_folders_give_one_line_errors(tmp_path, setup, message):
    out = tmp_path / "out"
    if setup == "file":
        out.write_text("x")
    elif setup != "missing":
        out.mkdir()
    csv_path = out / "synthesis.csv"
    if setup == "empty_csv":
        csv_path.write_text("")
    elif setup == "columns":
        csv_path.write_text(
            "input,face,status,reason,label,negative,negative_kind,group,detector,box,yaw,"
            "variant,mask_type,color,pattern,wear,seed\n"
        )
    elif setup == "binary":
        csv_path.write_bytes(b"\xff\xfe\x00\x81" * 50)
    code, output = run("preview", out, "--sheet", tmp_path / "s.png")
    assert code == 2 and message in output
    assert output.startswith("Error: ") and output.count("\n") == 1


def test_sheet_into_a_read_only_folder_is_a_one_line_error(synth, read_only_refusal):
    ro, line = read_only_refusal('preview "$OUT" --sheet "$RO/s.png"', OUT=synth)
    assert line.startswith(f"Error: Cannot write to {ro / 's.png'}: Read-only file system")
    assert not list(ro.iterdir())
