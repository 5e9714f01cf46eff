"""Core types: boxes, transforms, the box file format."""

import numpy as np
import pytest

from spatial_ros.boxfile import BoxFrame, BoxRecord, read_box_file, write_box_file
from spatial_ros.errors import CalibrationError, DataError
from spatial_ros.geometry.transforms import (
    R_BODY_FROM_OPTICAL,
    TransformTree,
    invert,
    make_transform,
    matrix_to_quaternion,
    quaternion_to_matrix,
)
from spatial_ros.types import Box3D, yaw_to_matrix


def test_box_corners_and_contains():
    box = Box3D.from_yaw([1.0, 2.0, 0.5], [2.0, 1.0, 1.0], np.pi / 2)
    c = box.corners()
    assert c.shape == (8, 3)
    # Turned 90 degrees: x extent becomes the y extent.
    assert np.allclose(c.min(0), [0.5, 1.0, 0.0]) and np.allclose(c.max(0), [1.5, 3.0, 1.0])
    pts = np.array([[1.0, 2.9, 0.5], [1.4, 2.0, 0.5], [1.6, 2.0, 0.5]])
    assert box.contains(pts).tolist() == [True, True, False]
    assert box.yaw == pytest.approx(np.pi / 2)


def test_box_transform_roundtrip():
    rng = np.random.default_rng(0)
    box = Box3D.from_yaw(rng.normal(size=3), [1, 2, 3], 0.3, "a")
    T = make_transform(yaw_to_matrix(1.1), [1, -2, 3])
    back = box.transformed(T, "b").transformed(invert(T), "a")
    assert np.allclose(back.corners(), box.corners())
    assert back.frame_id == "a"


def test_quaternion_roundtrip():
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        R = quaternion_to_matrix(*q)
        assert np.allclose(R @ R.T, np.eye(3))
        q2 = np.array(matrix_to_quaternion(R))
        assert np.allclose(q2, q) or np.allclose(q2, -q)


def test_transform_tree_chain_and_optical():
    tree = TransformTree()
    tree.set("base_link", "camera", make_transform(translation=[0.1, 0, 1.0]))
    tree.set("camera", "camera_optical", make_transform(R_BODY_FROM_OPTICAL))
    tree.set("base_link", "lidar", make_transform(translation=[0, 0, 1.5]))
    # A point 2 m in front of the camera (optical z) is 2 m along base x.
    p_opt = np.array([0.0, 0.0, 2.0, 1.0])
    p_base = tree.lookup("base_link", "camera_optical") @ p_opt
    assert np.allclose(p_base[:3], [2.1, 0.0, 1.0])
    T = tree.lookup("camera_optical", "lidar")
    assert np.allclose(T @ tree.lookup("lidar", "camera_optical"), np.eye(4))
    with pytest.raises(CalibrationError, match="no transform"):
        tree.lookup("map", "lidar")


def test_box_file_roundtrip(tmp_path):
    frames = [
        BoxFrame(
            123,
            "base_link",
            [BoxRecord("o1", "mug", Box3D.from_yaw([1, 2, 3], [0.1, 0.1, 0.12], 0.5), "red mug",
                       0.9, {"color": "red"})],
        ),
        BoxFrame(456, "base_link", []),
    ]
    p = tmp_path / "b.jsonl"
    write_box_file(p, frames)
    back = read_box_file(p)
    assert [f.stamp_ns for f in back] == [123, 456]
    o = back[0].objects[0]
    assert o.label == "mug" and o.query == "red mug" and o.extra == {"color": "red"}
    assert np.allclose(o.box.center, [1, 2, 3]) and o.box.yaw == pytest.approx(0.5)
    p.write_text('{"stamp_ns": 1}\n')
    with pytest.raises(DataError, match=":1:"):
        read_box_file(p)
