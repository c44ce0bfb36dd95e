"""Safe image reading and writing: EXIF, modes, bit depth, size limits, atomic writes."""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from maskforge.choices import MAX_PIXELS

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
DEFAULT_MAX_PIXELS = MAX_PIXELS

# The process umask, read once (os.umask can only be read by setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)
# Decompression-bomb protection is done by our own limit, before decoding.
Image.MAX_IMAGE_PIXELS = None


class UnreadableImageError(ValueError):
    """An input file that is not a decodable image (empty, truncated, wrong format)."""


class ImageTooLargeError(ValueError):
    """An image with more pixels than the configured limit."""


def is_image_path(path: Path) -> bool:
    """True for file names with a supported image extension (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to RGB uint8 (H, W, 3), EXIF orientation applied.

    Grayscale, palette, RGBA/LA (composited on white), 16-bit and CMYK inputs are converted.
    Raises UnreadableImageError or ImageTooLargeError with a one-sentence reason.
    """
    if not data:
        raise UnreadableImageError("file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"{width}x{height} = {width * height:,} pixels exceeds the limit of "
                    f"{max_pixels:,} (--max-pixels)"
                )
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except (ImageTooLargeError, UnreadableImageError):
        raise
    except UnidentifiedImageError:
        raise UnreadableImageError("not a recognised image format") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImageError(f"cannot decode image: {exc}") from None


def _to_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im)
        # Scale by the type's range rather than clipping, as PIL's convert("L") would.
        if arr.dtype != np.uint8:
            scale = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
            arr = np.clip(arr.astype(np.float64) / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        hi = 1.0 if arr.max() <= 1.0 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); see decode_image for the rules."""
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise UnreadableImageError("is a directory") from None
    except OSError as exc:
        raise UnreadableImageError(f"cannot read file: {exc.strerror or exc}") from None
    return decode_image(data, max_pixels)


def encode_image(rgb: np.ndarray, suffix: str = ".jpg", quality: int = 95) -> bytes:
    """Encode RGB uint8 (H, W, 3) as JPEG or PNG bytes (deterministic for the same input)."""
    suffix = suffix.lower()
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    else:
        raise ValueError(f"Unsupported output format {suffix!r}. Only .jpg and .png are supported.")
    ok, buf = cv2.imencode(suffix, bgr, params)
    if not ok:
        raise OSError(f"OpenCV could not encode a {rgb.shape} image as {suffix}")
    return buf.tobytes()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to path via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see atomic_write_bytes)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_image(path: Path, rgb: np.ndarray, quality: int = 95) -> None:
    """Encode RGB uint8 by the path's suffix (.jpg/.png) and write it atomically."""
    atomic_write_bytes(Path(path), encode_image(rgb, Path(path).suffix, quality))


def iter_image_files(root: Path) -> Iterator[Path]:
    """Yield image files under root, recursively, in sorted order; hidden entries skipped."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and is_image_path(Path(name)):
                yield Path(dirpath) / name
