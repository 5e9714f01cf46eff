"""SUN RGB-D frames (the VoteNet-style export): image, upright depth points, calib, 3D labels.

Folder ``<frame>/`` with ``image.jpg``, ``depth_points.mat`` (N x 6: x, y, z, r, g, b),
``calib.txt`` (line 1: Rtilt; line 2: K, both written column by column, as VoteNet's export reads
them) and ``label.txt`` (one object a line: ``class x y w h cx cy cz a b c ox oy`` — 2D box as
top-left + size in pixels, 3D centroid, HALF sizes, heading vector in the x-y plane).

Two facts checked on frame 000001 that differ from a literal reading of the sample README:

- Rtilt is stored column-major: read that way, ``p_upright = Rtilt @ p_depth`` and the points'
  own colours match the image pixels they project to (mean |diff| 0.027 on a 0..1 scale, 99.8 %
  of points inside the image); read row-major they do not (0.275, 67 %).
- The half sizes are (width across the heading, length along the heading, height), VoteNet's
  ``w = data[8], l = data[9]``: a dresser facing +x is then 0.71 m deep and 1.56 m wide, not the
  reverse, and the boxes hold about 1.8x more of the scene's points than with the order swapped.

Frames:

- upright depth frame (``sunrgbd_upright``): z up (gravity-aligned by Rtilt), y forward (the
  camera's viewing direction, levelled), x right. Points and label boxes live here.
- camera optical frame (``sunrgbd_camera_optical``): undo the tilt (``Rtilt^T``), then the SUN
  RGB-D depth -> camera axis swap ``(x, y, z)_cam = (x, -z, y)``; ``K`` projects from there.

A label's Box3D is yaw-only with ``yaw = atan2(oy, ox)`` and FULL sizes (along the heading,
across it, up) = ``2 * (data[9], data[8], data[10])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from spatial_ros.errors import DataError
from spatial_ros.geometry.camera import points_to_image
from spatial_ros.geometry.transforms import TransformTree, make_transform
from spatial_ros.types import Box3D, CameraIntrinsics, SensorFrame

UPRIGHT_FRAME = "sunrgbd_upright"
CAM_FRAME = "sunrgbd_camera_optical"
# (x, y, z)_cam = (x, -z, y)_depth: SUN RGB-D depth axes (x right, y forward, z up) -> optical.
R_CAM_FROM_DEPTH = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclass(eq=False)
class SunRgbdLabel:
    """One object of label.txt.

    Attributes:
        classname: e.g. "bed", "night_stand".
        box_2d: (4,) x1, y1, x2, y2 pixels.
        box: Box3D in the upright depth frame (full sizes, yaw from the heading vector).
        half_size: (3,) the file's three half sizes as written (across heading, along heading,
            height; metres).
        heading: (2,) the file's heading vector (ox, oy).
    """

    classname: str
    box_2d: np.ndarray
    box: Box3D
    half_size: np.ndarray
    heading: np.ndarray


@dataclass(eq=False)
class SunRgbdFrame:
    """One SUN RGB-D frame.

    Attributes:
        frame_id: folder-derived id ("000001").
        image: (H, W, 3) uint8 RGB.
        points: (N, 6) float32 x, y, z (metres, upright frame), r, g, b (0..1).
        Rtilt: (3, 3) rotation, upright frame from the tilted depth-camera frame
            (``p_upright = Rtilt @ p_depth``).
        intrinsics: camera model (optical frame ``sunrgbd_camera_optical``).
        T_cam_from_upright: 4x4, upright depth frame -> camera optical frame.
        labels: objects.
        path: the folder.
    """

    frame_id: str
    image: np.ndarray
    points: np.ndarray
    Rtilt: np.ndarray
    intrinsics: CameraIntrinsics
    T_cam_from_upright: np.ndarray
    labels: list[SunRgbdLabel] = field(default_factory=list)
    path: Path | None = None

    def sensor_frame(self, stamp_ns: int = 0, index: int = -1) -> SensorFrame:
        """The frame as the pipeline consumes it (points (N, 4): x, y, z, grey intensity)."""
        tree = TransformTree()
        tree.set(CAM_FRAME, UPRIGHT_FRAME, self.T_cam_from_upright)
        grey = self.points[:, 3:6].mean(axis=1, keepdims=True)
        return SensorFrame(
            stamp_ns=stamp_ns,
            image=self.image,
            camera=self.intrinsics,
            points=np.hstack([self.points[:, :3], grey]).astype(np.float32),
            points_frame=UPRIGHT_FRAME,
            transforms=tree,
            index=index,
        )


def t_cam_from_upright(Rtilt: np.ndarray) -> np.ndarray:
    """4x4 upright depth frame -> camera optical frame (rotation only): undo the tilt, then
    swap the depth axes to optical ones."""
    return make_transform(R_CAM_FROM_DEPTH @ np.asarray(Rtilt, dtype=np.float64).T)


def project_upright_points(points: np.ndarray, frame: SunRgbdFrame):
    """Project (N, 3+) upright-frame points into the frame's image.

    Returns:
        uv: (N, 2) pixels (NaN behind the camera); depth: (N,) metres along the optical axis.
    """
    uv, depth, _ = points_to_image(points, frame.T_cam_from_upright, frame.intrinsics)
    return uv, depth


def read_calib(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(Rtilt, K) from a SUN RGB-D calib.txt (both stored column by column)."""
    try:
        lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
        Rtilt = np.array(lines[0], dtype=np.float64).reshape(3, 3).T
        K = np.array(lines[1], dtype=np.float64).reshape(3, 3).T
    except OSError as e:
        raise DataError(f"cannot read SUN RGB-D calib {path}: {e.strerror}") from None
    except (IndexError, ValueError):
        raise DataError(f"SUN RGB-D calib {path} must hold two lines of 9 numbers "
                        "(Rtilt and K, column by column)") from None
    return Rtilt, K


