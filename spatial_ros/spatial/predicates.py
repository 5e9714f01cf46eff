"""Precise spatial predicates and measurements over 3D boxes (and optional point clouds).

Every function here works in ONE gravity-aligned, z-up frame (REP-103: metres, z up; x/y any
horizontal axes). Bring tilted sensor data upright first (e.g. with the specialists'
``gravity_alignment``) and move boxes, points and the viewpoint together with :func:`reorient`.

View-dependent words ("left", "behind", "wide", "3 o'clock") are defined as seen from a
:class:`Viewpoint`: the camera position and its *heading* ``h`` = the horizontal part of the
camera's forward direction, normalised. The camera's horizontal right axis is
``r = h x z_up``. A pitched or rolled camera therefore gives the same answers as a level camera
with the same heading: the predicates are gravity-aligned, not image-aligned.

Conventions used by all results:

* Relations (:class:`Relation`) compute a signed ``margin`` (metres unless the unit says
  otherwise) such that the predicate holds iff ``margin > 0``; ``|margin| < tolerance`` is a
  near tie, flagged ``ambiguous`` ("not clearly"), which the QA generator skips.
* Sizes (height, width, volume) always come from the boxes (exact for rotated boxes).
* Surface measures (nearest surface along the view, closest distance) use an object's points when
  it has them and ``PredicateConfig.use_points`` is on, its box otherwise; ``method`` says which.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree
from shapely.geometry import MultiPoint

from spatial_ros.errors import ConfigError
from spatial_ros.types import Box3D, Candidate, GroundedObject

Z_UP = np.array([0.0, 0.0, 1.0])
_EPS = 1e-9

# ----------------------------------------------------------------------------------------------
# Inputs and configuration
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredicateConfig:
    """Tolerances of the predicates.

    Attributes:
        tie_tolerance: metres; a length difference with ``|margin|`` below it is a near tie
            ("not clearly left of", "about as tall as").
        volume_tolerance: relative volume difference ``|vA - vB| / max(vA, vB)`` below which
            "bigger"/"smaller" is a near tie.
        contact_tolerance: metres of vertical overlap still counted as "above"/"below" (an
            object resting on another; estimated boxes overlap by a few centimetres).
        clock_tolerance_deg: degrees; a bearing closer than this to a half-hour boundary
            (15 deg + k * 30 deg) is an ambiguous clock direction.
        use_points: use objects' point clouds (when present) for surface measures.
    """

    tie_tolerance: float = 0.02
    volume_tolerance: float = 0.10
    contact_tolerance: float = 0.03
    clock_tolerance_deg: float = 3.0
    use_points: bool = True

    def __post_init__(self) -> None:
        values = {
            "tie_tolerance": self.tie_tolerance,
            "volume_tolerance": self.volume_tolerance,
            "contact_tolerance": self.contact_tolerance,
            "clock_tolerance_deg": self.clock_tolerance_deg,
        }
        bad = {k: v for k, v in values.items() if not (math.isfinite(v) and v >= 0.0)}
        if bad:
            raise ConfigError(f"PredicateConfig: tolerances must be finite and >= 0, got {bad}")
        if self.volume_tolerance >= 1.0:
            raise ConfigError(
                f"PredicateConfig: volume_tolerance is relative and must be < 1, "
                f"got {self.volume_tolerance}"
            )
        if self.clock_tolerance_deg >= 15.0:
            raise ConfigError(
                f"PredicateConfig: clock_tolerance_deg must be < 15 (half an hour), "
                f"got {self.clock_tolerance_deg}"
            )


DEFAULT_CONFIG = PredicateConfig()


def _finite_vector(name: str, value, n: int = 3) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise ConfigError(f"{name} must be {n} finite numbers, got {np.asarray(value).tolist()}")
    return v


@dataclass(eq=False)
class SpatialObject:
    """An object the predicates talk about.

    Attributes:
        name: its caption / referring phrase ("red mug"), as used in questions and answers.
        box: oriented box in the gravity-aligned z-up frame (metres).
        points: optional (N, 3) surface points of the object in the same frame (metres); extra
            columns are dropped, an empty array counts as no points.
        id: optional stable id (e.g. the GroundedObject id), carried into QA results.
    """

    name: str
    box: Box3D
    points: np.ndarray | None = None
    id: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"SpatialObject needs a non-empty name, got {self.name!r}")
        if not isinstance(self.box, Box3D):
            raise ConfigError(f"SpatialObject {self.name!r}: box must be a Box3D")
        b = self.box
        if not (np.all(np.isfinite(b.center)) and np.all(np.isfinite(b.size))):
            raise ConfigError(f"SpatialObject {self.name!r}: box has non-finite values: {b!r}")
        if np.any(b.size < 0):
            raise ConfigError(f"SpatialObject {self.name!r}: negative box size {b.size.tolist()}")
        if not np.allclose(b.rotation.T @ b.rotation, np.eye(3), atol=1e-6):
            raise ConfigError(f"SpatialObject {self.name!r}: box rotation is not orthonormal")
        if self.points is not None:
            p = np.asarray(self.points, dtype=np.float64)
            if p.ndim != 2 or p.shape[1] < 3:
                raise ConfigError(
                    f"SpatialObject {self.name!r}: points must be (N, 3), got shape {p.shape}"
                )
            p = p[:, :3]
            p = p[np.all(np.isfinite(p), axis=1)]
            self.points = np.ascontiguousarray(p) if len(p) else None

    @classmethod
    def from_grounded(
        cls, obj: GroundedObject, points: np.ndarray | None = None, name: str | None = None
    ) -> SpatialObject:
        """From a grounded object; the name is ``name``, else its query, else its label."""
        text = name or obj.query or obj.label or obj.id
        return cls(text, obj.box, points, obj.id)

    @classmethod
    def from_candidate(cls, cand: Candidate, name: str | None = None) -> SpatialObject:
        """From a specialist candidate (keeps its cluster points for surface distances)."""
        return cls(name or cand.label or cand.id or "object", cand.box, cand.points, cand.id)

    def transformed(self, T: np.ndarray) -> SpatialObject:
        """This object under the 4x4 rigid transform ``T`` (p_new = T @ p_old)."""
        T = np.asarray(T, dtype=np.float64)
        pts = None if self.points is None else self.points @ T[:3, :3].T + T[:3, 3]
        return SpatialObject(self.name, self.box.transformed(T), pts, self.id)


@dataclass(eq=False)
class Viewpoint:
    """The camera the view-dependent words refer to, in the same z-up frame as the objects.

    Attributes:
        position: (3,) camera centre, metres.
        forward: (3,) viewing direction (any length). Only its horizontal part (the heading)
            is used; it must not be vertical.
    """

    position: np.ndarray
    forward: np.ndarray

    def __post_init__(self) -> None:
        self.position = _finite_vector("Viewpoint.position", self.position)
        self.forward = _finite_vector("Viewpoint.forward", self.forward)
        if not np.linalg.norm(self.forward) > 0:
            raise ConfigError("Viewpoint.forward must be a non-zero direction")

    @property
    def heading(self) -> np.ndarray:
        """(3,) unit horizontal view direction h (z = 0). Raises ConfigError when ``forward``
        is vertical (checked here, not at construction, because a viewpoint may be built in a
        tilted sensor frame and only later be brought upright with :func:`reorient`)."""
        h = np.array([self.forward[0], self.forward[1], 0.0])
        n = np.linalg.norm(h)
        if n < 1e-6 * np.linalg.norm(self.forward):
            raise ConfigError(
                f"Viewpoint.forward {self.forward.tolist()} is vertical in this frame, so "
                "left/right are undefined: bring the data upright first (reorient), build the "
                "viewpoint with Viewpoint.from_camera_pose (falls back to the image's up "
                "direction), or pass the camera's heading"
            )
        return h / n

    @property
    def right(self) -> np.ndarray:
        """(3,) unit horizontal right axis r = h x z_up = (h_y, -h_x, 0), as seen from the
        camera."""
        h = self.heading
        return np.array([h[1], -h[0], 0.0])

    @classmethod
    def from_camera_pose(cls, T_frame_from_optical: np.ndarray) -> Viewpoint:
        """From the pose of the camera OPTICAL frame (z forward, x right, y down) in the z-up
        frame. A camera looking (almost) straight down or up takes the image's up direction
        (optical -y) as its heading, so "left" stays the image's left."""
        T = np.asarray(T_frame_from_optical, dtype=np.float64).reshape(4, 4)
        fwd = T[:3, 2]
        if np.hypot(fwd[0], fwd[1]) < 1e-3:
            fwd = -T[:3, 1]
        return cls(T[:3, 3].copy(), fwd.copy())

    @classmethod
    def from_body_pose(cls, T_frame_from_body: np.ndarray) -> Viewpoint:
        """From the pose of a body frame (x forward, y left, z up; e.g. camera_link)."""
        T = np.asarray(T_frame_from_body, dtype=np.float64).reshape(4, 4)
        return cls(T[:3, 3].copy(), T[:3, 0].copy())

    def transformed(self, T: np.ndarray) -> Viewpoint:
        """This viewpoint under the 4x4 rigid transform ``T``."""
        T = np.asarray(T, dtype=np.float64)
        return Viewpoint(T[:3, :3] @ self.position + T[:3, 3], T[:3, :3] @ self.forward)


