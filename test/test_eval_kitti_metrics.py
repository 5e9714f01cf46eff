"""KITTI class-aware / class-agnostic detection and the targets by LiDAR support, on
hand-built frames whose matches are known."""

from __future__ import annotations

import pytest

from spatial_ros.boxfile import BoxFrame, BoxRecord
from spatial_ros.evaluation import kitti_metrics as K
from spatial_ros.evaluation.runs import kitti_type
from spatial_ros.types import Box3D


def rec(label, x, y, size=(4.0, 1.7, 1.5), score=1.0, points=None):
    extra = {} if points is None else {"lidar_points": points}
    return BoxRecord(f"{label}_{x}_{y}", label, Box3D.from_yaw([x, y, 0.75], size, 0.0,
                                                             "velodyne"), None, score, extra)


@pytest.fixture
def frames():
    truth = [BoxFrame(1, "velodyne", [
        rec("Car", 10, 0, points=500),            # found as car
        rec("Van", 20, 0, points=300),            # found as car: KITTI's neighbour class
        rec("Pedestrian", 8, 5, (0.8, 0.6, 1.7), points=80),  # found as cyclist: wrong type
        rec("Cyclist", 30, 5, (1.8, 0.6, 1.7), points=20),    # missed, but only 20 points
        rec("Car", 40, 0, points=60),             # missed
    ])]
    cand = [BoxFrame(1, "velodyne", [
        rec("car", 10.1, 0, score=0.9),
        rec("car", 20.1, 0, score=0.8),
        rec("cyclist", 8.0, 5.0, (0.8, 0.6, 1.7), score=0.7),
        rec("car", 60, 0, score=0.6),             # nothing there
    ])]
    return cand, truth


def test_class_agnostic_and_class_aware(frames):
    cand, truth = frames
    per = K.class_detection(cand, truth, 0.5, kitti_type)
    assert set(per) == {"Car", "Van", "Pedestrian", "Cyclist"}
    # Car: the van is ignored (neither hit nor miss), the car box on it is no false positive
    assert (per["Car"].tp, per["Car"].n_truth, per["Car"].fp, per["Car"].ignored) == (1, 2, 1, 1)
    # Van: no van-typed candidate; the van counts as missed
    assert (per["Van"].tp, per["Van"].n_truth) == (0, 1)
    # Pedestrian: the cyclist-typed box is not a pedestrian hit
    assert (per["Pedestrian"].tp, per["Pedestrian"].n_truth) == (0, 1)
    assert (per["Cyclist"].tp, per["Cyclist"].fp) == (0, 1)
    s = K.class_aware_summary(per)
    assert (s["tp"], s["n_truth"]) == (1, 5) and s["recall"] == pytest.approx(0.2)


def test_point_targets(frames):
    cand, truth = frames
    t = K.point_targets(cand, truth, kitti_type, iou=0.5, min_points=50)
    # vehicles with >= 50 points: car@10 (hit), van@20 (hit, typed car: neighbour = right),
    # car@40 (missed); people: the pedestrian (hit, typed cyclist: wrong); the cyclist has
    # only 20 points
    assert t["vehicles"] == {"n": 3, "hits": 2, "recall": pytest.approx(2 / 3, abs=1e-4),
                             "class_right": 2, "class_right_share": 1.0}
    assert t["people"]["n"] == 1 and t["people"]["hits"] == 1 and t["people"]["class_right"] == 0
    assert t["class_right_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert t["boxes_per_frame"] == {"max": 4, "mean": 4.0}


def test_kitti_type_of_specialist_labels():
    assert [kitti_type(x) for x in ("car", "van", "truck", "pedestrian", "cyclist", "pole",
                                    "misc", "")] == [
        "Car", "Van", "Truck", "Pedestrian", "Cyclist", "Misc", "Misc", "Misc"]
