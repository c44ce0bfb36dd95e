"""A mask as a surface on the 3D face: the template's front view laid on the canonical mesh,
standing proud of the skin, then posed onto a fitted face.

The front view's six anchors are matched to the same anchors of the canonical face (its 68
points from mesh.to_68), so the template's outline decides which part of the mesh it covers:
nose bridge, cheeks, below the chin. A grid over the template is lifted to the canonical face's
depth, pushed off the skin by the template's standoff and across the hollows (a mask spans the
dip beside the nose and under the cheekbones instead of hugging them), and extrapolated below
the jaw, where it curves back toward the neck. Posing maps the canonical surface onto a fitted
face by a similarity plus the face's own deformation at the nearest mesh vertices (an open jaw
pulls the mask down). Coordinates: x right, y down, z away from the camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy.interpolate import LinearNDInterpolator
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

from maskforge.faces import geometry, mesh

# Canonical units are cm; work in mm so that pixel-oriented geometry helpers see sensible sizes.
CANONICAL_SCALE = 10.0
GRID = (33, 25)  # grid columns, rows over the template's outline
NEIGHBOURS = 12  # mesh vertices whose deformation a surface point follows
# Softening of the inverse-square weights (mm): larger follows the face more smoothly.
FOLLOW_SOFTENING = 6.0
# Below and beside the mesh the mask turns away: depth grows this much per unit of distance
# outside (a mask under the chin heads back toward the throat).
FALL_OFF = 0.9
# The envelope that spans the hollows: canonical depth smoothed over this many grid cells.
ENVELOPE_CELLS = 2.5
EAR_VERTICES = (234, 454)  # image-left and image-right side of the face at ear level
EAR_DEPTH = 25.0  # mm behind the side of the face, where a loop goes round the ear


@dataclass(frozen=True)
class Look3D:
    """How a template stands off the face: standoff mm everywhere, cup mm extra in the middle
    (moulded respirators). Its loops are loops.LOOP_KINDS'."""

    standoff: float = 3.0
    cup: float = 0.0


@dataclass(frozen=True)
class Surface:
    """A template's surface on the canonical face.

    uv: (N, 2) template px of the grid points; points: (N, 3) canonical mm; triangles: (T, 3);
    neighbours, weights: (N, K) mesh vertices each point follows and their weights;
    attach_neighbours, attach_weights: (4, 3) the grid points (and weights) that place where
    loops leave the mask (left top, left bottom, right top, right bottom).
    """

    uv: np.ndarray
    points: np.ndarray
    triangles: np.ndarray
    neighbours: np.ndarray
    weights: np.ndarray
    attach_neighbours: np.ndarray
    attach_weights: np.ndarray

    def attach_points(self, posed: np.ndarray) -> np.ndarray:
        """Photo px (4, 2) where loops leave the mask, from the posed grid points (N, 3)."""
        return np.einsum("kn,knd->kd", self.attach_weights, posed[self.attach_neighbours, :2])


@lru_cache(maxsize=1)
def canonical_face() -> tuple[np.ndarray, np.ndarray]:
    """(canonical vertices (468, 3) mm, their 68 dlib-style points (68, 2) mm)."""
    vertices = mesh.canonical_mesh().vertices * CANONICAL_SCALE
    return vertices, mesh.to_68(vertices[:, :2])


@lru_cache(maxsize=1)
def _depth_field():
    vertices, _ = canonical_face()
    return LinearNDInterpolator(vertices[:, :2], vertices[:, 2]), cKDTree(vertices[:, :2])


def face_depth(xy: np.ndarray) -> np.ndarray:
    """Canonical skin depth (mm) at canonical points (N, 2), extrapolated outside the mesh."""
    inside, tree = _depth_field()
    depth = inside(xy)
    outside = ~np.isfinite(depth)
    if outside.any():
        vertices, _ = canonical_face()
        distance, nearest = tree.query(xy[outside])
        depth[outside] = vertices[nearest, 2] + FALL_OFF * distance
    return depth