def reorient(
    objects: list[SpatialObject], viewpoint: Viewpoint, T: np.ndarray
) -> tuple[list[SpatialObject], Viewpoint]:
    """Apply one rigid 4x4 transform to all boxes, points and the viewpoint.

    Use it to bring data from a tilted sensor frame into the gravity-aligned frame (``T`` =
    ``gravity_alignment(points)``): moving the viewpoint with the objects is what keeps "behind"
    and "left" correct. Raises ConfigError for a non-rigid ``T`` (a reflection would swap left
    and right).
    """
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ConfigError(f"reorient: T must be a finite 4x4 matrix, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise ConfigError(
            f"reorient: T must be a rigid transform (orthonormal rotation, det +1); "
            f"det={np.linalg.det(R):.4f}"
        )
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0]):
        raise ConfigError(f"reorient: the last row of T must be [0, 0, 0, 1], got {T[3].tolist()}")
    return [o.transformed(T) for o in objects], viewpoint.transformed(T)


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Relation:
    """A binary spatial relation "subject <predicate> object".

    Attributes:
        predicate: e.g. "left_of".
        subject, object: object names.
        value: whether the predicate holds by its rule (``margin > 0``).
        ambiguous: near tie (``|margin| < tolerance``): answer "not clearly".
        margin: the signed quantity the rule compares (see each predicate), in ``unit``.
        unit: "m", or "" for relative (volume) margins.
        tolerance: the tie tolerance used, in ``unit``.
        details: the numbers used (metres / cubic metres), by name.
    """

    predicate: str
    subject: str
    object: str
    value: bool
    ambiguous: bool
    margin: float
    unit: str
    tolerance: float
    details: Mapping[str, float] = field(default_factory=dict)

    @property
    def clear_value(self) -> bool | None:
        """``value``, or None for a near tie."""
        return None if self.ambiguous else self.value


