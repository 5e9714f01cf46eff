"""Pinhole camera geometry: projection/unprojection with distortion, depth -> points, 3D box ->
2D box.

Frames: points are in the camera OPTICAL frame (z forward, x right, y down, metres) unless a
transform is given. Pixels: ``(u, v)`` = (column, row) with pixel centres at integer coordinates
(the CameraInfo/OpenCV convention), so pixel ``[v, u]`` covers ``[u - 0.5, u + 0.5)``; an image
of width W spans ``u`` in ``[-0.5, W - 0.5)``. Distortion models (``intr.distortion_model``):
"plumb_bob" and "rational_polynomial" via ``cv2.projectPoints``/``cv2.undistortPoints``,
"equidistant" via ``cv2.fisheye``.
"""

from __future__ import annotations

import cv2
import numpy as np

from spatial_ros.errors import CalibrationError
from spatial_ros.types import Box3D, CameraIntrinsics

_ZERO3 = np.zeros(3)
# Box3D.corners() order: index bits (x, y, z) -> the 12 edges join corners differing in one bit.
_BOX_EDGES = np.array(
    [(i, i ^ (1 << b)) for i in range(8) for b in range(3) if not i & (1 << b)], dtype=np.int64
)


def _check_model(intr: CameraIntrinsics) -> str:
    model = intr.distortion_model
    if not intr.has_distortion:
        return "none"
    if model in ("plumb_bob", "rational_polynomial"):
        return "opencv"
    if model in ("equidistant", "fisheye"):
        if intr.D.size < 4:
            raise CalibrationError(f"equidistant distortion needs 4 coefficients, got {intr.D}")
        return "fisheye"
    raise CalibrationError(
        f"distortion model {model!r} is not supported; use plumb_bob, rational_polynomial or "
        "equidistant (or rectify the image and use the rectified intrinsics)"
    )