def read_labels(path: Path) -> list[SunRgbdLabel]:
    """Objects of a SUN RGB-D label.txt (13 columns per line)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise DataError(f"cannot read SUN RGB-D labels {path}: {e.strerror}") from None
    out = []
    for no, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 13:
            raise DataError(f"{path}:{no}: expected 13 columns (class x y w h cx cy cz l w h "
                            f"ox oy), got {len(parts)}")
        try:
            v = np.array(parts[1:], dtype=np.float64)
        except ValueError:
            raise DataError(f"{path}:{no}: non-numeric value in {line!r}") from None
        x, y, w, h = v[0:4]
        half, heading = v[7:10], v[10:12]
        yaw = float(np.arctan2(heading[1], heading[0]))
        out.append(SunRgbdLabel(
            classname=parts[0],
            box_2d=np.array([x, y, x + w, y + h]),
            box=Box3D.from_yaw(v[4:7], 2.0 * half[[1, 0, 2]], yaw, UPRIGHT_FRAME),
            half_size=half,
            heading=heading,
        ))
    return out


def load_sunrgbd_frame(directory: str | Path) -> SunRgbdFrame:
    """Load one SUN RGB-D frame folder (see module docstring).

    Raises:
        DataError: a missing or malformed file.
    """
    import scipy.io

    d = Path(directory)
    files = {k: d / k for k in ("image.jpg", "depth_points.mat", "calib.txt")}
    for p in files.values():
        if not p.is_file():
            raise DataError(f"SUN RGB-D frame {d}: missing {p.name}")
    img = cv2.imread(str(files["image.jpg"]), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot read image {files['image.jpg']}")
    image = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    try:
        mat = scipy.io.loadmat(str(files["depth_points.mat"]))
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {files['depth_points.mat']}: {e}") from None
    arrays = [v for k, v in mat.items() if not k.startswith("__") and getattr(v, "ndim", 0) == 2]
    pts = next((a for a in arrays if a.shape[1] >= 6), None)
    if pts is None:
        raise DataError(f"{files['depth_points.mat']} holds no N x 6 point array "
                        f"(keys: {[k for k in mat if not k.startswith('__')]})")
    Rtilt, K = read_calib(files["calib.txt"])
    intr = CameraIntrinsics(image.shape[1], image.shape[0], K, frame_id=CAM_FRAME)
    labels = read_labels(d / "label.txt") if (d / "label.txt").is_file() else []
    fid = d.name.rsplit("_", 1)[-1]
    return SunRgbdFrame(fid, image, pts[:, :6].astype(np.float32), Rtilt, intr,
                        t_cam_from_upright(Rtilt), labels, d)
