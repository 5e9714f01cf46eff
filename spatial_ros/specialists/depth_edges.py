"""Segments of a depth camera's points cut at depth and colour discontinuities (depth
specialist: touching objects).

Two objects that touch in 3D (an ottoman pushed against the foot of a bed) fall into one
Euclidean cluster, but in the image they are separated by an edge: the range jumps from one
pixel to the next, or it barely changes while the colour does (tan leather against dark wood).
Neighbouring pixels (4-connectivity on the pixel grid) are joined unless

- their ranges differ by more than ``depth_tol + depth_rel x range`` (a depth edge; the
  relative part covers the sensor's noise and slanted surfaces), or
- their colours differ by more than ``colour_tol`` (Euclidean RGB distance, 0..1 channels) and
  their ranges by more than ``colour_depth_share`` of the depth tolerance: a colour edge counts
  only where the depth also steps a little (texture on one surface, a drawer handle, stays
  joined).

Connected components of the pixel graph (``scipy.sparse.csgraph``) are the segments.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def edge_segments(
    pixels: np.ndarray,
    ranges: np.ndarray,
    rgb: np.ndarray | None = None,
    *,
    stride: int = 1,
    depth_tol: float = 0.02,
    depth_rel: float = 0.01,
    colour_tol: float = 0.15,
    colour_depth_share: float = 0.25,
) -> tuple[np.ndarray, int]:
    """(labels (M,), n): segments of points seen at ``pixels`` (see the module docstring).

    Args:
        pixels: (M, 2) u, v pixel of each point (on a grid of step ``stride`` pixels).
        ranges: (M,) distance of each point from the camera, metres.
        rgb: (M, 3) colours in [0, 1], or None (depth edges only).
        stride, depth_tol, depth_rel, colour_tol, colour_depth_share: see above.
    """
    m = len(pixels)
    if m == 0:
        return np.zeros(0, dtype=np.int64), 0
    q = np.round(np.asarray(pixels, dtype=np.float64) / max(stride, 1)).astype(np.int64)
    q -= q.min(axis=0)
    w, h = int(q[:, 0].max()) + 2, int(q[:, 1].max()) + 2
    grid = np.full(w * h, -1, dtype=np.int64)
    key = q[:, 1] * w + q[:, 0]
    grid[key] = np.arange(m)
    r = np.asarray(ranges, dtype=np.float64)
    src, dst = [], []
    for step in (1, w):  # right and down neighbours
        nb = grid[key + step]
        ok = nb >= 0
        a, b = np.flatnonzero(ok), nb[ok]
        dr = np.abs(r[a] - r[b])
        tol = depth_tol + depth_rel * np.minimum(r[a], r[b])
        keep = dr <= tol
        if rgb is not None:
            dc = np.linalg.norm(np.asarray(rgb)[a] - np.asarray(rgb)[b], axis=1)
            keep &= ~((dc > colour_tol) & (dr > colour_depth_share * tol))
        src.append(a[keep])
        dst.append(b[keep])
    s, d = np.concatenate(src), np.concatenate(dst)
    g = coo_matrix((np.ones(len(s), dtype=np.int8), (s, d)), shape=(m, m))
    n, labels = connected_components(g, directed=False)
    return labels.astype(np.int64), int(n)
