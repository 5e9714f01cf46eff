"""training/: the ``refer`` task (referring expressions answered with a listed tag) and the
candidate colours of training data read exactly as the engine reads them at run time."""

from __future__ import annotations

import re

import numpy as np
import pytest

from spatial_ros.geometry.iou import iou_3d
from spatial_ros.vlm.codec import BoxCodec, CodecConfig
from spatial_ros.vlm.lifting import lift_box3d
from spatial_ros.vlm.prompts import SPECIALIST_PREFIX, TASKS
from training.refqueries import SPATIAL_KINDS
from training.refwords import caption
from training.samples import SampleConfig, frame_samples
from training.scenes import sim_frame

CODEC = CodecConfig(rotation="yaw", angle_decimals=1)
REFER = SampleConfig(task_weights=(0, 0, 0, 0, 1), max_turns=8, max_candidates=16,
                     specialist_prob=0.5, candidate_index=True, candidate_sizes=True)


@pytest.fixture(scope="module")
def frames():
    # train-range seeds (training.generate_data: split "train" starts at 0)
    return [sim_frame(7, "tabletop", specialists=True), sim_frame(21, "street", specialists=True)]


def _listed(sample) -> dict[str, str]:
    """{tag: encoded box} of the sample's candidate list."""
    user = sample["messages"][1]["content"]
    assert user.startswith(SPECIALIST_PREFIX)
    lines = user.split("\n")[1:-1]
    return {ln.rsplit("] ", 1)[1]: ln.rsplit("] ", 1)[0] + "]" for ln in lines}


def _optical_truth(frame, oid):
    o = next(t for t in frame.truth if t.id == oid)
    return o, o.box.transformed(np.linalg.inv(frame.T_base_from_optical),
                                frame.camera.frame_id)


def test_refer_answers_name_the_listed_candidate_of_the_expected_object(frames):
    codec = BoxCodec(CODEC)
    kinds: set[str] = set()
    checked = 0
    for frame in frames:
        samples = frame_samples(frame, np.random.default_rng(5), CODEC, REFER, n=6)
        assert samples and all(s["task"] == "refer" for s in samples)
        for s in samples:
            listed = _listed(s)
            qs, ans = s["messages"][1::2], s["messages"][2::2]
            assert len(qs) == len(ans) == len(s["extra"]["expected"]) == len(s["extra"]["kinds"])
            for q, a, oid, kind in zip(qs, ans, s["extra"]["expected"], s["extra"]["kinds"],
                                       strict=True):
                text = q["content"].split("\n")[-1].removeprefix(TASKS["box3d"])
                assert a["content"] in listed, (text, a["content"])
                code = codec.parse_box3d(listed[a["content"]]).value
                box = lift_box3d(code, frame.camera, codec)
                obj, truth = _optical_truth(frame, oid)
                assert iou_3d(box, truth) >= 0.25, (text, a["content"])
                # the words fit the expected object, checked against the simulator's truth
                others = [t for t in frame.truth if t.id != oid]
                if kind == "caption":
                    assert text == caption(obj.category, obj.colour)
                elif kind == "category":
                    assert all(t.category != obj.category for t in others)
                elif kind == "colour":
                    assert all(t.colour != obj.colour for t in others)
                m = re.fullmatch(r"the (\w+) on the (left|right)", text)
                if kind == "viewer" and m:
                    same = [t for t in frame.truth if t.category == obj.category]
                    side = min if m.group(2) == "left" else max
                    assert side(same, key=lambda t: t.bearing) is obj
                kinds.add(kind)
                checked += 1
    assert "ambiguous" not in kinds
    assert checked >= 40
    assert kinds & set(SPATIAL_KINDS) and {"caption", "colour", "category"} <= kinds


def test_refer_on_a_frame_without_truth_falls_back_to_grounding(frames):
    import dataclasses

    bare = dataclasses.replace(frames[0], truth=None, _colours={})
    out = frame_samples(bare, np.random.default_rng(0), CODEC, REFER, n=2)
    assert out and all(s["task"] == "ground" for s in out)


def test_a_zero_refer_weight_draws_the_same_data_as_four_task_weights(frames):
    four = SampleConfig(task_weights=(1, 1, 1, 1), candidate_index=True)
    five = SampleConfig(task_weights=(1, 1, 1, 1, 0), candidate_index=True)
    a = frame_samples(frames[0], np.random.default_rng(3), CODEC, four, n=12)
    b = frame_samples(frames[0], np.random.default_rng(3), CODEC, five, n=12)
    assert [x["messages"] for x in a] == [x["messages"] for x in b]


