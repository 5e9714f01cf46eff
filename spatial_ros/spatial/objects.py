"""The inputs and results of the spatial predicates (``spatial.predicates``): objects (a box
and optional points in one z-up frame), the viewpoint that view-dependent words are defined
from, the predicates' tolerances, and the Relation / Measurement / ClockDirection they return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.types import Box3D, Candidate, GroundedObject

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
