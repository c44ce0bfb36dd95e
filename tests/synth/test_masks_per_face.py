"""`synthesize --masks-per-face N`: N pairs per face, the first what one mask per face gives,
named apart from every other photo's files, listed in synthesis.csv and split as one group."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.core.imageio import read_image
from maskforge.synth.run.pipeline import SynthesisOptions, Synthesizer
from maskforge.synth.run.records import CSV_COLUMNS
from maskforge.synth.run.stems import folder_stems
from maskforge.synth.sampling.specs import Choice

MIX = dict(
    mask_types=Choice(("surgical", "cloth", "kn95", "gaiter"), (1.0, 1.0, 1.0, 1.0)),
    framing=Choice(("crop", "closeup", "wide"), (1.0, 1.0, 1.0)),
)


def _synth(**options) -> Synthesizer:
    return Synthesizer(SynthesisOptions(**MIX, **options))


@pytest.fixture(scope="module")
def photos(unmasked_dir) -> list[Path]:
    return sorted(unmasked_dir.glob("*.jpg"))[:6]


def test_the_first_draw_is_the_single_mask_run_and_later_draws_are_pairs_of_their_own(
    photos, tmp_path
):
    one, two = _synth(), _synth(masks_per_face=2)
    pairs = 0
    for photo in photos:
        single = one.run_file(photo, photo.name, tmp_path / "one", photo.stem)
        rows = two.run_file(photo, photo.name, tmp_path / "two", photo.stem)
        ok = [r for r in single if r["status"] == "ok"]
        first = [r for r in rows if r["mask_draw"] == 0]
        later = [r for r in rows if r["mask_draw"] == 1]
        assert [r.get("seed") for r in first] == [r.get("seed") for r in single]
        for a, b in zip(ok, first):
            assert a["output"] == b["output"]
            for col in ("output", "original"):
                assert (tmp_path / "one" / a[col]).read_bytes() == (
                    tmp_path / "two" / b[col]
                ).read_bytes()
        # Each face masked in the first draw is drawn again, with another seed and names.
        assert len(later) == len([r for r in first if r.get("seed")])
        for a, b in zip([r for r in first if r.get("seed")], later):
            assert b["face"] == a["face"] and b["box"] == a["box"]
            assert b["seed"] != a["seed"]
            if b["status"] != "ok":
                continue
            pairs += 1
            assert b["output"].startswith(f"masked/{photo.stem}_m1") or b["output"].startswith(
                f"incorrect/{photo.stem}_m1"
            )
            masked = read_image(tmp_path / "two" / b["output"])
            original = read_image(tmp_path / "two" / b["original"])
            x0, y0, x1, y1 = (int(v) for v in b["frame"].split())
            # A pair of its own: one framing, the photo's pixels (as JPEG keeps them), the mask
            # the only change.
            assert masked.shape == original.shape
            if b.get("far_face"):  # seen by the far camera: the frame brought down
                assert masked.shape[1] < x1 - x0
            else:
                assert masked.shape == (y1 - y0, x1 - x0, 3)
                crop = read_image(photo)[y0:y1, x0:x1].astype(int)
                assert np.abs(original.astype(int) - crop).mean() < 2.0
            assert (masked != original).any(axis=2).mean() > 0.05
    assert pairs >= 4


def test_faces_not_masked_are_listed_once(photos, tmp_path):
    photo = photos[0]
    face = _synth().process(read_image(photo), photo.name)[0].face
    tiny = (0, 0, 12, 12)  # below --min-face: never masked
    rows = _synth(masks_per_face=3).run_file(
        photo, photo.name, tmp_path, photo.stem, [list(face.box), list(tiny)]
    )
    statuses = sorted((r["face"], r["mask_draw"], r["status"]) for r in rows)
    assert statuses == [(0, 0, "ok"), (0, 1, "ok"), (0, 2, "ok"), (1, 0, "too_small")]


def test_a_photo_named_like_a_later_draw_gets_a_stem_of_its_own():
    paths = [Path("a.jpg"), Path("a_m1.jpg"), Path("b_m3.jpg"), Path("b.jpg")]
    assert folder_stems(paths) == ["a", "a_m1", "b_m3", "b"]
    stems = folder_stems(paths, draws=2)
    assert stems[0] == "a" and stems[1] != "a_m1" and stems[2:] == ["b_m3", "b"]
    claimed = {s + suffix for s in stems for suffix in ("", "_m1")}
    assert len(claimed) == 2 * len(stems)
    stems = folder_stems(paths, draws=4)
    assert stems[2] != "b_m3" and stems[3] == "b"


def test_synthesize_then_split_keeps_a_photos_draws_in_one_split(photos, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for photo in photos:
        (raw / photo.name).symlink_to(photo)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["synthesize", str(raw), str(out), "--masks-per-face", "2", "--workers", "1"]
    )
    assert result.exit_code in (0, 3), result.output
    table = pd.read_csv(out / "synthesis.csv", dtype=str, keep_default_na=False)
    ok = table[table["status"] == "ok"]
    assert sorted(ok["mask_draw"].value_counts().to_dict().items()) == [
        ("0", len(ok) // 2),
        ("1", len(ok) // 2),
    ]
    assert ok["output"].is_unique and ok["original"].is_unique
    assert all((out / p).is_file() for p in [*ok["output"], *ok["original"]])
    result = CliRunner().invoke(
        cli,
        ["split", str(out), "--out", str(tmp_path / "m"), "--ratios", "0.5,0.5", "--no-stats"],
    )
    assert result.exit_code == 0, result.output
    seen: dict[str, str] = {}
    for name in ("train", "val"):
        frame = pd.read_csv(tmp_path / "m" / f"{name}.csv", dtype=str)
        for group in frame["group"]:
            assert seen.setdefault(group, name) == name


def test_a_folder_an_older_version_began_resumes_with_todays_columns(photos, tmp_path):
    """A run.json from before --masks-per-face (no such option) and a synthesis.csv without
    the mask_draw column: a rerun at the default resumes, and every row lines up."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for photo in photos[:3]:
        (raw / photo.name).symlink_to(photo)
    out = tmp_path / "out"
    args = ["synthesize", str(raw), str(out), "--workers", "1"]
    assert CliRunner().invoke(cli, [*args, "--limit", "1"]).exit_code in (0, 3)
    run_file = out / "run.json"
    info = json.loads(run_file.read_text())
    del info["options"]["masks_per_face"]
    run_file.write_text(json.dumps(info))
    old = pd.read_csv(out / "synthesis.csv", dtype=str, keep_default_na=False)
    old.drop(columns=["mask_draw"]).to_csv(out / "synthesis.csv", index=False)

    refused = CliRunner().invoke(cli, [*args, "--masks-per-face", "2"])
    assert refused.exit_code != 0 and "masks_per_face: 1 -> 2" in refused.output
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 3), result.output
    table = pd.read_csv(out / "synthesis.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == list(CSV_COLUMNS)
    assert sorted(table["input"].unique()) == sorted(p.name for p in photos[:3])
    before = table[table["input"] == old["input"].iloc[0]]
    assert before[["status", "output"]].equals(old[["status", "output"]])
    assert set(before["mask_draw"]) == {""}  # the old version did not record it
    later = table[(table["input"] != old["input"].iloc[0]) & (table["status"] == "ok")]
    assert len(later) and set(later["mask_draw"]) == {"0"}
    assert all((out / p).is_file() for p in table.loc[table["status"] == "ok", "output"])


@pytest.mark.parametrize("fault", ["draw", "write", "storage"])
def test_a_photo_that_fails_in_a_later_draw_leaves_no_files_behind(photos, tmp_path, fault):
    """The photo gets one error row (or, out/ being unwritable, stops the run unrecorded), and
    the first draw's files, written before the second draw failed, are removed: no output
    without a row pointing at it."""
    synth = _synth(masks_per_face=2)
    process, write = synth.process, synth._write_outputs
    error = {"write": OSError(errno.EIO, "I/O error"), "storage": PermissionError(13, "denied")}

    def failing_process(rgb, key, given, draw, faces):
        if draw == 1:
            raise RuntimeError("boom")
        return process(rgb, key, given, draw, faces)

    def failing_write(ok, rows, out_root, stem, written):
        if stem.endswith("_m1"):
            raise error[fault]
        return write(ok, rows, out_root, stem, written)

    if fault == "draw":
        synth.process = failing_process
    else:
        synth._write_outputs = failing_write
    out = tmp_path / "out"
    if fault == "storage":
        with pytest.raises(PermissionError):
            synth.run_file(photos[0], photos[0].name, out, photos[0].stem)
    else:
        rows = synth.run_file(photos[0], photos[0].name, out, photos[0].stem)
        assert [r["status"] for r in rows] == ["error"]
        assert ("boom" if fault == "draw" else "I/O error") in rows[0]["reason"]
    assert [p for p in out.rglob("*") if p.is_file()] == []
    # Without the fault the same photo writes its two pairs.
    rows = _synth(masks_per_face=2).run_file(photos[0], photos[0].name, out, photos[0].stem)
    ok = sum(r["status"] == "ok" for r in rows)
    assert ok > 0 and len([p for p in out.rglob("*") if p.is_file()]) == 2 * ok


def test_an_option_field_added_inside_a_nested_option_counts_as_its_default():
    """A run.json whose finish options lack a field added since resumes at that field's
    default, and is refused when the new run sets it otherwise."""
    from maskforge.synth.run.journal import _settings_changed

    defaults = SynthesisOptions().describe()
    new = {"options": defaults}
    old_finish = {k: v for k, v in defaults["finish"].items() if k != "grain"}
    old = {"options": {**defaults, "finish": old_finish}}
    assert _settings_changed(old, new, defaults) == []
    changed = {**defaults, "finish": {**defaults["finish"], "grain": 0.5}}
    detail = _settings_changed(old, {"options": changed}, defaults)
    assert len(detail) == 1 and detail[0].startswith("finish:") and "'grain': 0.5" in detail[0]
    assert _settings_changed(old, new, None) != []  # without defaults it is a change
