"""The simulator's goal truth (sim/goal_truth.py) against hand-computed values, and the reward
annotator's ``measure`` on the true boxes against that independent truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spatial_ros.reward.goal import DEFAULT_TOLERANCES, Goal
from spatial_ros.reward.goal_measure import SceneState, measure
from spatial_ros.sim import CameraConfig, make_scene
from spatial_ros.sim import goal_truth as gt
from spatial_ros.spatial.predicates import Viewpoint

SMALL = CameraConfig(width=128, height=96, hfov_deg=50.0)
KINDS = ("next_to", "left_of", "right_of", "behind", "in_front_of", "lift")


def test_goal_regions_are_the_reward_defaults():
    tol = DEFAULT_TOLERANCES
    assert (tol.next_to_gap, tol.side_clearance, tol.side_depth, tol.lift, tol.rest,
            tol.success) == (gt.NEXT_TO_GAP, gt.SIDE_CLEARANCE, gt.SIDE_DEPTH, gt.LIFT_TOL,
                             gt.REST_TOL, 0.0)


def _pair(seed=0):
    scene = make_scene("tabletop", seed, camera=SMALL)
    objs = [o for o in scene.objects if o.category != "gripper"]
    return scene, objs[0], objs[1]


def _resting(obj, scene, xy, yaw):
    return obj.moved([xy[0], xy[1], scene.table_top_z + obj.size[2] / 2], yaw)


def _reward(kind, scene, target, reference, height=None):
    ref_ref = None if kind == "lift" else (reference.colour, reference.category)
    goal = Goal(kind, (target.colour, target.category), ref_ref, height)
    vp = Viewpoint.from_camera_pose(scene.rig.T_base_from_optical)
    state = SceneState(target.box, None if kind == "lift" else reference.box, vp,
                       scene.table_top_z)
    return measure(goal, state)


@pytest.mark.parametrize("sideways", [-0.40, 0.40])
@pytest.mark.parametrize("kind", ["left_of", "right_of"])
def test_side_goal_hand_computed(kind, sideways):
    """Target clearly to the goal side but 0.40 m ahead of / behind the reference: only the
    sideways excess counts, 0.40 - 0.15 = 0.25 m, whichever side it is on."""
    scene, a, b = _pair()
    left, heading = gt.camera_axes(scene)
    yaw = math.atan2(left[1], left[0])  # both objects' own x axis along the left axis
    ref = _resting(b, scene, [0.55, 0.0], yaw)
    need = (a.size[0] + b.size[0]) / 2 + 0.02  # widths along left are the x sizes
    side = 1.0 if kind == "left_of" else -1.0
    xy = ref.center[:2] + side * (need + 0.05) * left + sideways * heading
    target = _resting(a, scene, xy, yaw)
    truth = gt.goal_truth(kind, target, ref, scene)
    assert truth.remaining == pytest.approx(0.25, abs=1e-9) and not truth.in_goal
    m = _reward(kind, scene, target, ref)
    assert m.remaining == pytest.approx(0.25, abs=1e-9) and not m.in_goal
    # Inside the region: 0.10 m sideways.
    inside = _resting(a, scene, ref.center[:2] + side * (need + 0.05) * left + 0.10 * heading,
                      yaw)
    assert gt.goal_truth(kind, inside, ref, scene).in_goal
    assert _reward(kind, scene, inside, ref).in_goal


def test_next_to_and_lift_hand_computed():
    scene, a, b = _pair()
    ref = _resting(b, scene, [0.55, 0.0], 0.0)
    target = _resting(a, scene, [0.55 + (a.size[0] + b.size[0]) / 2 + 0.30, 0.0], 0.0)
    t = gt.goal_truth("next_to", target, ref, scene)
    assert t.remaining == pytest.approx(0.20, abs=1e-9) and not t.in_goal  # gap 0.30 - 0.10
    assert _reward("next_to", scene, target, ref).remaining == pytest.approx(0.20, abs=1e-9)
    lifted = a.moved([0.5, 0.0, scene.table_top_z + 0.25 + a.size[2] / 2], 0.3)
    t = gt.goal_truth("lift", lifted, None, scene, height=0.20)
    assert t.remaining == pytest.approx(0.02, abs=1e-9)  # bottom 0.25, band [0.17, 0.23]
    assert _reward("lift", scene, lifted, None, 0.20).remaining == pytest.approx(0.02, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reward_measure_on_true_boxes_equals_sim_truth(seed):
    """Over a grid of target poses around the reference (both sides of every axis, beyond the
    goal regions, random yaws, resting or raised), the reward annotator's ``measure`` on the
    exact boxes gives the simulator's remaining distance and in-goal flag."""
    scene, a, b = _pair(seed)
    rng = np.random.default_rng(seed)
    left, heading = gt.camera_axes(scene)
    ref = _resting(b, scene, [0.55, 0.05], float(rng.uniform(-np.pi, np.pi)))
    checked = in_goal = 0
    for dl in np.linspace(-0.5, 0.5, 9):
        for df in np.linspace(-0.5, 0.5, 9):
            xy = ref.center[:2] + dl * left + df * heading
            target = _resting(a, scene, xy, float(rng.uniform(-np.pi, np.pi)))
            for raised in (0.0, 0.005, 0.2):
                t_obj = target.moved(target.center + [0, 0, raised])
                for kind in KINDS:
                    height = 0.2 if kind == "lift" else None
                    truth = gt.goal_truth(kind, t_obj, ref, scene, height=height)
                    m = _reward(kind, scene, t_obj, ref, height)
                    assert m.remaining == pytest.approx(truth.remaining, abs=1e-9), (kind, dl, df)
                    assert m.in_goal == truth.in_goal, (kind, dl, df, raised)
                    checked += 1
                    in_goal += truth.in_goal
    assert checked == 9 * 9 * 3 * len(KINDS) and in_goal > 20  # both outcomes exercised
