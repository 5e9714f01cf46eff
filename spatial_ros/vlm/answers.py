"""Repairs of model answers that name candidate tags (``SpatialEngine.ground``): a tag the
list does not hold, matched to the listed tag the model scores likeliest (``ranked``), and
queries whose answers took the same candidate, given different ones (``make_distinct``).

Both ask the backend to score listed tags as whole answers (``VLMBackend.score_choices``);
backends that cannot score leave the answers as they are.
"""

from __future__ import annotations

import dataclasses
import logging
import re

import numpy as np

from spatial_ros.types import GroundedObject, SensorFrame
from spatial_ros.vlm.backend import GenerationResult
from spatial_ros.vlm.codec import ParseFailure
from spatial_ros.vlm.engine_config import Query
from spatial_ros.vlm.lifting import CandidateView
from spatial_ros.vlm.prompts import normalize_tag

log = logging.getLogger(__name__)


def make_distinct(engine, found: dict[int, GroundedObject], qs, texts, results, convs,
                  images, frame, views, listed, tags, T_out, output_frame,
                  fallbacks: dict | None = None) -> None:
    """Queries whose answers took the same listed candidate get different ones: each
    colliding query scores every listed tag not held by another query as its whole answer,
    and the assignment with the highest total log-probability wins (in place). A candidate
    of another kind than a query's noun (``referring.Fallback``) is never given to it."""
    from scipy.optimize import linear_sum_assignment

    by_view: dict[int, list[int]] = {}
    for i in found:
        v = engine._views.get(i)
        if v is not None:
            by_view.setdefault(id(v), []).append(i)
    clash = sorted(i for group in by_view.values() if len(group) > 1 for i in group)
    if not clash:
        return
    held = {id(engine._views[i]) for i in found if i not in clash and engine._views.get(i)}
    free = [k for k, v in enumerate(listed) if id(v) not in held]
    if len(free) < len(clash):
        return
    try:
        scores = np.array([
            engine.backend.score_choices(images[0] if len(images) == 1 else images[i],
                                         convs[i], [tags[k] for k in free])
            for i in clash
        ])
    except NotImplementedError:
        return
    rows, cols = linear_sum_assignment(-scores)
    for r, c in zip(rows, cols, strict=True):
        i, tag = clash[r], tags[free[c]]
        fb = (fallbacks or {}).get(i)
        if fb is not None and id(listed[free[c]]) not in fb.admissible:
            continue
        res = dataclasses.replace(results[i], text=tag)
        got = engine._object(i, qs[i], texts[i], res, frame, views, listed, tags, T_out,
                             output_frame)
        if isinstance(got, ParseFailure):
            continue
        if found[i].box.center.tolist() != got.box.center.tolist():
            engine.stats.reassigned += 1
            found[i] = dataclasses.replace(got, raw_text=f"{results[i].text} -> {tag} "
                                                         "(distinct objects)")


def ranked(engine, i: int, q: Query, text: str, res: GenerationResult, conv, image,
           frame: SensorFrame, views: list[CandidateView], listed: list[CandidateView],
           tags: list[str], T_out: np.ndarray, output_frame: str) -> GroundedObject | None:
    """Query ``i`` answered a tag the list does not hold (``res.text``, e.g. "wide blue1"
    where the list says "large blue1"): the listed tag sharing a word with it that the
    model scores likeliest as its whole answer, as that candidate's object; None when no
    listed tag shares a word or the backend cannot score answers."""
    said = set(re.findall(r"[a-z]+", normalize_tag(res.text) or ""))
    pool = [t for t in tags if said & set(re.findall(r"[a-z]+", t))]
    if not pool:
        return None
    try:
        scores = engine.backend.score_choices(image, conv, pool)
    except NotImplementedError:
        return None
    best = pool[int(np.argmax(scores))]
    got = engine._object(i, q, text, dataclasses.replace(res, text=best), frame, views, listed,
                         tags, T_out, output_frame)
    if isinstance(got, ParseFailure):
        return None
    engine.stats.ranked += 1
    log.debug("query %d %r: unknown tag %r -> listed %r (log p %.2f)", i, text, res.text,
              best, max(scores))
    return dataclasses.replace(got, raw_text=f"{res.text} -> {best}")