@dataclass(frozen=True)
class Measurement:
    """A metric quantity.

    Attributes:
        quantity: e.g. "center_distance", "height".
        value: the number, in ``unit``.
        unit: "m" (all lengths here).
        subject: object name.
        object: second object name, "camera", or None for unary quantities.
        method: how it was measured: "box", "points", "points-box", "center", "footprint".
        details: the numbers used, by name.
    """

    quantity: str
    value: float
    unit: str
    subject: str
    object: str | None
    method: str
    details: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClockDirection:
    """Direction of an object as a clock hour, seen from above with 12 = camera heading.

    Attributes:
        hour: 1..12 (3 = to the right, 6 = behind, 9 = to the left).
        angle_deg: bearing clockwise from the heading, [0, 360).
        ambiguous: the bearing is within ``clock_tolerance_deg`` of a half-hour boundary, or the
            horizontal offset is below ``tie_tolerance``.
        subject: object name; reference: "camera" or the reference object's name.
        distance: horizontal distance from the reference to the subject's centre, metres.
    """

    hour: int
    angle_deg: float
    ambiguous: bool
    subject: str
    reference: str
    distance: float

    @property
    def text(self) -> str:
        return f"{self.hour} o'clock"


# ----------------------------------------------------------------------------------------------
# Exact box geometry (numpy, vectorised)
# ----------------------------------------------------------------------------------------------

# Edges of Box3D.corners(): corner index bits pick -/+ along x (4), y (2), z (1).
_EDGES = np.array([(i, i | bit) for bit in (1, 2, 4) for i in range(8) if not i & bit])


def extent_along(box: Box3D, u: np.ndarray) -> float:
    """Full extent (metres) of the oriented ``box`` along the unit vector ``u``:
    ``sum_i |u . axis_i| * size_i`` (exact for any rotation)."""
    return float(np.abs(np.asarray(u, float) @ box.rotation) @ box.size)


def point_box_distance(points: np.ndarray, box: Box3D) -> np.ndarray:
    """Euclidean distance (metres) from each of the (N, 3) ``points`` to the solid ``box``
    (0 inside)."""
    local = (np.atleast_2d(points)[:, :3] - box.center) @ box.rotation
    excess = np.maximum(np.abs(local) - box.size / 2.0, 0.0)
    return np.linalg.norm(excess, axis=1)


