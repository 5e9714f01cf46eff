"""Evaluation metrics against hand-computed values (unit boxes whose IoUs are known exactly)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from spatial_ros.boxfile import BoxFrame, BoxRecord
from spatial_ros.errors import DataError
from spatial_ros.evaluation import metrics as M
from spatial_ros.types import Box3D

MS = 1_000_000


def rec(id_, x, y=0.0, *, query=None, label="", score=1.0, size=(1, 1, 1), yaw=0.0, **extra):
    return BoxRecord(
        id_, label, Box3D.from_yaw([x, y, 0.5], size, yaw, "base_link"), query, score, extra
    )


def frame(stamp, objects, **extra):
    return BoxFrame(stamp, "base_link", objects, extra)


def test_normalize_phrase_and_truth_lookup():
    assert M.normalize_phrase("  The Red   Mug. ") == "red mug"
    assert M.normalize_phrase("a cup?") == "cup"
    assert M.normalize_phrase(None) == ""
    t = frame(
        0,
        [
            rec("m", 0, query="the red mug", label="mug"),
            rec("b", 3, query="the blue bowl", label="bowl"),
        ],
    )
    assert [o.id for o in M.truth_for_query("Red mug", t)] == ["m"]  # by caption
    assert [o.id for o in M.truth_for_query("the bowl", t)] == ["b"]  # by label
    assert M.truth_for_query("the car", t) == []


def test_match_frames_nearest_stamp_within_tolerance():
    truth = [frame(s * 33 * MS, []) for s in range(5)]
    pred = [frame(66 * MS + 1000, []), frame(99 * MS - 2 * MS, []), frame(10_000 * MS, [])]
    got = M.match_frames(pred, truth, tolerance_ns=5 * MS)
    assert [t.stamp_ns if t else None for _, t in got] == [66 * MS, 99 * MS, None]


@pytest.fixture
def scene():
    """Truth: mug at x=1, bowl at x=3, two green cups (ambiguous), white box (never predicted)."""
    truth = frame(
        0,
        [
            rec("mug_0", 1, query="the red mug", label="mug"),
            rec("bowl_0", 3, query="the blue bowl", label="bowl"),
            rec("cup_0", 5, query="the green cup", label="cup"),
            rec("cup_1", 7, query="the green cup", label="cup"),
            rec("box_0", 9, query="the white box", label="box"),
        ],
    )
    pred = frame(
        0,
        [
            rec("q0", 1.5, query="the red mug", score=0.9, source="vlm", distance=1.0),  # IoU 1/3
            rec("q1", 3, query="the blue bowl", score=0.8, source="vlm", distance=2.0),  # IoU 1
            rec("q2", 5, query="the green cup", score=0.7),
        ],
    )
    return pred, truth


def test_grounding_accuracy_hand_computed(scene):
    pred, truth = scene
    queries = ["the red mug", "the blue bowl", "the green cup", "the white box", "the ball"]
    g = M.grounding_accuracy([pred], [truth], queries)
    # scorable: mug (1/3), bowl (1), white box (missing -> 0); cup ambiguous, ball unmatched
    assert g.n == 3 and g.missing == 1
    assert g.acc(0.25) == pytest.approx(2 / 3)
    assert g.acc(0.5) == pytest.approx(1 / 3)
    np.testing.assert_allclose(sorted(g.ious_3d), [0.0, 1 / 3, 1.0], atol=1e-9)
    d = g.to_dict()
    assert d["acc@0.25"] == pytest.approx(0.6667, abs=1e-4)
    assert d["mean_iou_3d"] == pytest.approx(4 / 9, abs=1e-4)
    assert d["ambiguous_queries"] == {"the green cup": 1}
    assert d["unmatched_queries"] == {"the ball": 1}
    assert d["per_query"]["the red mug"] == {
        "n": 1,
        "acc@0.25": 1.0,
        "acc@0.5": 0.0,
        "mean_iou_3d": pytest.approx(1 / 3, abs=1e-4),
    }


def test_grounding_refuses_boxes_in_another_frame(scene):
    pred, truth = scene
    pred.frame_id = "lidar"
    with pytest.raises(DataError, match="--output-frame base_link"):
        M.grounding_accuracy([pred], [truth], ["the red mug"])


def test_average_precision_hand_computed():
    # ranks: TP (P 1, R 1/3), FP (P 1/2), TP (P 2/3, R 2/3) -> AP = 1/3 * 1 + 1/3 * 2/3 = 5/9
    ap = M.average_precision(np.array([0.7, 0.9, 0.8]), np.array([True, True, False]), 3)
    assert ap == pytest.approx(5 / 9)
    assert M.average_precision(np.array([0.5]), np.array([True]), 1) == pytest.approx(1.0)
    assert M.average_precision(np.array([]), np.array([], bool), 2) == 0.0
    assert M.average_precision(np.array([0.5]), np.array([False]), 0) is None


def test_bev_detection_greedy_matching_duplicates_and_ignored():
    truth = frame(0, [rec("a", 0), rec("b", 3), rec("c", 6), rec("far", 20, visible=0.0)])
    pred = frame(
        0,
        [
            rec("p_exact", 0, score=0.9),
            rec("p_dup", 0, score=0.8),  # same object again: false positive
            rec("p_shift", 3.25, score=0.7),  # BEV IoU 0.75 / 1.25 = 0.6
            rec("p_ignored", 20, score=0.6),  # on ignored truth: neither TP nor FP
        ],
    )
    ignore = lambda o: o.extra.get("visible") == 0.0  # noqa: E731
    d = M.bev_detection([pred], [truth], 0.5, truth_ignore=ignore)
    assert (d.tp, d.fp, d.ignored, d.n_truth) == (2, 1, 1, 3)
    assert d.recall == pytest.approx(2 / 3) and d.precision == pytest.approx(2 / 3)
    assert d.ap == pytest.approx(5 / 9)  # ranks TP, FP, TP as in the test above
    assert sorted(round(m[3], 6) for m in d.matches) == [0.6, 1.0]
    strict = M.bev_detection([pred], [truth], 0.7, truth_ignore=ignore)
    assert (strict.tp, strict.fp) == (1, 2) and strict.recall == pytest.approx(1 / 3)
    # without the ignore rule the far object is a normal truth and p_ignored matches it
    plain = M.bev_detection([pred], [truth], 0.5)
    assert (plain.tp, plain.n_truth) == (3, 4)
    with pytest.raises(DataError, match="threshold"):
        M.bev_detection([pred], [truth], 0.0)


def test_bev_detection_yaw_matters():
    truth = frame(0, [rec("a", 0, size=(4, 1, 1))])
    turned = frame(0, [rec("p", 0, size=(4, 1, 1), yaw=np.pi / 2)])  # a cross: IoU 1/7
    assert M.bev_detection([turned], [truth], 0.5).tp == 0
    assert M.bev_detection([turned], [truth], 0.1).tp == 1


def test_error_stats_hand_computed():
    e = M.ErrorStats.of([1.1, 1.8, np.nan], [1.0, 2.0, 3.0])
    assert e.n == 2
    assert e.abs_mean == pytest.approx(0.15) and e.abs_max == pytest.approx(0.2)
    assert e.rel_mean == pytest.approx(0.1) and e.bias == pytest.approx(-0.05)
    assert M.ErrorStats.of([], []).to_dict()["abs_mean"] is None


def test_sensor_distance_errors_use_the_sensor_of_the_source():
    f = frame(0, [], sensor_origins={"lidar": [0, 0, 1], "camera": [0, 0, 2]})
    gt = rec("t", 3, 4)  # centre (3, 4, 0.5)
    lidar = rec("l", 3, 4, distance=5.5, source="lidar")  # truth from lidar: sqrt(9+16+0.25)
    cam = rec("c", 3, 4, distance=float(np.sqrt(9 + 16 + 2.25)), source="vlm+lidar")
    e = M.sensor_distance_errors([(f, lidar, gt), (f, cam, gt)])
    assert e.n == 2
    assert e.abs_max == pytest.approx(5.5 - np.sqrt(25.25))
    assert e.abs_median == pytest.approx((5.5 - np.sqrt(25.25)) / 2)
    no_origin = frame(0, [])
    assert M.sensor_distance_errors([(no_origin, lidar, gt)]).n == 0


def test_pair_distance_errors(scene):
    pred, truth = scene
    e = M.pair_distance_errors(
        [pred], [truth], [("the red mug", "the blue bowl"), ("the red mug", "the green cup")]
    )
    assert e.n == 1  # the cup pair is ambiguous
    assert e.abs_mean == pytest.approx(0.5) and e.rel_mean == pytest.approx(0.25)


def test_parse_failures_latency_and_voc():
    pf = M.parse_failure_stats(
        {"queries": 8, "parse_failures": 2, "failure_reasons": Counter({"no numbers": 2})}
    )
    assert pf == {"queries": 8, "parse_failures": 2, "rate": 0.25, "reasons": {"no numbers": 2}}
    assert M.parse_failure_stats(None)["rate"] is None
    lat = M.latency_percentiles(list(range(1, 101)) + [float("nan")])
    assert lat["n"] == 100 and lat["mean"] == 50.5 and lat["max"] == 100
    assert lat["p50"] == 50.5 and lat["p90"] == pytest.approx(90.1)
    assert M.latency_percentiles([])["p95"] is None
    assert M.value_order_correlation([0.0, 0.1, 0.5, 0.4, 0.9]) == pytest.approx(0.9)
    assert M.value_order_correlation([3, 2, 1]) == pytest.approx(-1.0)
    assert M.value_order_correlation([1, 1, 1]) is None


def test_evaluation_imports_without_rclpy():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['rclpy'] = None\n"
        "import spatial_ros.evaluation.runs, spatial_ros.evaluation.report\n"
        "import spatial_ros.commands.eval, spatial_ros.commands.demo\n"
        "assert sys.modules['rclpy'] is None\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
