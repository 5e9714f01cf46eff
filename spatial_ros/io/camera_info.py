"""sensor_msgs/CameraInfo <-> ``CameraIntrinsics`` (rclpy and rosbags messages alike).

Binning and region of interest are applied the way ``image_geometry.PinholeCameraModel`` does:
the intrinsics describe the image actually published, i.e. ROI cropped from the full-resolution
sensor and then binned: ``fx' = fx / bx``, ``cx' = (cx - roi.x_offset) / bx`` (same for y).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spatial_ros.errors import CalibrationError
from spatial_ros.io.msgs import MessageFactory, stamp_to_ns
from spatial_ros.types import CameraIntrinsics

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")


@dataclass(eq=False)
class CameraInfoModel:
    """Everything a CameraInfo says, in core types (binning/ROI already applied).

    Attributes:
        intrinsics: raw (distorted) camera model of the published image.
        P: (3, 4) projection matrix of the rectified image (pixels; for stereo the 4th column
            holds -fx' * baseline).
        R: (3, 3) rectification rotation (rectified optical frame from the raw optical frame).
        binning: (bx, by), 1 = none.
        roi: (x_offset, y_offset, width, height) in full-resolution pixels; zeros = full image.
        stamp_ns: header stamp.
    """

    intrinsics: CameraIntrinsics
    P: np.ndarray = field(default_factory=lambda: np.zeros((3, 4)))
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    binning: tuple[int, int] = (1, 1)
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)
    stamp_ns: int = 0

    def rectified_intrinsics(self) -> CameraIntrinsics:
        """Distortion-free intrinsics of the rectified image (from ``P``)."""
        i = self.intrinsics
        return CameraIntrinsics(i.width, i.height, self.P[:, :3].copy(), np.zeros(0),
                                "plumb_bob", i.frame_id)


def camera_info_to_model(msg: Any) -> CameraInfoModel:
    """Full ``CameraInfoModel`` of a CameraInfo (see ``camera_info_to_intrinsics``)."""
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.any(K) or not np.all(np.isfinite(K)):
        raise CalibrationError(
            f"CameraInfo on frame {msg.header.frame_id!r} has an all-zero or non-finite K: the "
            "camera is not calibrated; calibrate it (camera_calibration) or set the intrinsics "
            "in the config"
        )
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise CalibrationError(f"CameraInfo K has non-positive focal lengths fx={K[0, 0]}, "
                               f"fy={K[1, 1]}; fix the calibration")
    P = np.asarray(msg.p, dtype=np.float64).reshape(3, 4).copy()
    R = np.asarray(msg.r, dtype=np.float64).reshape(3, 3).copy()
    if not np.any(R):
        R = np.eye(3)
    if not np.any(P):
        P[:, :3] = K
    bx, by = max(int(msg.binning_x), 1), max(int(msg.binning_y), 1)
    roi = msg.roi
    rx, ry, rw, rh = int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise CalibrationError(f"CameraInfo image size {width}x{height} is invalid")
    full_roi = rw == 0 or rh == 0 or (rx == 0 and ry == 0 and rw == width and rh == height)
    if full_roi:
        rx = ry = 0
        rw, rh = width, height
    scale = np.diag([1.0 / bx, 1.0 / by, 1.0])
    shift = np.array([[1.0, 0.0, -rx], [0.0, 1.0, -ry], [0.0, 0.0, 1.0]])
    A = scale @ shift  # full-res pixel -> published pixel
    intr = CameraIntrinsics(
        width=rw // bx,
        height=rh // by,
        K=A @ K,
        D=np.asarray(msg.d, dtype=np.float64).copy(),
        distortion_model=str(msg.distortion_model) or "plumb_bob",
        frame_id=str(msg.header.frame_id) or "camera_optical_frame",
    )
    return CameraInfoModel(
        intrinsics=intr,
        P=A @ P,
        R=R,
        binning=(bx, by),
        roi=(0, 0, 0, 0) if full_roi else (rx, ry, rw, rh),
        stamp_ns=stamp_to_ns(msg.header),
    )


def camera_info_to_intrinsics(msg: Any) -> CameraIntrinsics:
    """``CameraIntrinsics`` of the image published with this CameraInfo.

    K, D and the distortion model are taken as is; binning and ROI are applied (see module
    docstring); the frame is ``header.frame_id`` (the camera optical frame).

    Raises:
        CalibrationError: K all zeros (uncalibrated camera), non-positive focal lengths or an
            invalid image size.
    """
    return camera_info_to_model(msg).intrinsics


def intrinsics_to_camera_info(
    intr: CameraIntrinsics,
    stamp_ns: int,
    factory: MessageFactory,
    P: np.ndarray | None = None,
    R: np.ndarray | None = None,
) -> Any:
    """A CameraInfo for ``intr`` (no binning, full ROI).

    Args:
        intr: the camera; ``intr.frame_id`` becomes ``header.frame_id``.
        stamp_ns: header stamp, integer nanoseconds.
        factory: builds rclpy or rosbags messages.
        P: (3, 4) rectified projection; default ``[K | 0]``.
        R: (3, 3) rectification rotation; default identity.
    """
    D = intr.D if intr.D.size else np.zeros(5 if intr.distortion_model == "plumb_bob" else 0)
    if P is None:
        P = np.hstack([intr.K, np.zeros((3, 1))])
    return factory.new(
        "sensor_msgs/msg/CameraInfo",
        header=factory.header(stamp_ns, intr.frame_id),
        height=int(intr.height),
        width=int(intr.width),
        distortion_model=intr.distortion_model,
        d=np.asarray(D, dtype=np.float64),
        k=intr.K.reshape(-1),
        r=(np.eye(3) if R is None else np.asarray(R, dtype=np.float64)).reshape(-1),
        p=np.asarray(P, dtype=np.float64).reshape(-1),
    )
