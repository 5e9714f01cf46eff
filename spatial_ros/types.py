"""Typed data structures shared by the whole ROS-free core (one definition of each).

Conventions (REP-103/105): metres, radians, right-handed frames. "z-up" frames (base_link,
lidar, world) have x forward, y left, z up; camera *optical* frames have z forward, x right,
y down. Stamps are integer nanoseconds. Images are numpy arrays indexed ``[v, u]`` (row, column).

Conversion to/from ROS messages lives in ``spatial_ros.ros_conversions`` (nodes) and the codecs in
``spatial_ros.io`` — never here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------------------------
# 3D boxes
# ----------------------------------------------------------------------------------------------


def yaw_to_matrix(yaw: float) -> np.ndarray:
    """Rotation matrix (3x3) for a rotation of ``yaw`` radians about +z."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def wrap_angle(a: float) -> float:
    """Wrap an angle to (-pi, pi]."""
    return float(-((-a + np.pi) % (2.0 * np.pi) - np.pi))


@dataclass(eq=False)
class Box3D:
    """An oriented 3D box.

    Attributes:
        center: (3,) box centre in ``frame_id``, metres.
        size: (3,) FULL extents along the box's own x, y, z axes, metres.
        rotation: (3, 3) rotation matrix, box axes expressed in ``frame_id``. For boxes in a
            z-up frame that only turn about the vertical, use ``Box3D.from_yaw``.
        frame_id: name of the frame the box is expressed in ('' when implied).
    """

    center: np.ndarray
    size: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    frame_id: str = ""

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, dtype=np.float64).reshape(3)
        self.size = np.asarray(self.size, dtype=np.float64).reshape(3)
        self.rotation = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)

    @classmethod
    def from_yaw(cls, center, size, yaw: float, frame_id: str = "") -> Box3D:
        """Box in a z-up frame turned ``yaw`` radians about +z (box x axis = heading)."""
        return cls(center, size, yaw_to_matrix(yaw), frame_id)

    @property
    def yaw(self) -> float:
        """Heading of the box x axis about +z of its frame (radians); meaningful in z-up frames."""
        return float(np.arctan2(self.rotation[1, 0], self.rotation[0, 0]))

    @property
    def volume(self) -> float:
        return float(np.prod(self.size))

    def corners(self) -> np.ndarray:
        """(8, 3) corners in ``frame_id``. Order: bits of the index pick -/+ half size along
        x (bit 2), y (bit 1), z (bit 0): index 0 = (-,-,-), 7 = (+,+,+)."""
        signs = np.array([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)], float) * 2 - 1
        local = signs * (self.size / 2.0)
        return local @ self.rotation.T + self.center

    def contains(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Boolean mask of the (N, 3) ``points`` inside the box (grown by ``margin`` metres)."""
        p = np.asarray(points, dtype=np.float64)[:, :3]
        local = (p - self.center) @ self.rotation
        return np.all(np.abs(local) <= self.size / 2.0 + margin, axis=1)

    def transformed(self, T: np.ndarray, frame_id: str | None = None) -> Box3D:
        """This box under the 4x4 rigid transform ``T`` (points_new = T @ points_old)."""
        T = np.asarray(T, dtype=np.float64)
        return Box3D(
            T[:3, :3] @ self.center + T[:3, 3],
            self.size.copy(),
            T[:3, :3] @ self.rotation,
            self.frame_id if frame_id is None else frame_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """Center/size/yaw as plain lists (the box-file convention, z-up frames)."""
        return {
            "center": [float(v) for v in self.center],
            "size": [float(v) for v in self.size],
            "yaw": self.yaw,
        }

    def state_dict(self) -> dict[str, Any]:
        """Exact JSON-able form (full rotation and frame), for resumable jobs' saved state."""
        return {"center": self.center.tolist(), "size": self.size.tolist(),
                "rotation": self.rotation.tolist(), "frame_id": self.frame_id}

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> Box3D:
        """The box :meth:`state_dict` wrote."""
        return cls(d["center"], d["size"], d["rotation"], d["frame_id"])

    def __repr__(self) -> str:
        c = ", ".join(f"{v:.3f}" for v in self.center)
        s = ", ".join(f"{v:.3f}" for v in self.size)
        return f"Box3D(center=[{c}], size=[{s}], yaw={self.yaw:.3f}, frame_id={self.frame_id!r})"


# ----------------------------------------------------------------------------------------------
# Cameras
# ----------------------------------------------------------------------------------------------


@dataclass(eq=False)
class CameraIntrinsics:
    """Pinhole camera model (sensor_msgs/CameraInfo semantics).

    Attributes:
        width, height: image size in pixels.
        K: (3, 3) intrinsic matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels.
        D: distortion coefficients (plumb_bob: k1, k2, t1, t2, k3); empty = none.
        distortion_model: "plumb_bob", "rational_polynomial" or "equidistant".
        frame_id: the camera OPTICAL frame (z forward, x right, y down).
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distortion_model: str = "plumb_bob"
    frame_id: str = "camera_optical_frame"

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.D = np.asarray(self.D, dtype=np.float64).reshape(-1)

    @classmethod
    def from_fov(
        cls, width: int, height: int, hfov_deg: float, frame_id: str = "camera_optical_frame"
    ):
        """Square-pixel camera with a horizontal field of view of ``hfov_deg`` degrees."""
        f = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
        K = np.array([[f, 0, (width - 1) / 2.0], [0, f, (height - 1) / 2.0], [0, 0, 1.0]])
        return cls(width, height, K, frame_id=frame_id)

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def has_distortion(self) -> bool:
        return bool(self.D.size) and bool(np.any(self.D != 0))


# ----------------------------------------------------------------------------------------------
# Sensor data and outputs
# ----------------------------------------------------------------------------------------------


@dataclass(eq=False)
class SensorFrame:
    """One synchronized set of sensor data, as the pipeline consumes it (live or from a bag).

    Attributes:
        stamp_ns: the source IMAGE's header stamp (ns); every output copies it.
        image: (H, W, 3) uint8 RGB.
        camera: intrinsics; ``camera.frame_id`` is the optical frame of ``image``.
        points: (N, 4) float32 x, y, z, intensity in ``points_frame`` (NaNs removed), or None.
        points_frame: frame of ``points`` (e.g. "lidar").
        depth: (H, W) float32 metres aligned with ``image`` (NaN/0 = no return), or None.
        transforms: static transforms between the named frames (``TransformTree``).
        index: running frame index within the source (episode / bag), or -1.
    """

    stamp_ns: int
    image: np.ndarray
    camera: CameraIntrinsics
    points: np.ndarray | None = None
    points_frame: str = "lidar"
    depth: np.ndarray | None = None
    transforms: Any = None  # spatial_ros.geometry.transforms.TransformTree
    index: int = -1


@dataclass(eq=False)
class Candidate:
    """A specialist's 3D box proposal (the "specialist" half of specialist box prompts).

    Attributes:
        box: 3D box in the specialist's output frame (``box.frame_id``; z-up, e.g.
            lidar/base_link).
        box_2d: (4,) x1, y1, x2, y2 pixels of its projection into the image, or None.
        score: [0, 1].
        source: "lidar", "depth" or "onnx".
        num_points: points supporting the box.
        label: class name when the specialist knows it ('' otherwise).
        points: (M, 3) the cluster's points in ``box.frame_id`` (for closest-surface distances).
        id: stable id within the frame ("lidar_3").
    """

    box: Box3D
    box_2d: np.ndarray | None = None
    score: float = 1.0
    source: str = "lidar"
    num_points: int = 0
    label: str = ""
    points: np.ndarray | None = None
    id: str = ""


@dataclass(eq=False)
class GroundedObject:
    """A grounded object (core twin of msg/GroundedObject3D).

    Attributes:
        id: id within the frame's output.
        query: the phrase it grounds ('' for specialist-only candidates).
        label: category label ('' when unknown).
        score: [0, 1].
        box: 3D box in the output frame (``box.frame_id``).
        box_2d: (4,) x1, y1, x2, y2 pixels in the source image, or None.
        distance: metres from the sensor origin to the box centre.
        source: "vlm", "lidar", "depth", "vlm+lidar", "vlm+depth", "onnx".
        raw_text: the model's raw answer (for debugging / parse-failure reports).
        explanation: why this object answers the query ("the leftmost of 3 boxes").
        ambiguous: the query's words fit several objects equally (the score is lowered).
        alternatives: when ambiguous, a short description of each candidate that still fits
            ("red box, left, 1.10 m away"), the returned one first.
    """

    id: str
    query: str
    label: str
    score: float
    box: Box3D
    box_2d: np.ndarray | None = None
    distance: float = float("nan")
    source: str = "vlm"
    raw_text: str = ""
    explanation: str = ""
    ambiguous: bool = False
    alternatives: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Relation:
    """A spatial relation / metric between two objects (core twin of msg/SpatialRelation).

    Attributes:
        subject_id, object_id: GroundedObject ids ("sensor" for the sensor origin).
        predicate: "distance", "surface_distance", "horizontal_distance", "left_of", ...
        value: metres for distances, 1.0/0.0 for boolean predicates.
        unit: "m", "bool", "rad", "o'clock".
        answer: human-readable sentence.
    """

    subject_id: str
    object_id: str
    predicate: str
    value: float
    unit: str = "m"
    answer: str = ""
