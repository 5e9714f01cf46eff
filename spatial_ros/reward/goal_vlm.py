"""Goal understanding with the VLM: a goal in free words -> the spatial objective, with the
deterministic template parser (``spatial_ros.reward.goal.parse_goal``) as the fallback.

The model is asked (question answering, text only: a blank image stands in for the scene) to
restate the goal as JSON::

    {"kind": "next_to", "object": "the red cube", "reference": "the blue bowl", "distance_m": null}

The answer is read with ``json.loads`` (never evaluated) and checked before it is used:

* ``kind`` is one of ``GOAL_KINDS``;
* every word of ``object`` and ``reference`` occurs in the goal text (the model may reword the
  goal's structure, not invent objects); ``reference`` may also be "robot" or "camera";
* the objective it describes is rebuilt as a :class:`Goal` and its canonical sentence must parse
  back through the templates (vocabulary, lift heights, distances: one set of rules).

Anything else (no JSON, a missing key, an invented object, an inconsistent goal) falls back to
the templates on the original text, with the reason logged. So a model that was not trained to
parse goals (the embedded default model) costs one short generation per goal and changes
nothing; an instruction-tuned VLM (e.g. Qwen2.5-VL) adds paraphrases the templates do not cover
("could you get the red cube over by the blue bowl").
"""

from __future__ import annotations

import json
import logging
import math
import re

import numpy as np

from spatial_ros.reward.goal import (
    CAMERA,
    DEFAULT_LIFT,
    GOAL_KINDS,
    ROBOT,
    Goal,
    GoalError,
    Vocabulary,
    object_ref,
    parse_goal,
)

log = logging.getLogger(__name__)

QUESTION = (
    'Restate this robot goal as JSON with the keys "kind" (one of: {kinds}), "object" (the '
    'object to move, worded as in the goal), "reference" (the other object worded as in the '
    'goal, "robot", "camera", or null for lift) and "distance_m" (the height for lift, the '
    'distance for within / away from / towards, in metres, or null). Goal: "{goal}"'
)
BLANK = np.zeros((64, 64, 3), np.uint8)  # text-only question: the backend API takes an image
_WORD = re.compile(r"[a-z]+")


def _json_object(text: str) -> dict | None:
    """The first JSON object in a model answer (code fences and prose around it tolerated)."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            d, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(d, dict):
            return d
    return None


def goal_from_answer(answer: str, text: str, vocabulary: Vocabulary | None = None) -> Goal:
    """The goal a model answer describes (see the module docstring for the checks).

    Raises:
        GoalError: the answer is not usable; the message says why.
    """
    d = _json_object(answer)
    if d is None:
        raise GoalError(f"no JSON object in the model's answer {answer[:80]!r}")
    kind = d.get("kind")
    if kind not in GOAL_KINDS:
        raise GoalError(f"model answered kind {kind!r}; known: {', '.join(GOAL_KINDS)}")
    said = set(_WORD.findall(text.lower()))

    def ref(key: str):
        words = d.get(key)
        if words is None:
            return None
        if not isinstance(words, str) or not words.strip():
            raise GoalError(f"model answered {key} {words!r}")
        w = words.strip().lower()
        if w.removeprefix("the ") in (ROBOT, CAMERA):
            return object_ref(w, text, vocabulary)
        missing = [x for x in _WORD.findall(w) if x not in said]
        if missing:
            raise GoalError(f"model's {key} {words!r} uses words the goal does not: {missing}")
        return object_ref(w, text, vocabulary)

    dist = d.get("distance_m")
    if dist is not None and not (isinstance(dist, (int, float)) and math.isfinite(dist)):
        raise GoalError(f"model answered distance_m {dist!r}")
    target = ref("object")
    if target is None:
        raise GoalError("model answered no object to move")
    if kind == "lift":  # the reference, if any, is the surface it is lifted from
        goal = Goal(kind, target, None, height=float(dist) if dist is not None else DEFAULT_LIFT)
    else:
        dist_ok = kind in ("next_to", "away_from", "toward") and dist is not None
        goal = Goal(kind, target, ref("reference"), distance=float(dist) if dist_ok else None)
    return parse_goal(goal.text, vocabulary)  # the templates check the canonical sentence


def parse_goal_with_vlm(
    text: str, backend, vocabulary: Vocabulary | None = None, max_new_tokens: int = 64
) -> tuple[Goal, str]:
    """Ask ``backend`` (a ``VLMBackend``) to restate the goal; fall back to the templates.

    Returns:
        (goal, how): ``how`` is "vlm" or "templates (<why the model's answer was not used>)".

    Raises:
        GoalError: neither the model's answer nor the templates give a goal.
    """
    question = QUESTION.format(kinds=", ".join(GOAL_KINDS), goal=" ".join(str(text).split()))
    try:
        answer = backend.generate([BLANK], [question], max_new_tokens)[0].text
        return goal_from_answer(answer, text, vocabulary), "vlm"
    except GoalError as e:
        why = str(e)
    log.info("goal %r: model's restatement not used (%s); template parser", text, why)
    return parse_goal(text, vocabulary), f"templates ({why})"
