"""Metric lifting of parsed VLM answers, fusion with specialist candidates, and distances.

A parsed 3D answer (normalised image centre, log-depth token, extents, angles) plus the camera's
intrinsics gives a metric :class:`Box3D` in the camera OPTICAL frame (z forward, x right,
y down); a 4x4 from the frame's TransformTree moves it to any z-up output frame. When the answer
matches a specialist candidate (2D overlap or pixel-centre distance, plus a depth check), the
candidate's measured geometry replaces the model's (the model keeps the label and the score):
``source`` becomes ``"vlm+lidar"`` / ``"vlm+depth"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_ros.config import param
from spatial_ros.errors import ConfigError
from spatial_ros.geometry import camera as _camera
from spatial_ros.geometry import iou as _iou
from spatial_ros.types import Box3D, CameraIntrinsics, Candidate
from spatial_ros.vlm.codec import Box2DCode, Box3DCode, BoxCodec, Point2DCode, Point3DCode

# ----------------------------------------------------------------------------------------------
# Camera maths (thin wrappers over spatial_ros.geometry, the one projection model)
# ----------------------------------------------------------------------------------------------


def project_points(points_cam: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """(N, 3) optical-frame points (m) -> (N, 2) pixels (distortion applied when present);
    NaN for points behind the camera."""
    uv, _ = _camera.project_points(np.asarray(points_cam, dtype=np.float64).reshape(-1, 3),
                                   camera)
    return np.asarray(uv, dtype=np.float64)


def unproject(uv: np.ndarray, depth_m: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """(N, 2) pixels + (N,) depths along the optical axis (m) -> (N, 3) optical-frame points."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    z = np.asarray(depth_m, dtype=np.float64).reshape(-1)
    return np.asarray(_camera.unproject_pixels(uv, z, camera), dtype=np.float64).reshape(-1, 3)


def project_box(box_optical: Box3D, camera: CameraIntrinsics) -> np.ndarray | None:
    """2D box (x1, y1, x2, y2 px, clipped to the image) of a box in the optical frame, or None
    when it is entirely behind the camera or outside the image."""
    b = _camera.project_box(box_optical, camera)
    return None if b is None else np.asarray(b, dtype=np.float64).reshape(4)


