"""A goal whose target resolves to the robot's own gripper is refused for that frame: the guard
by hand, then end to end through the annotator on simulated episodes where the grounding (a
scripted model, or the caller's objects) picks the gripper for "the red cube"."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spatial_ros.errors import ConfigError
from spatial_ros.reward.annotator import RewardAnnotator, RewardAnnotatorConfig
from spatial_ros.reward.gripper import GripperGuard, GripperGuardConfig
from spatial_ros.sim import CameraConfig, SimConfig, iter_frames
from spatial_ros.types import Box3D, GroundedObject

GOAL = "put the red cube next to the blue bowl"
CUBE = Box3D.from_yaw([0.5, 0.0, 0.05], [0.1, 0.1, 0.1], 0.0, "base_link")
# a parked gripper 0.3 m up and its tool centre point (the middle of its bottom face)
GRIPPER = Box3D.from_yaw([0.3, 0.1, 0.4], [0.2, 0.07, 0.14], 0.0, "base_link")
TCP = np.array([0.3, 0.1, 0.33])


def moved(box: Box3D, d) -> Box3D:
    return Box3D.from_yaw(box.center + np.asarray(d, float), box.size, 0.0, box.frame_id)


def test_guard_by_hand():
    g = GripperGuard()
    # the gripper's box holds the tool point and rises 0.14 m above it; a resting object does
    # not hold it
    assert g.check(GRIPPER, TCP) == ("target resolves to the gripper (its box holds the tool "
                                     "point and rises 0.14 m above it)")
    assert g.check(CUBE, TCP) == ""
    # a cube in the fingers rises 2 cm above the tool point: never the gripper, even as the
    # first box of an episode (grounding that starts mid-grasp)
    assert g.check(moved(CUBE, [0, 0, 0.04]), CUBE.center + [0.0, 0.0, 0.03]) == ""
    g.accept(CUBE, TCP)
    # the box jumping from the resting cube onto the parked gripper is refused
    assert "rises 0.14 m" in g.check(GRIPPER, TCP)
    # a tall bottle grasped low (its top 0.19 m above the fingertips): taken where it stood,
    # then carried, it is never refused
    bottle = Box3D.from_yaw([0.5, 0.0, 0.125], [0.07, 0.07, 0.25], 0.0, "base_link")
    g.reset()
    g.accept(bottle, TCP)
    tool = np.array([0.5, 0.0, 0.06])
    assert g.check(moved(bottle, [0, 0, 0.02]), tool) == ""
    g.accept(moved(bottle, [0, 0, 0.02]), tool)
    assert g.check(moved(bottle, [0.3, 0.2, 0.1]), tool + [0.3, 0.2, 0.1]) == ""
    # without a tool point: the shape, at the episode's start only (a carried object merges
    # with the gripper into a cluster that looks like it)
    g.reset()
    assert "P = 0.97" in g.check(GRIPPER, None, gripper_p=0.97)
    assert g.check(CUBE, None, gripper_p=0.02) == "" and g.check(CUBE, None) == ""
    g.accept(CUBE, None)
    assert g.check(GRIPPER, None, gripper_p=0.97) == ""
    with pytest.raises(ConfigError, match="rise=0"):
        GripperGuardConfig(rise=0)


def test_guard_state_round_trip():
    a = GripperGuard()
    a.accept(CUBE, TCP)
    b = GripperGuard()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    tool = CUBE.center + [0.0, 0.0, 0.03]
    lifted = moved(CUBE, [0, 0, 0.2])
    a.accept(CUBE, tool)  # holding the cube: its box (or the gripper's) holding the tool is fine
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.check(GRIPPER, TCP) == a.check(GRIPPER, TCP) == ""
    assert b.check(lifted, tool + [0, 0, 0.2]) == ""
    b.load_state_dict(None)  # a state saved without the guard: a fresh episode
    assert "rises" in b.check(GRIPPER, TCP)


# ---- end to end -------------------------------------------------------------------------------


def _episode(mode: str, seed: int, **kw):
    cfg = SimConfig(camera=CameraConfig(width=128, height=96), goal=GOAL, trajectory=mode,
                    seed=seed, frames=12, lidar_rate_hz=30.0, **kw)
    return list(iter_frames(cfg))


@pytest.fixture(scope="module")
def success():
    return _episode("success", 31)


@pytest.fixture(scope="module")
def wrong_object():
    """A failed episode: the gripper carries another object to the goal pose."""
    return _episode("fail", 32, fail_mode="wrong_object")


def _gripper(frame):
    return next(o for o in frame.truth.objects if o.category == "gripper")


def _target(frame):
    tid = frame.truth.trajectory.target_id
    return next(o for o in frame.truth.objects if o.id == tid)


def caller_objects(frames, gripper_frames):
    """Per frame: "the red cube" -> the gripper's true box in ``gripper_frames``, else the
    cube's; "the blue bowl" -> the bowl's."""
    out = []
    for k, fr in enumerate(frames):
        cube = _gripper(fr) if k in gripper_frames else _target(fr)
        bowl = next(o for o in fr.truth.objects if o.caption == "the blue bowl")
        out.append([GroundedObject("a", "the red cube", "cube", 1.0, cube.box),
                    GroundedObject("b", "the blue bowl", "bowl", 1.0, bowl.box)])
    return out


def test_a_failed_episode_grounded_to_the_gripper_gets_no_progress(wrong_object):
    """The issue's case: "the red cube" grounded to the gripper in an episode where the robot
    moves another object. Unguarded, the gripper's travel scores as the cube's progress; with
    the guard every frame is refused: progress 0, never success, and said why."""
    frames = wrong_object
    assert not frames[-1].truth.trajectory.success
    sensor = [f.sensor_frame() for f in frames]
    objs = caller_objects(frames, range(len(frames)))
    cfg = dict(goal=GOAL, smoothing="none", tool_frame="gripper_tcp")
    unguarded = RewardAnnotator(RewardAnnotatorConfig(refuse_gripper=False, **cfg))
    bad = unguarded.label_frames(sensor, objs)
    assert max(lab.progress for lab in bad) > 0.5  # the corruption the guard prevents
    ann = RewardAnnotator(RewardAnnotatorConfig(**cfg))
    labels = ann.label_frames(sensor, objs)
    assert [lab.progress for lab in labels] == [0.0] * len(frames)
    assert not any(lab.success or lab.grounded for lab in labels)
    assert all(lab.refused and "target resolves to the gripper" in lab.explanation
               for lab in labels)
    assert ann.gripper_refused == len(frames)


def test_frames_grounded_to_the_gripper_do_not_corrupt_the_episode(success):
    """The gripper picked for the cube in the first 3 frames, the cube afterwards: those frames
    are refused and the episode starts at frame 3; the progress from there is the simulator's
    (staged) truth measured from frame 3, and the episode still ends in success."""
    frames = success
    sensor = [f.sensor_frame() for f in frames]
    cfg = RewardAnnotatorConfig(goal=GOAL, smoothing="none", tool_frame="gripper_tcp")
    labels = RewardAnnotator(cfg).label_frames(sensor, caller_objects(frames, {0, 1, 2}))
    assert [lab.refused for lab in labels] == [True] * 3 + [False] * (len(frames) - 3)
    clean = RewardAnnotator(cfg).label_frames(sensor[3:], caller_objects(frames[3:], ()))
    assert [lab.progress for lab in labels[3:]] == [lab.progress for lab in clean]
    assert labels[-1].success and labels[-1].progress == pytest.approx(1.0)
    # the box jumping onto the gripper mid-episode (before the grasp) is refused too, and
    # progress holds
    labels = RewardAnnotator(cfg).label_frames(sensor, caller_objects(frames, {2}))
    assert [lab.refused for lab in labels[:4]] == [False, False, True, False]
    assert labels[2].progress == labels[1].progress and labels[-1].success


def scripted_model(frames, gripper_frames):
    """A ScriptedBackend that answers each query with the true box of the object it names,
    except "the red cube" in ``gripper_frames``, answered with the gripper's box."""
    from spatial_ros.vlm.backend import ScriptedBackend
    from spatial_ros.vlm.codec import BoxCodec

    codec = BoxCodec()
    index = {fr.image.tobytes(): k for k, fr in enumerate(frames)}

    def answer(conv, image):
        k = index[np.ascontiguousarray(image).tobytes()]
        fr = frames[k]
        asked = next(t.text for t in reversed(conv) if t.role == "user")
        obj = next(o for o in fr.truth.objects if o.caption in asked)
        if obj.caption == "the red cube" and k in gripper_frames:
            obj = _gripper(fr)
        sf = fr.sensor_frame()
        T = sf.transforms.lookup(sf.camera.frame_id, "base_link")
        return codec.encode_box3d(obj.box.transformed(T, sf.camera.frame_id), sf.camera)

    return ScriptedBackend(answer)


@pytest.mark.parametrize("tool_frame", ["gripper_tcp", ""])
def test_perception_grounding_on_the_gripper_is_refused_and_tracking_restarts(success,
                                                                              tool_frame):
    """Perception grounding with tracking: a model that names the parked gripper for "the red
    cube" in the first frame. That frame is refused (by the tool point, or without one by the
    cluster's shape), the track on the gripper is dropped, and the cube's track starts at the
    model's next answer: the episode ends in success with full progress."""
    frames = success
    cfg = RewardAnnotatorConfig(goal=GOAL, smoothing="none", referring="model",
                                tool_frame=tool_frame)
    ann = RewardAnnotator(cfg, backend=scripted_model(frames, {0}))
    ann.load()
    try:
        labels = ann.label_frames([f.sensor_frame() for f in frames])
    finally:
        ann.unload()
    assert [lab.refused for lab in labels] == [True] + [False] * (len(frames) - 1)
    why = "holds the tool point" if tool_frame else "shape is the gripper's"
    assert why in labels[0].explanation and labels[0].progress == 0.0
    assert all(lab.grounded for lab in labels[1:])
    assert labels[-1].success and labels[-1].progress == pytest.approx(1.0, abs=0.05)