def project_points(
    points_cam: np.ndarray, intr: CameraIntrinsics, min_depth: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Project points in the camera optical frame to pixels (distortion applied when the
    intrinsics have any).

    Args:
        points_cam: (N, 3) metres, camera optical frame.
        intr: camera model.
        min_depth: points with z <= this (metres) count as behind the camera.

    Returns:
        uv: (N, 2) float64 pixel coordinates (u right, v down); NaN for points behind.
        in_front: (N,) bool, z > ``min_depth``.

    Raises:
        CalibrationError: unsupported distortion model.
    """
    p = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    z = p[:, 2]
    in_front = z > min_depth
    uv = np.full((p.shape[0], 2), np.nan)
    if not in_front.any():
        return uv, in_front
    q = p[in_front]
    model = _check_model(intr)
    if model == "none":
        K = intr.K
        x, y = q[:, 0] / q[:, 2], q[:, 1] / q[:, 2]
        uv[in_front, 0] = K[0, 0] * x + K[0, 1] * y + K[0, 2]
        uv[in_front, 1] = K[1, 1] * y + K[1, 2]
    elif model == "opencv":
        out, _ = cv2.projectPoints(q.reshape(-1, 1, 3), _ZERO3, _ZERO3, intr.K, intr.D)
        uv[in_front] = out.reshape(-1, 2)
    else:
        out, _ = cv2.fisheye.projectPoints(q.reshape(-1, 1, 3), _ZERO3, _ZERO3, intr.K,
                                           intr.D[:4])
        uv[in_front] = out.reshape(-1, 2)
    return uv, in_front


def normalized_rays(uv: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """(N, 2) undistorted normalised image coordinates (x/z, y/z) of pixels ``uv``."""
    pts = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    model = _check_model(intr)
    if model == "none":
        K = intr.K
        y = (pts[:, 1] - K[1, 2]) / K[1, 1]
        x = (pts[:, 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
        return np.stack([x, y], axis=1)
    if pts.shape[0] == 0:
        return np.zeros((0, 2))
    if model == "opencv":
        # Iterative inverse of the distortion polynomial (OpenCV's default 5 iterations are not
        # enough near the image corners of strongly distorted lenses).
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
        out = cv2.undistortPoints(pts.reshape(-1, 1, 2), intr.K, intr.D, None, None, None, crit)
    else:
        out = cv2.fisheye.undistortPoints(pts.reshape(-1, 1, 2), intr.K, intr.D[:4])
    return out.reshape(-1, 2)


def unproject_pixels(uv: np.ndarray, depth_m, intr: CameraIntrinsics) -> np.ndarray:
    """Pixels + depth -> (N, 3) points in the camera optical frame (distortion removed).

    Args:
        uv: (N, 2) pixel coordinates.
        depth_m: (N,) or scalar depth in metres, measured along the optical axis (z), as in a
            depth image (not the ray length).
        intr: camera model.
    """
    xy = normalized_rays(uv, intr)
    d = np.broadcast_to(np.asarray(depth_m, dtype=np.float64), (xy.shape[0],))
    return np.stack([xy[:, 0] * d, xy[:, 1] * d, d], axis=1)


def depth_to_points(depth_m: np.ndarray, intr: CameraIntrinsics, stride: int = 1, rgb=None):
    """Depth image -> point cloud in the camera optical frame.

    Args:
        depth_m: (H, W) metres along the optical axis (``spatial_ros.io.image.depth_to_metres``);
            NaN, Inf and <= 0 are skipped.
        intr: camera model of the depth image (its size must match).
        stride: use every ``stride``-th row and column.
        rgb: optional (H, W, 3) image aligned with the depth; its colours are returned too.

    Returns:
        (N, 3) float32 points, or ``(points, colors)`` with (N, 3) uint8 colours when ``rgb``
        is given. Rows are in image order (v major, then u).

    Raises:
        CalibrationError: image and intrinsics sizes differ.
    """
    d = np.asarray(depth_m)
    if d.shape != (intr.height, intr.width):
        raise CalibrationError(f"depth image is {d.shape[1]}x{d.shape[0]} but the intrinsics are "
                               f"{intr.width}x{intr.height}; use the depth camera's CameraInfo")
    s = max(int(stride), 1)
    sub = d[::s, ::s].astype(np.float32, copy=False)
    valid = np.isfinite(sub) & (sub > 0)
    vv, uu = np.nonzero(valid)
    z = sub[vv, uu].astype(np.float64)
    uv = np.stack([uu * s, vv * s], axis=1).astype(np.float64)
    pts = unproject_pixels(uv, z, intr).astype(np.float32)
    if rgb is None:
        return pts
    colors = np.asarray(rgb)[::s, ::s][vv, uu]
    return pts, colors


def in_image(uv: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """(N,) bool: pixel coordinates that fall on a pixel of the image (NaN -> False)."""
    u, v = uv[:, 0], uv[:, 1]
    with np.errstate(invalid="ignore"):
        return (u >= -0.5) & (u < intr.width - 0.5) & (v >= -0.5) & (v < intr.height - 0.5)


def points_to_image(
    points_xyz: np.ndarray, T_cam_from_points: np.ndarray, intr: CameraIntrinsics
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project points from another frame (e.g. LiDAR) into the image.

    Args:
        points_xyz: (N, 3+) points in their own frame (extra columns ignored), metres.
        T_cam_from_points: 4x4 transform from the points' frame to the camera optical frame.
        intr: camera model.

    Returns:
        uv: (N, 2) pixels (NaN behind the camera); depth: (N,) z in the optical frame (metres);
        mask_in_image: (N,) bool, in front of the camera and on the image.
    """
    p = np.asarray(points_xyz)[:, :3].astype(np.float64)
    T = np.asarray(T_cam_from_points, dtype=np.float64)
    pc = p @ T[:3, :3].T + T[:3, 3]
    uv, front = project_points(pc, intr)
    return uv, pc[:, 2], front & in_image(uv, intr)


def project_box(
    box: Box3D,
    intr: CameraIntrinsics,
    near: float = 0.05,
    clip: bool = True,
    edge_samples: int = 16,
) -> np.ndarray | None:
    """2D box (x1, y1, x2, y2 pixels) enclosing a 3D box's projection.

    The box's edges are clipped at the plane z = ``near`` first, so boxes partly behind the
    camera give the (image-clipped) projection of their visible part. With lens distortion the
    edges are sampled (straight edges project to curves).

    Args:
        box: the box in the camera OPTICAL frame (``box.transformed(T_cam_from_frame)``).
        intr: camera model.
        near: near-plane depth in metres.
        clip: clip to the image, ``[0, W-1] x [0, H-1]`` (the KITTI label convention).
        edge_samples: points per edge when the camera has distortion.

    Returns:
        (4,) float64, or None when the box is entirely behind the near plane or (with ``clip``)
        entirely outside the image.
    """
    c = box.corners()
    za, zb = c[_BOX_EDGES[:, 0], 2], c[_BOX_EDGES[:, 1], 2]
    # Part of each edge a + t (b - a), t in [0, 1], with z >= near (z is linear in t).
    dz = zb - za
    with np.errstate(divide="ignore", invalid="ignore"):
        t_cross = np.where(dz != 0, (near - za) / dz, np.nan)
    t0 = np.where(za >= near, 0.0, np.where(dz > 0, t_cross, np.inf))
    t1 = np.where(zb >= near, 1.0, np.where(dz < 0, t_cross, -np.inf))
    keep = t0 <= t1
    if not keep.any():
        return None
    n = edge_samples if intr.has_distortion else 2
    s = np.linspace(0.0, 1.0, n)
    t = t0[keep, None] + (t1[keep] - t0[keep])[:, None] * s[None, :]
    a, b = c[_BOX_EDGES[keep, 0]], c[_BOX_EDGES[keep, 1]]
    pts = a[:, None, :] + t[..., None] * (b - a)[:, None, :]
    pts[..., 2] = np.maximum(pts[..., 2], near)  # guard rounding just below the plane
    uv = _project_for_bounds(pts.reshape(-1, 3), intr)
    if uv.shape[0] == 0:
        return None
    x1, y1 = uv.min(axis=0)
    x2, y2 = uv.max(axis=0)
    if not clip:
        return np.array([x1, y1, x2, y2])
    w, h = intr.width - 1.0, intr.height - 1.0
    if x2 < 0 or y2 < 0 or x1 > w or y1 > h:
        return None
    return np.array([np.clip(x1, 0, w), np.clip(y1, 0, h), np.clip(x2, 0, w), np.clip(y2, 0, h)])


def _project_for_bounds(pts: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """Projection used for 2D bounds. Distortion polynomials fold back far outside the field of
    view, so points well beyond the image's widest ray are projected as a pinhole (they land far
    outside the image either way and are clipped)."""
    uv, _ = project_points(pts, intr, min_depth=0.0)
    if intr.has_distortion:
        w, h = intr.width - 1.0, intr.height - 1.0
        border = np.array([[0, 0], [w, 0], [0, h], [w, h], [w / 2, 0], [w / 2, h], [0, h / 2],
                           [w, h / 2]])
        r_max = np.linalg.norm(normalized_rays(border, intr), axis=1).max()
        xy = pts[:, :2] / pts[:, 2:3]
        far = np.linalg.norm(xy, axis=1) > 1.2 * r_max
        if far.any():
            K = intr.K
            uv[far, 0] = K[0, 0] * xy[far, 0] + K[0, 1] * xy[far, 1] + K[0, 2]
            uv[far, 1] = K[1, 1] * xy[far, 1] + K[1, 2]
    return uv[np.isfinite(uv).all(axis=1)]
