"""CameraInfo <-> CameraIntrinsics, binning/ROI, uncalibrated cameras; rclpy == rosbags."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.errors import CalibrationError
from spatial_ros.io.camera_info import (
    camera_info_to_intrinsics,
    camera_info_to_model,
    intrinsics_to_camera_info,
)
from spatial_ros.io.msgs import MessageFactory, default_typestore, stamp_to_ns
from spatial_ros.types import CameraIntrinsics

K = np.array([[600.0, 0.0, 321.5], [0.0, 605.0, 239.25], [0.0, 0.0, 1.0]])
D = np.array([-0.2, 0.05, 0.001, -0.002, 0.01])




def test_roundtrip(factory):
    intr = CameraIntrinsics(640, 480, K, D, "plumb_bob", "cam_optical")
    msg = intrinsics_to_camera_info(intr, 1_000_000_007, factory)
    assert stamp_to_ns(msg.header) == 1_000_000_007 and msg.header.frame_id == "cam_optical"
    back = camera_info_to_intrinsics(msg)
    assert (back.width, back.height, back.distortion_model, back.frame_id) == (
        640, 480, "plumb_bob", "cam_optical")
    np.testing.assert_array_equal(back.K, K)
    np.testing.assert_array_equal(back.D, D)
    model = camera_info_to_model(msg)
    np.testing.assert_array_equal(model.P, np.hstack([K, np.zeros((3, 1))]))
    np.testing.assert_array_equal(model.R, np.eye(3))
    # No distortion given -> 5 zeros for plumb_bob, as camera drivers publish it.
    plain = intrinsics_to_camera_info(CameraIntrinsics(640, 480, K), 0, factory)
    assert list(plain.d) == [0.0] * 5
    assert not camera_info_to_intrinsics(plain).has_distortion


def test_binning_and_roi_map_pixels_exactly(factory):
    """A 3D point projects to pixel (u, v) at full resolution; in the published image (ROI
    cropped at (100, 40), then binned 2 x 4) it must land at ((u-100)/2, (v-40)/4)."""
    msg = intrinsics_to_camera_info(CameraIntrinsics(1280, 960, K), 0, factory)
    msg.binning_x, msg.binning_y = 2, 4
    msg.roi = factory.new("sensor_msgs/msg/RegionOfInterest", x_offset=100, y_offset=40,
                          width=800, height=600)
    intr = camera_info_to_intrinsics(msg)
    assert (intr.width, intr.height) == (400, 150)
    p = np.array([0.3, -0.2, 2.5])
    u, v = (K @ p / p[2])[:2]
    u2, v2 = (intr.K @ p / p[2])[:2]
    assert u2 == pytest.approx((u - 100) / 2) and v2 == pytest.approx((v - 40) / 4)
    model = camera_info_to_model(msg)
    assert model.binning == (2, 4) and model.roi == (100, 40, 800, 600)
    np.testing.assert_allclose(model.rectified_intrinsics().K, intr.K)


def test_full_image_roi_is_ignored(factory):
    msg = intrinsics_to_camera_info(CameraIntrinsics(640, 480, K), 0, factory)
    msg.roi = factory.new("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, width=640,
                          height=480)
    np.testing.assert_array_equal(camera_info_to_intrinsics(msg).K, K)
    assert camera_info_to_model(msg).roi == (0, 0, 0, 0)


def test_uncalibrated_camera_raises(factory):
    msg = factory.new("sensor_msgs/msg/CameraInfo", width=640, height=480)
    msg.header.frame_id = "cam"
    with pytest.raises(CalibrationError, match="all-zero.*calibrate"):
        camera_info_to_intrinsics(msg)
    bad = intrinsics_to_camera_info(CameraIntrinsics(640, 480, K), 0, factory)
    bad.width = 0
    with pytest.raises(CalibrationError, match="image size"):
        camera_info_to_intrinsics(bad)


def test_rclpy_and_rosbags_camera_info_agree():
    pytest.importorskip("sensor_msgs.msg")
    ser = pytest.importorskip("rclpy.serialization")
    intr = CameraIntrinsics(640, 480, K, D[:4].tolist() + [0.0, 0.1, 0.2, 0.3],
                            "rational_polynomial", "cam")
    P = np.hstack([K, np.array([[-30.0], [0.0], [0.0]])])
    m_rc = intrinsics_to_camera_info(intr, 5, MessageFactory.rclpy(), P=P)
    m_rb = intrinsics_to_camera_info(intr, 5, MessageFactory.rosbags(), P=P)
    ts = default_typestore()
    m_x = ts.deserialize_cdr(bytes(ser.serialize_message(m_rc)), "sensor_msgs/msg/CameraInfo")
    for m in (m_rb, m_x):
        a, b = camera_info_to_model(m), camera_info_to_model(m_rc)
        np.testing.assert_array_equal(a.intrinsics.K, b.intrinsics.K)
        np.testing.assert_array_equal(a.intrinsics.D, b.intrinsics.D)
        np.testing.assert_array_equal(a.P, P)
        assert a.intrinsics.distortion_model == "rational_polynomial" and a.stamp_ns == 5
