"""The engine's referring-expression path: queries parsed (``language.parser``) and answered by
the grounding program (``language.program``) over the listed candidates, before any model call.

A query the program answers becomes the listed candidate's object (its fused geometry, the
program's score, why it was chosen and whether the words were ambiguous). A query it cannot
answer well — a noun the lexicon lacks with a backend that cannot score names, a plain noun
phrase no listed candidate fits (the object may be missing from the list), an image-region
query — goes to the model, in the canonical wording the model was trained on ("the crimson
crate" -> "the red box"). A query with spatial words that no candidate satisfies gets no object
(the model would ignore the spatial words and guess; counted in ``EngineStats.unmatched``). A
query longer than the parser accepts is refused and counted as a failure.

The model's answer to a query left to it is checked against the noun (``Fallback``): an answer
on a listed candidate that the specialist classed as another kind ("the pedestrian in orange"
-> a car) is wrong whatever the colours say, so the program's own best pick stands instead (it
fits the kind, if not the colour), or, when there is none, no object (counted in
``EngineStats.wrong_kind``). Candidates without a class (tabletop clusters) are not checked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from spatial_ros.types import GroundedObject
from spatial_ros.vlm.backend import GroundingAnswer
from spatial_ros.vlm.codec import ParseFailure

log = logging.getLogger(__name__)

KIND_FLOOR = 0.05  # a listed candidate whose kind fits the noun worse than this cannot answer it


@dataclass
class Fallback:
    """A query the program left to the model.

    Attributes:
        noun: the noun phrase's canonical wording ("the orange pedestrian"), for the log.
        admissible: ``id()`` of the listed candidates that may answer: those without a
            specialist class (a tabletop cluster's shape is weaker evidence than the model's
            reading of the image) and those whose kind fits the noun (category score at least
            ``KIND_FLOOR``; all of them for a noun without a category).
        program: builds the program's own best pick as the query's object (None: it had none).
    """

    noun: str
    admissible: set[int]
    program: Callable[[], GroundedObject] | None = None


def kind_checked(engine, i: int, got: GroundedObject, fallback: Fallback | None):
    """``got`` (the model's object for query ``i``) when its candidate's kind fits the noun,
    else the program's pick, else a ParseFailure ("wrong kind")."""
    view = engine._views.get(i)
    if fallback is None or view is None or id(view) in fallback.admissible:
        return got
    engine.stats.wrong_kind += 1
    label = view.candidate.label or "candidate of another kind"
    log.debug("query %d: the model chose a %s for %r", i, label, fallback.noun)
    engine._points.pop(got.id, None)
    engine._views.pop(i, None)
    if fallback.program is not None:
        return fallback.program()
    return ParseFailure(f"wrong kind: the model chose a {label} for {fallback.noun!r}")


def program_objects(engine, frame, qs, listed, colours, tags, context, image, T_out,
                    output_frame, distinct):
    """(found, refused, canonical, fallbacks): {query index: object} answered by the program,
    the query indices refused (too long), {query index: canonical wording} for the queries
    left to the model and {query index: Fallback} to check the model's answers to them.
    ``engine``: the SpatialEngine (its backend, prompts, config, counters); ``listed``: every
    visible candidate, closest first (the prompt's tags name the first ``len(tags)`` of them;
    the model cannot score the others)."""
    from spatial_ros.language.grounding import object_views, tag_scorer
    from spatial_ros.language.parser import QueryTooLong, parse_refexpr
    from spatial_ros.language.program import Program

    cfg = engine.config
    refused: set[int] = set()
    canonical: dict[int, str] = {}
    engine.last_resolutions = {}
    views, vp = object_views(frame, listed, colours)
    adapter = engine.backend.adapter
    scorer = None
    if cfg.name_scores and tags:
        def scores(phrase: str):
            lp = list(engine.backend.score_choices(
                image, adapter.grounding_prompt(engine.prompts, phrase, context), tags))
            return lp + [-np.inf] * (len(listed) - len(lp))  # unlisted: the model cannot say

        scorer = tag_scorer(scores)
    prog = Program(views, vp, scorer)
    found: dict[int, GroundedObject] = {}
    fallbacks: dict[int, Fallback] = {}
    taken: set[int] = set()
    for i, q in enumerate(qs):
        if q.region_2d is not None or q.mask is not None or not q.text.strip():
            continue
        try:
            expr = parse_refexpr(q.text)
        except QueryTooLong as e:
            refused.add(i)
            engine._fail(i, q.text[:40], ParseFailure(f"query: {e}"), "")
            continue
        res = prog.resolve(expr, frozenset(taken) if distinct else frozenset())
        fit = 0.0 if res.index is None else float(prog.membership(expr.np)[res.index])
        if res.index is None or fit < cfg.min_membership:
            if expr.constraints and prog.resolvable(expr):
                # spatial words the model cannot read (it answers "the can on the left" and
                # "the can on the right" alike): no object rather than a guess
                refused.add(i)
                engine.stats.unmatched += 1
                log.debug("query %d %r: no object (%s)", i, q.text, res.explanation)
                continue
            engine.stats.program_fallbacks += 1
            if expr.np.head or expr.np.colours:
                canonical[i] = expr.render()
            kind = prog.kind_fit(expr.np)
            pick = None
            if res.index is not None and kind[res.index] >= KIND_FLOOR:
                def pick(i=i, q=q, expr=expr, res=res):
                    return _program_object(engine, i, q, expr, res, listed, views, T_out,
                                           output_frame, " (the model named another kind)")
            fallbacks[i] = Fallback(expr.np.canonical(), {
                id(v) for v, w, f in zip(listed, views, kind, strict=True)
                if f >= KIND_FLOOR or not w.label}, pick)
            continue
        if distinct:
            taken.add(res.index)
        found[i] = _program_object(engine, i, q, expr, res, listed, views, T_out, output_frame)
        engine.last_resolutions[i] = res
        engine.stats.program += 1
        engine.stats.ambiguous += int(res.ambiguous)
        if expr.unplaced:
            log.debug("query %r: words not placed: %s", q.text, " ".join(expr.unplaced))
    return found, refused, canonical, fallbacks


def _program_object(engine, i, q, expr, res, listed, views, T_out, output_frame, note=""):
    """Query ``i``'s object from the program's resolution ``res`` (its candidate's fused
    geometry; the candidate's points and view kept for ``points``); ``note`` is appended to
    the explanation."""
    from spatial_ros.language.views import describe_view

    lifted = engine._fused(listed[res.index], GroundingAnswer())
    box_out = lifted.box_optical.transformed(T_out, output_frame)
    obj = GroundedObject(
        id=f"q{i}", query=q.text, label=expr.np.category or lifted.label,
        score=float(np.clip(res.score, 0.0, 1.0)), box=box_out, box_2d=lifted.box_2d,
        distance=float(np.linalg.norm(lifted.box_optical.center)),
        source=lifted.source, raw_text=f"[{expr.describe()}] {res.explanation}{note}",
        explanation=res.explanation + note, ambiguous=res.ambiguous,
        alternatives=[describe_view(views[k], views) for k in res.remaining]
        if res.ambiguous else [],
    )
    if lifted.points_optical is not None:
        P = lifted.points_optical
        engine._points[obj.id] = P @ T_out[:3, :3].T + T_out[:3, 3]
    engine._views[i] = lifted.view
    return obj
