"""Image reading: modes, bit depths, EXIF, bad files, size limits; atomic writes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskforge.core.imageio import (
    ImageTooLargeError,
    UnreadableImageError,
    atomic_text_stream,
    atomic_write_bytes,
    decode_image,
    iter_image_files,
    read_image,
    write_image,
)


def _png(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _jpeg(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


def test_rgb_roundtrip_exact_for_png(rng):
    arr = rng.integers(0, 256, (12, 17, 3), dtype=np.uint8)
    out = decode_image(_png(Image.fromarray(arr)))
    assert out.dtype == np.uint8 and out.shape == (12, 17, 3)
    np.testing.assert_array_equal(out, arr)


def test_grayscale_becomes_three_equal_channels(rng):
    gray = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    out = decode_image(_png(Image.fromarray(gray, mode="L")))
    assert out.shape == (9, 11, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_16bit_grayscale_is_scaled_not_clipped():
    gray16 = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    out = decode_image(_png(Image.fromarray(gray16)))
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255])


def test_16bit_rgb_png(tmp_path, rng):
    import cv2

    arr16 = rng.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "x.png"), arr16)  # BGR on disk
    out = read_image(tmp_path / "x.png")
    np.testing.assert_allclose(out.astype(int), (arr16[..., ::-1] >> 8).astype(int), atol=1)


def test_rgba_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red-ish, bottom transparent
    out = decode_image(_png(Image.fromarray(rgba, mode="RGBA")))
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[3, 0], [255, 255, 255])


def test_palette_image():
    im = Image.fromarray(np.full((5, 5, 3), (10, 200, 30), np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE
    )
    out = decode_image(_png(im))
    np.testing.assert_allclose(out[2, 2], [10, 200, 30], atol=2)


def test_cmyk_jpeg_is_converted():
    im = Image.fromarray(np.full((8, 8, 3), (255, 0, 0), np.uint8)).convert("CMYK")
    out = decode_image(_jpeg(im))
    assert out.shape == (8, 8, 3)
    r, g, b = out[4, 4].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied():
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255  # left half white
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    out = decode_image(_jpeg(im, exif=exif.tobytes()))
    assert out.shape == (20, 10, 3)
    # After a 90° clockwise turn the white left half becomes the top half.
    assert out[:8].mean() > 200 and out[12:].mean() < 50


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a recognised image"),
    ],
)
def test_unreadable_bytes(data, fragment):
    with pytest.raises(UnreadableImageError, match=fragment):
        decode_image(data)


def test_truncated_jpeg_is_unreadable(rng):
    full = _jpeg(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(UnreadableImageError):
        decode_image(full[: len(full) // 2])


def test_pixel_limit_refuses_before_decoding():
    data = _png(Image.new("RGB", (300, 200)))
    with pytest.raises(ImageTooLargeError, match="60,000 pixels"):
        decode_image(data, max_pixels=50_000)
    assert decode_image(data, max_pixels=60_000).shape == (200, 300, 3)


def test_directory_and_missing_file_are_unreadable(tmp_path):
    with pytest.raises(UnreadableImageError, match="directory"):
        read_image(tmp_path)
    with pytest.raises(UnreadableImageError, match="cannot read"):
        read_image(tmp_path / "missing.jpg")


def test_write_image_is_atomic_and_leaves_no_temp(tmp_path, rng):
    arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    write_image(tmp_path / "sub" / "a.png", arr)
    np.testing.assert_array_equal(read_image(tmp_path / "sub" / "a.png"), arr)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.png"]


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_iter_image_files_recursive_case_insensitive_sorted(tmp_path):
    for rel in ["b/2.JPG", "b/1.png", "a.jpeg", "c/d/e.WebP", "notes.txt", ".hidden/x.jpg"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)]
    assert found == ["a.jpeg", "b/1.png", "b/2.JPG", "c/d/e.WebP"]


def test_real_photo_decodes(unmasked_dir: Path):
    first = next(iter_image_files(unmasked_dir))
    out = read_image(first)
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8 and out.std() > 5


def _encoded(fmt: str, arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _bad_orientation(arr: np.ndarray) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 9  # not one of the eight orientations
    return _encoded("JPEG", arr, exif=exif.tobytes())


def _animated_webp(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    frames = [Image.fromarray(arr), Image.fromarray(255 - arr)]
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:], lossless=True)
    return buf.getvalue()


def _mpo(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    frames = [Image.fromarray(arr), Image.fromarray(255 - arr)]
    frames[0].save(buf, format="MPO", save_all=True, append_images=frames[1:])
    return buf.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        _bad_orientation,
        _animated_webp,
        _mpo,  # the multi-picture JPEG of many cameras
        lambda a: _encoded("WEBP", np.dstack([a, a[..., 0]]), lossless=True),
        lambda a: _encoded("BMP", np.asarray(Image.fromarray(a).convert("1"))),
        lambda a: _encoded("JPEG", a) + b"\x00" * 100,  # trailing garbage after EOI
    ],
    ids=["orientation-9", "animated-webp", "mpo", "webp-alpha", "bmp-1bit", "jpeg-tail"],
)
def test_odd_but_valid_files_decode(make, rng):
    arr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = decode_image(make(arr))
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"\xff\xd8", "not a recognised image format"),  # a JPEG start marker and nothing else
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 25, "not a recognised image format"),
    ],
)
def test_headers_without_an_image_are_unreadable(data, fragment):
    with pytest.raises(UnreadableImageError, match=fragment):
        decode_image(data)


def test_truncated_png_is_unreadable(rng):
    data = _png(Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)))
    with pytest.raises(UnreadableImageError, match="truncated"):
        decode_image(data[:60])


def test_an_atomic_text_stream_replaces_the_file_only_when_it_completes(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_text_stream(target) as fh:
        fh.write("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [target]
    with atomic_text_stream(target) as fh:
        fh.write("new\n")
        assert target.read_text() == "old\n"  # readers see the old file until the end
    assert target.read_text() == "new\n" and sorted(tmp_path.iterdir()) == [target]
