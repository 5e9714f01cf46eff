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
from collections.abc import Callable

import numpy as np
from scipy.spatial import cKDTree
from shapely.geometry import MultiPoint

from spatial_ros.errors import ConfigError
from spatial_ros.spatial.box_geometry import (  # noqa: F401 - re-exported
    _EPS,
    Z_UP,
    box_box_distance,
    boxes_overlap,
    extent_along,
    point_box_distance,
    z_interval,
)
from spatial_ros.spatial.objects import (  # noqa: F401 - re-exported
    DEFAULT_CONFIG,
    ClockDirection,
    Measurement,
    PredicateConfig,
    Relation,
    SpatialObject,
    Viewpoint,
    reorient,
)


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
