"""Draw a mask on the 3D face: the template's front view laid on the fitted mesh, shaded by the
surface's normals under the light read from the face's own skin, with loops to the ears and a
soft contact shadow on the skin along its edges.

Deterministic functions of (image, posed mesh, template, parameters), like overlays.py: the
generator supplies only the photo-matched grain. Images are RGB uint8; meshes (468+, 3) px, x
right, y down, z away from the camera.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from maskforge.faces import mesh
from maskforge.synth.render import compose, loops, surface
from maskforge.synth.render.raster import rasterize
from maskforge.synth.sampling.params import FaceParams, Grain, MaskLook

# The rasteriser works on at most this many pixels along the mask's longer side; texture
# coordinates and shading are smooth, so they are upsampled, and the outline comes from the
# template's own alpha, sampled at full resolution.
RASTER_SIDE = 160
# Shading: never darker or brighter than these factors of the skin's mean light, so a badly
# estimated light cannot paint a black or a white mask.
SHADE_RANGE = (0.35, 1.35)
# The directional part of the light relative to the ambient one, at most.
MAX_DIRECTIONAL = 1.2
# Contact shadow on the skin along the mask's edges: width in face widths, depth at the edge.
SHADOW_WIDTH = 0.025
SHADOW_DEPTH = 0.3
# Per template, how it stands off the face; others get Look3D()'s defaults.
LOOKS = {
    "surgical": surface.Look3D(standoff=3.0),
    "cloth": surface.Look3D(standoff=3.5),
    "kn95": surface.Look3D(standoff=5.0, cup=6.0),
    "n95": surface.Look3D(standoff=6.0, cup=9.0),
    "n95_valve": surface.Look3D(standoff=6.0, cup=9.0),
    "gas": surface.Look3D(standoff=8.0, cup=12.0),
    # Stretch fabric hugs the face; a bandana is knotted behind the head, a gaiter is a tube.
    "gaiter": surface.Look3D(standoff=1.5),
    "bandana": surface.Look3D(standoff=3.0),
    "sports": surface.Look3D(standoff=2.5, cup=2.0),
}


_SURFACES: dict = {}


def _surface(template, wear: str) -> surface.Surface:
    """A template's surface for a wear style, built once per process (templates are frozen)."""
    front = template.variants["front"]
    key = (template.name, wear, id(front.rgba))
    if key not in _SURFACES:
        look = LOOKS.get(template.name, surface.Look3D())
        # The view is kept with its surface, so that its id cannot be reused by another.
        _SURFACES[key] = (front.rgba, surface.build_surface(front, wear, look))
    return _SURFACES[key][1]


def vertex_normals(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit normals (N, 3) of a triangle mesh's vertices, pointing toward the camera (-z)."""
    a, b, c = (points[triangles[:, i]] for i in range(3))
    face = np.cross(b - a, c - a)
    normals = np.zeros_like(points)
    for i in range(3):
        np.add.at(normals, triangles[:, i], face)
    normals *= np.where(normals[:, 2:3] > 0, -1.0, 1.0)  # the side facing the camera
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)


@lru_cache(maxsize=1)
def _skin_vertices() -> np.ndarray:
    """Canonical vertices on skin that is rarely covered: forehead, cheeks, nose (not eyes,
    brows, lips, nor the chin, where beards are)."""
    vertices, points68 = surface.canonical_face()
    xy = vertices[:, :2]
    eyes = [points68[36:42].mean(axis=0), points68[42:48].mean(axis=0)]
    iod = float(np.linalg.norm(eyes[1] - eyes[0]))
    near_eye = np.min([np.linalg.norm(xy - e, axis=1) for e in eyes], axis=0) < 0.35 * iod
    mouth_top = points68[48:68, 1].min()
    return np.nonzero(~near_eye & (xy[:, 1] < mouth_top - 0.05 * iod))[0]


