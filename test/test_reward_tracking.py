"""Goal-object tracking (spatial_ros.reward.tracking): resting objects keep their cluster, a
carried object is followed through long moves and gripper merges, two objects never share a
candidate, unseen objects are held then lost, and the state survives a JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spatial_ros.errors import ConfigError
from spatial_ros.reward.tracking import GoalTracker, TrackerConfig
from spatial_ros.types import Box3D


def box(x, y, z=0.78, size=(0.06, 0.06, 0.06)) -> Box3D:
    return Box3D(np.array([x, y, z]), np.array(size), frame_id="base_link")


CUBE = (0.06, 0.06, 0.06)
MERGED = (0.10, 0.12, 0.22)  # the cube in the gripper: one cluster


def carried(x, y, z, cluster_height=MERGED[2], own_height=CUBE[2]):
    """Where a carried cube is reported: its own box on the bottom of the merged cluster."""
    return [x, y, z - cluster_height / 2 + own_height / 2]


def centre(got, name):
    return got[name].box.center


def test_resting_objects_keep_their_cluster_when_the_model_names_a_neighbour():
    tr = GoalTracker(["cube", "bowl"])
    cube, bowl, other = box(1.0, 0.0), box(1.2, 0.3, size=(0.16, 0.16, 0.06)), box(1.1, 0.1)
    got = tr.update({"cube": cube, "bowl": bowl}, [cube, bowl, other])
    assert {n: t.status for n, t in got.items()} == {"cube": "answer", "bowl": "answer"}
    for k in range(5):
        jitter = box(1.0 + 0.004 * (-1) ** k, 0.002 * k)
        # the model names the neighbour (0.14 m away) for the cube: the cube stays put
        got = tr.update({"cube": other, "bowl": None}, [other, jitter, bowl])
        np.testing.assert_allclose(centre(got, "cube"), jitter.center)
        np.testing.assert_allclose(centre(got, "bowl"), bowl.center)
        assert got["cube"].status == got["bowl"].status == "tracked"


def test_a_carried_object_is_followed_through_long_moves_and_a_gripper_merge():
    tr = GoalTracker(["cube", "bowl"])
    bowl, other = box(1.2, 0.5, size=(0.16, 0.16, 0.06)), box(0.9, -0.3)
    cube = box(1.0, 0.0)
    tr.update({"cube": cube, "bowl": bowl}, [cube, bowl, other])
    # grasp: the cube and the gripper are one taller cluster; lift; carry 0.3 m per frame
    # towards the bowl; the model never answers with a candidate while it is carried
    path = [(1.0, 0.0, 0.81, MERGED), (1.0, 0.0, 0.90, MERGED), (1.05, 0.15, 0.92, MERGED),
            (1.12, 0.30, 0.92, MERGED), (1.15, 0.36, 0.85, MERGED)]
    for x, y, z, size in path:
        got = tr.update({"cube": None, "bowl": None}, [bowl, box(x, y, z, size), other])
        np.testing.assert_allclose(centre(got, "cube"), carried(x, y, z))
        np.testing.assert_allclose(got["cube"].box.size, CUBE)  # not the gripper's extents
        np.testing.assert_allclose(centre(got, "bowl"), bowl.center)
    # release: the gripper rises as its own cluster; the cube's own box (its first size) wins
    placed, gripper = box(1.15, 0.36, 0.78), box(1.15, 0.36, 0.93, (0.05, 0.12, 0.12))
    got = tr.update({"cube": None, "bowl": bowl}, [gripper, bowl, placed, other])
    np.testing.assert_allclose(centre(got, "cube"), placed.center)
    np.testing.assert_allclose(centre(got, "bowl"), bowl.center)


def test_two_objects_never_share_a_candidate_and_unseen_objects_are_held_then_lost():
    tr = GoalTracker(["cube", "can"], TrackerConfig(coast_frames=2))
    cube, can = box(1.0, 0.0), box(1.0, 0.12, size=(0.06, 0.06, 0.12))
    tr.update({"cube": cube, "can": can}, [cube, can])
    # one cluster where both were (they touch): the nearer one takes it, the other is held
    blob = box(1.0, 0.02, 0.79, (0.07, 0.2, 0.12))
    got = tr.update({"cube": blob, "can": blob}, [blob])
    assert sorted(t.status for t in got.values()) == ["held", "tracked"]
    assert not np.array_equal(centre(got, "cube"), centre(got, "can"))
    took = next(n for n, t in got.items() if t.status == "tracked")
    # nothing near either: each is held for coast_frames unseen frames, then lost (the one
    # left out of the blob was already unseen there)
    far = box(3.0, 3.0)
    statuses = [tr.update({}, [far]) for _ in range(3)]
    assert [sorted(g) for g in statuses] == [["can", "cube"], [took], []]
    assert all(t.status == "held" for g in statuses for t in g.values())
    # a new answer restarts the track
    got = tr.update({"cube": cube}, [cube, far])
    assert got["cube"].status == "answer" and "can" not in got


def test_answers_start_tracks_only_on_candidates_unless_the_frame_has_none():
    tr = GoalTracker(["cube"])
    drawn = box(1.0, 0.0)  # the model's own box
    assert tr.update({"cube": drawn}, [box(2.0, 1.0)]) == {}
    got = tr.update({"cube": drawn}, [])
    assert got["cube"].status == "answer"
    np.testing.assert_allclose(centre(got, "cube"), drawn.center)
    # without specialists every frame's own answer is used (the object moved)
    moved = box(1.0, 0.3)
    got = tr.update({"cube": moved}, [])
    assert got["cube"].status == "answer"
    np.testing.assert_allclose(centre(got, "cube"), moved.center)
    got = tr.update({"cube": None}, [])
    assert got["cube"].status == "held"
    np.testing.assert_allclose(centre(got, "cube"), moved.center)


def test_state_round_trip_continues_identically():
    def run(tr, frames):
        return [{n: (t.box.center.tolist(), t.status) for n, t in tr.update(*f).items()}
                for f in frames]

    bowl = box(1.2, 0.5, size=(0.16, 0.16, 0.06))
    # grasped (the tool point in the cube), then lifted 0.4 m in one frame with a small
    # cluster appearing beside the cube's old place: only the tool's last position in the
    # restored state says that the cube went up
    frames = [({"cube": box(1.0, 0.0), "bowl": bowl}, [box(1.0, 0.0), bowl],
               np.array([1.0, 0.0, 0.79])),
              ({}, [box(1.0, 0.0, 0.85, MERGED), bowl], np.array([1.0, 0.0, 0.79]))]
    frames += [({}, [box(1.0, 0.1 * k, 1.25, MERGED), box(1.0, -0.12), bowl],
                np.array([1.0, 0.1 * k, 1.19])) for k in range(3)]
    whole = run(GoalTracker(["cube", "bowl"]), frames)
    first = GoalTracker(["cube", "bowl"])
    head = run(first, frames[:2])
    second = GoalTracker(["cube", "bowl"])
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert head + run(second, frames[2:]) == whole
    np.testing.assert_allclose(whole[-1]["cube"][0], carried(1.0, 0.2, 1.25))


@pytest.mark.parametrize("landmark", [True, False])
def test_a_landmark_keeps_its_box_while_the_carried_object_passes_it(landmark):
    tr = GoalTracker(["cube", "bowl"], landmarks=["bowl"] if landmark else [])
    cube, bowl = box(1.0, 0.0), box(1.0, 0.3, size=(0.16, 0.16, 0.06))
    tr.update({"cube": cube, "bowl": bowl}, [cube, bowl])
    tr.update({}, [box(1.0, 0.0, 0.81, MERGED), bowl])  # grasped
    # set down next to the bowl: one cluster holds the cube, the gripper and the bowl
    blob = box(1.0, 0.25, 0.83, (0.2, 0.3, 0.16))
    got = tr.update({}, [blob])
    if landmark:
        assert got["bowl"].status == "held"
        np.testing.assert_allclose(centre(got, "bowl"), bowl.center)
        # inside the blob it is seen: held for longer than coast_frames
        for _ in range(tr.config.coast_frames + 2):
            got = tr.update({}, [blob])
        np.testing.assert_allclose(centre(got, "bowl"), bowl.center)
    else:  # without the prior the resting bowl takes the blob (it lies inside it)
        assert got["bowl"].status == "tracked"
        np.testing.assert_allclose(centre(got, "bowl"), carried(1.0, 0.25, 0.83, 0.16, 0.06))


def test_a_resting_object_does_not_jump_onto_a_passing_cluster():
    tr = GoalTracker(["cube"])
    cube = box(1.0, 0.0)
    tr.update({"cube": cube}, [cube])
    # the cube's cluster is missing (occluded) while the gripper passes 0.4 m away: held
    for y in (0.4, 0.35):
        got = tr.update({"cube": None}, [box(1.0, y, 0.9, (0.05, 0.12, 0.12))])
        assert got["cube"].status == "held"
        np.testing.assert_allclose(centre(got, "cube"), cube.center)


def test_a_carried_object_does_not_jump_onto_a_remembered_neighbour():
    """The bottle merges into the carried cluster for a frame; when it reappears on its own,
    it is remembered as resting there, so the carried cube stays with its cluster."""
    tr = GoalTracker(["cube"])
    cube, bottle = box(1.0, 0.0), box(1.0, 0.45, 0.85, (0.07, 0.07, 0.2))
    tr.update({"cube": cube}, [cube, bottle])
    tr.update({}, [box(1.0, 0.0, 0.81, MERGED), bottle])  # grasp: cube + gripper
    tr.update({}, [box(1.0, 0.15, 0.9, MERGED), bottle])  # carried towards the bottle
    got = tr.update({}, [box(1.0, 0.40, 0.9, (0.1, 0.2, 0.22))])  # merged with the bottle
    np.testing.assert_allclose(centre(got, "cube"), carried(1.0, 0.40, 0.9))
    cluster = box(1.0, 0.33, 0.9, MERGED)
    got = tr.update({"cube": bottle}, [bottle, cluster])  # the model names the bottle
    np.testing.assert_allclose(centre(got, "cube"), carried(1.0, 0.33, 0.9))


@pytest.mark.parametrize("with_tool", [True, False])
def test_a_held_object_moves_with_the_tool(with_tool):
    """The book's first cluster also held a small cube beside it. The gripper closes on the
    book (the tool point inside the book's extents) and lifts it 0.26 m in one frame: the cube
    left behind lies where the book was. With the tool point the book is predicted to move with
    the tool and is followed up and across; without it, it stays on the cube's cluster."""
    tr = GoalTracker(["book"])
    book = box(1.0, 0.0, 0.78, (0.27, 0.24, 0.06))  # the book and the small cube: one cluster
    frames = [  # (candidates, tool point)
        ([book], [0.7, -0.2, 1.08]),
        ([box(1.0, 0.0, 0.85, (0.26, 0.19, 0.15))], [1.0, 0.03, 0.78]),  # grasped
        ([box(1.0, 0.05, 1.11, (0.2, 0.18, 0.15)), box(1.0, -0.1)], [1.0, 0.05, 1.04]),
        ([box(1.0, 0.2, 1.11, (0.2, 0.18, 0.15)), box(1.0, -0.1)], [1.0, 0.2, 1.04]),
    ]
    got = None
    for k, (cands, tool) in enumerate(frames):
        got = tr.update({"book": book if k == 0 else None}, cands,
                        np.array(tool) if with_tool else None)
    if with_tool:
        np.testing.assert_allclose(centre(got, "book")[:2], [1.0, 0.2])
        assert centre(got, "book")[2] > 1.0
    else:
        np.testing.assert_allclose(centre(got, "book"), [1.0, -0.1, 0.78])
    # a tool passing above an object (not within its extents) does not carry it away
    tr = GoalTracker(["cube"])
    cube = box(1.0, 0.0)
    tr.update({"cube": cube}, [cube], np.array([1.0, 0.0, 0.9]))
    got = tr.update({}, [cube, box(1.2, 0.2, 0.95, (0.05, 0.12, 0.12))], np.array([1.2, 0.2, 0.9]))
    np.testing.assert_allclose(centre(got, "cube"), cube.center)


@pytest.mark.parametrize("kw", [{"unmatched": 0.0}, {"size_weight": -1.0},
                                {"answer_bonus": float("nan")}, {"coast_frames": -1},
                                {"rest_move": 0.0}, {"memory_frames": -1},
                                {"merge_inside": 1.5}])
def test_invalid_costs_are_config_errors(kw):
    with pytest.raises(ConfigError, match="tracker: invalid"):
        TrackerConfig(**kw)
