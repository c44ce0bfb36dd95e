"""MediaPipe's face model bundle (vendored, checksum-verified) and its canonical face mesh.

The canonical mesh (468 vertices, cm, y up, z toward the viewer) is read from the bundle's
geometry_pipeline_metadata_landmarks.binarypb (a GeometryPipelineMetadata protobuf) with a small
wire-format reader: the bundle is the only copy we ship, and protobuf is not a dependency.
Vertices are returned in image-like axes: x right, y down, z away from the camera (MediaPipe's
landmark convention), so canonical and fitted meshes can be compared directly.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

BUNDLE_NAME = "face_landmarker.task"
BUNDLE_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
BUNDLE_ENV = "MASKFORGE_FACE_LANDMARKER"
GEOMETRY_FILE = "geometry_pipeline_metadata_landmarks.binarypb"
TABLE_FILE = "mediapipe_68.json"
MESH_VERTICES = 468


class ModelBundleError(ValueError):
    """The MediaPipe model bundle is missing, damaged or not the one maskforge was tested with."""


def bundle_path() -> Path:
    """Where the bundle is read from: $MASKFORGE_FACE_LANDMARKER, else the vendored copy."""
    if os.environ.get(BUNDLE_ENV):
        return Path(os.environ[BUNDLE_ENV]).expanduser()
    return Path(str(resources.files("maskforge.resources").joinpath(BUNDLE_NAME)))


@lru_cache(maxsize=2)
def _read_bundle(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelBundleError(
            f"MediaPipe model bundle missing: {path} ({exc.strerror or exc}); reinstall maskforge "
            f"or set ${BUNDLE_ENV}"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != BUNDLE_SHA256:
        raise ModelBundleError(
            f"MediaPipe model bundle {path} is damaged or a different version (sha256 "
            f"{digest[:12]}..., expected {BUNDLE_SHA256[:12]}...); reinstall maskforge"
        )
    return data


def load_bundle() -> bytes:
    """The bundle's bytes, sha256-verified (ModelBundleError: a one-line reason)."""
    return _read_bundle(str(bundle_path()))


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(data: bytes):
    """(field number, value) of a protobuf message: ints, bytes, or 4-byte floats as bytes."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, i = _varint(data, i)
        elif kind == 2:
            size, i = _varint(data, i)
            value, i = data[i : i + size], i + size
        elif kind == 5:
            value, i = data[i : i + 4], i + 4
        elif kind == 1:
            value, i = data[i : i + 8], i + 8
        else:
            raise ModelBundleError(f"unreadable {GEOMETRY_FILE} (wire type {kind})")
        yield number, value


def _floats(value) -> list[float]:
    return list(np.frombuffer(value, "<f4")) if isinstance(value, bytes) else [value]


@dataclass(frozen=True)
class CanonicalMesh:
    """MediaPipe's canonical face: vertices (468, 3) cm (x right, y down, z away from the
    camera), uv (468, 2) texture coordinates, triangles (T, 3) vertex indices."""

    vertices: np.ndarray
    uv: np.ndarray
    triangles: np.ndarray


@lru_cache(maxsize=1)
def canonical_mesh() -> CanonicalMesh:
    """The canonical face mesh from the vendored bundle (Mesh3d: VERTEX_PT, TRIANGLE)."""
    with zipfile.ZipFile(io.BytesIO(load_bundle())) as bundle:
        metadata = bundle.read(GEOMETRY_FILE)
    mesh = next((v for n, v in _fields(metadata) if n == 1), None)
    if mesh is None:
        raise ModelBundleError(f"{GEOMETRY_FILE} holds no canonical mesh")
    buffer, indices = [], []
    for number, value in _fields(mesh):
        if number == 3:  # vertex_buffer: x, y, z, u, v per vertex
            buffer.extend(_floats(value))
        elif number == 4:  # index_buffer (packed or not)
            if isinstance(value, bytes):
                j = 0
                while j < len(value):
                    index, j = _varint(value, j)
                    indices.append(index)
            else:
                indices.append(value)
    table = np.asarray(buffer, np.float64).reshape(-1, 5)
    if len(table) != MESH_VERTICES or len(indices) % 3:
        raise ModelBundleError(f"{GEOMETRY_FILE}: unexpected mesh ({len(table)} vertices)")
    vertices = table[:, :3] * np.array([1.0, -1.0, -1.0])
    return CanonicalMesh(vertices, table[:, 3:], np.asarray(indices, np.int64).reshape(-1, 3))


@lru_cache(maxsize=1)
def table_68() -> tuple[np.ndarray, np.ndarray]:
    """(vertex indices (68, K), weights (68, K)): each dlib 68-point landmark as a mix of mesh
    vertices, fitted by scripts/calibrate_mediapipe.py."""
    text = resources.files("maskforge.resources").joinpath(TABLE_FILE).read_text()
    table = json.loads(text)
    return np.asarray(table["vertices"], np.int64), np.asarray(table["weights"], np.float64)


def to_68(points: np.ndarray) -> np.ndarray:
    """dlib-style 68 landmarks (68, D) from mesh points (>= 468, D) by the fitted table."""
    vertices, weights = table_68()
    return np.einsum("kj,kjd->kd", weights, np.asarray(points, np.float64)[vertices])