def skin_light(gray: np.ndarray, posed: np.ndarray) -> tuple[float, np.ndarray]:
    """(ambient a, directional b (3,)): skin luminance ~ a + b . normal, fitted on the face's
    visible skin vertices (gray: float32 0..1, lightly blurred)."""
    triangles = mesh.canonical_mesh().triangles
    normals = vertex_normals(posed[:468], triangles)
    ids = _skin_vertices()
    ids = ids[normals[ids, 2] < -0.3]
    pts = posed[ids, :2].astype(np.float32).reshape(-1, 1, 2)
    h, w = gray.shape
    inside = (pts[:, 0, 0] >= 0) & (pts[:, 0, 0] < w) & (pts[:, 0, 1] >= 0) & (pts[:, 0, 1] < h)
    ids, pts = ids[inside], pts[inside]
    if len(ids) < 12:
        return float(gray.mean()), np.zeros(3)
    lum = cv2.remap(gray, pts[..., 0], pts[..., 1], cv2.INTER_LINEAR).ravel()
    design = np.c_[np.ones(len(ids)), normals[ids]]
    keep = np.ones(len(ids), bool)
    for _ in range(2):  # drop hair, glasses and highlights, then refit
        coef, *_ = np.linalg.lstsq(design[keep], lum[keep], rcond=None)
        residual = lum - design @ coef
        spread = 1.4826 * np.median(np.abs(residual[keep])) + 1e-4
        keep = np.abs(residual) < 2.5 * spread
    a, b = float(coef[0]), coef[1:]
    # The fit only sees normals near the camera axis; +a folds in the light along -z.
    mean_normal = normals[ids].mean(axis=0)
    level = max(a + float(b @ mean_normal), 1e-3)
    directional = np.linalg.norm(b)
    if directional > MAX_DIRECTIONAL * level:
        b = b * (MAX_DIRECTIONAL * level / directional)
    return level - float(b @ mean_normal), b


def _shading(normals: np.ndarray, light: tuple[float, np.ndarray], mean_normal) -> np.ndarray:
    a, b = light
    reference = max(a + float(b @ mean_normal), 1e-3)
    return np.clip((a + normals @ b) / reference, *SHADE_RANGE)


