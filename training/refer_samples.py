"""Referring-expression questions for the ``refer`` training task (``training.samples``).

For a frame with per-object truth (simulated scenes) and the boxes listed in the prompt, picks
up to ``max_turns`` queries whose object is listed:

- every kind ``training.refqueries`` writes from the truth (the caption, paraphrases,
  viewer-relative, ordinal, comparative, relation), ambiguous ones left out;
- ``category``: the category alone ("the mug", "a cup") where exactly one object in view has
  that category;
- ``colour``: the colour alone ("the red one", "something red") where exactly one object in
  view (the robot's gripper included) has that colour.

The answer is the index of the listed box that matches the expected object: 3D IoU >= 0.25 and
the object is also that box's best match (a cluster that merged two objects answers neither).
Kinds are drawn evenly (round robin over a random order), so the few spatial queries a frame
allows are asked as often as its many paraphrases.
"""

from __future__ import annotations

import numpy as np

from spatial_ros.geometry.iou import iou_3d_matrix
from spatial_ros.types import Box3D
from training import refqueries, refwords

MIN_IOU = 0.25
CATEGORY_FORMS = ("the {n}", "the {n}", "a {n}", "that {n}", "find the {n}", "the {n} please")
COLOUR_FORMS = ("the {c} one", "the {c} object", "the {c} thing", "something {c}",
                "the one that is {c}", "the {c} item")


def listed_objects(frame, listed: list[Box3D]) -> dict[str, int]:
    """{truth object id: index of the listed box that designates it} (module docstring)."""
    truth = frame.truth or []
    if not truth or not listed:
        return {}
    T = np.linalg.inv(frame.T_base_from_optical)
    boxes = [o.box.transformed(T, frame.camera.frame_id) for o in truth]
    M = iou_3d_matrix(boxes, listed)
    out = {}
    for k, o in enumerate(truth):
        j = int(M[k].argmax())
        if M[k, j] >= MIN_IOU and int(M[:, j].argmax()) == k:
            out[o.id] = j
    return out


def short_queries(frame, rng) -> list[refqueries.QueryRecord]:
    """Category-only and colour-only phrases for objects that are the only one in view with
    that category / colour (visible >= 30 %, not the gripper)."""
    truth = frame.truth or []
    out = []
    targets = [o for o in truth
               if o.visible >= refqueries.SEEN and o.category not in refqueries.NOT_QUERIED]
    for o in targets:
        if sum(p.category == o.category for p in truth) == 1:
            nouns = (o.category,) * 2 + refwords.NOUN_SYNONYMS.get(o.category, ())
            q = str(rng.choice(CATEGORY_FORMS)).format(n=rng.choice(nouns))
            out.append(refqueries.QueryRecord(frame.key, q, "category", "category", o.id))
        if o.colour and sum(p.colour == o.colour for p in truth) == 1:
            words = (o.colour,) * 3 + refwords.COLOUR_SYNONYMS.get(o.colour, ())
            q = str(rng.choice(COLOUR_FORMS)).format(c=rng.choice(words))
            out.append(refqueries.QueryRecord(frame.key, q, "colour", "colour", o.id))
    return out


def refer_questions(frame, listed: list[Box3D], rng, max_turns: int
                    ) -> list[tuple[str, str, int, str]]:
    """Up to ``max_turns`` (query, kind, listed index, expected object id) for the ``refer``
    task, kinds drawn evenly; [] when no query's object is listed."""
    at = listed_objects(frame, listed)
    if not at:
        return []
    kinds = tuple(k for k in refqueries.KINDS if k != "ambiguous")
    tabletop = frame.source != "sim-street"
    recs = refqueries.frame_queries(frame.truth, frame.key, rng, tabletop, frame.right_axis,
                                    kinds) + short_queries(frame, rng)
    by_kind: dict[str, list] = {}
    for r in recs:
        if not r.ambiguous and r.expected in at:
            by_kind.setdefault(r.kind, []).append(r)
    if not by_kind:
        return []
    pools = {k: [v[i] for i in rng.permutation(len(v))] for k, v in sorted(by_kind.items())}
    order = [sorted(pools)[i] for i in rng.permutation(len(pools))]
    picked: list[tuple[str, str, int, str]] = []
    while len(picked) < max_turns and any(pools.values()):
        for k in order:
            if pools[k] and len(picked) < max_turns:
                r = pools[k].pop()
                picked.append((r.query, r.kind, at[r.expected], r.expected))
    return picked
