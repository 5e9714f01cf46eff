"""Per-frame scoring: hand-computed progress, rewards and success; causal smoothing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from spatial_ros.errors import ConfigError
from spatial_ros.reward.goal import parse_goal
from spatial_ros.reward.goal_measure import SceneState
from spatial_ros.reward.scoring import (
    CausalSmoother,
    EpisodeScorer,
    ScoringConfig,
    score_episode,
)
from spatial_ros.spatial.predicates import Viewpoint
from spatial_ros.types import Box3D

GOAL = parse_goal("put the red cube next to the blue bowl")
VIEW = Viewpoint([0.0, 0.0, 1.0], [1.0, 0.0, 0.0])
BOWL = Box3D.from_yaw([0.5, 0.0, 0.05], [0.1, 0.1, 0.1], 0.0, "base_link")


def at_gap(gap: float, z: float = 0.05) -> SceneState:
    """The cube ``gap`` metres from the bowl's footprint (remaining = max(0, gap - 0.10))."""
    cube = Box3D.from_yaw([0.5 - 0.1 - gap, 0.0, z], [0.1, 0.1, 0.1], 0.0, "base_link")
    return SceneState(cube, BOWL, VIEW, 0.0)


def raw(**kw) -> ScoringConfig:
    return ScoringConfig(smoothing="none", success_tolerance=0.0, **kw)


def test_progress_rewards_success_by_hand():
    # remaining 0.3, 0.3, 0.15, 0, 0 -> progress 0, 0, 0.5, 1, 1
    states = [at_gap(g) for g in (0.4, 0.4, 0.25, 0.05, 0.05)]
    out = score_episode(GOAL, states, raw())
    assert [s.progress for s in out] == pytest.approx([0, 0, 0.5, 1, 1])
    assert [s.reward for s in out] == pytest.approx([0, 0, 0.5, 0.5, 0])
    assert [s.success for s in out] == [False, False, False, True, True]
    assert [s.remaining for s in out] == pytest.approx([0.3, 0.3, 0.15, 0, 0])
    assert all(s.grounded for s in out)
    assert out[0].explanation.startswith("gap(red cube, blue bowl) = 0.40 m (goal <= 0.10 m)")
    pot = score_episode(GOAL, states, raw(reward_mode="potential", gamma=0.9))
    assert [s.reward for s in pot] == pytest.approx([0, 0, 0.45, 0.9 - 0.5, 0.9 - 1.0])
    dense = score_episode(GOAL, states, raw(reward_mode="progress", success_bonus=2.0))
    assert [s.reward for s in dense] == pytest.approx([0, 0, 0.5, 3, 3])


def test_success_needs_the_conditions_and_tolerance():
    # gap 0.05 m but held 0.2 m above the table: remaining 0, not resting -> no success
    out = score_episode(GOAL, [at_gap(0.4), at_gap(0.05, z=0.25)], raw())
    assert out[1].progress == 1.0 and not out[1].success
    # 5 mm short of the region: success only with a 1 cm tolerance
    near = [at_gap(0.4), at_gap(0.105)]
    assert not score_episode(GOAL, near, raw())[1].success
    assert score_episode(GOAL, near, ScoringConfig(smoothing="none",
                                                   success_tolerance=0.01))[1].success


def test_goal_satisfied_at_start_uses_the_floor():
    out = score_episode(GOAL, [at_gap(0.05), at_gap(0.11)], raw(min_remaining0=0.02))
    assert out[0].progress == 1.0 and out[0].success
    assert out[1].progress == pytest.approx(0.5)  # 0.01 m out of a 0.02 m normaliser


