"""Grounding a referring expression as a small program over the specialist candidates.

1. Each noun phrase becomes a scored *set* of candidates: membership = category fit (the box's
   shape, ``language.categories``; the specialist's class) x colour fit (the basic-term
   distribution of the words against the candidate's pixels, ``language.colours``) x the
   model's relative score for the phrase when a scorer is given (``NameScorer``: the VLM scores
   every listed tag as the answer to the canonical phrase).
2. Relations are evaluated in 3D with ``spatial_ros.spatial.predicates`` (viewer-relative ones
   from the camera's viewpoint; ``language.relations``); anchors are resolved first,
   recursively, and are never the answer.
3. Extremes ("on the left", "the second from the left", "the closest", "the bigger of the two")
   order the remaining set; left/right order by the bearing from the camera (image columns),
   near/far by the distance from the camera, high/low by height in the z-up frame.

A phrase (or an anchor) whose colour no candidate fits well enough takes the member of its kind
whose colours come clearly closest, lit or in deep shadow, or the only member of its kind; its
explanation says so and its score stays low.

The result says which candidate, how sure, why, and — when the words do not single out one
object ("the box" with three boxes in view) — that it is ambiguous and which candidates remain.
Trust geometry for relations, the model for names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from spatial_ros.language import colours as colour_match
from spatial_ros.language.categories import category_score, extents
from spatial_ros.language.refexpr import Extreme, NounPhrase, RefExpr, Relation
from spatial_ros.language.relations import CLOSEST_COLOUR, RelationMixin, likeliest_at
from spatial_ros.language.surface import (
    STANDALONE,
    VEHICLES,
    standalone_likelihood,
    vehicle_likelihood,
)
from spatial_ros.language.views import ObjectView, describe_view  # noqa: F401 - re-exported
from spatial_ros.spatial import predicates as P

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
# a phrase whose colour no candidate fits well enough takes the member of its kind whose colour
# fits more than this many times better than any other's (``Program._likeliest_colour``)
COLOUR_LEAD = 2.0


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


class Program(RelationMixin):
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
        # (``likeliest_at``). People's come from the pedestrian/cyclist confusion: they are
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
            elif not why:  # (a closest-in-colour pick has said why already)
                why.append(f"the only good match for '{name}'" if len(S) == 1 else
                           f"the best match for '{name}' ({m[best]:.2f} vs "
                           f"{m[S[1]]:.2f})")
            remaining = (best, *rivals)
        else:
            remaining = (best,) if decisive else tuple(S)
        score = float(min(1.0, m[best])) * (1.0 if decisive else 1.0 / max(len(remaining), 2))
        return Resolution(best, score, not decisive, remaining, "; ".join(why), members)

    # -- noun phrases whose colour nothing fits ----------------------------------------------

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
        pick = order[k] if doubt is None else likeliest_at(order, -1 if rank == -1 else k,
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
