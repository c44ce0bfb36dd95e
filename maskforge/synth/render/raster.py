"""A small z-buffered triangle rasteriser in NumPy: per-pixel attributes of a triangle mesh.

Used to lay a mask's texture coordinates and shading over a photo. Triangles facing away from the
camera (their projected winding reversed) are culled, and where the mesh overlaps itself the
nearest surface wins, so the far side of a mask on a turned head wraps out of view.
"""

from __future__ import annotations

import numpy as np


def rasterize(
    xy: np.ndarray,
    depth: np.ndarray,
    triangles: np.ndarray,
    attributes: np.ndarray,
    size: tuple[int, int],
    facing: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(attributes (h, w, C) float32, covered (h, w) bool) of a mesh over a w x h pixel grid.

    xy: (N, 2) vertex positions in that grid's pixels (pixel centres at integers); depth: (N,),
    smaller is nearer; triangles: (T, 3) vertex indices; attributes: (N, C), interpolated
    linearly; facing: the sign of the doubled signed area (x right, y down) of a triangle that
    faces the camera, others are culled.
    """
    w, h = size
    out = np.zeros((h, w, attributes.shape[1]), np.float32)
    covered = np.zeros((h, w), bool)
    tri = xy[triangles]  # (T, 3, 2)
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    keep = area * facing > 1e-9
    tri, triangles, e1, e2, area = tri[keep], triangles[keep], e1[keep], e2[keep], area[keep]
    if not len(tri):
        return out, covered
    x0 = np.clip(np.ceil(tri[..., 0].min(axis=1)), 0, w).astype(np.int64)
    x1 = np.clip(np.floor(tri[..., 0].max(axis=1)) + 1, 0, w).astype(np.int64)
    y0 = np.clip(np.ceil(tri[..., 1].min(axis=1)), 0, h).astype(np.int64)
    y1 = np.clip(np.floor(tri[..., 1].max(axis=1)) + 1, 0, h).astype(np.int64)
    bw, bh = np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)
    counts = bw * bh
    if not counts.sum():
        return out, covered
    which = np.repeat(np.arange(len(tri)), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    px = x0[which] + offset % bw[which]
    py = y0[which] + offset // bw[which]
    # Barycentric coordinates of each candidate pixel in its triangle.
    dx, dy = px - tri[which, 0, 0], py - tri[which, 0, 1]
    b1 = (dx * e2[which, 1] - dy * e2[which, 0]) / area[which]
    b2 = (e1[which, 0] * dy - e1[which, 1] * dx) / area[which]
    b0 = 1.0 - b1 - b2
    inside = (b0 >= -1e-6) & (b1 >= -1e-6) & (b2 >= -1e-6)
    which, px, py = which[inside], px[inside], py[inside]
    bary = np.stack([b0[inside], b1[inside], b2[inside]], axis=1)
    corners = triangles[which]
    z = (bary * depth[corners]).sum(axis=1)
    pixel = py * w + px
    # Nearest surface per pixel: sort by pixel, then depth, and keep each pixel's first.
    order = np.lexsort((z, pixel))
    pixel, bary, corners = pixel[order], bary[order], corners[order]
    first = np.r_[True, pixel[1:] != pixel[:-1]]
    pixel, bary, corners = pixel[first], bary[first], corners[first]
    values = np.einsum("pk,pkc->pc", bary, attributes[corners])
    out.reshape(-1, out.shape[2])[pixel] = values
    covered.reshape(-1)[pixel] = True
    return out, covered