def test_median_and_ema_smoothing_by_hand():
    gaps = [0.4, 0.4, 0.1, 0.4, 0.25]  # remaining 0.3, 0.3, 0.0 (a one-frame glitch), 0.3, 0.15
    med = score_episode(GOAL, [at_gap(g) for g in gaps],
                        ScoringConfig(smoothing="median", median_window=3))
    # causal medians: [0.3], [0.3, 0.3], [0.3, 0.3, 0], [0.3, 0, 0.3], [0, 0.3, 0.15]
    assert [s.remaining for s in med] == pytest.approx([0.3, 0.3, 0.3, 0.3, 0.15])
    assert [s.progress for s in med] == pytest.approx([0, 0, 0, 0, 0.5])
    assert not any(s.success for s in med)  # the glitch never counts as success
    assert [s.raw_remaining for s in med] == pytest.approx([0.3, 0.3, 0.0, 0.3, 0.15])
    ema = score_episode(GOAL, [at_gap(g) for g in gaps[:3]],
                        ScoringConfig(smoothing="ema", ema_alpha=0.5))
    assert [s.remaining for s in ema] == pytest.approx([0.3, 0.3, 0.15])
    assert [s.progress for s in ema] == pytest.approx([0, 0, 0.5])


@pytest.mark.parametrize("smoothing", ["none", "ema", "median"])
def test_smoothing_never_uses_future_frames(smoothing):
    rng = np.random.default_rng(7)
    cfg = ScoringConfig(smoothing=smoothing, median_window=5, reward_mode="potential")
    gaps = rng.uniform(0.0, 0.5, 20)
    base = score_episode(GOAL, [at_gap(g) for g in gaps], cfg)
    for k in (1, 7, 15):
        changed = gaps.copy()
        changed[k:] = rng.uniform(0.0, 0.5, 20 - k)
        other = score_episode(GOAL, [at_gap(g) for g in changed], cfg)
        assert other[:k] == base[:k]  # FrameScore is a frozen dataclass: exact equality
        assert other[k:] != base[k:]


def test_ungrounded_frames_hold_progress_and_say_why():
    states = [at_gap(0.4), None, at_gap(0.25), SceneState(None, BOWL, VIEW, 0.0), at_gap(0.1)]
    out = score_episode(GOAL, states, raw())
    assert [s.grounded for s in out] == [True, False, True, False, True]
    assert [s.progress for s in out] == pytest.approx([0, 0, 0.5, 0.5, 1.0])
    assert [s.reward for s in out] == pytest.approx([0, 0, 0.5, 0, 0.5])
    assert sum(s.reward for s in out) == pytest.approx(out[-1].progress - out[0].progress)
    assert "not found: red cube" in out[3].explanation and "held" in out[3].explanation
    assert math.isnan(out[1].raw_remaining)
    # nothing grounded yet: progress 0, no reward, NaN remaining (not a fake measurement)
    first = score_episode(GOAL, [None], raw())[0]
    assert first.progress == 0.0 and first.reward == 0.0 and math.isnan(first.remaining)


def scored_with_a_restart(states, cfg, split) -> tuple[EpisodeScorer, list, list]:
    """(the first scorer, the scores with a JSON state round trip after ``split`` frames, the
    scores of an uninterrupted run)."""
    a = EpisodeScorer(GOAL, cfg)
    first = [a.score(s) for s in states[:split]]
    b = EpisodeScorer(GOAL, cfg)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    return a, first + [b.score(s) for s in states[split:]], score_episode(GOAL, states, cfg)


def test_state_dict_resumes_exactly():
    rng = np.random.default_rng(3)
    states = [at_gap(g) for g in rng.uniform(0.0, 0.5, 12)]
    a, resumed, full = scored_with_a_restart(
        states, ScoringConfig(smoothing="median", median_window=5), 5)
    assert resumed == full
    a.reset()
    assert a.score(at_gap(0.3)).progress == 0.0  # a new episode starts from its own first frame
    # remaining 0.2 then 0.1: the median of the two is 0.15 -> progress 0.25
    assert a.score(at_gap(0.2)).progress == pytest.approx(0.25)


def with_tool(state: SceneState, z: float | None) -> SceneState:
    """``state`` with the tool point straight above the start cube's centre at height z."""
    tool = None if z is None else np.array([0.0, 0.0, z])
    return SceneState(state.target, state.reference, state.viewpoint, state.support_z, tool)


