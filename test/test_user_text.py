"""User-given strings are bounded before any parser reads them and cleaned of control
characters (spatial_ros.user_text), in the config, the SetQueries list and the goal."""

from __future__ import annotations

import pytest

from spatial_ros.errors import ConfigError
from spatial_ros.perception import PerceptionConfig, normalize_queries
from spatial_ros.user_text import TextTooLong, bounded_text, preview, strip_controls


@pytest.mark.parametrize("dirty, clean", [
    ("the red\x07 mug", "the red mug"),  # BEL
    ("the \x1b[1;31mred\x1b[0m mug", "the red mug"),  # CSI colour sequences, whole
    ("\x1b]0;pwned\x07the mug", "the mug"),  # OSC title, BEL-terminated
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ mug", "link mug"),  # OSC 8, ST-terminated
    ("\x1bcthe mug", "the mug"),  # ESC c (terminal reset)
    ("the\x7f mug\x00", "the mug"),  # DEL, NUL
    ("the \x9b31mred\x85 mug", "the 31mred mug"),  # C1 controls go (their arguments are text)
    ("the\tred\r\nmug", "the red mug"),  # tab/newlines are spaces
    ("  the   red mug  ", "the red mug"),
    ("la tasse rouge \u00e9\u4e2d", "la tasse rouge \u00e9\u4e2d"),  # printable text untouched
])
def test_control_characters_are_removed(dirty, clean):
    assert strip_controls(dirty) == clean
    assert bounded_text(dirty, "query", 200) == clean


def test_caps_are_checked_first_and_refusals_quote_a_prefix():
    text = "put the red " + "red " * 250_000 + "cube next to the blue bowl"
    with pytest.raises(TextTooLong) as e:
        bounded_text(text, "goal", 1000)
    msg = str(e.value)
    assert msg.startswith(f"goal too long: {len(text)} characters > 1000 (parameter "
                          "max_goal_chars): 'put the red red")
    assert len(msg) < 200 and "..." in msg
    assert bounded_text("x" * 1000, "goal", 1000) == "x" * 1000  # the cap itself is allowed
    assert preview("\x1b[31mab", 4) == "'\\x1b[31'..."  # controls escaped in the quote
    with pytest.raises(ConfigError, match="question must be a string, got int"):
        bounded_text(3, "question", 10)


def test_queries_are_bounded_in_number_and_length_and_cleaned():
    assert normalize_queries(["\x07the mug", "the  mug", "", "the bowl\x1b[0m"]) == [
        "the mug", "the bowl"]
    with pytest.raises(ConfigError, match=r"33 queries given; at most 32 \(parameter "
                                          r"max_queries\)"):
        normalize_queries(["q"] * 33)
    with pytest.raises(TextTooLong, match=r"query too long: 201 characters > 200"):
        normalize_queries(["x" * 201])
    assert normalize_queries(["a", "b", "c"], max_queries=3, max_chars=1) == ["a", "b", "c"]
    cfg = PerceptionConfig(queries=["the\x07 red mug"], max_query_chars=20)
    assert cfg.queries == ["the red mug"]
    with pytest.raises(ConfigError, match="max_question_chars"):
        PerceptionConfig(max_question_chars=0)


def test_goal_is_bounded_and_cleaned_before_parsing():
    from spatial_ros.reward.annotator import RewardAnnotator, RewardAnnotatorConfig

    cfg = RewardAnnotatorConfig(grounding="truth", cloud_topic="",
                                goal="put the red cube\x07 next to the \x1b[1mblue bowl")
    assert cfg.goal == "put the red cube next to the blue bowl"
    with pytest.raises(TextTooLong, match="goal too long: 1001 characters > 1000"):
        RewardAnnotatorConfig(grounding="truth", cloud_topic="", goal="x" * 1001)
    from spatial_ros.reward.annotator import TruthGrounding

    ann = RewardAnnotator(RewardAnnotatorConfig(grounding="truth", cloud_topic=""),
                          truth=TruthGrounding([]))
    ann.set_goal("put the red cube\x7f next to the blue bowl\x1b[0m")
    assert ann.goal_text == "put the red cube next to the blue bowl"
    with pytest.raises(TextTooLong):
        ann.set_goal("put the red " + "red " * 300 + "cube next to the blue bowl")
    assert ann.goal_text == "put the red cube next to the blue bowl"  # the old goal stays
