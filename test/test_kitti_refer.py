"""KITTI referring queries from labels: orders that a DontCare region could change are left
out (KITTI labels no object there, so the labels cannot say which car is "the farthest"), and
the product answers the rest."""

import numpy as np
import pytest

from training.kitti_refqueries import Unlabelled, dontcare_may_change, kitti_queries

FAR = Unlabelled((800.0, 825.0), 75.0)  # a van parked 75 m away, unlabelled
EDGE_NEAR = Unlabelled((1208.0, 1240.0), 12.0)  # something 12 m away at the right edge
NO_POINTS = Unlabelled((520.0, 530.0), np.inf)  # beyond the scanner's reach


@pytest.mark.parametrize("subkind, column, range_m, regions, changes", [
    ("far", 770.0, 33.2, [FAR], True),  # the van may be the farthest car
    ("far", 770.0, 90.0, [FAR], False),  # clearly beyond the region
    ("far", 770.0, 80.0, [FAR], True),  # within 8 %: not clearly beyond
    ("far", 770.0, 33.2, [NO_POINTS], True),  # unmeasured: may be anywhere beyond
    ("near", 300.0, 4.9, [FAR, NO_POINTS], False),
    ("near", 300.0, 41.4, [EDGE_NEAR], True),  # the region may hold a nearer car
    ("second_near", 300.0, 20.0, [EDGE_NEAR], True),
    ("near", 300.0, 11.5, [EDGE_NEAR], True),  # within the margin: not clearly nearer
    ("left", 200.0, 5.0, [FAR, EDGE_NEAR], False),  # every region right of the answer
    ("second_left", 480.0, 8.0, [FAR], False),
    ("right", 1100.0, 7.0, [FAR], False),
    ("right", 1100.0, 7.0, [EDGE_NEAR], True),
    ("fourth_right", 660.0, 14.6, [FAR], True),  # the van is one of the cars counted
    ("fifth_left", 900.0, 20.0, [FAR], True),
    ("middle", 600.0, 10.0, [NO_POINTS], True),
    ("middle", 600.0, 10.0, [], False),
])
def test_dontcare_may_change(subkind, column, range_m, regions, changes):
    assert dontcare_may_change(subkind, column, range_m, regions) is changes


def test_kitti_orders_a_dontcare_region_could_change_are_left_out(real_data):
    every = {(r.frame, r.subkind) for s in range(6) for r in kitti_queries(real_data, s, False)}
    kept, skipped = set(), []
    for s in range(6):
        kept |= {(r.frame, r.subkind) for r in kitti_queries(real_data, s, True, skipped)}
    left_out = {(r.frame, r.subkind) for r in skipped}
    assert kept | left_out == every and not kept & left_out
    # 000008: an unlabelled van 75 m away (DontCare) and parked cars right of the white car
    assert ("kitti:000008", "far") in left_out
    assert {"kitti:000008"} == {f for f, sub in left_out if sub.endswith("right")}
    # 000003: a dark car parked ~9 m away bottom left is a DontCare region
    assert ("kitti:000003", "near") in left_out
    # every region of 000008 lies right of its leftmost cars and far beyond its nearest
    assert {("kitti:000008", "left"), ("kitti:000008", "near"),
            ("kitti:000008", "second_left")} <= kept


def test_the_product_answers_the_kitti_queries_the_labels_decide(real_data):
    from pathlib import Path

    from spatial_ros.evaluation.refer import evaluate_refer
    from spatial_ros.vlm.backend import TransformersBackend
    from spatial_ros.vlm.engine import EngineConfig, SpatialEngine

    model = Path(__file__).resolve().parents[1] / "models" / "default"
    engine = SpatialEngine(TransformersBackend(str(model)), EngineConfig(referring="program"))
    records = {(r.frame, r.query): r for s in range(4) for r in kitti_queries(real_data, s)}
    m = evaluate_refer(list(records.values()), engine, kitti_root=real_data, progress=False)
    rows = m["rows"]
    assert len(rows) >= 6
    wrong = [(r["frame"], r["query"], r["returned"]) for r in rows if r["iou"] < 0.25]
    assert not wrong