def test_reach_stage_by_hand():
    """The tool comes down onto the cube (0.4 m -> 0.2 m -> touching: reach 0, 0.5, 1), the
    cube is carried to the bowl, the tool leaves: progress = 0.25 reach + 0.75 place, and the
    tool leaving after the cube moved costs nothing."""
    gaps = [0.4, 0.4, 0.4, 0.25, 0.05, 0.05]
    states = [with_tool(at_gap(g), z) for g, z in zip(gaps, [0.5, 0.3, 0.1, 0.1, 0.1, 1.0],
                                                      strict=True)]
    out = score_episode(GOAL, states, raw())
    assert [s.progress for s in out] == pytest.approx([0, 0.125, 0.25, 0.625, 1.0, 1.0])
    assert out[1].explanation.startswith("gap(red cube, blue bowl) = 0.40 m (goal <= 0.10 m); "
                                         "tool 0.20 m from red cube; progress 0.12")
    assert "reach done" in out[3].explanation and out[5].success
    # weight 0: the goal region alone, as without a tool point
    plain = [s.progress for s in score_episode(GOAL, [at_gap(g) for g in gaps], raw())]
    assert plain == pytest.approx([0, 0, 0, 0.5, 1, 1])
    assert [s.progress for s in score_episode(GOAL, states, raw(reach_weight=0.0))] == plain
    # no tool point in the first frame: the episode is scored on the goal region alone
    later = [at_gap(0.4)] + states[1:]
    assert [s.progress for s in score_episode(GOAL, later, raw())] == pytest.approx(plain)
    # a frame without the tool point keeps the last tool distance
    gap = [states[0], with_tool(at_gap(0.4), None), states[2]]
    assert [s.progress for s in score_episode(GOAL, gap, raw())] == pytest.approx([0, 0, 0.25])
    # the tool leaving a cube that never moved loses the reach progress again
    back = states[:3] + [with_tool(at_gap(0.4), 0.5)]
    assert score_episode(GOAL, back, raw())[-1].progress == pytest.approx(0.0)
    # ... but once the cube has moved, the reach stage has ended for good: the cube put back
    # at its start with the tool far away (0.9 m) keeps the full reach share, 0.25 + 0.75 * 0
    returned = states[:4] + [with_tool(at_gap(0.4), 1.0)]
    last = score_episode(GOAL, returned, raw())[-1]
    assert last.progress == pytest.approx(0.25) and "reach done" in last.explanation
    # resumable mid-episode, reach state included
    _, resumed, full = scored_with_a_restart(states, ScoringConfig(smoothing="median"), 3)
    assert resumed == full
    with pytest.raises(ConfigError, match="reach_weight=1.0"):
        ScoringConfig(reach_weight=1.0)


def jittered(state: SceneState, dy: float) -> SceneState:
    """``state`` with the target's box shifted ``dy`` metres sideways (perception jitter)."""
    t = state.target
    box = Box3D.from_yaw(t.center + [0.0, dy, 0.0], t.size, 0.0, t.frame_id)
    return SceneState(box, state.reference, state.viewpoint, state.support_z, state.tool)


