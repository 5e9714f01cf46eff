"""Referring expressions end to end on simulated frames with exact truth (the engine's program
path over LiDAR specialist candidates), the ambiguity report through ``ask`` and the
messages, and the goal's objects grounded without a model."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.evaluation.refer import evaluate_refer
from spatial_ros.types import Box3D, GroundedObject
from spatial_ros.vlm.backend import ScriptedBackend
from spatial_ros.vlm.engine import EngineConfig, SpatialEngine
from training.generate_data import SPLIT_SEED_BASE
from training.refqueries import KINDS, sim_queries

SEEDS = range(SPLIT_SEED_BASE["test"] + 600_000, SPLIT_SEED_BASE["test"] + 600_003)


def _engine():
    # the product path without a model (names from shape and colour); the model never answers
    return SpatialEngine(ScriptedBackend({"": "no answer"}), EngineConfig(name_scores=False))


@pytest.fixture(scope="module")
def tabletop_metrics():
    return evaluate_refer(sim_queries("tabletop", SEEDS), _engine(), progress=False)


def test_every_kind_is_generated_and_scored(tabletop_metrics):
    assert set(KINDS) - {"ordinal"} <= set(tabletop_metrics["kinds"])  # 3 frames: no ordinal


def test_queries_of_every_kind_find_their_object_where_a_candidate_can(tabletop_metrics):
    rows = [r for r in tabletop_metrics["rows"] if r["kind"] != "ambiguous"]
    reachable = [r for r in rows if r["ceiling"] >= 0.25]
    hits = [r for r in reachable if r["iou"] >= 0.25]
    assert len(reachable) >= 100
    assert len(hits) / len(reachable) >= 0.85, [
        (r["query"], r["explanation"]) for r in reachable if r["iou"] < 0.25][:10]
    # each row names the true object the answer landed on: the expected one for a hit (unless
    # two true boxes overlap), never the expected one for a miss
    assert sum(r["returned"] == r["expected"] for r in hits) >= 0.95 * len(hits)
    assert not any(r["returned"] == r["expected"] for r in reachable if r["iou"] < 0.25)
    # paraphrases are exactly as good as the simulator's own captions
    k = tabletop_metrics["kinds"]
    for kind in ("colour_synonym", "noun_synonym", "both_synonyms", "word_order", "casual"):
        assert k[kind]["acc_iou25"] >= k["caption"]["acc_iou25"] - 0.05, kind


def test_bare_nouns_with_several_objects_are_reported_ambiguous(tabletop_metrics):
    amb = tabletop_metrics["kinds"]["ambiguous"]
    assert amb["n"] >= 3 and amb["flagged"] >= 0.8


def test_opposite_words_never_pick_the_same_of_two_detected_objects(tabletop_metrics):
    opp = tabletop_metrics["opposite_words_same_object"]
    assert opp["pairs"] >= 4
    assert opp["same"] == opp.get("same_one_candidate", 0)


def _obj(i, query, x, amb=False, alts=()):
    return GroundedObject(f"q{i}", query, "box", 0.3 if amb else 0.9,
                          Box3D.from_yaw([x, 0.0, 0.8], [0.1, 0.1, 0.1], 0.0, "base_link"),
                          ambiguous=amb, alternatives=list(alts))


def test_ask_answers_which_candidates_remain_instead_of_guessing():
    from spatial_ros.sim import SimConfig
    from spatial_ros.sim.world import make_episode, render
    from spatial_ros.spatial.qa import answer_objects

    sf = render(make_episode(SimConfig("tabletop", seed=3), 0).scene, seed=3).sensor_frame()
    objs = [_obj(0, "the red box", 1.0, True, ["red, left, 1.10 m away",
                                              "red, right, 1.30 m away"]),
            _obj(1, "the blue bowl", 1.2)]
    qa = answer_objects("How far is the red box from the blue bowl?", objs, sf)
    assert qa.type == "ambiguous" and qa.value is None
    assert "Which one?" in qa.answer
    assert "1) red, left" in qa.answer and "2) red, right" in qa.answer
    objs[0] = _obj(0, "the red box", 1.0)
    qa = answer_objects("How far is the red box from the blue bowl?", objs, sf)
    assert qa.type != "ambiguous" and qa.value == pytest.approx(0.2, abs=0.11)


def test_explanations_and_alternatives_travel_in_the_messages():
    from spatial_ros.io.msgs import MessageFactory
    from spatial_ros.ros_conversions import grounded_objects_to_msg, msg_to_grounded_objects

    o = _obj(0, "the red box", 1.0, True, ["red, left, 1.10 m away", "red, right, 1.30 m away"])
    o.explanation = "2 candidates fit 'red box' about equally"
    for f in (MessageFactory.rosbags(), MessageFactory.rclpy()):
        _, _, (back,) = msg_to_grounded_objects(grounded_objects_to_msg([o], 5, "base_link", f))
        assert back.ambiguous and back.alternatives == o.alternatives
        assert back.explanation == o.explanation


def test_the_reward_goal_objects_are_grounded_without_the_model_answering():
    """The annotator's queries go through the program: with a model that never answers, the
    goal's objects are still found in every frame of a simulated episode."""
    from spatial_ros.reward.annotator import RewardAnnotator, RewardAnnotatorConfig
    from spatial_ros.sim import SimConfig, iter_frames

    goal = "put the red cube next to the blue bowl"
    frames = list(iter_frames(SimConfig("tabletop", seed=31, frames=12, goal=goal,
                                        trajectory="success", lidar_rate_hz=30.0)))
    ann = RewardAnnotator(RewardAnnotatorConfig(goal=goal, smoothing="none"),
                          backend=ScriptedBackend({"": "I cannot tell."}))
    ann.load()
    try:
        labels = ann.label_frames([f.sensor_frame() for f in frames])
    finally:
        ann.unload()
    assert all(lab.grounded for lab in labels)
    prog = np.array([lab.progress for lab in labels])
    truth = np.array([f.truth.trajectory.progress for f in frames])
    assert np.abs(prog - truth).max() < 0.35
