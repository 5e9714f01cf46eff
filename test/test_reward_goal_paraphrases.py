"""Goals said in other words parse to the same objective; words that cannot be placed are
reported, never folded into an object's name; long goals are refused at once."""

from __future__ import annotations

import time

import numpy as np
import pytest

from spatial_ros.reward.goal import GOAL_EXAMPLES, GoalError, parse_goal
from training.goal_paraphrases import STYLES, paraphrases

CANONICAL = (*GOAL_EXAMPLES, "move the purple bottle to the right of the cyan bowl",
             "lift the orange can 15 cm above the table", "put the white mug behind the black box",
             "put the green ball within 10 cm of the pink book")


def test_paraphrased_goals_parse_to_the_canonical_objective():
    rng = np.random.default_rng(3)
    total, same, styles, misses = 0, 0, set(), []
    for text in CANONICAL:
        goal = parse_goal(text)
        for para, style in paraphrases(goal, rng):
            total += 1
            styles.add(style)
            try:
                ok = parse_goal(para) == goal
            except GoalError:
                ok = False
            same += ok
            if not ok:
                misses.append(para)
    assert styles == set(STYLES)
    assert total >= 60 and same / total >= 0.9, misses
    assert not misses  # today every one of them; the issue's bar is 90 %


@pytest.mark.parametrize(
    "text, canonical",
    [  # the paraphrases issue #18 found rejected or misread
        ("move the red cube to the left-hand side of the blue bowl",
         "move the red cube to the left of the blue bowl"),
        ("put the red cube on the blue bowl's left",
         "move the red cube to the left of the blue bowl"),
        ("red cube next to the blue bowl", "put the red cube next to the blue bowl"),
        ("place the red cube so that it is next to the blue bowl",
         "put the red cube next to the blue bowl"),
        ("lift the blue ball fifteen centimetres", "lift the blue ball 15 cm above the table"),
        ("lift the blue ball one and a half centimetres",
         "lift the blue ball 1.5 cm above the table"),
        ("could you please put the crimson block beside the navy bowl?",
         "put the red cube next to the blue bowl"),
        ("next to the blue bowl, put the red cube", "put the red cube next to the blue bowl"),
        ("raise the ball up by 20 centimetres", "lift the ball 20 cm above the table"),
        ("get the box farther from you", "push the box away from the robot"),
    ],
)
def test_issue_examples(text, canonical):
    g = parse_goal(text)
    assert g == parse_goal(canonical)
    assert g.text == canonical
    assert not g.ignored


def test_unplaced_words_are_reported_not_named():
    g = parse_goal("put the red cube over yonder next to the blue bowl with zest")
    assert g.target == ("red", "cube") and g.reference == ("blue", "bowl")
    assert {"yonder", "zest"} <= set(g.ignored)
    with pytest.raises(GoalError, match="say where"):  # two objects and no placement
        parse_goal("have the red cube and the blue bowl end up side by side")


def test_an_object_with_its_own_spatial_words_keeps_them_as_its_query():
    g = parse_goal("put the second red cube from the left next to the bowl")
    assert g.kind == "next_to" and g.target == ("red", "cube")
    assert g.phrases == ["the second red cube from the left", "the bowl"]


@pytest.mark.parametrize("n", [10_000, 100_000, 1_000_000])
def test_long_goals_are_refused_at_once_without_echoing_them(n):
    text = "put the red " + "red " * (n // 4) + "cube next to the blue bowl"
    t0 = time.perf_counter()
    with pytest.raises(GoalError) as e:
        parse_goal(text)
    assert time.perf_counter() - t0 < 0.05
    assert "characters" in str(e.value) and len(str(e.value)) < 400
