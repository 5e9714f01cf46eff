"""Helpers shared by the LiDAR and depth specialists: voxel centroids, convex-hull crops, box
projection into the image, candidate ordering/ids, LiDAR row geometry, support planes below a
cluster. Metres, z-up frames unless said otherwise.
"""

from __future__ import annotations

import numpy as np

from spatial_ros.specialists.planes import Plane
from spatial_ros.types import Box3D, CameraIntrinsics, Candidate


def voxel_downsample(points: np.ndarray, voxel: float) -> np.ndarray:
    """Centroid (all columns averaged) of the points in each occupied ``voxel``-metre cube."""
    p = np.asarray(points)
    if voxel <= 0 or len(p) == 0:
        return p
    key = np.floor(p[:, :3] / voxel).astype(np.int64)
    key -= key.min(axis=0)
    span = key.max(axis=0) + 1
    flat = (key[:, 0] * span[1] + key[:, 1]) * span[2] + key[:, 2]
    _, inv, counts = np.unique(flat, return_inverse=True, return_counts=True)
    out = np.empty((len(counts), p.shape[1]), dtype=p.dtype)
    for c in range(p.shape[1]):  # loop over columns (3-4), not points
        out[:, c] = np.bincount(inv, weights=p[:, c], minlength=len(counts)) / counts
    return out


def inside_convex_hull(xy: np.ndarray, hull_xy: np.ndarray, margin: float) -> np.ndarray:
    """(N,) bool: points inside a convex polygon (vertices CCW) grown by ``margin`` metres."""
    v = hull_xy
    e = np.roll(v, -1, axis=0) - v
    n = np.stack([e[:, 1], -e[:, 0]], axis=1)  # outward normals for a CCW polygon
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    off = np.einsum("ij,ij->i", n, v)
    return np.all(xy @ n.T - off <= margin, axis=1)


def hull_ccw(xy: np.ndarray) -> np.ndarray:
    import cv2

    h = cv2.convexHull(xy.astype(np.float32), clockwise=False).reshape(-1, 2).astype(np.float64)
    # OpenCV's orientation flag refers to image axes (y down); make it CCW in x-right/y-up.
    area2 = np.sum(h[:, 0] * np.roll(h[:, 1], -1) - np.roll(h[:, 0], -1) * h[:, 1])
    return h if area2 > 0 else h[::-1]


def box_to_image(box: Box3D, camera: CameraIntrinsics, T_cam_from_box_frame: np.ndarray):
    """(4,) x1, y1, x2, y2 pixels of the box's projection (clipped), or None when not visible."""
    from spatial_ros.geometry.camera import project_box

    return project_box(box.transformed(T_cam_from_box_frame, camera.frame_id), camera)


def finalize_candidates(
    cands: list[Candidate], sensor_origin: np.ndarray, prefix: str
) -> list[Candidate]:
    """Sort by distance of the box centre from ``sensor_origin`` (then x, y) and assign ids."""
    keyed = sorted(
        cands,
        key=lambda c: (
            round(float(np.linalg.norm(c.box.center - sensor_origin)), 6),
            round(float(c.box.center[0]), 6),
            round(float(c.box.center[1]), 6),
        ),
    )
    for i, c in enumerate(keyed):
        c.id = f"{prefix}_{i}"
    return keyed


def beam_pitch(cp: np.ndarray, T_w: np.ndarray) -> float:
    """Smallest elevation step (radians) between the cluster's LiDAR rows, 0 with one row.
    A spinning LiDAR's points keep their beam's elevation whatever the range noise."""
    d = (cp - T_w[:3, 3]) @ T_w[:3, :3]  # points in the sensor frame
    el = np.sort(np.arctan2(d[:, 2], np.hypot(d[:, 0], d[:, 1])))
    steps = np.diff(el)
    steps = steps[steps > 1e-4]  # distinct beams
    return float(steps.min()) if len(steps) else 0.0


def far_row_gap(cp: np.ndarray, T_w: np.ndarray, pitch: float, max_gap: float) -> float:
    """Half the spacing (metres) of LiDAR rows on a horizontal top surface at the cluster's
    far edge: ``0.5 · Δ · R² / h`` for beam pitch Δ (radians), range R and drop h from the
    sensor to the top. 0 when the sensor is not above the top."""
    origin = T_w[:3, 3]
    h = float(origin[2] - cp[:, 2].max())
    if h <= 0:
        return 0.0
    r_far = float(np.hypot(cp[:, 0] - origin[0], cp[:, 1] - origin[1]).max())
    return float(min(0.5 * pitch * (r_far**2 + h**2) / h, max_gap))


def support_below(points: np.ndarray, planes: list[Plane], max_gap: float, tol: float):
    """z (at the points' centroid) of the highest plane at most ``max_gap`` metres below the
    lowest point (``tol`` metres of overlap allowed), or None: what the object rests on."""
    zlo = float(points[:, 2].min())
    cxy = points[:, :2].mean(axis=0)
    best = None
    for q in planes:
        n, d = q.normal, q.offset
        if abs(n[2]) < 1e-6:
            continue
        zq = float(-(d + n[0] * cxy[0] + n[1] * cxy[1]) / n[2])
        if zq <= zlo + tol and zlo - zq <= max_gap:
            best = zq if best is None else max(best, zq)
    return best
