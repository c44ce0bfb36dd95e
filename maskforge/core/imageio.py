"""Safe image reading and writing: EXIF, modes, bit depth, size limits, atomic writes."""

from __future__ import annotations

import io
import os
import secrets
import stat
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, TextIO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from maskforge.choices import MAX_FILE_BYTES, MAX_PIXELS
from maskforge.core.paths import file_kind

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# The Pillow decoders those extensions imply, and the only ones we let Pillow try (MPO is the
# multi-picture JPEG many cameras write). Whatever a file's name, a PDF, EPS or any other format
# Pillow knows is refused before a decoder for it runs.
PIL_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "WEBP")
DEFAULT_MAX_PIXELS = MAX_PIXELS
DEFAULT_MAX_BYTES = MAX_FILE_BYTES
# Pillow's own decompression-bomb guard (Image.MAX_IMAGE_PIXELS) is left as the user's process
# has it; our limit (max_pixels) is checked per call from the header, before decoding.


class UnreadableImageError(ValueError):
    """An input file that is not a decodable image (empty, truncated, wrong format)."""


class ImageTooLargeError(UnreadableImageError):
    """An image with more pixels (or bytes) than the configured limit.

    A kind of UnreadableImageError, so that code which leaves unreadable images out of a batch
    also leaves these out; code that reports them apart (synthesis.csv's too_large) catches it
    first.
    """


def is_image_path(path: Path) -> bool:
    """True for file names with a supported image extension (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n % 2**20 else f"{n // 2**20:,} MiB"


def decode_image(
    data: bytes, max_pixels: int | None = None, max_bytes: int | None = None
) -> np.ndarray:
    """Decode encoded image bytes to RGB uint8 (H, W, 3), EXIF orientation applied.

    Only the formats of PIL_FORMATS are decoded. Grayscale, palette, RGBA/LA (composited on
    white), 16-bit and CMYK inputs are converted. max_pixels (default DEFAULT_MAX_PIXELS) is
    checked from the header before any pixel is decoded. Raises UnreadableImageError or
    ImageTooLargeError with a one-sentence reason, whatever the decoder raised (MemoryError
    apart).
    """
    max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    max_bytes = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    if not data:
        raise UnreadableImageError("file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"file is {_mib(len(data))}, over the limit of {_mib(max_bytes)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=_open_formats())
            width, height = im.size
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"{width}x{height} = {width * height:,} pixels exceeds the limit of "
                    f"{max_pixels:,} (--max-pixels)"
                )
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except (ImageTooLargeError, UnreadableImageError, MemoryError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            "too large for Pillow's decompression-bomb guard (PIL.Image.MAX_IMAGE_PIXELS, "
            f"which maskforge leaves as it is): {_words(exc)}"
        ) from None
    except UnidentifiedImageError:
        other = _other_format(data)
        if other:
            raise UnreadableImageError(
                f"not a supported image format ({other}; supported: {', '.join(_open_formats())})"
            ) from None
        raise UnreadableImageError("not a recognised image format") from None
    except Exception as exc:  # noqa: BLE001 - any decoder bug is this file's failure, not ours
        raise UnreadableImageError(
            f"cannot decode image: {_type_name(exc)}: {_words(exc)}"
        ) from None


def _open_formats() -> list[str]:
    """PIL_FORMATS that this Pillow registers (some builds fold MPO into the JPEG plugin)."""
    Image.init()
    return [f for f in PIL_FORMATS if f in Image.OPEN]


def _other_format(data: bytes) -> str:
    """The name of a format Pillow knows but we refuse, from the file's magic bytes only ("" if
    none matches); no decoder of it runs."""
    prefix = data[:16]
    for name, (_, accept) in Image.OPEN.items():
        if name in PIL_FORMATS or accept is None:
            continue
        try:
            if accept(prefix):
                return name
        except Exception:  # noqa: BLE001, S112 - a plugin's check that fails only means "not it"
            continue
    return ""


def _type_name(exc: BaseException) -> str:
    """ZeroDivisionError, but struct.error (a bare "error" says nothing)."""
    kind = type(exc)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _words(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or "(no message)"


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


def read_image(
    path: Path, max_pixels: int | None = None, max_bytes: int | None = None
) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); see decode_image for the rules.

    Only regular files are read (a FIFO, device or socket, even behind a symlink with an image
    name, is refused without reading it), and only up to max_bytes (default DEFAULT_MAX_BYTES,
    checked with stat before reading).
    """
    return decode_image(read_file_bytes(path, max_bytes), max_pixels, max_bytes)


def read_file_bytes(path: Path, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file of at most max_bytes; UnreadableImageError or
    ImageTooLargeError (with the reason in words) otherwise."""
    max_bytes = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UnreadableImageError(f"cannot read file: {exc.strerror or exc}") from None
    _check_regular(st, max_bytes)
    try:
        # O_NONBLOCK: should the path be swapped for a FIFO after the stat, open does not hang.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except IsADirectoryError:
        raise UnreadableImageError("is a directory") from None
    except OSError as exc:
        raise UnreadableImageError(f"cannot read file: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        _check_regular(os.fstat(fh.fileno()), max_bytes)
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise UnreadableImageError(f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"file is over the limit of {_mib(max_bytes)}")
    return data


def _check_regular(st: os.stat_result, max_bytes: int) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableImageError("is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableImageError(f"not a regular file ({file_kind(st.st_mode)})")
    if st.st_size > max_bytes:
        raise ImageTooLargeError(f"file is {_mib(st.st_size)}, over the limit of {_mib(max_bytes)}")


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


def temporary_file(folder: Path) -> tuple[int, str]:
    """(fd, path) of a new, empty file in folder with a short name (.mf-<random>.tmp, so that
    a long target name never makes it too long) and the mode a plain open() gives: 0o666 less
    the user's umask (tempfile.mkstemp's 0600 would survive the rename)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".mf-{secrets.token_hex(6)}.tmp")
        try:
            # The kernel applies the umask to 0o666 as it does for open(): no need to read it.
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {folder}")


@contextmanager
def _replacing(path: Path, mode: str, sync: bool) -> Iterator[IO]:
    """A file opened in `mode` on a temporary name beside path, renamed onto path when the
    block ends (flushed and fsynced first with sync). If the block raises, the temporary file
    is removed and path left as it was; an OSError that names no file (or the temporary
    file's name, which means nothing to the user) then names path."""
    try:
        fd, tmp = temporary_file(path.parent)  # the mode open() gives, not mkstemp's 0600
    except OSError as exc:
        exc.filename = str(path)
        raise
    text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    try:
        with os.fdopen(fd, mode, **text) as fh:
            yield fh
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write names no file: say which one
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to path via a temporary file in the same folder and an atomic rename.

    The file gets the permissions a plain open() would (0o666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _replacing(path, "wb", sync=False) as fh:
        fh.write(data)


def atomic_text_stream(path: Path) -> AbstractContextManager[TextIO]:
    """A UTF-8 text file to stream into that replaces path atomically once the block ends
    (flushed and fsynced first); if the block raises, path is left as it was."""
    return _replacing(Path(path), "w", sync=True)


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