def test_training_colours_equal_the_engines_for_the_same_boxes():
    """A listed box's colour (and tag words) in training data equals what the engine reads for
    the same box at run time: LiDAR candidates through their cluster points, true boxes (no
    points) through the depth image."""
    from spatial_ros.language.grounding import view_colours
    from spatial_ros.sim import SimConfig
    from spatial_ros.sim.world import make_episode, render
    from spatial_ros.specialists import LidarSpecialist, LidarSpecialistConfig
    from spatial_ros.types import Candidate
    from spatial_ros.vlm.appearance import candidate_attribute
    from spatial_ros.vlm.lifting import candidate_views

    seed = 7
    frame = sim_frame(seed, "tabletop", specialists=True)
    ep = make_episode(SimConfig(scenario="tabletop", seed=seed, vary_rig=True), 0)
    sf = render(ep.scene, seed=seed, lidar=True).sensor_frame()
    cands = LidarSpecialist(LidarSpecialistConfig.preset("tabletop")).propose_frame(
        sf, "base_link")
    assert len(cands) == len(frame.specialist_boxes) >= 3
    truth_cands = [Candidate(box=o.box_base) for o in frame.objects]
    views = candidate_views(cands + truth_cands, sf.camera, sf.transforms)
    run_time = view_colours(sf, views)
    train = [frame.colours(b) for b in frame.specialist_boxes] + \
        [frame.colours(o.box_optical) for o in frame.objects]
    assert len(run_time) == len(train)
    for v, rt, tr in zip(views, run_time, train, strict=True):
        assert rt.keys() == tr.keys()
        for k in rt:
            assert rt[k] == pytest.approx(tr[k])
        words = candidate_attribute(sf.image, v.box_optical, v.box_2d, True, True, rt)
        assert words == candidate_attribute(frame.image, v.box_optical, v.box_2d, True, True,
                                            tr)
    # true boxes are read through the depth image: the object's own pixels, so a box's
    # dominant colour is its object's colour for (nearly) every fully visible object
    from spatial_ros.vlm.appearance import dominant

    by_id = {t.id: t for t in frame.truth}
    seen = [(dominant(frame.colours(o.box_optical)), by_id[o.id].colour) for o in frame.objects
            if o.visible > 0.9]
    assert seen and sum(a == b for a, b in seen) >= 0.8 * len(seen)


def test_card_table_pools_kinds_by_query_count():
    from training.refer_table import MODES, pooled, table

    kinds = {"colour_synonym": {"n": 10, "acc_iou25": 0.5, "ceiling_iou25": 1.0},
             "noun_synonym": {"n": 30, "acc_iou25": 1.0, "ceiling_iou25": 0.9},
             "ambiguous": {"n": 4, "flagged": 0.75}}
    p = pooled(kinds, ("colour_synonym", "noun_synonym", "casual"))
    assert p["n"] == 40
    assert p["acc_iou25"] == pytest.approx(35 / 40)
    assert p["ceiling_iou25"] == pytest.approx(37 / 40)
    assert pooled(kinds, ("viewer",)) is None
    md = table({m: {"kinds": kinds} for m in MODES})
    lines = md.splitlines()
    assert "| *paraphrases* (pooled) | 40 | 92.5 % | 87.5 % | 87.5 % | 87.5 % |" in lines
    assert any(ln.startswith("| ambiguous | 4 |") and "flagged 75.0 %" in ln for ln in lines)
    assert not any("spatial" in ln for ln in lines)  # no spatial kind measured: no row


def test_orders_in_evaluation_files_hold_whether_or_not_hidden_objects_count():
    """Four walkers straight ahead at 10, 20, 30 and 40 m, the nearest 5 % visible (behind a
    car): "the second closest" is the one at 20 m counting every object in view but the one
    at 30 m counting those one can see, so an evaluation file asks neither; "the farthest"
    is the same either way. Training data keeps its single reading."""
    from spatial_ros.types import Box3D
    from training.refqueries import TruthObject, frame_queries

    def walker(k, x, visible):
        box = Box3D.from_yaw([x, 0.3 * k, 0.9], [0.5, 0.5, 1.8], 0.0, "base_link")
        return TruthObject(f"pedestrian_{k}", "pedestrian", "red", box,
                           np.array([-0.3 * k, 0.0, x]), visible)

    objs = [walker(0, 10.0, 0.05), walker(1, 20.0, 1.0), walker(2, 30.0, 1.0),
            walker(3, 40.0, 1.0)]
    right = np.array([0.0, -1.0, 0.0])

    def asked(seen_reading):
        recs = frame_queries(objs, "test", np.random.default_rng(0), False, right,
                             seen_reading=seen_reading)
        return {r.subkind: r.expected for r in recs if r.kind in ("viewer", "ordinal")}

    train, evaluation = asked(False), asked(True)
    assert train["second_near"] == "pedestrian_1"
    assert "second_near" not in evaluation
    assert train["far"] == evaluation["far"] == "pedestrian_3"
    assert "near" not in train and "near" not in evaluation  # the nearest is hardly seen