def _outline_grid(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(grid points (N, 2) template px over the alpha's bounding box, cell kept (rows-1, cols-1),
    (cols, rows))."""
    ys, xs = np.nonzero(alpha > 8)
    x0, x1, y0, y1 = xs.min() - 1.0, xs.max() + 2.0, ys.min() - 1.0, ys.max() + 2.0
    cols, rows = GRID
    gx, gy = np.meshgrid(np.linspace(x0, x1, cols), np.linspace(y0, y1, rows))
    # A cell is kept when any of the template's pixels in it is opaque.
    small = cv2.resize(
        (alpha > 8).astype(np.float32)[int(y0) : int(y1), int(x0) : int(x1)],
        (cols - 1, rows - 1),
        interpolation=cv2.INTER_AREA,
    )
    return np.c_[gx.ravel(), gy.ravel()], small > 0, (cols, rows)


def _triangles(kept: np.ndarray, cols: int) -> np.ndarray:
    rows_, cols_ = np.nonzero(kept)
    a = rows_ * cols + cols_
    b, c, d = a + 1, a + cols, a + cols + 1
    return np.concatenate([np.c_[a, b, d], np.c_[a, d, c]])


def outline_attach(alpha: np.ndarray) -> np.ndarray:
    """Where loops leave a template view (4, 2) in its px: its outermost opaque pixels at 25%
    and 75% of its height, left then right (loops.py draws them in either renderer)."""
    ys, _ = np.nonzero(alpha > 8)
    out = []
    for side in (0, 1):
        for share in (0.25, 0.75):
            y = int(ys.min() + share * (ys.max() - ys.min()))
            row = np.nonzero(alpha[y] > 8)[0]
            out.append((row.min() if side == 0 else row.max(), y))
    return np.asarray(out, np.float64)


def build_surface(variant, wear: str, look: Look3D) -> Surface:
    """The surface of a template's front view worn `wear`-style on the canonical face."""
    vertices, points68 = canonical_face()
    anchors = geometry.wear_anchors(geometry.face_anchors(points68), points68, wear)
    to_face = geometry.homography(variant.anchors, anchors)
    alpha = variant.rgba[..., 3]
    uv, kept, (cols, rows) = _outline_grid(alpha)
    xy = geometry.apply_homography(to_face, uv)
    skin = face_depth(xy).reshape(rows, cols)
    # Across the hollows: the smoothed depth is nearer than the skin beside the nose and under
    # the cheekbones, and the nose tip, nearer than both, holds the mask out.
    envelope = gaussian_filter(skin, ENVELOPE_CELLS, mode="nearest")
    depth = np.minimum(skin, envelope) - look.standoff
    if look.cup:
        u = np.linspace(-1, 1, cols)[None, :]
        v = np.linspace(-1, 1, rows)[:, None]
        depth = depth - look.cup * np.clip(1 - u**2, 0, 1) * np.clip(1 - v**2, 0, 1)
    points = np.c_[xy, depth.ravel()]
    _, tree = _depth_field()
    distance, neighbours = tree.query(xy, NEIGHBOURS)
    weights = 1.0 / (distance + FOLLOW_SOFTENING) ** 2
    # Each loop's start follows the three grid points nearest to it in the template.
    attach = outline_attach(alpha)
    grid_distance = np.linalg.norm(uv[None, :, :] - attach[:, None, :], axis=2)
    attach_neighbours = np.argsort(grid_distance, axis=1)[:, :3]
    attach_weights = 1.0 / (np.take_along_axis(grid_distance, attach_neighbours, axis=1) + 1e-3)
    return Surface(
        uv=uv,
        points=points,
        triangles=_triangles(kept, cols),
        neighbours=neighbours,
        weights=weights / weights.sum(axis=1, keepdims=True),
        attach_neighbours=attach_neighbours,
        attach_weights=attach_weights / attach_weights.sum(axis=1, keepdims=True),
    )


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R (3, 3), t (3,)) minimising |s R src + t - dst| (Umeyama, no reflection)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    u, sigma, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = float(np.trace(np.diag(sigma) @ d) / (a**2).sum(axis=1).mean())
    return scale, rotation, mu_d - scale * rotation @ mu_s


def mesh_from_68(landmarks: np.ndarray) -> np.ndarray:
    """A posed canonical mesh (468, 3) px for a face known only by 68 2D landmarks.

    An affine camera fitted to the canonical 68 points gives x, y; its rows' cross product gives
    depth; the landmarks' residuals are then spread over the nearest vertices.
    """
    vertices, _ = canonical_face()
    canon68 = mesh.to_68(vertices)
    design = np.c_[canon68, np.ones(68)]
    camera, *_ = np.linalg.lstsq(design, landmarks, rcond=None)  # (4, 2)
    rows = camera[:3].T  # (2, 3)
    scale = float(np.sqrt(np.abs(np.linalg.det(rows @ rows.T))))
    normal = np.cross(rows[0], rows[1])
    normal = normal / max(np.linalg.norm(normal), 1e-9) * np.sqrt(scale)
    xy = np.c_[vertices, np.ones(len(vertices))] @ camera
    z = vertices @ normal
    residual = landmarks - design @ camera
    nearest, w = _nearest_68()
    xy = xy + np.einsum("nk,nkd->nd", w, residual[nearest])
    return np.c_[xy, z - z.mean()]


@lru_cache(maxsize=1)
def _nearest_68() -> tuple[np.ndarray, np.ndarray]:
    """(the 3 canonical 68 points nearest each vertex (468, 3), their weights (468, 3))."""
    vertices, _ = canonical_face()
    distance, nearest = cKDTree(mesh.to_68(vertices)[:, :2]).query(vertices[:, :2], 3)
    w = 1.0 / (distance + 2.0) ** 2
    return nearest, w / w.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class FaceFrame:
    """How the canonical face sits on a fitted mesh: scale, rotation (3, 3), translation (3,),
    and what is left, per canonical vertex (468, 3), after that similarity."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    residual: np.ndarray


def face_frame(posed_mesh: np.ndarray) -> FaceFrame:
    """The similarity from the canonical face to a fitted mesh (468+, 3) px, fitted once per
    face and shared by the surface, the ears and the loops."""
    vertices, _ = canonical_face()
    target = np.asarray(posed_mesh, np.float64)[: len(vertices)]
    s, r, t = similarity(vertices, target)
    return FaceFrame(s, r, t, target - (s * vertices @ r.T + t))


def pose_surface(surface: Surface, frame: FaceFrame) -> np.ndarray:
    """Surface points (N, 3) in photo px (z away from the camera) on a fitted face."""
    follow = np.einsum("nk,nkd->nd", surface.weights, frame.residual[surface.neighbours])
    return frame.scale * surface.points @ frame.rotation.T + frame.translation + follow


def ear_points(frame: FaceFrame) -> tuple[np.ndarray, np.ndarray]:
    """(where loops go round each ear (2, 3) px, whether each side faces the camera (2,))."""
    vertices, _ = canonical_face()
    s, r, t = frame.scale, frame.rotation, frame.translation
    behind = vertices[list(EAR_VERTICES)] + np.array([0.0, 0.0, EAR_DEPTH])
    ears = s * behind @ r.T + t
    # A side faces the camera when its outward direction (canonical -x / +x) has no large
    # component away from the camera once rotated.
    outward = np.array([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]) @ r.T
    return ears, outward[:, 2] < 0.5