def iou_2d(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (x1, y1, x2, y2) pixel boxes."""
    return float(_iou.iou_2d(a, b))


# ----------------------------------------------------------------------------------------------
# Codes -> metric
# ----------------------------------------------------------------------------------------------


def box2d_to_pixels(code: Box2DCode, codec: BoxCodec, width: int, height: int) -> np.ndarray:
    """Normalised 2D box -> (4,) pixels x1, y1, x2, y2."""
    n = np.array([[code.x1, code.y1], [code.x2, code.y2]])
    return codec.norm_to_pixels(n, width, height).reshape(4)


def point2d_to_pixels(code: Point2DCode, codec: BoxCodec, width: int, height: int) -> np.ndarray:
    return codec.norm_to_pixels(np.array([code.x, code.y]), width, height)


def lift_point3d(code: Point3DCode, camera: CameraIntrinsics, codec: BoxCodec) -> np.ndarray:
    """3D point answer -> (3,) point in the optical frame (m)."""
    uv = codec.norm_to_pixels(np.array([code.x, code.y]), camera.width, camera.height)
    z = float(codec.token_to_depth(code.z_token, camera))
    return unproject(uv[None], np.array([z]), camera)[0]


def lift_box3d(code: Box3DCode, camera: CameraIntrinsics, codec: BoxCodec) -> Box3D:
    """3D box answer -> Box3D in the camera optical frame (``camera.frame_id``).

    The centre is the pixel (x, y) unprojected at the decoded metric depth (so projecting the
    result returns the same pixel); extents and rotation come from the answer."""
    centre = lift_point3d(Point3DCode(code.x, code.y, code.z_token), camera, codec)
    R = codec.rotation_from_angles(code.angles)
    return Box3D(centre, [code.l, code.w, code.h], R, camera.frame_id)


def lift_box2d_with_depth(
    box_px: np.ndarray,
    camera: CameraIntrinsics,
    depth: np.ndarray,
    *,
    core_fraction: float = 0.5,
    min_valid: int = 5,
) -> Box3D | None:
    """A 2D box + an aligned depth image (m) -> an axis-aligned (optical frame) Box3D.

    Depth is the median of the valid pixels in the central ``core_fraction`` of the box (robust
    to background at the edges); width/height are the box's extent at that depth, thickness the
    smaller of the two. None when fewer than ``min_valid`` depth pixels are valid."""
    x1, y1, x2, y2 = (float(v) for v in box_px)
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    f = core_fraction
    u0, u1 = int(max(0, np.floor(cx - hw * f))), int(min(depth.shape[1], np.ceil(cx + hw * f)))
    v0, v1 = int(max(0, np.floor(cy - hh * f))), int(min(depth.shape[0], np.ceil(cy + hh * f)))
    patch = np.asarray(depth[v0:v1, u0:u1], dtype=np.float64)
    valid = patch[np.isfinite(patch) & (patch > 0)]
    if valid.size < min_valid:
        return None
    z = float(np.median(valid))
    corners = unproject(np.array([[x1, y1], [x2, y2]]), np.array([z, z]), camera)
    w = abs(corners[1, 0] - corners[0, 0])
    h = abs(corners[1, 1] - corners[0, 1])
    t = min(w, h)
    # The visible surface is the front face: the centre lies t/2 deeper, on the centre's ray.
    centre = unproject(np.array([[cx, cy]]), np.array([z + t / 2]), camera)[0]
    # Box axes: l along the optical z (depth), w along -x, h along -y, i.e. a z-up box facing
    # the camera; R maps box axes to optical axes.
    R = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    return Box3D(centre, [t, w, h], R, camera.frame_id)


# ----------------------------------------------------------------------------------------------
# Candidates in the camera frame, matching and fusion
# ----------------------------------------------------------------------------------------------


@dataclass(eq=False)
class CandidateView:
    """A specialist candidate as the camera sees it.

    Attributes:
        candidate: the original candidate (box in its own z-up frame).
        box_optical: its box in the camera optical frame.
        box_2d: (4,) projection in pixels (the candidate's own when given), or None.
        T_cam_from_cand: 4x4 optical <- candidate frame.
    """

    candidate: Candidate
    box_optical: Box3D
    box_2d: np.ndarray | None
    T_cam_from_cand: np.ndarray


def candidate_views(
    candidates: list[Candidate], camera: CameraIntrinsics, transforms
) -> list[CandidateView]:
    """Bring candidates into the camera optical frame (``transforms``: a TransformTree holding
    ``T_cam_from_<box.frame_id>``; None is allowed only when every box already is in the
    camera frame). Candidates behind the camera are kept (they may still be asked about) but
    get ``box_2d=None``."""
    views = []
    for c in candidates:
        src = c.box.frame_id or camera.frame_id
        if src == camera.frame_id:
            T = np.eye(4)
        else:
            if transforms is None:
                from spatial_ros.errors import CalibrationError

                raise CalibrationError(
                    f"candidate {c.id!r} is in frame {src!r} but the frame has no transforms; "
                    f"provide T_{camera.frame_id}_from_{src} (e.g. /tf_static)"
                )
            T = transforms.lookup(camera.frame_id, src)
        b = c.box.transformed(T, camera.frame_id)
        b2 = c.box_2d
        if b2 is None and b.center[2] > 0:
            b2 = project_box(b, camera)
        views.append(CandidateView(c, b, None if b2 is None else np.asarray(b2, float), T))
    return views


@dataclass(frozen=True)
class FusionConfig:
    """When a VLM answer is taken to designate a specialist candidate."""

    iou_2d_min: float = param(
        0.3, "2D IoU (answer vs candidate projection) that counts as a match"
    )
    center_fraction: float = param(
        0.06, "or: projected centres closer than this fraction of the image diagonal"
    )
    depth_log_tol: float = param(
        0.35, "and: |ln(z_answer / z_candidate)| at most this (0.35 ~ a factor 1.4)"
    )

    def __post_init__(self) -> None:
        if not (0 <= self.iou_2d_min <= 1):
            raise ConfigError(f"FusionConfig.iou_2d_min={self.iou_2d_min} must be in [0, 1]")
        if self.center_fraction < 0 or self.depth_log_tol < 0:
            raise ConfigError(
                f"FusionConfig: center_fraction={self.center_fraction}, "
                f"depth_log_tol={self.depth_log_tol} must be >= 0"
            )


@dataclass(frozen=True)
class Match:
    """The candidate an answer designates: index into the views, and the evidence."""

    index: int
    iou_2d: float
    center_px: float
    depth_log_ratio: float


def match_candidate(
    box_2d: np.ndarray | None,
    center_px: np.ndarray | None,
    depth_m: float | None,
    views: list[CandidateView],
    camera: CameraIntrinsics,
    config: FusionConfig | None = None,
) -> Match | None:
    """The best candidate for an answer with 2D box ``box_2d`` (px), projected centre
    ``center_px`` and depth ``depth_m`` (any may be None, e.g. 2D-only answers have no depth).

    A candidate matches when (2D IoU >= iou_2d_min OR centre distance <= center_fraction x image
    diagonal) AND (no depth known OR |ln(z/z_c)| <= depth_log_tol). Among matches the highest
    ``IoU - centre_distance/diagonal - depth_log_ratio`` wins."""
    cfg = config or FusionConfig()
    diag = float(np.hypot(camera.width, camera.height))
    best, best_score = None, -np.inf
    for i, v in enumerate(views):
        zc = float(v.box_optical.center[2])
        if zc <= 0 or v.box_2d is None:
            continue
        iou = iou_2d(box_2d, v.box_2d) if box_2d is not None else 0.0
        cuv = project_points(v.box_optical.center[None], camera)[0]
        dc = float(np.linalg.norm(cuv - center_px)) if center_px is not None else np.inf
        dl = abs(float(np.log(depth_m / zc))) if depth_m is not None and depth_m > 0 else 0.0
        close = iou >= cfg.iou_2d_min or dc <= cfg.center_fraction * diag
        if not close or dl > cfg.depth_log_tol:
            continue
        score = iou - (dc / diag if np.isfinite(dc) else 1.0) - dl
        if score > best_score:
            best, best_score = Match(i, iou, dc, dl), score
    return best


# ----------------------------------------------------------------------------------------------
# Distances
# ----------------------------------------------------------------------------------------------


def center_distance(a: Box3D, b: Box3D) -> float:
    """Centre-to-centre distance (m); both boxes in the same frame."""
    return float(np.linalg.norm(a.center - b.center))


def box_surface_distance(a: Box3D, b: Box3D) -> float:
    """Closest distance between the surfaces of two boxes (m, 0 when they touch or overlap),
    both in the same z-up frame and treated as upright prisms (their yaw and extents; tilt is
    ignored). Exact for upright boxes: a prism is a BEV polygon x a z interval, so the distance
    is hypot(BEV polygon distance (shapely), z-interval gap)."""
    from shapely.geometry import Polygon

    def footprint(bx: Box3D) -> Polygon:
        c, s = np.cos(bx.yaw), np.sin(bx.yaw)
        hx, hy = bx.size[0] / 2, bx.size[1] / 2
        local = np.array([[hx, hy], [-hx, hy], [-hx, -hy], [hx, -hy]])
        R = np.array([[c, -s], [s, c]])
        return Polygon(local @ R.T + bx.center[:2])

    dxy = footprint(a).distance(footprint(b))
    za = (a.center[2] - a.size[2] / 2, a.center[2] + a.size[2] / 2)
    zb = (b.center[2] - b.size[2] / 2, b.center[2] + b.size[2] / 2)
    dz = max(0.0, zb[0] - za[1], za[0] - zb[1])
    return float(np.hypot(dxy, dz))


def points_distance(pa: np.ndarray, pb: np.ndarray) -> float:
    """Closest distance between two point sets (m), via a KD-tree (scipy cKDTree)."""
    from scipy.spatial import cKDTree

    pa = np.asarray(pa, dtype=np.float64)[:, :3]
    pb = np.asarray(pb, dtype=np.float64)[:, :3]
    if len(pa) == 0 or len(pb) == 0:
        raise ValueError("points_distance needs two non-empty point sets")
    small, big = (pa, pb) if len(pa) <= len(pb) else (pb, pa)
    d, _ = cKDTree(big).query(small, k=1)
    return float(d.min())


def surface_distance(
    a: Box3D, b: Box3D, points_a: np.ndarray | None = None, points_b: np.ndarray | None = None
) -> tuple[float, str]:
    """Closest-surface distance (m) and how it was measured: ``"points"`` when both objects
    have supporting points (same frame as the boxes), else ``"boxes"``."""
    if points_a is not None and points_b is not None and len(points_a) and len(points_b):
        return points_distance(points_a, points_b), "points"
    return box_surface_distance(a, b), "boxes"


def sensor_distance(box: Box3D, T_box_frame_from_sensor: np.ndarray | None = None) -> float:
    """Distance (m) from a sensor origin to the box centre. The sensor origin is the
    translation of ``T_box_frame_from_sensor`` (identity: the box frame's origin)."""
    origin = np.zeros(3) if T_box_frame_from_sensor is None else T_box_frame_from_sensor[:3, 3]
    return float(np.linalg.norm(box.center - origin))