def _lay_texture(appearance, scale, posed_pts, surf, shade, roi):
    """(rgb float32 (h, w, 3) 0..1, alpha (h, w)) of the texture laid over roi by the surface."""
    x0, y0, x1, y1 = roi
    w, h = x1 - x0, y1 - y0
    k = min(1.0, RASTER_SIDE / max(w, h, 1))
    size = (max(1, int(np.ceil(w * k))), max(1, int(np.ceil(h * k))))
    xy = (posed_pts[:, :2] - (x0, y0)) * k
    attributes = np.c_[surf.uv * scale, shade]
    maps, covered = rasterize(xy, posed_pts[:, 2], surf.triangles, attributes, size)
    cover = covered.astype(np.float32)
    if k < 1.0:
        weighted = cv2.resize(maps * cover[..., None], (w, h), interpolation=cv2.INTER_LINEAR)
        cover = cv2.resize(cover, (w, h), interpolation=cv2.INTER_LINEAR)
        maps = weighted / np.maximum(cover, 1e-4)[..., None]
    maps[cover < 1e-3] = -10.0  # outside the surface: sample the transparent border
    rgba = appearance.astype(np.float32) / 255.0
    premult = np.concatenate([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], axis=2)
    sampled = cv2.remap(
        premult, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    alpha = np.clip(sampled[..., 3] * np.clip(cover * 2.0, 0, 1), 0, 1)
    colour = sampled[..., :3] / np.maximum(sampled[..., 3:], 1e-4)
    return colour * maps[..., 2:3], alpha


def apply_mask_mesh(
    rgb: np.ndarray,
    posed_mesh: np.ndarray,
    landmarks: np.ndarray,
    template,
    params: FaceParams,
    look: MaskLook,
    variant,
    finish: compose.Finish,
    grain: Grain,
) -> tuple[np.ndarray, np.ndarray]:
    """(photo with the mask drawn on the face's mesh (RGB uint8), the mask's coverage (H, W)).

    variant: the front view at the size look.texture was drawn for (render.mask_placement).
    """
    from maskforge.synth.render.templates import recolour_accents, render_appearance

    surf = _surface(template, params.wear)
    full = template.variants["front"].rgba.shape
    scale = np.array([variant.rgba.shape[1] / full[1], variant.rgba.shape[0] / full[0]])
    appearance = render_appearance(variant, params.color, look.texture, params.pattern_weight)
    if look.accent is not None:
        appearance = recolour_accents(appearance, variant.tint, look.accent)
    frame = surface.face_frame(posed_mesh)
    posed_pts = surface.pose_surface(surf, frame)
    normals = _grid_normals(posed_pts, surface.GRID[::-1])
    face_width = float(np.ptp(landmarks[:, 0]))
    light = skin_light(*_face_gray(rgb, posed_mesh, face_width))
    shade = _shading(normals, light, np.array([0.0, 0.0, -1.0]))
    kind = loops.LOOP_KINDS.get(template.name, "none")
    ears = surface.ear_points(frame)
    extent = np.vstack([posed_pts[:, :2], ears[0][:, :2]])
    roi = compose.region_around(posed_pts[:, :2] if kind == "none" else extent, rgb.shape)
    if roi[2] <= roi[0] or roi[3] <= roi[1]:
        return rgb.copy(), np.zeros(rgb.shape[:2], np.float32)
    colour, alpha = _lay_texture(appearance, scale, posed_pts, surf, shade, roi)
    layer = loops.loop_layer(ears, surf.attach_points(posed_pts), roi, face_width, kind)
    luminance, _, _ = compose.face_light(rgb, landmarks)
    gain = compose.light_gain(luminance)
    colour = colour * gain**finish.light
    loop_colour = (
        np.asarray(loops.loop_colour(template, params), np.float32)
        * gain
        * float(np.clip(light[0] + 0.3, 0.3, 1.0))
    )
    colour = colour * alpha[..., None] + loop_colour * (layer * (1 - alpha))[..., None]
    alpha_all = alpha + layer * (1 - alpha)
    colour = colour / np.maximum(alpha_all, 1e-4)[..., None]
    plain = compose.Finish(light=0.0, cast=finish.cast, feather=finish.feather, grain=finish.grain)
    over, alpha_all = compose.finish_overlay(colour, alpha_all, rgb, roi, landmarks, plain, grain)
    base = _contact_shadow(rgb, alpha, roi, face_width, finish.light)
    out = compose.blend(base, over, alpha_all, roi)
    coverage = np.zeros(rgb.shape[:2], np.float32)
    coverage[roi[1] : roi[3], roi[0] : roi[2]] = alpha_all
    return out, coverage


def _grid_normals(points: np.ndarray, rows_cols: tuple[int, int]) -> np.ndarray:
    grid = points.reshape(*rows_cols, 3)
    du = np.gradient(grid, axis=1)
    dv = np.gradient(grid, axis=0)
    n = -np.cross(du, dv).reshape(-1, 3)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)


def _face_gray(rgb: np.ndarray, posed_mesh: np.ndarray, face_width: float):
    """(blurred gray float32 0..1 of the face's region only, the mesh in its pixels): the skin
    light is read at mesh vertices, so the rest of a large photo need not be converted."""
    sigma = max(1.0, 0.015 * face_width)
    h, w = rgb.shape[:2]
    pad = int(np.ceil(4 * sigma)) + 2  # the blur reaches in from beyond the face
    xy = posed_mesh[:, :2]
    x0 = int(np.clip(np.floor(xy[:, 0].min()) - pad, 0, w))
    y0 = int(np.clip(np.floor(xy[:, 1].min()) - pad, 0, h))
    x1 = int(np.clip(np.ceil(xy[:, 0].max()) + pad, x0 + 1, w))
    y1 = int(np.clip(np.ceil(xy[:, 1].max()) + pad, y0 + 1, h))
    gray = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    return cv2.GaussianBlur(gray, (0, 0), sigma), posed_mesh - np.array([x0, y0, 0.0])


def _contact_shadow(rgb, alpha, roi, face_width: float, strength: float) -> np.ndarray:
    """A copy of rgb with the skin darkened softly just outside the mask's edges."""
    if strength <= 0:
        return rgb
    x0, y0, x1, y1 = roi
    sigma = max(1.0, SHADOW_WIDTH * face_width)
    near = cv2.GaussianBlur(alpha, (0, 0), sigma) * (1.0 - alpha)
    factor = 1.0 - SHADOW_DEPTH * strength * np.clip(near * 2.0, 0, 1)
    out = rgb.copy()
    patch = out[y0:y1, x0:x1].astype(np.float32) * factor[..., None]
    out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
    return out
