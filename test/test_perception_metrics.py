"""The perception scorer on hand-made truth with exact answers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from spatial_ros.geometry.transforms import TransformTree, make_transform
from spatial_ros.perception_metrics import (
    GroundingScore,
    candidate_recall,
    grounding_queries,
    score_frame,
    sensor_origins,
)
from spatial_ros.types import Box3D, GroundedObject, Relation


def _truth_obj(oid, caption, center, size=(0.2, 0.2, 0.2), ambiguous=(), visible=1.0,
               lidar=100, category="mug", in_view=True):
    return SimpleNamespace(
        id=oid, caption=caption, category=category, ambiguous_with=list(ambiguous),
        box=Box3D.from_yaw(center, size, 0.0, "base_link"), visible_fraction=visible,
        box_2d=np.array([0, 0, 10, 10.0]) if in_view else None, lidar_points=lidar,
    )


TRUTH = SimpleNamespace(stamp_ns=7, objects=[
    _truth_obj("mug_0", "the red mug", [2.0, 0.0, 0.1]),
    _truth_obj("bowl_0", "the blue bowl", [2.0, 1.0, 0.1]),
    _truth_obj("can_0", "the green can", [3.0, 0.0, 0.1], ambiguous=["can_1"]),
    _truth_obj("can_1", "the green can", [3.0, 0.5, 0.1], ambiguous=["can_0"]),
    _truth_obj("ball_0", "the ball", [1.0, 0.0, 0.1], visible=0.1),
    _truth_obj("grip", "the gripper", [1.0, 0.0, 0.5], category="gripper"),
    _truth_obj("box_0", "the box", [1.0, 2.0, 0.1], in_view=False, lidar=5),
])
ORIGINS = {"camera": np.zeros(3), "lidar": np.array([0.0, 0.0, 1.0])}


def _obj(oid, query, center, size=(0.2, 0.2, 0.2), source="vlm+lidar", origin=np.zeros(3)):
    c = np.asarray(center, float)
    return GroundedObject(oid, query, "", 1.0, Box3D.from_yaw(c, size, 0.0, "base_link"),
                          distance=float(np.linalg.norm(c - origin)), source=source)


def test_grounding_queries_keep_unambiguous_visible_objects():
    assert grounding_queries(TRUTH) == ["the red mug", "the blue bowl"]
    assert "the ball" in grounding_queries(TRUTH, min_visible_fraction=0.05)


def test_scores_exact_half_iou_miss_and_pairs():
    # mug: exact box; bowl: shifted by half its width (IoU = 1/3); the can is ambiguous (ignored)
    objs = [_obj("q0", "the red mug", [2.0, 0.0, 0.1]),
            _obj("q1", "the blue bowl", [2.0, 1.1, 0.1]),
            _obj("q2", "the green can", [3.0, 0.0, 0.1])]
    rels = [Relation("q0", "q1", "distance", 1.05, "m", ""),
            Relation("sensor", "q0", "distance", 2.0, "m", "")]
    qs = ["the red mug", "the blue bowl", "the green can", "the yellow duck"]
    outcomes, pairs = score_frame(objs, TRUTH, qs, ORIGINS, rels)
    assert [o.query for o in outcomes] == ["the red mug", "the blue bowl"]
    mug, bowl = outcomes
    assert mug.iou == pytest.approx(1.0) and mug.distance_error == pytest.approx(0.0)
    assert bowl.iou == pytest.approx(1 / 3)
    # bowl distance: sqrt(4 + 1.21 + 0.01) vs sqrt(4 + 1 + 0.01)
    want = abs(math.sqrt(5.22) - math.sqrt(5.01)) / math.sqrt(5.01)
    assert bowl.distance_error == pytest.approx(want)
    assert len(pairs) == 1 and pairs[0].true_distance == pytest.approx(1.0)
    assert pairs[0].error == pytest.approx(0.05)
    s = GroundingScore(outcomes, pairs)
    assert s.accuracy(0.25) == 1.0 and s.accuracy(0.5) == 0.5
    assert s.distance_within(0.10) == 1.0 and s.distance_within(0.01) == 0.5
    assert s.pair_within(0.10) == 1.0 and s.pair_within(0.04) == 0.0


def test_missing_objects_count_as_misses_and_lidar_distances_use_the_lidar_origin():
    lidar_obj = _obj("lidar_0", "the red mug", [2.0, 0.0, 0.1], source="lidar",
                     origin=ORIGINS["lidar"])
    outcomes, _ = score_frame([lidar_obj], TRUTH, ["the red mug", "the blue bowl"], ORIGINS)
    mug, bowl = outcomes
    assert mug.distance_error == pytest.approx(0.0)  # measured from the LiDAR, as published
    assert not bowl.found and bowl.iou == 0.0 and math.isnan(bowl.distance_error)
    s = GroundingScore(outcomes)
    assert s.accuracy() == 0.5 and s.found_rate() == 0.5
    assert math.isnan(GroundingScore().accuracy())
    d = s.as_dict()
    assert d["queries"] == 2 and d["acc_iou25"] == 0.5 and math.isnan(d["pair_within_10pct"])


def test_candidate_recall_counts_objects_with_enough_returns():
    objs = [_obj("a", "", [2.0, 0.0, 0.1]), _obj("b", "", [2.0, 1.15, 0.1])]  # bowl IoU 0.14
    assert candidate_recall(objs, TRUTH, 0.5, 30) == (1, 6)
    assert candidate_recall(objs, TRUTH, 0.1, 30) == (2, 6)


def test_sensor_origins_from_transforms():
    tf = TransformTree()
    tf.set("base_link", "cam", make_transform(None, [0.1, 0.2, 0.3]))
    tf.set("base_link", "lidar", make_transform(None, [0.0, 0.0, 0.9]))
    o = sensor_origins(tf, "base_link", "cam")
    np.testing.assert_allclose(o["camera"], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(o["lidar"], [0.0, 0.0, 0.9])
    from spatial_ros.errors import CalibrationError

    with pytest.raises(CalibrationError, match="'nowhere'"):
        sensor_origins(tf, "base_link", "nowhere")
