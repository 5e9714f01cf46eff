"""Goal parsing (templates, canonical text, errors); goal geometry on boxes with exact answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spatial_ros.errors import DataError, ParseError, SpatialRosError
from spatial_ros.reward.goal import (
    Goal,
    GoalError,
    Tolerances,
    Vocabulary,
    parse_goal,
)
from spatial_ros.reward.goal_measure import SceneState, measure
from spatial_ros.sim import trajectory as sim_traj
from spatial_ros.spatial.predicates import SpatialObject, Viewpoint, left_of, right_of
from spatial_ros.types import Box3D


@pytest.mark.parametrize(
    "text,kind,target,reference,height,distance",
    [
        ("put the red cube next to the blue bowl", "next_to", ("red", "cube"), ("blue", "bowl"),
         None, None),
        ("Place the green mug beside the yellow can.", "next_to", ("green", "mug"),
         ("yellow", "can"), None, None),
        ("set the mug near the bowl", "next_to", ("", "mug"), ("", "bowl"), None, None),
        ("put the red cube within 5 cm of the blue bowl", "next_to", ("red", "cube"),
         ("blue", "bowl"), None, 0.05),
        ("move the mug to the left of the can", "left_of", ("", "mug"), ("", "can"), None, None),
        ("please put the coffee mug on the right side of the laptop", "right_of",
         ("", "mug"), ("", "laptop"), None, None),  # "coffee mug" is a mug; open vocabulary
        ("move the mug in front of the can", "in_front_of", ("", "mug"), ("", "can"), None, None),
        ("slide the box behind the bottle", "behind", ("", "box"), ("", "bottle"), None, None),
        ("stack the red cube on the blue box", "on_top_of", ("red", "cube"), ("blue", "box"),
         None, None),
        ("put the red cube on top of the blue box", "on_top_of", ("red", "cube"),
         ("blue", "box"), None, None),
        ("lift the ball 20 cm above the table", "lift", ("", "ball"), None, 0.2, None),
        ("raise the red can 0.15 m above the table", "lift", ("red", "can"), None, 0.15, None),
        ("lift the ball 50 mm", "lift", ("", "ball"), None, 0.05, None),
        ("pick up the ball", "lift", ("", "ball"), None, 0.1, None),
        ("push the box away from the robot", "away_from", ("", "box"), ("", "robot"), None,
         None),
        ("push the box 30 cm away from the robot", "away_from", ("", "box"), ("", "robot"),
         None, 0.3),
        ("move the mug away from the bowl", "away_from", ("", "mug"), ("", "bowl"), None, None),
        ("bring the cup to me", "toward", ("", "mug"), ("", "robot"), None, None),
        ("move the mug closer to the bowl", "toward", ("", "mug"), ("", "bowl"), None, None),
        ("pull the box 10 centimetres towards the camera", "toward", ("", "box"),
         ("", "camera"), None, 0.1),
    ],
)
def test_templates_and_canonical_text(text, kind, target, reference, height, distance):
    g = parse_goal(text)
    assert g == Goal(kind, target, reference, height, distance)
    assert parse_goal(g.text) == g  # the canonical sentence parses back to the same goal
    assert g.phrases[0] == "the " + " ".join(w for w in target if w)
    assert all(not r.special for r in g.required)
    assert g.objective().describe()  # says what is measured, e.g. "gap(a, b) <= 0.10 m"


def test_objective_text_names_quantity_and_target():
    assert parse_goal("put the red cube next to the blue bowl").objective().describe() == (
        "gap(red cube, blue bowl) <= 0.10 m (red cube resting on the table)"
    )
    assert parse_goal("lift the ball 20 cm above the table").objective().describe() == (
        "height_above_table(ball) = 0.20 +- 0.03 m"
    )


@pytest.mark.parametrize(
    "text,match",
    [
        ("move the mug", "cannot parse"),
        ("", "cannot parse"),
        ("make me a sandwich", "cannot parse"),
        ("move the cup to the bowl", "cannot parse"),  # ambiguous "to": not guessed
        ("put the cube on the table", "surface"),
        ("put the red cube next to the red cube", "twice"),
        ("push the robot away from the cube", "robot cannot be the object"),
        ("move the mug to the left of the robot", "not supported"),
        ("put the cube within 0 cm of the bowl", "must be > 0"),
    ],
)
def test_unparseable_goals_raise_goal_error(text, match):
    with pytest.raises(GoalError, match=match) as e:
        parse_goal(text)
    assert isinstance(e.value, ParseError) and isinstance(e.value, SpatialRosError)


def test_vocabulary_restricts_colours_objects_kinds_and_heights():
    vocab = Vocabulary(colours=("red", "blue"), categories=("cube", "bowl"),
                       kinds=("next_to", "lift"), lift_range=(0.05, 0.4))
    assert parse_goal("put the red cube next to the blue bowl", vocab).kind == "next_to"
    for text, match in [
        ("put the golden cube next to the blue bowl", "colour 'golden'"),
        ("put the red spoon next to the blue bowl", "object 'spoon'"),
        ("put the cube next to the blue bowl", "'<colour> <object>'"),
        ("move the red cube to the left of the blue bowl", "supported here: next_to, lift"),
        ("lift the red cube 90 cm above the table", "5..40 cm"),
    ]:
        with pytest.raises(GoalError, match=match):
            parse_goal(text, vocab)


def test_the_simulator_uses_this_parser():
    g = sim_traj.parse_goal("put the red cube next to the blue bowl")
    assert g == parse_goal("put the red cube next to the blue bowl")
    with pytest.raises(GoalError, match="supported here"):
        sim_traj.parse_goal("push the red cube away from the robot")


# ----------------------------------------------------------------------------------------------
# Geometry: boxes in base_link (z up), 10 cm cubes resting on a table at z = 0.
# ----------------------------------------------------------------------------------------------

VIEW = Viewpoint([0.0, 0.0, 1.0], [1.0, 0.0, -0.5])  # looks along +x (pitched down): left = +y


def cube(x, y, z=0.05, size=0.1, yaw=0.0):
    return Box3D.from_yaw([x, y, z], [size, size, size], yaw, "base_link")


def state(a, b=None, support=0.0):
    return SceneState(a, b, VIEW, support)


def test_next_to_gap_and_resting():
    g = parse_goal("put the red cube next to the blue bowl")
    m = measure(g, state(cube(0.0, 0.0), cube(0.5, 0.0)))
    assert m.value == pytest.approx(0.4) and m.remaining == pytest.approx(0.3)
    assert m.conditions and not m.in_goal
    m = measure(g, state(cube(0.35, 0.0), cube(0.5, 0.0)))
    assert m.remaining == 0.0 and m.in_goal  # gap 0.05 m
    m = measure(g, state(cube(0.35, 0.0, z=0.3), cube(0.5, 0.0)))  # held in the air
    assert m.remaining == 0.0 and not m.conditions and not m.in_goal
    m = measure(g, state(cube(0.45, 0.0), cube(0.5, 0.0)))  # footprints overlap: gap 0
    assert m.remaining == 0.0 and not m.in_goal
    # "within 5 cm": gap 0.08 m is 0.03 m short
    g5 = parse_goal("put the red cube within 5 cm of the blue bowl")
    assert measure(g5, state(cube(0.32, 0.0), cube(0.5, 0.0))).remaining == pytest.approx(0.03)
    # without a known table, the reference's bottom is the support
    m = measure(g, SceneState(cube(0.35, 0.0, z=0.75), cube(0.5, 0.0, z=0.75)))
    assert m.in_goal


def test_side_goals_as_seen_from_the_camera():
    ref = cube(1.0, 0.0)
    g = parse_goal("move the red cube to the left of the blue box")
    # clear of the box by 0.02 m: centre offset >= 0.1 + 0.02 along +y (left of a +x heading)
    m = measure(g, state(cube(1.0, 0.3), ref))
    assert m.remaining == 0.0 and m.in_goal and m.value == pytest.approx(0.3)
    assert left_of(SpatialObject("a", cube(1.0, 0.3)), SpatialObject("b", ref), VIEW).value
    assert measure(g, state(cube(1.0, 0.0), ref)).remaining == pytest.approx(0.12)
    assert measure(g, state(cube(1.0, -0.2), ref)).remaining == pytest.approx(0.32)
    # too far along the view (0.3 m > 0.15 m): 0.15 m short
    assert measure(g, state(cube(1.3, 0.3), ref)).remaining == pytest.approx(0.15)
    both = measure(g, state(cube(1.3, 0.0), ref)).remaining
    assert both == pytest.approx(math.hypot(0.12, 0.15))
    # a rotated box is wider: a 45-degree cube spans 0.1 * sqrt(2) sideways
    m = measure(g, state(cube(1.0, 0.12, yaw=math.pi / 4), ref))
    assert m.remaining == pytest.approx((0.1 * math.sqrt(2) + 0.1) / 2 + 0.02 - 0.12)
    right = parse_goal("move the red cube to the right of the blue box")
    assert measure(right, state(cube(1.0, -0.3), ref)).in_goal
    assert right_of(SpatialObject("a", cube(1.0, -0.3)), SpatialObject("b", ref), VIEW).value
    behind = parse_goal("move the red cube behind the blue box")
    front = parse_goal("move the red cube in front of the blue box")
    assert measure(behind, state(cube(1.3, 0.0), ref)).in_goal
    assert measure(front, state(cube(1.3, 0.0), ref)).remaining == pytest.approx(0.42)
    assert measure(front, state(cube(0.7, 0.0), ref)).in_goal
    with pytest.raises(DataError, match="camera viewpoint"):
        measure(g, SceneState(cube(1.0, 0.3), ref, None, 0.0))


def test_lift_on_top_away_and_toward():
    lift = parse_goal("lift the ball 20 cm above the table")
    m = measure(lift, SceneState(cube(0, 0, z=0.7 + 0.15 + 0.05), None, None, 0.7))
    assert m.value == pytest.approx(0.15) and m.remaining == pytest.approx(0.02)
    assert measure(lift, SceneState(cube(0, 0, z=0.7 + 0.21 + 0.05), None, None, 0.7)).in_goal
    # no table height: the target's bottom in the episode's first frame is the table
    start = SceneState(cube(0, 0, z=0.75))
    m = measure(lift, SceneState(cube(0, 0, z=0.95)), start)
    assert m.value == pytest.approx(0.2) and m.in_goal

    top = parse_goal("stack the red cube on the blue box")
    m = measure(top, state(cube(0.5, 0.0, z=0.15), cube(0.5, 0.0)))
    assert m.remaining == pytest.approx(0.0) and m.in_goal
    m = measure(top, state(cube(0.5, 0.3, z=0.15), cube(0.5, 0.0)))
    assert m.remaining == pytest.approx(0.25)  # centre 0.25 m outside the box's footprint
    m = measure(top, state(cube(0.5, 0.0, z=0.25), cube(0.5, 0.0)))
    assert m.remaining == pytest.approx(0.1 - 0.01)  # 0.1 m above its top, 0.01 m tolerance

    away = parse_goal("push the box away from the robot")
    s0 = state(cube(0.5, 0.0))
    assert measure(away, s0, s0).remaining == pytest.approx(0.15)
    assert measure(away, state(cube(0.6, 0.0)), s0).remaining == pytest.approx(0.05)
    assert measure(away, state(cube(0.6, 0.3)), s0).in_goal  # 0.5 m -> 0.67 m from the origin
    assert not measure(away, state(cube(0.4, 0.3)), s0).in_goal  # sideways: still 0.5 m
    toward = parse_goal("move the mug 10 cm closer to the bowl")
    s0 = state(cube(0.0, 0.0), cube(0.5, 0.0))  # gap 0.4 m -> goal <= 0.3 m
    assert measure(toward, state(cube(0.05, 0.0), cube(0.5, 0.0)), s0).remaining == (
        pytest.approx(0.05)
    )
    assert measure(toward, state(cube(0.1, 0.0), cube(0.5, 0.0)), s0).in_goal


def test_missing_objects_are_an_error_not_zero():
    g = parse_goal("put the red cube next to the blue bowl")
    assert SceneState(cube(0, 0)).missing(g) == ["blue bowl"]
    with pytest.raises(DataError, match="missing blue bowl"):
        measure(g, SceneState(cube(0, 0), None, VIEW, 0.0))


def test_bad_tolerances():
    with pytest.raises(SpatialRosError, match="next_to_gap"):
        Tolerances(next_to_gap=-1.0)
    with pytest.raises(SpatialRosError, match="lift"):
        Tolerances(lift=float("nan"))


def test_sim_truth_equals_measure_on_the_exact_boxes():
    from spatial_ros.sim import CameraConfig, make_scene, plan_trajectory

    scene = make_scene("tabletop", 3, camera=CameraConfig(width=64, height=48))
    traj = plan_trajectory(scene, "success", 3)
    vp = Viewpoint.from_camera_pose(scene.rig.T_base_from_optical)
    for u in np.linspace(0, 1, 7):
        s = traj.scene_at(scene, u)
        ref = s.get(traj.reference_id).box if traj.reference_id else None
        m = measure(traj.goal, SceneState(s.get(traj.target_id).box, ref, vp, s.table_top_z))
        assert traj.state(s, u).remaining == m.remaining


# ---- goal understanding with the VLM (spatial_ros.reward.goal_vlm) ---------------------------


def _vlm(answer: str):
    from spatial_ros.vlm.backend import ScriptedBackend

    return ScriptedBackend(lambda conv, image: answer)


@pytest.mark.parametrize(
    "text, answer, want",
    [
        ("the red cube and the blue bowl should end up touching",
         '{"kind": "next_to", "object": "the red cube", "reference": "the blue bowl", '
         '"distance_m": null}', "put the red cube next to the blue bowl"),
        ("swap the mug over so the can is on its right",
         'Sure: ```json\n{"kind": "left_of", "object": "the mug", "reference": "the can"}\n```',
         "move the mug to the left of the can"),
        ("the ball must hover a ruler's length up",
         '{"kind": "lift", "object": "ball", "reference": "the table", "distance_m": 0.2}',
         "lift the ball 20 cm above the table"),
        ("make it so you cannot reach the box",
         '{"kind": "away_from", "object": "the box", "reference": "robot", "distance_m": null}',
         "push the box away from the robot"),
    ],
)
def test_the_vlm_restates_paraphrases_the_templates_miss(text, answer, want):
    from spatial_ros.reward.goal_vlm import parse_goal_with_vlm

    with pytest.raises(GoalError):
        parse_goal(text)
    goal, how = parse_goal_with_vlm(text, _vlm(answer))
    assert how == "vlm" and goal == parse_goal(want)


@pytest.mark.parametrize(
    "answer, why",
    [
        ("[315, 284, 274, 0.07, 0.22, 0.07, 0.6]", "no JSON object"),
        ('{"kind": "explode", "object": "the red cube", "reference": "the blue bowl"}', "kind"),
        ('{"kind": "next_to", "object": "the green cube", "reference": "the blue bowl"}',
         "does not"),  # an object the goal does not name
        ('{"kind": "next_to", "object": "__import__(\'os\').system(\'x\')", '
         '"reference": "the blue bowl"}', "does not"),  # text, never evaluated
        ('{"kind": "next_to", "object": "the red cube", "reference": "the red cube"}', "twice"),
        ('{"kind": "lift", "object": "the red cube", "distance_m": 3.0}', "lift height"),
    ],
)
def test_unusable_model_answers_fall_back_to_the_templates(answer, why):
    from spatial_ros.reward.goal_vlm import goal_from_answer, parse_goal_with_vlm

    text = "put the red cube next to the blue bowl"
    with pytest.raises(GoalError, match=why):
        goal_from_answer(answer, text)
    goal, how = parse_goal_with_vlm(text, _vlm(answer))
    assert goal == parse_goal(text) and how.startswith("templates (")
    with pytest.raises(GoalError, match="cannot parse goal"):  # neither works: a clear error
        parse_goal_with_vlm("make the table nice", _vlm(answer))
