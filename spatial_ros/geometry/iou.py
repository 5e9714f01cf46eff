"""Intersection over union of 2D boxes, and of oriented 3D boxes in BEV and 3D.

3D boxes are ``Box3D`` in a z-up frame that turn only about z (yaw): the bird's-eye-view (BEV)
footprints are rotated rectangles intersected exactly with shapely, and the 3D intersection is
BEV intersection area x z-overlap (exact for yaw-only boxes). Boxes with roll/pitch fall back to
an exact convex-polytope intersection (scipy ``HalfspaceIntersection``), slower but correct.
Both boxes of a pair must be in the same frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from spatial_ros.errors import ConfigError
from spatial_ros.types import Box3D

_YAW_ONLY_TOL = 1e-6


def _check_frames(a: Box3D, b: Box3D) -> None:
    if a.frame_id and b.frame_id and a.frame_id != b.frame_id:
        raise ConfigError(f"IoU of boxes in different frames ({a.frame_id!r} vs {b.frame_id!r}); "
                          "transform one into the other's frame first")


def _yaw_only(box: Box3D) -> bool:
    return abs(box.rotation[2, 2] - 1.0) < _YAW_ONLY_TOL


def bev_polygon(box: Box3D) -> shapely.Polygon:
    """The box footprint in the x-y plane as a shapely polygon (counter-clockwise)."""
    return shapely.Polygon(_footprints([box])[0])


def _footprints(boxes: Sequence[Box3D]) -> np.ndarray:
    """(N, 4, 2) BEV corner coordinates of yaw-only boxes."""
    if not boxes:
        return np.zeros((0, 4, 2))
    c = np.array([b.center[:2] for b in boxes])
    half = np.array([b.size[:2] / 2.0 for b in boxes])
    R = np.array([b.rotation[:2, :2] for b in boxes])  # (N, 2, 2) yaw block
    signs = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    local = signs[None, :, :] * half[:, None, :]
    return np.einsum("nij,nkj->nki", R, local) + c[:, None, :]


def iou_2d(a4, b4) -> float:
    """IoU of two image boxes (x1, y1, x2, y2 pixels, continuous coordinates). 0 when either is
    empty."""
    return float(iou_2d_matrix(np.reshape(a4, (1, 4)), np.reshape(b4, (1, 4)))[0, 0])


def iou_2d_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of (N, 4) and (M, 4) image boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _bev_intersection_matrix(A: Sequence[Box3D], B: Sequence[Box3D]) -> np.ndarray:
    """(N, M) BEV intersection areas of yaw-only boxes (shapely, only for pairs whose bounding
    circles overlap)."""
    inter = np.zeros((len(A), len(B)))
    if not len(A) or not len(B):
        return inter
    fa, fb = _footprints(A), _footprints(B)
    ca, cb = fa.mean(axis=1), fb.mean(axis=1)
    ra = np.linalg.norm(fa - ca[:, None], axis=2).max(axis=1)
    rb = np.linalg.norm(fb - cb[:, None], axis=2).max(axis=1)
    dist = np.linalg.norm(ca[:, None] - cb[None, :], axis=2)
    ii, jj = np.nonzero(dist < ra[:, None] + rb[None, :])
    if ii.size:
        pa, pb = shapely.polygons(fa), shapely.polygons(fb)
        inter[ii, jj] = shapely.area(shapely.intersection(pa[ii], pb[jj]))
    return inter


def iou_bev_matrix(A: Sequence[Box3D], B: Sequence[Box3D]) -> np.ndarray:
    """(N, M) BEV IoU of two lists of yaw-only z-up boxes.

    Raises:
        ConfigError: boxes in different frames or with roll/pitch (BEV IoU is undefined).
    """
    _validate_lists(A, B, need_yaw_only=True)
    inter = _bev_intersection_matrix(A, B)
    area_a = np.array([b.size[0] * b.size[1] for b in A])
    area_b = np.array([b.size[0] * b.size[1] for b in B])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def iou_3d_matrix(A: Sequence[Box3D], B: Sequence[Box3D]) -> np.ndarray:
    """(N, M) 3D IoU of two lists of boxes (yaw-only boxes exactly via BEV x z-overlap; any
    with roll/pitch via convex-polytope intersection).

    Raises:
        ConfigError: boxes in different frames.
    """
    _validate_lists(A, B, need_yaw_only=False)
    vol_a = np.array([b.volume for b in A])
    vol_b = np.array([b.volume for b in B])
    yaw_a = np.array([_yaw_only(b) for b in A], dtype=bool)
    yaw_b = np.array([_yaw_only(b) for b in B], dtype=bool)
    inter = np.zeros((len(A), len(B)))
    if yaw_a.any() and yaw_b.any():
        ia, ib = np.nonzero(yaw_a)[0], np.nonzero(yaw_b)[0]
        Ay, By = [A[i] for i in ia], [B[j] for j in ib]
        bev = _bev_intersection_matrix(Ay, By)
        za = np.array([[b.center[2] - b.size[2] / 2, b.center[2] + b.size[2] / 2] for b in Ay])
        zb = np.array([[b.center[2] - b.size[2] / 2, b.center[2] + b.size[2] / 2] for b in By])
        top = np.minimum(za[:, None, 1], zb[None, :, 1])
        dz = top - np.maximum(za[:, None, 0], zb[None, :, 0])
        inter[np.ix_(ia, ib)] = bev * np.clip(dz, 0, None)
    for i in range(len(A)):  # general orientation: rare, exact but slower
        for j in range(len(B)):
            if not (yaw_a[i] and yaw_b[j]):
                inter[i, j] = _polytope_intersection_volume(A[i], B[j])
    union = vol_a[:, None] + vol_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def iou_bev(a: Box3D, b: Box3D) -> float:
    """BEV IoU of two yaw-only boxes in the same z-up frame (footprints in x-y)."""
    return float(iou_bev_matrix([a], [b])[0, 0])


def iou_3d(a: Box3D, b: Box3D) -> float:
    """3D IoU of two boxes in the same frame."""
    return float(iou_3d_matrix([a], [b])[0, 0])


def _validate_lists(A, B, need_yaw_only: bool) -> None:
    frames = {b.frame_id for b in (*A, *B) if b.frame_id}
    if len(frames) > 1:
        raise ConfigError(f"IoU of boxes in different frames {sorted(frames)}; transform them "
                          "into one frame first")
    if need_yaw_only:
        bad = [b for b in (*A, *B) if not _yaw_only(b)]
        if bad:
            raise ConfigError(f"BEV IoU needs boxes that turn only about z (z-up frame); got "
                              f"{bad[0]!r} with roll/pitch. Use iou_3d, or express the boxes "
                              "in a z-up frame")


def _halfspaces(box: Box3D) -> np.ndarray:
    """(6, 4) halfspaces [n, -d] with n . x - d <= 0 for the box (scipy convention)."""
    R = box.rotation
    h = box.size / 2.0
    rows = []
    for k in range(3):
        n = R[:, k]
        off = n @ box.center
        rows.append(np.r_[n, -(off + h[k])])
        rows.append(np.r_[-n, off - h[k]])
    return np.array(rows)


def _polytope_intersection_volume(a: Box3D, b: Box3D) -> float:
    # No library computes the intersection of two oriented boxes directly; scipy's
    # HalfspaceIntersection + ConvexHull does it exactly once we have an interior point, found
    # as the Chebyshev centre by linear programming.
    from scipy.optimize import linprog
    from scipy.spatial import ConvexHull, HalfspaceIntersection, QhullError

    hs = np.vstack([_halfspaces(a), _halfspaces(b)])
    norms = np.linalg.norm(hs[:, :3], axis=1)
    res = linprog(
        c=[0, 0, 0, -1],
        A_ub=np.hstack([hs[:, :3], norms[:, None]]),
        b_ub=-hs[:, 3],
        bounds=[(None, None)] * 3 + [(0, None)],
        method="highs",
    )
    if not res.success or res.x[3] <= 1e-7:
        return 0.0  # no interior point: the boxes are disjoint or touch with zero volume
    try:
        pts = HalfspaceIntersection(hs, res.x[:3]).intersections
        return float(ConvexHull(pts).volume)
    except QhullError:
        # Only for a numerically flat intersection (thinner than ~1e-7 m): its volume is 0.
        return 0.0