def test_reach_stage_does_not_end_on_box_jitter():
    """A cube that never moves but whose box jumps 3.6 cm sideways in single frames (perception
    jitter): with the gripper far from it the reach stage never ends (a failure gets no free
    reach share); once the tool touched it, a real move ends it for good."""
    start = at_gap(0.4)  # cube centre (0, 0, 0.05), top at 0.1 m
    # the gripper hovers 0.4 m above the cube's top the whole episode: reach 0 throughout
    far = [with_tool(jittered(start, dy), 0.5) for dy in (0, 0.036, 0, -0.036, 0.036, 0)]
    out = score_episode(GOAL, far, raw())
    assert [s.progress for s in out] == pytest.approx([0.0] * 6)
    assert not any("reach done" in s.explanation for s in out)
    # the tool half-way down (0.2 m from the top) when the box jumps: reach 1 - 0.2 / 0.4 only
    half = [with_tool(start, 0.5), with_tool(jittered(start, 0.036), 0.3)]
    assert score_episode(GOAL, half, raw())[-1].progress == pytest.approx(0.25 * 0.5)
    # a real pick: the tool comes within reach_touch (4 cm above the top), then the cube moves
    # 15 cm: the stage ends at that frame and stays ended after the tool leaves
    pick = [with_tool(start, 0.5), with_tool(start, 0.14), with_tool(at_gap(0.25), 1.0),
            with_tool(at_gap(0.25), 1.0)]
    out = score_episode(GOAL, pick, raw())
    assert out[1].progress == pytest.approx(0.25 * 0.9) and "reach done" not in out[1].explanation
    assert [s.progress for s in out[2:]] == pytest.approx([0.25 + 0.75 * 0.5] * 2)
    assert "reach done" in out[2].explanation and "reach done" in out[3].explanation
    # ... the same with reach_touch 0.03 m: 4 cm is not touching, the move does not end it
    # (the tool 0.9 m away: reach 0)
    out = score_episode(GOAL, pick, raw(reach_touch=0.03))
    assert out[-1].progress == pytest.approx(0.75 * 0.5)
    # resumable after the touch, before the move
    _, resumed, full = scored_with_a_restart(pick, raw(), 2)
    assert resumed == full
    # the box jumps for one frame onto the gripper (carrying another object past the cube:
    # moved 15 cm, the tool inside the box), then is back: not a take, and no touch either, so
    # a later jitter does not end the stage
    def tool_in(state):
        return SceneState(state.target, state.reference, state.viewpoint, state.support_z,
                          state.target.center.copy())
    glitch = [with_tool(start, 0.5), tool_in(at_gap(0.25)), with_tool(start, 0.5),
              with_tool(jittered(start, 0.036), 0.5)]
    out = score_episode(GOAL, glitch, raw())
    assert not any("reach done" in s.explanation for s in out)
    assert out[-1].progress == pytest.approx(0.0)
    # a grasp and lift between two frames (first seen moved, with the tool in it): the stage
    # ends when the next frame confirms it; meanwhile reach is 1 from the tool distance alone
    lift = [with_tool(start, 0.5), tool_in(at_gap(0.3)), tool_in(at_gap(0.2)),
            with_tool(at_gap(0.2), 1.0)]
    out = score_episode(GOAL, lift, raw())
    assert ["reach done" in s.explanation for s in out] == [False, False, True, True]
    assert [s.progress for s in out] == pytest.approx(
        [0.0, 0.25 + 0.75 / 3, 0.25 + 0.75 * 2 / 3, 0.25 + 0.75 * 2 / 3])
    _, resumed, full = scored_with_a_restart(lift, raw(), 2)  # resumable while pending
    assert resumed == full
    with pytest.raises(ConfigError, match="reach_touch=-0.01"):
        ScoringConfig(reach_touch=-0.01)


def test_a_refused_frame_gets_no_progress_and_leaves_the_episode_untouched():
    """EpisodeScorer.refuse (e.g. the target resolved to the gripper): progress held, reward 0,
    success false, not grounded; the frames around it score as if it were absent."""
    states = [at_gap(g) for g in (0.4, 0.25, 0.05, 0.05)]
    for cfg in (raw(), ScoringConfig(smoothing="median")):
        want = score_episode(GOAL, states, cfg)
        sc = EpisodeScorer(GOAL, cfg)
        got = [sc.score(states[0]), sc.score(states[1]), sc.score(states[2])]
        refused = sc.refuse("target resolves to the gripper")
        got.append(sc.score(states[3]))
        assert got == want
        assert refused.explanation == ("target resolves to the gripper; frame refused, "
                                       "progress held")
        assert refused.progress == want[2].progress and refused.reward == 0.0
        assert not refused.success and not refused.grounded
        assert want[2].success == (cfg.smoothing == "none")  # a success is not held over it
    # refused first frames do not become the episode's start
    sc = EpisodeScorer(GOAL, raw())
    assert sc.refuse("x").progress == 0.0 and math.isnan(sc.refuse("x").remaining)
    assert [sc.score(s).progress for s in states[1:]] == pytest.approx([0.0, 1.0, 1.0])


def test_config_errors_name_the_values():
    with pytest.raises(ConfigError, match="reward_mode='sparse'"):
        ScoringConfig(reward_mode="sparse")
    with pytest.raises(ConfigError, match="median_window=4"):
        ScoringConfig(median_window=4)
    with pytest.raises(ConfigError, match="gamma=1.5"):
        ScoringConfig(gamma=1.5)
    with pytest.raises(ConfigError, match="next_to_gap"):
        ScoringConfig(next_to_gap=0.0)
    with pytest.raises(ConfigError, match="smoothing"):
        CausalSmoother("kalman")
