"""RewardAnnotator grounding paths: the perception pipeline (specialists + VLM engine) with a
scripted "perfect" model, objects passed by the caller, and multi-episode truth files."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from spatial_ros.errors import CalibrationError, ConfigError
from spatial_ros.reward.annotator import RewardAnnotator, RewardAnnotatorConfig, TruthGrounding
from spatial_ros.sim import CameraConfig, SimConfig, iter_frames
from spatial_ros.types import GroundedObject

GOAL = "put the red cube next to the blue bowl"


@pytest.fixture(scope="module")
def episode():
    """A successful episode with a LiDAR scan at every frame (12 frames)."""
    cfg = SimConfig(camera=CameraConfig(width=128, height=96), goal=GOAL, trajectory="success",
                    seed=31, frames=12, lidar_rate_hz=30.0)
    eps: list = []
    frames = list(iter_frames(cfg, eps))
    return frames, eps[0].scene.table_top_z


def perfect_model(frames, knows=None, asked: list | None = None):
    """A ScriptedBackend answering every query with the true box of the object it names
    (encoded like a Cube-LLM answer in the camera frame): tests the grounding plumbing.
    ``knows``: the frames it answers (the others get an unparseable answer); default all.
    ``asked``: a list that receives every question put to the model."""
    from spatial_ros.vlm.backend import ScriptedBackend
    from spatial_ros.vlm.codec import BoxCodec

    codec = BoxCodec()
    by_image = {fr.image.tobytes(): fr for fr in frames}
    known = {fr.image.tobytes() for fr in (frames if knows is None else knows)}

    def answer(conv, image):
        key = np.ascontiguousarray(image).tobytes()
        if key not in known:
            return "I cannot tell."
        fr = by_image[key]
        question = next(t.text for t in reversed(conv) if t.role == "user")
        if asked is not None:
            asked.append(question)
        obj = next(o for o in fr.truth.objects if o.caption in question)
        sf = fr.sensor_frame()
        T = sf.transforms.lookup(sf.camera.frame_id, "base_link")
        return codec.encode_box3d(obj.box.transformed(T, sf.camera.frame_id), sf.camera)

    return ScriptedBackend(answer)


def label_with_model(frames, backend, **config):
    """Labels of the frames with perception grounding by ``backend`` (goal GOAL); the queries
    go to the model (``referring="model"``) unless the config says otherwise."""
    config.setdefault("referring", "model")
    ann = RewardAnnotator(RewardAnnotatorConfig(goal=GOAL, **config), backend=backend)
    ann.load()
    try:
        return ann.label_frames([f.sensor_frame() for f in frames])
    finally:
        ann.unload()


def test_perception_grounding_follows_the_truth(episode):
    frames, _ = episode
    labels = label_with_model(frames, perfect_model(frames), smoothing="none")
    prog = np.array([lab.progress for lab in labels])
    truth = np.array([f.truth.trajectory.progress for f in frames])
    assert all(lab.grounded for lab in labels)
    # boxes come from the model's (quantised) answer or the fused LiDAR candidate: close to,
    # not exactly, the truth
    assert np.abs(prog - truth).max() < 0.15
    assert spearmanr(prog, np.arange(len(prog))).statistic >= 0.9
    assert prog[-1] == pytest.approx(1.0) and labels[-1].success
    assert [lab.stamp_ns for lab in labels] == [f.stamp_ns for f in frames]


@pytest.mark.parametrize("track", [True, False])
def test_tracking_follows_the_goal_objects_after_the_model_stops_answering(episode, track):
    """A model that grounds the objects in the first frame only: with tracking the specialist
    clusters carry the objects (the cube through its grasp, carry and set-down) to the end."""
    frames, _ = episode
    labels = label_with_model(frames, perfect_model(frames, knows=frames[:1]), smoothing="none",
                              track_objects=track)
    prog = np.array([lab.progress for lab in labels])
    truth = np.array([f.truth.trajectory.progress for f in frames])
    if not track:  # nothing grounded after the first frame: progress held at 0
        assert not any(lab.grounded for lab in labels[1:]) and not prog.any()
        return
    assert all(lab.grounded for lab in labels)
    assert spearmanr(prog, np.arange(len(prog))).statistic >= 0.9
    assert prog[-1] >= 0.9 and abs(prog[-1] - truth[-1]) < 0.1
    assert np.abs(prog - truth).max() < 0.35  # merged gripper clusters shift boxes mid-carry


def test_tracked_labelling_resumes_from_its_state(episode):
    """An offline job restarted from a saved state (JSON) labels the rest of the episode exactly
    as an uninterrupted run: the tracks are part of the state."""
    import json

    frames, _ = episode
    backend = perfect_model(frames, knows=frames[:1])
    sensor = [f.sensor_frame() for f in frames]
    cfg = RewardAnnotatorConfig(goal=GOAL)

    def run(part, state=None):
        ann = RewardAnnotator(cfg, backend=backend)
        ann.load()
        if state is not None:
            ann.load_state_dict(json.loads(state))
        labels = ann.label_frames(part)
        return labels, json.dumps(ann.state_dict())

    whole, _ = run(sensor)
    head, state = run(sensor[:5])
    assert json.loads(state)["tracker"]["tracks"]  # the objects are being followed
    tail, _ = run(sensor[5:], state)
    assert [(lab.frame_index, lab.progress, lab.reward, lab.explanation) for lab in head + tail] \
        == [(lab.frame_index, lab.progress, lab.reward, lab.explanation) for lab in whole]


def test_objects_from_the_caller_and_missing_objects(episode):
    frames, table = episode
    ann = RewardAnnotator(RewardAnnotatorConfig(goal=GOAL, smoothing="none"))

    def objects(fr, names):
        return [GroundedObject(o.id, o.caption, o.category, 1.0, o.box)
                for o in fr.truth.objects if o.caption in names]

    both = ("the red cube", "the blue bowl")
    labels = ann.label_frames([f.sensor_frame() for f in frames],
                              [objects(f, both) for f in frames])
    np.testing.assert_allclose([lab.progress for lab in labels],
                               [f.truth.trajectory.progress for f in frames], atol=1e-12)
    # with the gripper's tool point from the frames' transforms: the simulator's staged truth
    staged = RewardAnnotator(RewardAnnotatorConfig(goal=GOAL, smoothing="none",
                                                   tool_frame="gripper_tcp"))
    labels = staged.label_frames([f.sensor_frame() for f in frames],
                                 [objects(f, both) for f in frames])
    want = [f.truth.trajectory.staged_progress() for f in frames]
    np.testing.assert_allclose([lab.progress for lab in labels], want, atol=1e-12)
    assert want[2] > 0 == frames[2].truth.trajectory.progress  # the approach earns progress
    assert "tool 0." in labels[0].explanation and "reach done" in labels[-1].explanation
    # a tool frame the transforms lack: goal region only (warned, counted), never a crash
    lost = RewardAnnotator(RewardAnnotatorConfig(goal=GOAL, smoothing="none",
                                                 tool_frame="tool0"))
    labels = lost.label_frames([f.sensor_frame() for f in frames],
                               [objects(f, both) for f in frames])
    np.testing.assert_allclose([lab.progress for lab in labels],
                               [f.truth.trajectory.progress for f in frames], atol=1e-12)
    assert lost._tool_missing == len(frames)
    ann.reset()
    lab = ann.label(frames[0].sensor_frame(), objects(frames[0], ("the red cube",)))
    assert not lab.grounded and "blue bowl: not grounded" in lab.explanation
    assert lab.progress == 0.0 and lab.reward == 0.0 and ann.episode_index == 1
    # left/right goals need the camera: a frame without transforms is a calibration error
    ann.set_goal("move the red cube to the left of the blue bowl")
    sf = frames[0].sensor_frame()
    sf.transforms = None
    with pytest.raises(CalibrationError, match="no transform"):
        ann.label(sf, objects(frames[0], both))
    with pytest.raises(ConfigError, match="no goal"):
        RewardAnnotator().label(sf, [])
    with pytest.raises(ConfigError, match="truth_path"):
        RewardAnnotator(RewardAnnotatorConfig(grounding="truth"))


def test_truth_files_with_several_episodes_restart_scoring(episode):
    frames, table = episode
    second = [f.truth.box_frame() for f in frames]
    for bf in second:  # the same motion again, 1 s later, as episode 1
        bf.stamp_ns += 1_000_000_000
        bf.extra["episode"] = 1
    truth = TruthGrounding([f.truth.box_frame() for f in frames] + second, {0: table, 1: table})
    ann = RewardAnnotator(RewardAnnotatorConfig(goal=GOAL, grounding="truth", smoothing="none"),
                          truth=truth, truth_episodes=True)
    sensor = [f.sensor_frame() for f in frames]
    later = [f.sensor_frame() for f in frames]
    for sf in later:
        sf.stamp_ns += 1_000_000_000
    labels = ann.label_frames(sensor + later)
    n = len(frames)
    assert [lab.episode_index for lab in labels] == [0] * n + [1] * n
    assert [lab.frame_index for lab in labels] == list(range(n)) * 2
    assert [lab.progress for lab in labels[n:]] == [lab.progress for lab in labels[:n]]
    assert labels[n].timestamp == 0.0
    # a stamp with no truth frame: labelled as not grounded, progress held
    odd = frames[0].sensor_frame()
    odd.stamp_ns += 123_000_000
    lab = ann.label(odd)
    assert not lab.grounded and "no truth frame" in lab.explanation
    assert lab.progress == labels[-1].progress


def test_goal_parser_vlm_restates_the_configured_goal(episode):
    """goal_parser=vlm: the loaded model restates a goal the templates reject; the labels then
    follow that objective (and the goal text the user gave is kept)."""
    import json

    from spatial_ros.reward.goal import GoalError, parse_goal
    from spatial_ros.vlm.backend import ScriptedBackend

    frames, _ = episode
    boxes = perfect_model(frames)

    def answer(conv, image):
        if "Restate this robot goal" in conv[-1].text:
            return json.dumps({"kind": "next_to", "object": "the red cube",
                               "reference": "the blue bowl", "distance_m": None})
        return boxes.responses(conv, image)

    text = "the red cube and the blue bowl should end up touching"
    with pytest.raises(GoalError):
        RewardAnnotatorConfig(goal=text)  # the templates alone reject it
    ann = RewardAnnotator(RewardAnnotatorConfig(goal=text, goal_parser="vlm", smoothing="none",
                                                referring="model"),
                          backend=ScriptedBackend(answer))
    assert ann.goal is None  # parsed with the model once it is loaded
    ann.load()
    try:
        assert ann.goal == parse_goal(GOAL) and ann.goal_source == "vlm"
        labels = ann.label_frames([f.sensor_frame() for f in frames])
    finally:
        ann.unload()
    assert labels[-1].success and labels[-1].goal == text
    with pytest.raises(ConfigError, match="goal_parser"):
        RewardAnnotatorConfig(goal_parser="llm")


def test_words_the_goal_parser_cannot_place_are_reported_never_grounded(episode, caplog):
    """A goal with words the parser cannot place ("with care"): a warning when it is set, a
    note on the episode's first label only, the model asked about the canonical objects only
    (the words never reach an object name), and the labels those of the plain goal."""
    import logging

    from spatial_ros.reward.goal import ObjectRef

    frames, _ = episode
    asked: list[str] = []
    noisy = "put the red cube next to the blue bowl with care"
    cfg = RewardAnnotatorConfig(goal=noisy, referring="model", smoothing="none")
    with caplog.at_level(logging.WARNING, logger="spatial_ros.reward.annotator"):
        ann = RewardAnnotator(cfg, backend=perfect_model(frames, asked=asked))
    note = "words not understood (ignored): 'with care'"
    assert [r.getMessage() for r in caplog.records] == [
        f"goal '{noisy}': {note}; objective: gap(red cube, blue bowl) <= 0.10 m (red cube "
        "resting on the table)"]
    assert ann.goal_note == note and ann.goal.ignored == ("with", "care")
    assert ann.goal.target == ObjectRef("red", "cube")
    assert ann.goal.phrases == ["the red cube", "the blue bowl"]
    ann.load()
    try:
        labels = ann.label_frames([f.sensor_frame() for f in frames[:4]])
    finally:
        ann.unload()
    assert labels[0].explanation.endswith(f"; {note}") and labels[0].goal == noisy
    assert not any("ignored" in lab.explanation for lab in labels[1:])
    assert asked and not any("care" in q or " with " in q for q in asked)
    plain = label_with_model(frames[:4], perfect_model(frames), smoothing="none")
    assert [lab.progress for lab in labels] == [lab.progress for lab in plain]
    # a goal without such words: no note, no warning
    caplog.clear()
    ann.set_goal(GOAL)
    assert ann.goal_note == "" and not caplog.records
