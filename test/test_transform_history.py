"""TransformHistory (/tf): interpolation, nearest-within-gap, pruning, order; TFMessage parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spatial_ros.errors import CalibrationError, ConfigError
from spatial_ros.geometry.transforms import (
    TransformHistory,
    TransformTree,
    make_transform,
)
from spatial_ros.io.msgs import MessageFactory
from spatial_ros.ros_conversions import (
    tf_message_into_history,
    tf_message_into_tree,
    tree_to_tf_message,
)
from spatial_ros.types import yaw_to_matrix

MS = 1_000_000
T0 = 1_700_000_000_000_000_000  # realistic epoch stamps: exact integer ns arithmetic matters


def _pose(yaw: float, xyz) -> np.ndarray:
    return make_transform(yaw_to_matrix(yaw), xyz)


def _history(**kw) -> TransformHistory:
    h = TransformHistory(**kw)
    h.set("base_link", "gripper_tcp", _pose(0.0, [0.0, 0.0, 1.0]), T0)
    h.set("base_link", "gripper_tcp", _pose(1.0, [0.2, -0.4, 0.6]), T0 + 40 * MS)
    return h


def test_midpoint_interpolates_translation_linearly_and_rotation_by_slerp():
    T = _history().tree_at(T0 + 20 * MS).lookup("base_link", "gripper_tcp")
    assert np.allclose(T[:3, 3], [0.1, -0.2, 0.8], atol=1e-12, rtol=0)
    assert np.allclose(T[:3, :3], yaw_to_matrix(0.5), atol=1e-12, rtol=0)
    # a quarter of the way: yaw 0.25 exactly (slerp is uniform in angle)
    T = _history().tree_at(T0 + 10 * MS).lookup("base_link", "gripper_tcp")
    assert np.allclose(T[:3, :3], yaw_to_matrix(0.25), atol=1e-12, rtol=0)
    assert np.allclose(T[:3, 3], [0.05, -0.1, 0.9], atol=1e-12, rtol=0)


def test_slerp_takes_the_short_way_round():
    h = TransformHistory()
    h.set("a", "b", _pose(math.pi - 0.1, [0, 0, 0]), T0)
    h.set("a", "b", _pose(-math.pi + 0.1, [0, 0, 0]), T0 + 2)
    R = h.tree_at(T0 + 1).lookup("a", "b")[:3, :3]
    assert np.allclose(R, yaw_to_matrix(math.pi), atol=1e-12, rtol=0)


def test_exact_stamp_returns_the_sample_itself():
    h = _history()
    T = h.tree_at(T0 + 40 * MS).lookup("base_link", "gripper_tcp")
    assert np.array_equal(T, _pose(1.0, [0.2, -0.4, 0.6]))


def test_nearest_sample_within_gap_else_edge_left_out():
    h = _history(max_gap_ns=100 * MS)
    after = h.tree_at(T0 + 140 * MS).lookup("base_link", "gripper_tcp")  # 100 ms after the last
    assert np.array_equal(after, _pose(1.0, [0.2, -0.4, 0.6]))
    before = h.tree_at(T0 - 100 * MS).lookup("gripper_tcp", "base_link")  # inverse direction
    assert np.allclose(before @ _pose(0.0, [0.0, 0.0, 1.0]), np.eye(4), atol=1e-12)
    late = h.tree_at(T0 + 140 * MS + 1)
    assert not late.can_transform("base_link", "gripper_tcp")
    with pytest.raises(CalibrationError, match=r"/tf edge 'base_link' -> 'gripper_tcp'.*100 ms"):
        late.lookup("base_link", "gripper_tcp")
    with pytest.raises(CalibrationError, match="no sample within"):
        h.tree_at(T0 - 100 * MS - 1).lookup("base_link", "gripper_tcp")


def test_out_of_order_insert_and_same_stamp_replaces():
    h = TransformHistory()
    for k in (3, 0, 2, 1):
        h.set("base_link", "tool", _pose(0.0, [k, 0, 0]), T0 + k * 10 * MS)
    assert h.stamps("base_link", "tool") == [T0 + k * 10 * MS for k in range(4)]
    h.set("base_link", "tool", _pose(0.0, [7, 0, 0]), T0 + 10 * MS)  # replaces k=1
    assert h.stamps("base_link", "tool") == [T0 + k * 10 * MS for k in range(4)]
    for k, x in enumerate([0, 7, 2, 3]):
        T = h.tree_at(T0 + k * 10 * MS).lookup("base_link", "tool")
        assert T[0, 3] == x
    assert h.tree_at(T0 + 15 * MS).lookup("base_link", "tool")[0, 3] == pytest.approx(4.5)


def test_pruning_keeps_cache_behind_newest():
    h = TransformHistory(cache_ns=100 * MS)
    for k in range(10):
        h.set("base_link", "tool", _pose(0.0, [k, 0, 0]), T0 + k * 50 * MS)
    assert h.stamps("base_link", "tool") == [T0 + k * 50 * MS for k in (7, 8, 9)]
    h.set("base_link", "tool", _pose(0.0, [0, 0, 0]), T0)  # too old: dropped at once
    assert h.stamps("base_link", "tool")[0] == T0 + 350 * MS
    assert not h.tree_at(T0).can_transform("base_link", "tool")


def test_jump_back_resets_only_when_asked():
    h = TransformHistory(reset_on_jump_back_ns=500 * MS)
    h.set("base_link", "tool", _pose(0.0, [1, 0, 0]), T0 + 20_000 * MS)
    h.set("base_link", "tool", _pose(0.0, [2, 0, 0]), T0)  # bag loop: 20 s back
    assert h.stamps("base_link", "tool") == [T0]
    plain = TransformHistory()
    plain.set("base_link", "tool", _pose(0.0, [1, 0, 0]), T0 + 20_000 * MS)
    plain.set("base_link", "tool", _pose(0.0, [2, 0, 0]), T0)  # pruned (older than the cache)
    assert plain.stamps("base_link", "tool") == [T0 + 20_000 * MS]


def test_tree_at_copies_base_and_leaves_it_unchanged():
    base = TransformTree()
    base.set("base_link", "camera_link", make_transform(translation=[0.1, 0, 1.2]))
    h = _history()
    tree = h.tree_at(T0 + 20 * MS, base=base)
    assert base.frames == ["base_link", "camera_link"]
    assert not base.can_transform("camera_link", "gripper_tcp")
    T = tree.lookup("camera_link", "gripper_tcp")
    assert np.allclose(T[:3, 3], [0.0, -0.2, -0.4], atol=1e-12)
    tree.set("base_link", "other", np.eye(4))
    assert "other" not in base.frames
    copy = base.copy()
    copy.set("base_link", "camera_link", np.eye(4))
    assert base.lookup("base_link", "camera_link")[2, 3] == 1.2


@pytest.mark.parametrize(
    "kw", [dict(max_gap_ns=-1), dict(cache_ns=0), dict(reset_on_jump_back_ns=0)]
)
def test_bad_settings_are_config_errors(kw):
    with pytest.raises(ConfigError, match="TransformHistory needs"):
        TransformHistory(**kw)


def test_set_rejects_bad_frames_and_nonfinite():
    h = TransformHistory()
    with pytest.raises(CalibrationError, match="bad transform frames"):
        h.set("a", "a", np.eye(4), T0)
    T = np.eye(4)
    T[0, 3] = np.nan
    with pytest.raises(CalibrationError, match="non-finite"):
        h.set("a", "b", T, T0)
    assert h.edges() == []


def test_tf_message_into_history_uses_each_header_stamp():
    f = MessageFactory.rosbags()
    one = TransformTree()
    one.set("base_link", "gripper_tcp", _pose(0.3, [0.5, 0.1, 0.9]))
    msg = tree_to_tf_message(one, T0, f)
    h = tf_message_into_history(msg)
    later = tree_to_tf_message(TransformTree(), 0, f)
    later.transforms = [tree_to_tf_message(one, T0 + 40 * MS, f).transforms[0]]
    later.transforms[0].transform.translation.x = 0.7
    tf_message_into_history(later, h)
    assert h.stamps("base_link", "gripper_tcp") == [T0, T0 + 40 * MS]
    T = h.tree_at(T0 + 20 * MS).lookup("base_link", "gripper_tcp")
    assert np.allclose(T[:3, 3], [0.6, 0.1, 0.9], atol=1e-12)
    assert np.allclose(T[:3, :3], yaw_to_matrix(0.3), atol=1e-12)
    # the static path parses the same way (stamps ignored)
    assert np.allclose(tf_message_into_tree(msg).lookup("base_link", "gripper_tcp"),
                       _pose(0.3, [0.5, 0.1, 0.9]), atol=1e-12)


def test_bad_tf_message_changes_nothing():
    f = MessageFactory.rosbags()
    tree = TransformTree()
    tree.set("base_link", "a", np.eye(4))
    tree.set("base_link", "b", np.eye(4))
    msg = tree_to_tf_message(tree, T0, f)
    msg.transforms[1].transform.rotation.w = 0.0  # zero quaternion
    h = TransformHistory()
    with pytest.raises(CalibrationError, match="invalid quaternion"):
        tf_message_into_history(msg, h)
    assert h.edges() == []
    msg.transforms[1].transform.rotation.w = 1.0
    msg.transforms[1].child_frame_id = ""
    with pytest.raises(CalibrationError, match="bad TransformStamped frames"):
        tf_message_into_tree(msg)
