"""The perception-output scorer (an adapter over spatial_ros.evaluation.metrics) on hand-made
truth with exact answers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from spatial_ros.boxfile import BoxFrame, BoxRecord
from spatial_ros.perception_metrics import (
    candidate_recall,
    grounding_queries,
    score_outputs,
    truth_box_frame,
)
from spatial_ros.types import Box3D, GroundedObject, Relation


def _truth_obj(oid, caption, center, size=(0.2, 0.2, 0.2), ambiguous=(), visible=1.0,
               lidar=100, category="mug", in_view=True):
    return SimpleNamespace(
        id=oid, caption=caption, category=category, ambiguous_with=list(ambiguous),
        box=Box3D.from_yaw(center, size, 0.0, "base_link"), visible_fraction=visible,
        box_2d=np.array([0, 0, 10, 10.0]) if in_view else None, lidar_points=lidar,
    )


def _frame_truth(objects, stamp=7):
    """A FrameTruth stand-in: objects + box_frame() as sim.truth.FrameTruth writes it."""
    ft = SimpleNamespace(stamp_ns=stamp, objects=objects)
    ft.box_frame = lambda: BoxFrame(stamp, "base_link", [
        BoxRecord(o.id, o.category, o.box, o.caption, 1.0, {}) for o in objects], {})
    return ft


TRUTH = _frame_truth([
    _truth_obj("mug_0", "the red mug", [2.0, 0.0, 0.1]),
    _truth_obj("bowl_0", "the blue bowl", [2.0, 1.0, 0.1]),
    _truth_obj("can_0", "the green can", [3.0, 0.0, 0.1], ambiguous=["can_1"]),
    _truth_obj("can_1", "the green can", [3.0, 0.5, 0.1], ambiguous=["can_0"]),
    _truth_obj("ball_0", "the ball", [1.0, 0.0, 0.1], visible=0.1),
    _truth_obj("grip", "the gripper", [1.0, 0.0, 0.5], category="gripper"),
    _truth_obj("box_0", "the box", [1.0, 2.0, 0.1], in_view=False, lidar=5),
])
ORIGINS = {"camera": [0.0, 0.0, 0.0], "lidar": [0.0, 0.0, 1.0]}


def _obj(oid, query, center, size=(0.2, 0.2, 0.2), source="vlm+lidar", origin=(0, 0, 0)):
    c = np.asarray(center, float)
    return GroundedObject(oid, query, "", 1.0, Box3D.from_yaw(c, size, 0.0, "base_link"),
                          distance=float(np.linalg.norm(c - np.asarray(origin, float))),
                          source=source)


def test_grounding_queries_keep_unambiguous_visible_objects():
    assert grounding_queries(TRUTH) == ["the red mug", "the blue bowl"]
    assert "the ball" in grounding_queries(TRUTH, min_visible_fraction=0.05)


def test_truth_frame_takes_the_published_stamp_and_lidar_points():
    bf = truth_box_frame(TRUTH, 99)
    assert bf.stamp_ns == 99 and [r.extra["lidar_points"] for r in bf.objects][-1] == 5


def test_exact_shifted_and_missing_objects_and_pairs():
    # frame 1: mug exact; bowl shifted by half its width (3D IoU = 1/3); the can is ambiguous
    objs = [_obj("q0", "the red mug", [2.0, 0.0, 0.1]),
            _obj("q1", "the blue bowl", [2.0, 1.1, 0.1]),
            _obj("q2", "the green can", [3.0, 0.0, 0.1])]
    rels = [Relation("q0", "q1", "distance", 1.05, "m", ""),
            Relation("sensor", "q0", "distance", 2.0, "m", "")]
    # frame 2 (another stamp): only a LiDAR candidate-like object for the mug
    lidar_mug = _obj("q0", "the red mug", [2.0, 0.0, 0.1], source="lidar",
                     origin=ORIGINS["lidar"])
    qs = ["the red mug", "the blue bowl", "the green can", "the yellow duck"]
    s = score_outputs([(objs, rels, 100, TRUTH), ([lidar_mug], [], 200, TRUTH)], qs, ORIGINS)
    # scorable: mug + bowl in each frame; the ambiguous can and the unknown duck are not
    assert s.n == 4 and s.grounding.missing == 1
    assert s.grounding.ambiguous == {"the green can": 2}
    assert s.accuracy(0.25) == 0.75 and s.accuracy(0.5) == 0.5
    np.testing.assert_allclose(sorted(s.grounding.ious_3d), [0.0, 1 / 3, 1.0, 1.0])
    # sensor distances of the 3 grounded queries; the bowl's is measured to a shifted box:
    want = abs(math.sqrt(5.22) - math.sqrt(5.01)) / math.sqrt(5.01)
    errs = sorted(e for _, e in s.distance_errors)
    np.testing.assert_allclose(errs, [0.0, 0.0, want], atol=1e-12)
    assert s.sources() == {"vlm+lidar", "lidar"}  # the LiDAR one measured from the LiDAR
    assert s.distance_within(0.10) == 1.0 and s.distance_within(0.01) == pytest.approx(2 / 3)
    # the published pair relation 1.05 m vs the true 1.0 m
    np.testing.assert_allclose(s.pair_errors, [0.05])
    assert s.pair_within(0.10) == 1.0 and s.pair_within(0.04) == 0.0
    d = s.as_dict()
    assert d["queries"] == 4 and d["pairs"] == 1 and d["acc_iou25"] == 0.75


def test_min_iou_gates_distance_scoring_and_empty_scores_are_nan():
    far = [_obj("q0", "the red mug", [2.5, 0.0, 0.1])]  # IoU 0: a wrong object
    s = score_outputs([(far, [], 1, TRUTH)], ["the red mug"], ORIGINS)
    assert s.accuracy() == 0.0 and s.distance_errors == []
    assert math.isnan(s.distance_within()) and math.isnan(s.pair_within())
    # a pair relation with a wrong object: kept in pair_errors_all only
    objs = far + [_obj("q1", "the blue bowl", [2.0, 1.0, 0.1])]
    rels = [Relation("q0", "q1", "distance", 1.1, "m", "")]
    s = score_outputs([(objs, rels, 1, TRUTH)], ["the red mug", "the blue bowl"], ORIGINS)
    assert s.pair_errors == [] and len(s.pair_errors_all) == 1
    assert s.as_dict()["pairs_all"] == 1


def test_candidate_recall_ignores_objects_with_few_returns():
    objs = [_obj("a", "", [2.0, 0.0, 0.1], source="lidar"),
            _obj("b", "", [2.0, 1.15, 0.1], source="lidar"),  # bowl: BEV IoU 0.14
            _obj("c", "", [1.0, 2.0, 0.1], source="lidar")]  # the 5-point box: ignored
    r = candidate_recall([(objs, 5, TRUTH)], 0.5, 30)
    assert (r.tp, r.n_truth, r.ignored) == (1, 6, 1) and r.recall == pytest.approx(1 / 6)
    assert candidate_recall([(objs, 5, TRUTH)], 0.1, 30).tp == 2
