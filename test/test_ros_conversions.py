"""Core types <-> messages: identical content through rclpy and rosbags factories."""

import numpy as np
import pytest

from spatial_ros.geometry.transforms import TransformTree, make_transform
from spatial_ros.io.msgs import MessageFactory
from spatial_ros.ros_conversions import (
    grounded_objects_to_msg,
    markers_for,
    msg_to_grounded_objects,
    relation_to_msg,
    tf_message_into_tree,
    tree_to_tf_message,
)
from spatial_ros.types import Box3D, GroundedObject, Relation, yaw_to_matrix


def _objects():
    return [
        GroundedObject("q0", "the red mug", "mug", 0.9,
                       Box3D.from_yaw([1.0, 0.2, 0.8], [0.1, 0.08, 0.12], 0.4, "base_link"),
                       np.array([10.0, 20.0, 50.0, 80.0]), 1.3, "vlm+lidar"),
        GroundedObject("q1", "the bowl", "bowl", 0.5,
                       Box3D.from_yaw([1.2, -0.3, 0.78], [0.2, 0.2, 0.08], -1.0, "base_link"),
                       None, float("nan"), "vlm"),
    ]




def test_grounded_array_roundtrip(factory):
    objs = _objects()
    msg = grounded_objects_to_msg(objs, 1_700_000_000_123_456_789, "base_link", factory)
    stamp, frame, back = msg_to_grounded_objects(msg)
    assert stamp == 1_700_000_000_123_456_789 and frame == "base_link"
    for a, b in zip(objs, back, strict=True):
        assert (a.id, a.query, a.label, a.source) == (b.id, b.query, b.label, b.source)
        assert np.allclose(a.box.corners(), b.box.corners(), atol=1e-6)
        assert b.score == pytest.approx(a.score)
    assert np.allclose(back[0].box_2d, [10, 20, 50, 80]) and back[1].box_2d is None
    assert back[1].distance == 0.0  # NaN is sent as 0 (unknown)
    empty = grounded_objects_to_msg([], 5, "base_link", factory)
    assert msg_to_grounded_objects(empty) == (5, "base_link", [])


def test_markers_and_relations(factory):
    objs = _objects()
    rel = Relation("q0", "q1", "distance", 0.54, "m", "0.54 m")
    ma = markers_for(objs, [rel], 10, "base_link", factory)
    kinds = [(m.ns, m.type) for m in ma.markers]
    assert kinds[0] == ("spatial_ros", 0) and ma.markers[0].action == 3
    assert kinds.count(("boxes", 5)) == 2 and kinds.count(("labels", 9)) == 2
    assert ("distances", 5) in kinds
    box_marker = next(m for m in ma.markers if m.ns == "boxes")
    assert len(box_marker.points) == 24  # 12 edges
    r = relation_to_msg(rel, 10, "base_link", factory)
    assert r.predicate == "distance" and r.value == pytest.approx(0.54)


def test_tf_roundtrip():
    tree = TransformTree()
    tree.set("base_link", "lidar", make_transform(yaw_to_matrix(0.3), [0.1, 0.0, 1.7]))
    tree.set("base_link", "camera_link", make_transform(None, [0.2, 0.0, 1.6]))
    msg = tree_to_tf_message(tree, 0, MessageFactory.rosbags())
    back = tf_message_into_tree(msg)
    assert np.allclose(back.lookup("lidar", "camera_link"), tree.lookup("lidar", "camera_link"))