def boxes_overlap(a: Box3D, b: Box3D) -> bool:
    """Whether two solid oriented boxes intersect (touching counts), by the separating-axis
    test on the 15 candidate axes."""
    Ra, Rb = a.rotation, b.rotation
    cross = np.cross(Ra.T[:, None, :], Rb.T[None, :, :]).reshape(9, 3)
    axes = np.vstack([Ra.T, Rb.T, cross])
    norms = np.linalg.norm(axes, axis=1)
    axes = axes[norms > 1e-9] / norms[norms > 1e-9, None]
    ra = np.abs(axes @ Ra) @ (a.size / 2.0)
    rb = np.abs(axes @ Rb) @ (b.size / 2.0)
    sep = np.abs(axes @ (b.center - a.center))
    return not bool(np.any(sep > ra + rb + 1e-12))


def _segment_distances(p1, q1, p2, q2) -> np.ndarray:
    """Distances between segment pairs [p1_k, q1_k] and [p2_k, q2_k] (arrays (K, 3)).

    Minimises |P(s) - Q(t)| over s, t in [0, 1] in closed form: the unconstrained optimum of s
    clamped to [0, 1], t from s, and s recomputed when t is clamped (the standard derivation;
    degenerate and parallel segments fall back to an endpoint)."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a = np.einsum("ij,ij->i", d1, d1)
    e = np.einsum("ij,ij->i", d2, d2)
    f = np.einsum("ij,ij->i", d2, r)
    c = np.einsum("ij,ij->i", d1, r)
    b = np.einsum("ij,ij->i", d1, d2)
    a_s, e_s = np.maximum(a, _EPS), np.maximum(e, _EPS)
    denom = a * e - b * b
    parallel = denom <= _EPS * np.maximum(a * e, _EPS)
    s = np.where(parallel, 0.0, (b * f - c * e) / np.where(parallel, 1.0, denom))
    s = np.clip(s, 0.0, 1.0)
    t = (b * s + f) / e_s
    lo, hi = t < 0.0, t > 1.0
    s = np.where(lo, np.clip(-c / a_s, 0.0, 1.0), s)
    s = np.where(hi, np.clip((b - c) / a_s, 0.0, 1.0), s)
    t = np.clip(t, 0.0, 1.0)
    diff = (p1 + s[:, None] * d1) - (p2 + t[:, None] * d2)
    return np.linalg.norm(diff, axis=1)


def box_box_distance(a: Box3D, b: Box3D) -> float:
    """Exact Euclidean distance (metres) between two solid oriented boxes (0 when they touch
    or intersect).

    No library we depend on does this (shapely is 2D; open3d only gives point-to-mesh
    distances), so it is computed here: for disjoint convex polytopes the closest pair is a
    vertex-to-solid or an edge-to-edge pair, so the minimum over the 16 vertex-to-box distances
    and the 144 edge-edge distances is exact.
    """
    if boxes_overlap(a, b):
        return 0.0
    ca, cb = a.corners(), b.corners()
    best = min(point_box_distance(ca, b).min(), point_box_distance(cb, a).min())
    ia, ib = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    ea, eb = _EDGES[ia.ravel()], _EDGES[ib.ravel()]
    seg = _segment_distances(ca[ea[:, 0]], ca[ea[:, 1]], cb[eb[:, 0]], cb[eb[:, 1]])
    return float(min(best, seg.min()))


def z_interval(box: Box3D) -> tuple[float, float]:
    """(bottom, top) of the box along the z-up axis, metres (a tilted box's full reach)."""
    half = extent_along(box, Z_UP) / 2.0
    return float(box.center[2] - half), float(box.center[2] + half)


def _surface(obj: SpatialObject, cfg: PredicateConfig) -> np.ndarray | None:
    return obj.points if (cfg.use_points and obj.points is not None) else None


def _view_interval(
    obj: SpatialObject, vp: Viewpoint, cfg: PredicateConfig
) -> tuple[float, float, str]:
    """Nearest and farthest surface of ``obj`` along the heading, from the camera (metres)."""
    h = vp.heading
    pts = _surface(obj, cfg)
    if pts is not None:
        d = (pts - vp.position) @ h
        return float(d.min()), float(d.max()), "points"
    c = float((obj.box.center - vp.position) @ h)
    half = extent_along(obj.box, h) / 2.0
    return c - half, c + half, "box"


def _need_view(vp: Viewpoint | None, what: str) -> Viewpoint:
    if vp is None:
        raise ConfigError(f"'{what}' depends on the viewpoint: pass a Viewpoint")
    if not isinstance(vp, Viewpoint):
        raise ConfigError(f"'{what}': viewpoint must be a Viewpoint, got {type(vp).__name__}")
    return vp


def _relation(
    predicate: str,
    a: SpatialObject,
    b: SpatialObject,
    margin: float,
    tol: float,
    details: dict[str, float],
    unit: str = "m",
) -> Relation:
    return Relation(
        predicate,
        a.name,
        b.name,
        bool(margin > 0.0),
        bool(abs(margin) < tol),
        float(margin),
        unit,
        float(tol),
        {k: float(v) for k, v in details.items()},
    )


# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------


def height(a: SpatialObject, viewpoint: Viewpoint | None = None, config=None) -> Measurement:
    """Height = extent of the box along world z (from its rotated corners, never a size
    component): a box turned about z keeps its height; one lying on its side does not."""
    ext = extent_along(a.box, Z_UP)
    return Measurement("height", ext, "m", a.name, None, "box", {"size_z": float(a.box.size[2])})


def width(a: SpatialObject, viewpoint: Viewpoint | None = None, config=None) -> Measurement:
    """Width = extent of the box along the camera's horizontal right axis (the horizontal
    extent perpendicular to the view direction, as it appears across the image)."""
    vp = _need_view(viewpoint, "width")
    ext = extent_along(a.box, vp.right)
    return Measurement("width", ext, "m", a.name, None, "box", {})


def depth(
    a: SpatialObject, viewpoint: Viewpoint | None = None, config: PredicateConfig | None = None
) -> Measurement:
    """Depth = distance from the camera to the box centre along the heading, metres.
    ``details`` has the nearest/farthest surface along the heading ("near"/"far")."""
    vp = _need_view(viewpoint, "depth")
    cfg = config or DEFAULT_CONFIG
    near, far, method = _view_interval(a, vp, cfg)
    centre = float((a.box.center - vp.position) @ vp.heading)
    return Measurement("depth", centre, "m", a.name, "camera", f"center ({method} surfaces)",
                       {"near": near, "far": far})


def camera_distance(
    a: SpatialObject, viewpoint: Viewpoint | None = None, config: PredicateConfig | None = None
) -> Measurement:
    """Euclidean distance from the camera position to the box centre, metres (the
    GroundedObject.distance convention). ``details["closest"]`` = to the nearest surface."""
    vp = _need_view(viewpoint, "camera_distance")
    cfg = config or DEFAULT_CONFIG
    centre = float(np.linalg.norm(a.box.center - vp.position))
    closest, method = _camera_closest(a, vp, cfg)
    return Measurement("camera_distance", centre, "m", a.name, "camera", "center",
                       {"closest": closest, "closest_from_points": float(method == "points")})


def _camera_closest(a: SpatialObject, vp: Viewpoint, cfg: PredicateConfig) -> tuple[float, str]:
    pts = _surface(a, cfg)
    if pts is not None:
        return float(np.linalg.norm(pts - vp.position, axis=1).min()), "points"
    return float(point_box_distance(vp.position[None], a.box)[0]), "box"


def center_distance(a: SpatialObject, b: SpatialObject, viewpoint=None, config=None):
    """Direct (3D Euclidean) distance between the two BOX CENTRES, metres."""
    d = float(np.linalg.norm(a.box.center - b.box.center))
    return Measurement("center_distance", d, "m", a.name, b.name, "center", {})


def surface_distance(
    a: SpatialObject, b: SpatialObject, viewpoint=None, config: PredicateConfig | None = None
) -> Measurement:
    """Direct closest-surface distance, metres (0 when touching/overlapping). Between the two
    point clouds when both have points ("points", exact nearest pair by k-d tree); between one
    cloud and the other box ("points-box"); else between the two solid boxes ("box", exact)."""
    cfg = config or DEFAULT_CONFIG
    pa, pb = _surface(a, cfg), _surface(b, cfg)
    if pa is not None and pb is not None:
        small, big = (pa, pb) if len(pa) <= len(pb) else (pb, pa)
        d, _ = cKDTree(big).query(small, k=1)
        return Measurement("surface_distance", float(d.min()), "m", a.name, b.name, "points")
    if pa is not None or pb is not None:
        pts, box = (pa, b.box) if pa is not None else (pb, a.box)
        d = float(point_box_distance(pts, box).min())
        return Measurement("surface_distance", d, "m", a.name, b.name, "points-box")
    return Measurement("surface_distance", box_box_distance(a.box, b.box), "m", a.name, b.name,
                       "box")


def horizontal_distance(a: SpatialObject, b: SpatialObject, viewpoint=None, config=None):
    """Horizontal distance between the box centres (xy only, z ignored), metres.
    ``details["footprint"]`` = gap between the boxes' floor footprints (shapely, 0 if they
    overlap when seen from above)."""
    d = float(np.linalg.norm(a.box.center[:2] - b.box.center[:2]))
    fa = MultiPoint(a.box.corners()[:, :2]).convex_hull
    fb = MultiPoint(b.box.corners()[:, :2]).convex_hull
    return Measurement("horizontal_distance", d, "m", a.name, b.name, "center",
                       {"footprint": float(fa.distance(fb))})


def vertical_distance(a: SpatialObject, b: SpatialObject, viewpoint=None, config=None):
    """Vertical distance = gap between the boxes' z intervals (bottom of the upper one minus top
    of the lower one), metres; 0 when the intervals overlap. ``details["center_dz"]`` =
    z(a centre) - z(b centre) (signed)."""
    a0, a1 = z_interval(a.box)
    b0, b1 = z_interval(b.box)
    gap = max(0.0, a0 - b1, b0 - a1)
    return Measurement("vertical_distance", gap, "m", a.name, b.name, "box",
                       {"center_dz": float(a.box.center[2] - b.box.center[2]),
                        "a_bottom": a0, "a_top": a1, "b_bottom": b0, "b_top": b1})


def lateral_offset(
    a: SpatialObject, b: SpatialObject, viewpoint: Viewpoint | None = None, config=None
) -> Measurement:
    """Signed offset of a's box centre relative to b's along the camera's horizontal right axis,
    metres (positive: a is to the right of b)."""
    vp = _need_view(viewpoint, "lateral_offset")
    d = float((a.box.center - b.box.center) @ vp.right)
    return Measurement("lateral_offset", d, "m", a.name, b.name, "center", {})


def depth_offset(
    a: SpatialObject, b: SpatialObject, viewpoint: Viewpoint | None = None,
    config: PredicateConfig | None = None,
) -> Measurement:
    """Signed difference of nearest surfaces along the heading, near(a) - near(b), metres
    (positive: a is behind b; the quantity "behind" compares)."""
    vp = _need_view(viewpoint, "depth_offset")
    cfg = config or DEFAULT_CONFIG
    na, _, ma = _view_interval(a, vp, cfg)
    nb, _, mb = _view_interval(b, vp, cfg)
    method = ma if ma == mb else f"{ma}-{mb}"
    return Measurement("depth_offset", na - nb, "m", a.name, b.name, method,
                       {"near_a": na, "near_b": nb})


def clock_direction(
    a: SpatialObject,
    viewpoint: Viewpoint | None = None,
    reference: SpatialObject | None = None,
    config: PredicateConfig | None = None,
) -> ClockDirection:
    """Clock direction of a's box centre seen from above: from the camera position, or from the
    ``reference`` object's box centre, with 12 o'clock = the camera heading and hours increasing
    clockwise (3 = right, 6 = behind/towards the camera, 9 = left). hour = round(bearing / 30 deg)
    with 0 -> 12."""
    vp = _need_view(viewpoint, "clock_direction")
    cfg = config or DEFAULT_CONFIG
    origin = vp.position if reference is None else reference.box.center
    v = a.box.center - origin
    x_f, x_r = float(v @ vp.heading), float(v @ vp.right)
    dist = math.hypot(x_f, x_r)
    angle = math.degrees(math.atan2(x_r, x_f)) % 360.0
    hour = int(round(angle / 30.0)) % 12 or 12
    off = (angle - 15.0) % 30.0
    ambiguous = dist < cfg.tie_tolerance or min(off, 30.0 - off) < cfg.clock_tolerance_deg
    ref_name = "camera" if reference is None else reference.name
    return ClockDirection(hour, angle, bool(ambiguous), a.name, ref_name, dist)


# ----------------------------------------------------------------------------------------------
# Relations (all: (a, b, viewpoint=None, config=None) -> Relation)
# ----------------------------------------------------------------------------------------------


def left_of(a, b, viewpoint: Viewpoint | None = None, config: PredicateConfig | None = None):
    """a is left of b iff its box centre is further left along the camera's horizontal right
    axis r: margin = r . (c_b - c_a) > 0 (metres).

    This is the sideways offset in the camera's heading frame, not the image column: under
    perspective a far object can be further right in metres yet nearer the image centre."""
    vp = _need_view(viewpoint, "left_of")
    cfg = config or DEFAULT_CONFIG
    la, lb = float(a.box.center @ vp.right), float(b.box.center @ vp.right)
    return _relation("left_of", a, b, lb - la, cfg.tie_tolerance, {"right_a": la, "right_b": lb})


def right_of(a, b, viewpoint: Viewpoint | None = None, config: PredicateConfig | None = None):
    """a is right of b iff margin = r . (c_a - c_b) > 0 (the mirror of :func:`left_of`)."""
    vp = _need_view(viewpoint, "right_of")
    cfg = config or DEFAULT_CONFIG
    la, lb = float(a.box.center @ vp.right), float(b.box.center @ vp.right)
    return _relation("right_of", a, b, la - lb, cfg.tie_tolerance, {"right_a": la, "right_b": lb})


def above(a, b, viewpoint=None, config: PredicateConfig | None = None) -> Relation:
    """a is above b iff bottom(a) >= top(b) - contact_tolerance (z extents of the rotated
    boxes): margin = bottom(a) - top(b) + contact_tolerance. Resting on top counts as above;
    objects side by side (overlapping heights) are neither above nor below."""
    cfg = config or DEFAULT_CONFIG
    a0, a1 = z_interval(a.box)
    b0, b1 = z_interval(b.box)
    margin = a0 - b1 + cfg.contact_tolerance
    return _relation("above", a, b, margin, cfg.tie_tolerance,
                     {"a_bottom": a0, "a_top": a1, "b_bottom": b0, "b_top": b1})


def below(a, b, viewpoint=None, config: PredicateConfig | None = None) -> Relation:
    """a is below b iff top(a) <= bottom(b) + contact_tolerance:
    margin = bottom(b) - top(a) + contact_tolerance."""
    cfg = config or DEFAULT_CONFIG
    a0, a1 = z_interval(a.box)
    b0, b1 = z_interval(b.box)
    margin = b0 - a1 + cfg.contact_tolerance
    return _relation("below", a, b, margin, cfg.tie_tolerance,
                     {"a_bottom": a0, "a_top": a1, "b_bottom": b0, "b_top": b1})


def behind(a, b, viewpoint: Viewpoint | None = None, config: PredicateConfig | None = None):
    """a is behind b iff a's NEAREST surface along the heading is farther from the camera than
    b's: margin = near(a) - near(b) (metres; points when available, else exact box extents)."""
    vp = _need_view(viewpoint, "behind")
    cfg = config or DEFAULT_CONFIG
    m = depth_offset(a, b, vp, cfg)
    return _relation("behind", a, b, m.value, cfg.tie_tolerance, dict(m.details))


def in_front_of(a, b, viewpoint: Viewpoint | None = None, config: PredicateConfig | None = None):
    """a is in front of b iff near(b) - near(a) > 0 (nearest surfaces along the heading)."""
    vp = _need_view(viewpoint, "in_front_of")
    cfg = config or DEFAULT_CONFIG
    m = depth_offset(a, b, vp, cfg)
    return _relation("in_front_of", a, b, -m.value, cfg.tie_tolerance, dict(m.details))


def closer_to_camera(a, b, viewpoint: Viewpoint | None = None, config=None) -> Relation:
    """a is closer to the camera iff its closest surface point is nearer (3D Euclidean) to the
    camera position: margin = dist(b) - dist(a)."""
    vp = _need_view(viewpoint, "closer_to_camera")
    cfg = config or DEFAULT_CONFIG
    da, db = _camera_closest(a, vp, cfg)[0], _camera_closest(b, vp, cfg)[0]
    return _relation("closer_to_camera", a, b, db - da, cfg.tie_tolerance,
                     {"dist_a": da, "dist_b": db})


def farther_from_camera(a, b, viewpoint: Viewpoint | None = None, config=None) -> Relation:
    """a is farther from the camera iff dist(a) - dist(b) > 0 (closest surfaces, 3D)."""
    vp = _need_view(viewpoint, "farther_from_camera")
    cfg = config or DEFAULT_CONFIG
    da, db = _camera_closest(a, vp, cfg)[0], _camera_closest(b, vp, cfg)[0]
    return _relation("farther_from_camera", a, b, da - db, cfg.tie_tolerance,
                     {"dist_a": da, "dist_b": db})


def taller(a, b, viewpoint=None, config: PredicateConfig | None = None) -> Relation:
    """a is taller than b iff height(a) - height(b) > 0 (z extents, see :func:`height`)."""
    cfg = config or DEFAULT_CONFIG
    ha, hb = height(a).value, height(b).value
    return _relation("taller", a, b, ha - hb, cfg.tie_tolerance, {"height_a": ha, "height_b": hb})


def shorter(a, b, viewpoint=None, config: PredicateConfig | None = None) -> Relation:
    """a is shorter than b iff height(b) - height(a) > 0."""
    cfg = config or DEFAULT_CONFIG
    ha, hb = height(a).value, height(b).value
    return _relation("shorter", a, b, hb - ha, cfg.tie_tolerance, {"height_a": ha, "height_b": hb})


def wider(a, b, viewpoint: Viewpoint | None = None, config=None) -> Relation:
    """a is wider than b iff width(a) - width(b) > 0 (extents along the camera's horizontal
    right axis, see :func:`width`)."""
    vp = _need_view(viewpoint, "wider")
    cfg = config or DEFAULT_CONFIG
    wa, wb = width(a, vp).value, width(b, vp).value
    return _relation("wider", a, b, wa - wb, cfg.tie_tolerance, {"width_a": wa, "width_b": wb})


def thinner(a, b, viewpoint: Viewpoint | None = None, config=None) -> Relation:
    """a is thinner (narrower) than b iff width(b) - width(a) > 0."""
    vp = _need_view(viewpoint, "thinner")
    cfg = config or DEFAULT_CONFIG
    wa, wb = width(a, vp).value, width(b, vp).value
    return _relation("thinner", a, b, wb - wa, cfg.tie_tolerance, {"width_a": wa, "width_b": wb})


def _volumes(a, b) -> tuple[float, float, float]:
    va, vb = a.box.volume, b.box.volume
    return va, vb, max(va, vb, _EPS)


def bigger(a, b, viewpoint=None, config: PredicateConfig | None = None) -> Relation:
    """a is bigger than b iff its box volume is larger: margin = (vA - vB) / max(vA, vB)
    (relative, unitless), near tie below ``volume_tolerance``."""
    cfg = config or DEFAULT_CONFIG
    va, vb, vm = _volumes(a, b)
    return _relation("bigger", a, b, (va - vb) / vm, cfg.volume_tolerance,
                     {"volume_a": va, "volume_b": vb}, unit="")


def smaller(a, b, viewpoint=None, config: PredicateConfig | None = None) -> Relation:
    """a is smaller than b iff (vB - vA) / max(vA, vB) > 0 (box volumes)."""
    cfg = config or DEFAULT_CONFIG
    va, vb, vm = _volumes(a, b)
    return _relation("smaller", a, b, (vb - va) / vm, cfg.volume_tolerance,
                     {"volume_a": va, "volume_b": vb}, unit="")


RELATIONS: dict[str, Callable[..., Relation]] = {
    "left_of": left_of,
    "right_of": right_of,
    "above": above,
    "below": below,
    "behind": behind,
    "in_front_of": in_front_of,
    "closer_to_camera": closer_to_camera,
    "farther_from_camera": farther_from_camera,
    "taller": taller,
    "shorter": shorter,
    "wider": wider,
    "thinner": thinner,
    "bigger": bigger,
    "smaller": smaller,
}
"""Binary relations by name: ``RELATIONS[name](a, b, viewpoint, config) -> Relation``."""

PAIR_MEASURES: dict[str, Callable[..., Measurement]] = {
    "center_distance": center_distance,
    "surface_distance": surface_distance,
    "horizontal_distance": horizontal_distance,
    "vertical_distance": vertical_distance,
    "lateral_offset": lateral_offset,
    "depth_offset": depth_offset,
}
"""Pair measurements: ``PAIR_MEASURES[name](a, b, viewpoint, config) -> Measurement``."""

UNARY_MEASURES: dict[str, Callable[..., Measurement]] = {
    "height": height,
    "width": width,
    "depth": depth,
    "camera_distance": camera_distance,
}
"""Single-object measurements: ``UNARY_MEASURES[name](a, viewpoint, config) -> Measurement``."""


def relation(name: str, a, b, viewpoint: Viewpoint | None = None, config=None) -> Relation:
    """Evaluate the relation ``name`` (a key of RELATIONS); ConfigError for an unknown name."""
    try:
        fn = RELATIONS[name]
    except KeyError:
        raise ConfigError(f"unknown relation {name!r}; known: {sorted(RELATIONS)}") from None
    return fn(a, b, viewpoint, config)
