"""KITTI object-benchmark frames: image_2, Velodyne points, calibration, label_2 labels.

Two layouts are read:

- KITTI's own: ``<root>/image_2/000008.png``, ``velodyne/000008.bin``, ``calib/000008.txt``,
  ``label_2/000008.txt`` (labels optional, e.g. the test split);
- one folder per frame: ``<root>/kitti_000008/{image_2.png, velodyne.bin, calib.txt,
  label_2.txt}``.

Frames and conventions:

- ``velodyne`` (z up, x forward, y left): the points and the label boxes (``KittiLabel.box``).
- rectified reference camera (camera 0 after ``R0_rect``; optical axes, y down): where KITTI
  writes label locations (bottom centre of the box) and ``rotation_y`` (about camera y).
- ``camera_2_optical``: the left colour camera of image_2. ``P2 = K [I | t2]`` is split into
  ``intrinsics.K`` and the offset ``t2`` so that ``T_cam_from_velo`` maps Velodyne points into
  this camera's optical frame and a plain pinhole with ``intrinsics`` projects them exactly as P2.

A label's Box3D is yaw-only in the Velodyne frame (size = l, w, h along heading, left, up); the
≈0.5° tilt between KITTI's camera y axis and the Velodyne z axis is dropped, as usual.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from spatial_ros.errors import DataError
from spatial_ros.geometry.camera import project_box
from spatial_ros.geometry.transforms import TransformTree, invert
from spatial_ros.types import Box3D, CameraIntrinsics, SensorFrame, wrap_angle

VELO_FRAME = "velodyne"
CAM_FRAME = "camera_2_optical"
RECT_FRAME = "camera_rect"


@dataclass(eq=False)
class KittiCalib:
    """KITTI calibration of one frame.

    Attributes:
        P2: (3, 4) projection of rectified reference-camera points into image_2 (pixels).
        R0_rect: (3, 3) rectifying rotation.
        Tr_velo_to_cam: (3, 4) Velodyne -> unrectified reference camera.
        intrinsics: pinhole model of image_2 (``K = P2[:, :3]``, no distortion).
        T_rect_from_velo: 4x4, Velodyne -> rectified reference camera (the label frame).
        T_cam_from_rect: 4x4, rectified reference camera -> camera 2 optical frame (translation
            only, from P2's 4th column).
        T_cam_from_velo: 4x4, Velodyne -> camera 2 optical frame (``T_cam_from_rect @
            T_rect_from_velo``).
    """

    P2: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray
    intrinsics: CameraIntrinsics
    T_rect_from_velo: np.ndarray
    T_cam_from_rect: np.ndarray
    T_cam_from_velo: np.ndarray

    @classmethod
    def from_matrices(cls, P2, R0_rect, Tr_velo_to_cam, width: int, height: int) -> KittiCalib:
        P2 = np.asarray(P2, dtype=np.float64).reshape(3, 4)
        R0 = np.asarray(R0_rect, dtype=np.float64).reshape(3, 3)
        Tr = np.asarray(Tr_velo_to_cam, dtype=np.float64).reshape(3, 4)
        K = P2[:, :3].copy()
        T_rect_from_velo = np.eye(4)
        T_rect_from_velo[:3, :3] = R0 @ Tr[:, :3]
        T_rect_from_velo[:3, 3] = R0 @ Tr[:, 3]
        T_cam_from_rect = np.eye(4)
        T_cam_from_rect[:3, 3] = np.linalg.solve(K, P2[:, 3])
        return cls(
            P2=P2,
            R0_rect=R0,
            Tr_velo_to_cam=Tr,
            intrinsics=CameraIntrinsics(width, height, K, frame_id=CAM_FRAME),
            T_rect_from_velo=T_rect_from_velo,
            T_cam_from_rect=T_cam_from_rect,
            T_cam_from_velo=T_cam_from_rect @ T_rect_from_velo,
        )

    def transform_tree(self) -> TransformTree:
        """Static transforms between ``velodyne``, ``camera_rect`` and ``camera_2_optical``."""
        tree = TransformTree()
        tree.set(RECT_FRAME, VELO_FRAME, self.T_rect_from_velo)
        tree.set(CAM_FRAME, RECT_FRAME, self.T_cam_from_rect)
        return tree


@dataclass(eq=False)
class KittiLabel:
    """One line of a KITTI label_2 file.

    Attributes:
        type: class name ("Car", "Pedestrian", "Cyclist", ..., "DontCare").
        truncated: 0..1 fraction outside the image.
        occluded: 0 visible, 1 partly, 2 largely occluded, 3 unknown (-1 for DontCare).
        alpha: observation angle, radians.
        box_2d: (4,) x1, y1, x2, y2 pixels in image_2.
        dimensions: (3,) h, w, l metres (KITTI order).
        location: (3,) bottom centre x, y, z in the rectified reference camera frame, metres.
        rotation_y: yaw about the camera y axis, radians.
        score: detection score (prediction files), else None.
        box: the object as a yaw-only Box3D in the Velodyne frame (size l, w, h), or None for
            DontCare regions.
    """

    type: str
    truncated: float
    occluded: int
    alpha: float
    box_2d: np.ndarray
    dimensions: np.ndarray
    location: np.ndarray
    rotation_y: float
    score: float | None = None
    box: Box3D | None = None

    @property
    def is_dontcare(self) -> bool:
        return self.type == "DontCare" or self.dimensions[0] < 0

    def to_line(self) -> str:
        """The label_2 line (with the score column when ``score`` is set)."""
        h, w, length = self.dimensions
        x, y, z = self.location
        x1, y1, x2, y2 = self.box_2d
        line = (f"{self.type} {self.truncated:.2f} {int(self.occluded)} {self.alpha:.2f} "
                f"{x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} {h:.2f} {w:.2f} {length:.2f} "
                f"{x:.2f} {y:.2f} {z:.2f} {self.rotation_y:.2f}")
        return line if self.score is None else f"{line} {self.score:.4f}"

    @classmethod
    def from_box(
        cls,
        box: Box3D,
        calib: KittiCalib,
        type: str,
        score: float | None = None,
        box_2d: np.ndarray | None = None,
        truncated: float = 0.0,
        occluded: int = 0,
    ) -> KittiLabel:
        """Label for a yaw-only box in the Velodyne frame (e.g. a prediction). The 2D box is the
        box's projection into image_2 unless given (zeros when it does not project)."""
        length, w, h = box.size
        c_rect = calib.T_rect_from_velo[:3, :3] @ box.center + calib.T_rect_from_velo[:3, 3]
        ry = _rotation_y_for_yaw(box.yaw, calib)
        loc = c_rect + np.array([0.0, h / 2.0, 0.0])
        if box_2d is None:
            b2 = project_box(box.transformed(calib.T_cam_from_velo, CAM_FRAME), calib.intrinsics)
            box_2d = np.zeros(4) if b2 is None else b2
        return cls(
            type=type,
            truncated=float(truncated),
            occluded=int(occluded),
            alpha=wrap_angle(ry - np.arctan2(loc[0], loc[2])),
            box_2d=np.asarray(box_2d, dtype=np.float64),
            dimensions=np.array([h, w, length]),
            location=loc,
            rotation_y=ry,
            score=score,
            box=box,
        )


def _rotation_y_for_yaw(yaw: float, calib: KittiCalib) -> float:
    """The rotation_y whose heading, mapped to the Velodyne frame and projected onto its x-y
    plane, has direction ``yaw`` (the exact inverse of ``label_box_in_velo``'s yaw)."""
    R = np.linalg.inv(calib.T_rect_from_velo[:3, :3])  # velo from rect
    a, b = R[:, 0], -R[:, 2]  # heading(ry) = cos(ry) a + sin(ry) b in the Velodyne frame
    c, s = np.cos(yaw), np.sin(yaw)
    # Parallel to (c, s) in x-y: cos(ry) (a_x s - a_y c) + sin(ry) (b_x s - b_y c) = 0.
    A, B = a[0] * s - a[1] * c, b[0] * s - b[1] * c
    ry = np.arctan2(-A, B)
    v = np.cos(ry) * a + np.sin(ry) * b
    if v[0] * c + v[1] * s < 0:
        ry += np.pi
    return wrap_angle(float(ry))


def label_box_in_velo(dimensions, location, rotation_y: float, calib: KittiCalib) -> Box3D:
    """Yaw-only Velodyne-frame Box3D (size l, w, h) of a KITTI label's camera-frame values."""
    h, w, length = (float(v) for v in dimensions)
    x, y, z = (float(v) for v in location)
    T_velo_from_rect = invert(calib.T_rect_from_velo)
    center = T_velo_from_rect[:3, :3] @ np.array([x, y - h / 2.0, z]) + T_velo_from_rect[:3, 3]
    # Object x axis (length) in the rectified camera frame is R_y(ry) e_x = (cos, 0, -sin).
    heading = T_velo_from_rect[:3, :3] @ np.array([np.cos(rotation_y), 0.0, -np.sin(rotation_y)])
    yaw = float(np.arctan2(heading[1], heading[0]))
    return Box3D.from_yaw(center, [length, w, h], yaw, VELO_FRAME)


@dataclass(eq=False)
class KittiFrame:
    """One KITTI frame.

    Attributes:
        frame_id: e.g. "000008".
        image: (H, W, 3) uint8 RGB (image_2).
        points: (N, 4) float32 x, y, z, reflectance in the Velodyne frame, or None.
        calib: calibration (intrinsics, T_cam_from_velo, ...).
        labels: label_2 objects ([] when there is no label file).
        path: where the frame was read from.
    """

    frame_id: str
    image: np.ndarray
    points: np.ndarray | None
    calib: KittiCalib
    labels: list[KittiLabel] = field(default_factory=list)
    path: Path | None = None

    def sensor_frame(self, stamp_ns: int = 0, index: int = -1) -> SensorFrame:
        """The frame as the pipeline consumes it (points in ``velodyne``, static transforms)."""
        return SensorFrame(
            stamp_ns=stamp_ns,
            image=self.image,
            camera=self.calib.intrinsics,
            points=self.points,
            points_frame=VELO_FRAME,
            transforms=self.calib.transform_tree(),
            index=index,
        )


# ----------------------------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------------------------


def read_calib(path: Path, width: int, height: int) -> KittiCalib:
    """Parse a KITTI object calib file (``P2``, ``R0_rect``, ``Tr_velo_to_cam``)."""
    values: dict[str, np.ndarray] = {}
    try:
        for line in Path(path).read_text().splitlines():
            if ":" not in line:
                continue
            key, rest = line.split(":", 1)
            if rest.strip():
                values[key.strip()] = np.array(rest.split(), dtype=np.float64)
    except OSError as e:
        raise DataError(f"cannot read KITTI calib {path}: {e.strerror}") from None
    except ValueError:
        raise DataError(f"KITTI calib {path} has a non-numeric value") from None

    def get(*names: str, n: int) -> np.ndarray:
        for k in names:
            if k in values:
                if values[k].size != n:
                    raise DataError(f"{k} in {path} has {values[k].size} values, expected {n}")
                return values[k]
        raise DataError(f"KITTI calib {path} has no {' / '.join(names)}")

    return KittiCalib.from_matrices(
        get("P2", n=12), get("R0_rect", "R_rect", n=9),
        get("Tr_velo_to_cam", "Tr_velo_cam", n=12), width, height,
    )


def read_labels(path: Path, calib: KittiCalib) -> list[KittiLabel]:
    """Parse a label_2 file (15 columns, or 16 with a score)."""
    labels = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise DataError(f"cannot read KITTI labels {path}: {e.strerror}") from None
    for no, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (15, 16):
            raise DataError(f"{path}:{no}: expected 15 or 16 columns, got {len(parts)}")
        try:
            v = [float(p) for p in parts[1:]]
        except ValueError:
            raise DataError(f"{path}:{no}: non-numeric value in {line!r}") from None
        lab = KittiLabel(
            type=parts[0],
            truncated=v[0],
            occluded=int(v[1]),
            alpha=v[2],
            box_2d=np.array(v[3:7]),
            dimensions=np.array(v[7:10]),
            location=np.array(v[10:13]),
            rotation_y=v[13],
            score=v[14] if len(v) == 15 else None,
        )
        if not lab.is_dontcare:
            lab.box = label_box_in_velo(lab.dimensions, lab.location, lab.rotation_y, calib)
        labels.append(lab)
    return labels


def write_kitti_label(path: str | Path, labels: Sequence[KittiLabel]) -> None:
    """Write a KITTI label_2-format file (a score column for labels that have one)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(lab.to_line() + "\n" for lab in labels))
    except OSError as e:
        raise DataError(f"cannot write KITTI labels {p}: {e.strerror}") from None


def read_velodyne(path: Path) -> np.ndarray:
    """(N, 4) float32 x, y, z, reflectance of a KITTI .bin scan."""
    try:
        raw = np.fromfile(path, dtype="<f4")
    except OSError as e:
        raise DataError(f"cannot read Velodyne scan {path}: {e.strerror}") from None
    if raw.size % 4:
        raise DataError(f"{path} has {raw.size} floats, not a multiple of 4 (x, y, z, r)")
    return raw.reshape(-1, 4)


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _frame_files(root: Path, frame_id: str) -> tuple[dict[str, Path], str]:
    if (root / "image_2.png").is_file() or (root / "calib.txt").is_file():  # folder per frame
        m = re.search(r"(\d+)$", root.name)
        fid = m.group(1) if m else frame_id
        names = {"image": "image_2.png", "velodyne": "velodyne.bin", "calib": "calib.txt",
                 "label": "label_2.txt"}
        return {k: root / v for k, v in names.items()}, fid
    if (root / "image_2").is_dir() or (root / "calib").is_dir():  # KITTI layout
        return {
            "image": root / "image_2" / f"{frame_id}.png",
            "velodyne": root / "velodyne" / f"{frame_id}.bin",
            "calib": root / "calib" / f"{frame_id}.txt",
            "label": root / "label_2" / f"{frame_id}.txt",
        }, frame_id
    raise DataError(f"{root} is neither a KITTI frame folder (image_2.png, calib.txt, ...) nor a "
                    "KITTI root (image_2/, velodyne/, calib/, label_2/)")


def load_kitti_frame(path_or_dir: str | Path, frame_id: str = "000008") -> KittiFrame:
    """Load one KITTI frame from either layout (see module docstring).

    Args:
        path_or_dir: a frame folder (``kitti_000008/``) or a KITTI root with ``image_2/`` etc.
        frame_id: frame to load from a KITTI root (ignored for frame folders named ``*_NNNNNN``).

    Raises:
        DataError: missing image or calib, or malformed files.
    """
    root = Path(path_or_dir)
    if not root.is_dir():
        raise DataError(f"KITTI path {root} does not exist or is not a folder")
    files, fid = _frame_files(root, str(frame_id))
    for key in ("image", "calib"):
        if not files[key].is_file():
            raise DataError(f"KITTI frame {fid}: missing {files[key]}")
    image = _read_rgb(files["image"])
    calib = read_calib(files["calib"], image.shape[1], image.shape[0])
    points = read_velodyne(files["velodyne"]) if files["velodyne"].is_file() else None
    labels = read_labels(files["label"], calib) if files["label"].is_file() else []
    return KittiFrame(fid, image, points, calib, labels, root)


def iter_kitti_frames(root: str | Path) -> Iterator[KittiFrame]:
    """Every frame under ``root``: a KITTI root (frames = image_2/*.png, sorted), a folder of
    frame folders, or a single frame folder.

    Raises:
        DataError: nothing KITTI-like under ``root``.
    """
    root = Path(root)
    if (root / "image_2").is_dir():
        stems = sorted(p.stem for p in (root / "image_2").glob("*.png"))
        for s in stems:
            yield load_kitti_frame(root, s)
        return
    if (root / "image_2.png").is_file():
        yield load_kitti_frame(root)
        return
    subs = sorted(d for d in root.iterdir() if d.is_dir() and (d / "image_2.png").is_file()) \
        if root.is_dir() else []
    if not subs:
        raise DataError(f"no KITTI frames under {root}: expected image_2/ (KITTI layout) or "
                        "frame folders containing image_2.png")
    for d in subs:
        yield load_kitti_frame(d)
