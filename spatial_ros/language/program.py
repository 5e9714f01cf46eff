"""Grounding a referring expression as a small program over the specialist candidates.

1. Each noun phrase becomes a scored *set* of candidates: membership = category fit (the box's
   shape, ``language.categories``; the specialist's class) x colour fit (the basic-term
   distribution of the words against the candidate's pixels, ``language.colours``) x the
   model's relative score for the phrase when a scorer is given (``NameScorer``: the VLM scores
   every listed tag as the answer to the canonical phrase).
2. Relations are evaluated in 3D with ``spatial_ros.spatial.predicates`` (viewer-relative ones
   from the camera's viewpoint); anchors are resolved first, recursively, and are never the
   answer (an anchor whose colour no candidate fits well enough: the member of its kind that
   fits it clearly best, or the only one).
3. Extremes ("on the left", "the second from the left", "the closest", "the bigger of the two")
   order the remaining set; left/right order by the bearing from the camera (image columns),
   near/far by the distance from the camera, high/low by height in the z-up frame.

The result says which candidate, how sure, why, and — when the words do not single out one
object ("the box" with three boxes in view) — that it is ambiguous and which candidates remain.
Trust geometry for relations, the model for names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from spatial_ros.language import colours as colour_match
from spatial_ros.language.categories import category_score, extents
from spatial_ros.language.refexpr import Extreme, NounPhrase, RefExpr, Relation
from spatial_ros.language.surface import (
    STANDALONE,
    VEHICLES,
    standalone_likelihood,
    vehicle_likelihood,
)
from spatial_ros.language.views import ObjectView, describe_view  # noqa: F401 - re-exported
from spatial_ros.spatial import predicates as P
from spatial_ros.types import Box3D

# membership below this fraction of the best candidate's leaves the set
SET_RELATIVE = 0.25
# ... and below this absolute value
SET_ABSOLUTE = 0.05
# a bare phrase whose second-best member reaches this fraction of the best is ambiguous
AMBIGUOUS_RATIO = 0.5
# exponent of the model's relative score in the membership
MODEL_WEIGHT = 0.5
# an object with less than this share of its projected box in the image counts partly: only a
# sliver at the border (a car cut off at the image edge is still "the closest car"; with 0.5
# such cars left the set and 2 % of street queries failed)
IN_VIEW = 0.02
MODEL_FLOOR = 0.05
# an anchor that no candidate fits well enough by colour is the member of its kind whose colour
# fits at least this many times better than any other's (``Program._likeliest_colour``)
COLOUR_LEAD = 2.0
CLOSEST_COLOUR = "no candidate reads as"  # how such a pick's explanation begins


# (phrase, candidate indices) -> relative model scores in (0, 1] or None (no model)
NameScorer = Callable[[str], np.ndarray | None]


@dataclass
class Resolution:
    """The answer to one referring expression.

    Attributes:
        index: the chosen candidate (index into the views), or None when none fits.
        score: confidence in [0, 1] (membership x decisiveness; low when ambiguous).
        ambiguous: the words do not single out one object.
        remaining: candidates still possible (the chosen one first).
        explanation: why this candidate ("the leftmost of 3 boxes").
        members: the noun phrase's candidate set before constraints.
    """

    index: int | None
    score: float
    ambiguous: bool
    remaining: tuple[int, ...]
    explanation: str
    members: tuple[int, ...] = ()


class Program:
    """Resolves referring expressions over one frame's candidates.

    Args:
        views: the candidates (see ObjectView).
        viewpoint: the camera in the z-up frame of the boxes.
        scorer: optional model scores for a canonical phrase (``NameScorer``), called at most
            once per distinct phrase.
        tie: metres below which two objects count as level on a metric order (scaled up with
            object size: a tenth of the mean extent of the two).
    """

    def __init__(self, views: Sequence[ObjectView], viewpoint: P.Viewpoint,
                 scorer: NameScorer | None = None, tie: float = 0.02):
        self.views = list(views)
        self.vp = viewpoint
        self.scorer = scorer
        self.tie = tie
        self._model: dict[str, np.ndarray | None] = {}
        self._objs = [P.SpatialObject(f"c{k}", v.box, v.points, id=str(k))
                      for k, v in enumerate(self.views)]

    # -- noun phrases ----------------------------------------------------------------------

    def resolvable(self, expr: RefExpr) -> bool:
        """Whether the program can answer: the noun is known (or a hypernym such as "object"
        or "one"), or the model can score an unknown noun; an expression with no noun, colour
        or constraint ("x") is not a referring expression."""
        np_ = expr.np
        if not np_.head and not np_.colours and not expr.constraints:
            return False
        if np_.head and not np_.categories:  # a noun the lexicon lacks: names from the model
            return self.scorer is not None and self._model_scores(np_.canonical()) is not None
        return all(self.resolvable(a) or a.np.categories == ("robot",) for a in expr.anchors())

    def membership(self, np_: NounPhrase, shadow: bool = False) -> np.ndarray:
        """(N,) membership in [0, 1] of every candidate in the phrase's set, from the
        candidates' shapes and colours (the model only breaks ties: ``_tie_break``) and, for
        vehicle nouns, the LiDAR cues that tell a car from a hedge (``language.surface``); for
        a noun the lexicon lacks, the model's relative scores for the phrase. ``shadow``: the
        colours as they may read in deep shadow too (``colours.shadow_distribution``), with
        no floor: for ranking candidates that none fits well (``_likeliest_colour``)."""
        seen = np.array([min(1.0, v.in_view / IN_VIEW) for v in self.views])
        if np_.head and not np_.categories:
            rel = self._model_scores(np_.canonical())
            if rel is not None:
                return np.clip(rel, 0.0, 1.0) * seen
        m = seen * self.kind_fit(np_)
        vehicle = bool(np_.categories) and all(c in VEHICLES for c in np_.categories)
        green = any(t == "green" for c in np_.colours for t, _ in c.terms)
        standalone = bool(np_.categories) and all(c in STANDALONE for c in np_.categories)
        for k, v in enumerate(self.views):
            if vehicle and v.surface is not None:
                m[k] *= vehicle_likelihood(v.surface, np_.categories, green_named=green)
            if standalone and v.surface is not None:
                m[k] *= standalone_likelihood(v.surface)
            cols = v.colours_for(np_.categories) if np_.colours else {}
            for c in np_.colours:
                if cols and shadow:
                    m[k] *= colour_match.match_score(
                        colour_match.shadow_distribution(c.text) or c.terms, cols, floor=0.0)
                elif cols:
                    m[k] *= colour_match.match_score(c.terms, cols)
                grey = colour_match.achromatic_name(c.text) if vehicle else None
                if grey is not None:  # white, silver and grey paint differ in lightness only
                    # (not clothes: a white shirt in the shade of a body reads mid grey)
                    m[k] *= colour_match.lightness_match(grey, v.lightness_for(np_.categories))
        return m

    def kind_fit(self, np_: NounPhrase) -> np.ndarray:
        """(N,) how well every candidate's kind alone (box shape, specialist label) fits the
        phrase's noun, colours and cues aside (``categories.category_score``)."""
        return np.array([category_score(np_.categories, v.box, v.label, v.points)
                         for v in self.views])

    def _model_scores(self, phrase: str) -> np.ndarray | None:
        if phrase not in self._model:
            s = self.scorer(phrase) if self.scorer else None
            self._model[phrase] = None if s is None else np.asarray(s, dtype=np.float64)
        return self._model[phrase]

    def _tie_break(self, np_: NounPhrase, tied: list[int], m: np.ndarray):
        """Candidates the phrase's words fit about equally: the model scores every listed tag
        as the answer to the canonical phrase; the combined score m * rel^MODEL_WEIGHT picks
        the best, and rivals are the ones still within AMBIGUOUS_RATIO of it.
        Returns (best, rivals, note)."""
        rel = self._model_scores(np_.canonical())
        if rel is None:
            return tied[0], tied[1:], ""
        comb = {k: m[k] * max(float(rel[k]), MODEL_FLOOR) ** MODEL_WEIGHT for k in tied}
        order = sorted(tied, key=lambda k: -comb[k])
        best = order[0]
        rivals = [k for k in order[1:] if comb[k] >= AMBIGUOUS_RATIO * comb[best]]
        note = "" if rivals else (f"the model told {len(tied)} look-alikes apart "
                                  f"({comb[best]:.2f} vs {comb[order[1]]:.2f})")
        return best, rivals, note

    def members(self, m: np.ndarray, exclude: set[int]) -> list[int]:
        idx = [k for k in range(len(m)) if k not in exclude]
        if not idx:
            return []
        best = max(m[k] for k in idx)
        keep = [k for k in idx if m[k] >= max(SET_ABSOLUTE, SET_RELATIVE * best)]
        return sorted(keep, key=lambda k: -m[k])

    # -- the program ---------------------------------------------------------------------------

    def resolve(self, expr: RefExpr, exclude: frozenset[int] = frozenset()) -> Resolution:
        """Resolve ``expr`` (candidates in ``exclude`` are never the answer)."""
        if not self.views:
            return Resolution(None, 0.0, False, (), "no candidates in view")
        if not self.resolvable(expr):
            return Resolution(None, 0.0, False, (), "the words name nothing the candidates "
                              "can be checked against (left to the model)")
        m = self.membership(expr.np)
        S = self.members(m, set(exclude))
        name = expr.np.canonical().removeprefix("the ")
        why: list[str] = []
        if not S and expr.np.colours:
            k = self._likeliest_colour(expr.np, set(exclude))
            if k is not None:
                S = [k]
                kind = replace(expr.np, colours=()).canonical().removeprefix("the ")
                why.append(f"{CLOSEST_COLOUR} '{name}': the {kind} whose colours come closest")
        if not S:
            return Resolution(None, 0.0, False, (), f"no candidate looks like a {name}")
        decisive = True
        # Poles' and vehicles' partial memberships doubt that the thing is there at all (a
        # facade's sliver, a hedge): a weak one nearest an anchor or at an extreme gives way
        # (``_likeliest_at``). People's come from the pedestrian/cyclist confusion: they are
        # there either way.
        cats = expr.np.categories
        doubt = m if cats and all(c in STANDALONE or c in VEHICLES for c in cats) else None
        for c in expr.constraints:
            if isinstance(c, Relation):
                S, ok, text = self._relation(c, S, m, exclude, doubt)
                why.append(text)
                decisive &= ok
        extremes = [c for c in expr.constraints if isinstance(c, Extreme)]
        for c in extremes:
            S, ok, text = self._extreme(c, S, name, doubt)
            why.append(text)
            decisive &= ok
        if not S:
            return Resolution(None, 0.0, False, (), "; ".join(why) or "nothing fits")
        best = S[0]
        members = tuple(self.members(m, set(exclude)))
        if not expr.constraints:
            rivals = [k for k in S[1:] if m[k] >= AMBIGUOUS_RATIO * m[best]]
            if rivals and self.scorer is not None and expr.np.colours:
                # words that name colour and kind yet fit several: the specialist may have
                # misread one; a bare "the box" with three boxes stays ambiguous
                best, rivals, note = self._tie_break(expr.np, [best, *rivals], m)
                if note:
                    why.append(note)
            if rivals:
                decisive = False
                why.append(f"{len(rivals) + 1} candidates fit '{name}' about equally "
                           "(ambiguous: add a position, size or relation)")
            else:
                why.append(f"the only good match for '{name}'" if len(S) == 1 else
                           f"the best match for '{name}' ({m[best]:.2f} vs "
                           f"{m[S[1]]:.2f})")
            remaining = (best, *rivals)
        else:
            remaining = (best,) if decisive else tuple(S)
        score = float(min(1.0, m[best])) * (1.0 if decisive else 1.0 / max(len(remaining), 2))
        return Resolution(best, score, not decisive, remaining, "; ".join(why), members)

    # -- relations -----------------------------------------------------------------------------

    def _anchor(self, a: RefExpr, exclude) -> tuple[int | None, str]:
        if a.np.categories == ("robot",):
            return None, "robot"
        r = self.resolve(a, frozenset(exclude))
        if r.explanation.startswith(CLOSEST_COLOUR):
            return r.index, f"{a.np.canonical()} (the closest in colour)"
        return r.index, a.np.canonical()

    def _likeliest_colour(self, np_: NounPhrase, exclude: set[int]) -> int | None:
        """The member of the phrase's kind whose colour fits its words best, when no candidate
        fits them well enough to join the set ("the pedestrian in orange" when the pixels of
        the one walker read brown): the only member of the kind, or one whose colour fit is
        more than ``COLOUR_LEAD`` times every other's, the colours read lit or in deep shadow
        (orange clothes in shade read brown). None when the kind has no member or the colours
        do not tell its members apart."""
        bare = replace(np_, colours=())
        kind = self.membership(bare)
        S = self.members(kind, exclude)
        if len(S) == 1:
            return S[0]
        if not S:
            return None
        full = self.membership(np_, shadow=True)
        fit = sorted(((full[k] / max(kind[k], 1e-9), k) for k in S), reverse=True)
        return fit[0][1] if fit[0][0] > COLOUR_LEAD * fit[1][0] else None

    def _relation(self, c: Relation, S: list[int], m: np.ndarray, exclude, doubt=None):
        anchors = []
        for a in c.anchors:
            k, name = self._anchor(a, exclude)
            anchors.append((k, name))
        names = " and ".join(n for _, n in anchors)
        if any(k is None for k, n in anchors if n != "robot"):
            return S, False, f"cannot find {names}"
        idx = [k for k, _ in anchors if k is not None]
        pool = [s for s in S if s not in idx]
        if not pool:
            return [], False, f"nothing but {names} itself"
        pred = c.predicate
        if pred in ("between",) and len(idx) == 2:
            keyed = [(self._between(s, idx[0], idx[1]), s) for s in pool]
            keyed = [(d, s) for d, s in keyed if d is not None]
            return self._closest(keyed, f"between {names}", doubt)
        if not idx:  # relative to the robot/viewer
            if pred in ("far_from", "farthest_from"):
                return self._ordered(pool, [self.views[s].range for s in pool], "far from you")
            return self._ordered(pool, [-self.views[s].range for s in pool], "close to you")
        a = idx[0]
        A = self._objs[a]
        if pred in ("next_to", "closest_to", "toward", "within"):
            keyed = [(P.box_box_distance(self.views[s].box, A.box), s) for s in pool]
            return self._closest(keyed, f"{pred.replace('_', ' ')} {names}", doubt)
        if pred in ("far_from", "farthest_from"):
            d = [float(np.linalg.norm(self.views[s].box.center - A.box.center)) for s in pool]
            return self._ordered(pool, d, f"farthest from {names}")
        if pred == "inside":
            keyed = [(float(np.linalg.norm(self.views[s].box.center - A.box.center)), s)
                     for s in pool if _inside(self.views[s].box, A.box)]
            if not keyed:
                return [], False, f"nothing inside {names}"
            return self._closest(keyed, f"inside {names}", doubt)
        fn = {"left_of": P.left_of, "right_of": P.right_of, "in_front_of": P.in_front_of,
              "behind": P.behind, "above": P.above, "on": P.above, "below": P.below,
              "under": P.below}[pred]
        sat = []
        for s in pool:
            rel = fn(self._objs[s], A, self.vp)
            if rel.value:
                gap = P.box_box_distance(self.views[s].box, A.box)
                if pred in ("on", "above", "under", "below"):
                    gap = _footprint_offset(self.views[s].box, A.box)
                    if pred == "on":  # resting on: its bottom at the anchor's top
                        gap += abs(P.z_interval(self.views[s].box)[0] - P.z_interval(A.box)[1])
                sat.append((gap, s))
        label = f"{pred.replace('_', ' ')} {names}"
        if not sat:
            return [], False, f"nothing is {label}"
        return self._closest(sat, label, doubt)

    def _between(self, s: int, a: int, b: int) -> float | None:
        p = self.views[s].box.center[:2]
        pa, pb = self.views[a].box.center[:2], self.views[b].box.center[:2]
        ab = pb - pa
        L2 = float(ab @ ab)
        if L2 < 1e-12:
            return None
        t = float((p - pa) @ ab) / L2
        if not -0.1 <= t <= 1.1:
            return None
        return float(np.linalg.norm(p - (pa + np.clip(t, 0, 1) * ab)))

    def _closest(self, keyed: list[tuple[float, int]], label: str,
                 doubt: np.ndarray | None = None):
        """The candidates ordered by a distance-like key (smallest first; with ``doubt``, the
        likeliest member first: ``_likeliest_at``); decisive when the runner-up is clearly
        apart."""
        if not keyed:
            return [], False, f"nothing is {label}"
        keyed.sort()
        S = [s for _, s in keyed]
        if len(keyed) == 1:
            return S, True, f"{label}"
        if doubt is not None:
            keyed.insert(0, keyed.pop(S.index(_likeliest_at(S, 0, doubt))))
            S = [s for _, s in keyed]
        tol = self._tol(S[0], S[1])
        ok = abs(keyed[1][0] - keyed[0][0]) > tol
        note = "" if ok else " (a near tie)"
        return S, ok, f"{label}, the nearest of {len(S)}{note}"

    def _ordered(self, pool: list[int], values: list[float], label: str):
        order = sorted(range(len(pool)), key=lambda i: -values[i])
        S = [pool[i] for i in order]
        ok = len(S) == 1 or values[order[0]] - values[order[1]] > self._tol(S[0], S[1])
        return S, ok, label

    # -- extremes -----------------------------------------------------------------------------

    def _extreme(self, c: Extreme, S: list[int], name: str, doubt: np.ndarray | None = None):
        if not S:
            return S, False, ""
        key, metric = self._key(c)
        vals = {s: key(s) for s in S}
        order = sorted(S, key=lambda s: -vals[s])
        n = len(order)
        plural = f"{n} {_plural(name)}" if n != 1 else f"1 {name}"
        note = ""
        ok = True
        if c.among is not None and c.among != n:
            note = f" (the words say {c.among}, {n} are in view)"
            ok = n >= c.among
        if c.axis == "middle":
            if n < 3 or n % 2 == 0:
                pick = order[n // 2] if n >= 3 else order[0]
                return ([pick] + [s for s in order if s != pick], False,
                        f"no single middle one among {plural}")
            pick = order[n // 2]
            return [pick] + [s for s in order if s != pick], ok, f"the middle one of {plural}"
        rank = c.rank
        k = n - 1 if rank == -1 else rank - 1
        if k >= n:
            return [], False, f"there is no {_ordinal(rank)} of {plural}"
        pick = order[k] if doubt is None else _likeliest_at(order, -1 if rank == -1 else k,
                                                             doubt)
        k = order.index(pick)
        rest = [s for s in order if s != pick]
        # decisive: the neighbours in the order are clearly apart from the pick
        for j in (k - 1, k + 1):
            if 0 <= j < n and abs(vals[order[j]] - vals[pick]) <= self._tol_for(
                    pick, order[j], metric):
                ok = False
                note += f" (near tie with another {name})"
                break
        what = _axis_words(c)
        if n == 1:
            text = f"the only {name}" + note
        else:
            text = f"the {_ordinal(rank)}{what} of {plural}{note}"
        return [pick] + rest, ok, text

    def _key(self, c: Extreme):
        """(candidate -> value whose maximum the extreme picks, metric kind)."""
        v = self.views
        axis = c.axis
        sign = 1.0 if c.direction == "max" else -1.0
        if axis == "left":
            return (lambda s: -v[s].bearing), "bearing"
        if axis in ("right", "middle"):
            return (lambda s: v[s].bearing), "bearing"
        if axis == "near":
            return (lambda s: -v[s].range), "metres"
        if axis == "far":
            return (lambda s: v[s].range), "metres"
        if axis == "high":
            return (lambda s: float(v[s].box.center[2])), "metres"
        if axis == "low":
            return (lambda s: -float(v[s].box.center[2])), "metres"
        if axis == "volume":
            return (lambda s: sign * v[s].box.volume), "volume"
        if axis == "height":
            return (lambda s: sign * extents(v[s].box)[0]), "metres"
        if axis == "length":
            return (lambda s: sign * extents(v[s].box)[1]), "metres"
        if axis == "width":
            return (lambda s: sign * P.width(self._objs[s], self.vp).value), "metres"
        raise ValueError(f"unknown axis {axis!r}")

    def _tol(self, a: int, b: int) -> float:
        """Metres: the larger of ``tie`` and a tenth of the two boxes' mean horizontal size."""
        sa = float(np.mean(self.views[a].box.size[:2]))
        sb = float(np.mean(self.views[b].box.size[:2]))
        return max(self.tie, 0.1 * 0.5 * (sa + sb))

    def _tol_for(self, a: int, b: int, metric: str) -> float:
        t = self._tol(a, b)
        if metric == "bearing":  # metres at the objects' depth -> x/z
            z = max(1e-3, min(self.views[a].center_optical[2], self.views[b].center_optical[2]))
            return t / z
        if metric == "volume":
            return 0.1 * max(self.views[a].box.volume, self.views[b].box.volume)
        return t


def _axis_words(c: Extreme) -> str:
    words = {"left": " from the left", "right": " from the right", "near": " closest",
             "far": " farthest", "high": " highest", "low": " lowest"}
    if c.axis in words:
        return words[c.axis]
    return f" by {c.axis} ({'largest' if c.direction == 'max' else 'smallest'})"


def _plural(name: str) -> str:
    return name + ("es" if name.endswith(("s", "x", "ch", "sh")) else "s")


def _ordinal(rank: int) -> str:
    if rank == -1:
        return "last"
    return {1: "first", 2: "second", 3: "third"}.get(rank, f"{rank}th")


def _footprint_offset(a: Box3D, b: Box3D) -> float:
    """Horizontal distance of a's centre from b's centre, metres."""
    return float(math.hypot(*(a.center[:2] - b.center[:2])))


def _inside(a: Box3D, b: Box3D, margin: float = 0.02) -> bool:
    """a's centre lies inside b's box grown by ``margin``."""
    local = (a.center - b.center) @ b.rotation
    return bool(np.all(np.abs(local) <= b.size / 2 + margin))


def _likeliest_at(order: list[int], k: int, m: np.ndarray) -> int:
    """The candidate most likely to be the (k+1)-th member along ``order`` (best first) when
    membership is uncertain: each candidate is a member with probability m / max(m) over
    ``order``, so a weak member at the extreme ("a pole" that may be a facade's sliver) gives
    way to a sure one just behind it. Equal memberships keep ``order[k]``."""
    if k < 0:  # the last: the first from the other end
        return _likeliest_at(order[::-1], 0, m)
    q = np.array([m[s] for s in order], dtype=np.float64)
    q = np.clip(q / max(float(q.max()), 1e-12), 0.0, 1.0)
    ahead = np.zeros(k + 1)  # ahead[j]: P(exactly j members before this candidate)
    ahead[0] = 1.0
    best, pick = -1.0, order[min(k, len(order) - 1)]
    for s, p in zip(order, q, strict=True):
        here = p * ahead[k]
        if here > best + 1e-9:
            best, pick = here, s
        ahead[1:] = ahead[1:] * (1.0 - p) + ahead[:-1] * p
        ahead[0] *= 1.0 - p
    return pick
