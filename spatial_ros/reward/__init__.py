"""Reward annotation: natural-language goals -> dense per-frame progress, reward and success.

* ``goal``: goal sentences -> typed spatial objectives (shared with the simulator).
* ``scoring``: grounded 3D state -> progress in [0, 1], reward, success, explanation (causal).
* ``annotator``: ``RewardAnnotator`` over sensor frames (perception or ground-truth grounding).
* ``offline``: bags / episode directories -> resumable LeRobot-style parquet labels.

ROS-free: the online node (``spatial_ros.nodes.reward_annotator``) is a thin adapter.
"""

from spatial_ros.reward.goal import (
    GOAL_KINDS,
    Goal,
    GoalError,
    ObjectRef,
    Tolerances,
    Vocabulary,
    parse_goal,
)
from spatial_ros.reward.goal_measure import SceneState, measure

__all__ = [
    "GOAL_KINDS",
    "Goal",
    "GoalError",
    "ObjectRef",
    "SceneState",
    "Tolerances",
    "Vocabulary",
    "measure",
    "parse_goal",
]
