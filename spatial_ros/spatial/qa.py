"""SpatialVLM-style spatial QA: a seeded question generator and a deterministic answerer.

:func:`generate_qa` turns objects with gravity-aligned 3D boxes into question/answer pairs of
38 types (24 qualitative, 14 quantitative; see ``templates.QUESTION_TYPES``), half qualitative
by default, with human-like rounding and units. Answers come from the predicates in
:mod:`spatial_ros.spatial.predicates`; near ties are skipped, never guessed.

Ambiguity resolution: objects are referred to by caption ("the red mug"). Two objects with the
same caption get qualifiers from the clearest separation: lateral ("the red mug on the left" /
"... on the right"), else depth ("the nearer red mug" / "the farther red mug"), else height
("the upper red mug" / "the lower red mug"); when none is clear, or three or more share a caption,
those objects are dropped from the QA.

:func:`answer_question` parses the common question forms (all generated phrasings included),
finds the objects by fuzzy-matching their captions, and answers from the boxes — the ``ask``
service and ``spatial-ros ask`` use it on grounded objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from spatial_ros.errors import CalibrationError, ConfigError, ParseError
from spatial_ros.spatial import predicates as P
from spatial_ros.spatial.answers import (
    DISPLAY_UNITS,
    describe_length,
    find_mentions,
    format_length,
    rounding_tolerance,
)
from spatial_ros.spatial.predicates import PredicateConfig, SpatialObject, Viewpoint
from spatial_ros.spatial.templates import (
    QUALITATIVE_TYPES,
    QUANTITATIVE_TYPES,
    QUESTION_TYPES,
)
from spatial_ros.types import GroundedObject, SensorFrame

# ----------------------------------------------------------------------------------------------
# Results and configuration
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QAPair:
    """One spatial question with its answer.

    Attributes:
        question, answer: the texts.
        type: question type (a key of ``QUESTION_TYPES``).
        qualitative: yes/no or which-object question (else quantitative).
        value: the exact answer: bool for yes/no, float metres for lengths (signed where the
            question asks a direction: negative = the opposite of what was asked), the hour
            (1..12) for clock directions, None for which-object questions and near ties.
        unit: unit of ``value``: "m", "o'clock" or None.
        subject, object: the referring phrases used ("the red mug on the left"); object is None
            for single-object questions.
        subject_id, object_id: the objects' ``SpatialObject.id``.
        choice: which-object answers: the referring phrase of the chosen object.
        display_unit: unit of the number written in the answer ("cm", "in", ...).
        tolerance: metres; the rounding error bound of the number written in the answer.
        ambiguous: the answerer found a near tie and answered "not clearly" (value None).
    """

    question: str
    answer: str
    type: str
    qualitative: bool
    value: float | bool | None
    unit: str | None
    subject: str
    object: str | None = None
    subject_id: str = ""
    object_id: str = ""
    choice: str | None = None
    display_unit: str | None = None
    tolerance: float = 0.0
    ambiguous: bool = False

    @property
    def text(self) -> str:
        """The answer text (alias of ``answer``, for callers that treat this as a reply)."""
        return self.answer


@dataclass(frozen=True)
class QAConfig:
    """Configuration of the generator and the answerer.

    Attributes:
        qualitative_fraction: share of qualitative questions in ``generate_qa`` (0..1).
        predicate: tolerances of the predicates (near ties are skipped / answered "not
            clearly").
        qualifier_margin: metres of separation needed to tell two same-caption objects apart by
            "left/right", "nearer/farther" or "upper/lower".
        min_length: metres; quantitative answers shorter than this are not generated.
        types: restrict generation to these question types (None = all).
        units: display units the generator may use.
        match_threshold: fuzzy caption matching threshold (difflib ratio, 0..1).
    """

    qualitative_fraction: float = 0.5
    predicate: PredicateConfig = field(default_factory=PredicateConfig)
    qualifier_margin: float = 0.05
    min_length: float = 0.01
    types: tuple[str, ...] | None = None
    units: tuple[str, ...] = DISPLAY_UNITS
    match_threshold: float = 0.82

    def __post_init__(self) -> None:
        if not 0.0 <= self.qualitative_fraction <= 1.0:
            raise ConfigError(
                f"QAConfig.qualitative_fraction must be in [0, 1], got {self.qualitative_fraction}"
            )
        if not (self.qualifier_margin >= 0 and self.min_length >= 0):
            raise ConfigError(
                f"QAConfig: qualifier_margin ({self.qualifier_margin}) and min_length "
                f"({self.min_length}) must be >= 0"
            )
        if not 0.0 < self.match_threshold <= 1.0:
            raise ConfigError(
                f"QAConfig.match_threshold must be in (0, 1], got {self.match_threshold}"
            )
        if self.types is not None:
            unknown = sorted(set(self.types) - set(QUESTION_TYPES))
            if unknown or not self.types:
                raise ConfigError(
                    f"QAConfig.types: unknown or empty {unknown or list(self.types)}; "
                    f"known: {sorted(QUESTION_TYPES)}"
                )
        bad_units = sorted(set(self.units) - set(DISPLAY_UNITS))
        if bad_units or not self.units:
            raise ConfigError(f"QAConfig.units: {bad_units or 'empty'}; use {DISPLAY_UNITS}")


# ----------------------------------------------------------------------------------------------
# Referring expressions and ambiguity resolution
# ----------------------------------------------------------------------------------------------

_ARTICLES = ("the ", "a ", "an ")


def caption_key(caption: str) -> str:
    """Normalised caption used to find objects that share a caption (lower case, no article)."""
    t = re.sub(r"\s+", " ", caption.strip().lower())
    for art in _ARTICLES:
        if t.startswith(art):
            return t[len(art):]
    return t


def referring_phrase(caption: str) -> str:
    """"red mug" / "a red mug" -> "the red mug" (other determiners are kept)."""
    c = re.sub(r"\s+", " ", caption.strip())
    low = c.lower()
    for art in _ARTICLES:
        if low.startswith(art):
            return "the " + c[len(art):]
    if low.split()[0] in ("this", "that", "my", "your", "our", "his", "her", "their"):
        return c
    return "the " + c


@dataclass(frozen=True)
class Reference:
    """How the QA refers to one object.

    Attributes:
        index: index into the input objects.
        phrase: the referring phrase written in questions ("the red mug on the left").
        aliases: phrases that refer to it in a user's question (for fuzzy matching).
        group: index of its caption group (objects sharing a caption share a group).
    """

    index: int
    phrase: str
    aliases: tuple[str, ...]
    group: int


def _with_adjective(base: str, adj: str) -> str:
    return "the " + adj + " " + base[4:] if base.startswith("the ") else f"{adj} {base}"


def _qualify_pair(
    a: SpatialObject, b: SpatialObject, base: str, vp: Viewpoint, cfg: QAConfig
) -> tuple[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...]]] | None:
    """Phrases + aliases telling two same-caption objects apart, or None."""
    core = base[4:] if base.startswith("the ") else base
    lat = P.lateral_offset(a, b, vp).value  # > 0: a is right of b
    if abs(lat) >= cfg.qualifier_margin:
        left = (f"{base} on the left",
                (f"{core} on the left", f"left {core}", f"leftmost {core}", f"{core} to the left"))
        right = (f"{base} on the right", (f"{core} on the right", f"right {core}",
                                          f"rightmost {core}", f"{core} to the right"))
        return (right, left) if lat > 0 else (left, right)
    dep = P.depth_offset(a, b, vp, cfg.predicate).value  # > 0: a is behind b
    if abs(dep) >= cfg.qualifier_margin:
        near = (_with_adjective(base, "nearer"), (f"nearer {core}", f"closer {core}",
                                                  f"nearest {core}", f"closest {core}",
                                                  f"{core} in front"))
        far = (_with_adjective(base, "farther"), (f"farther {core}", f"further {core}",
                                                  f"farthest {core}", f"{core} at the back",
                                                  f"{core} behind"))
        return (far, near) if dep > 0 else (near, far)
    dz = float(a.box.center[2] - b.box.center[2])
    if abs(dz) >= cfg.qualifier_margin:
        up = (_with_adjective(base, "upper"), (f"upper {core}", f"higher {core}", f"top {core}",
                                               f"{core} on top"))
        low = (_with_adjective(base, "lower"), (f"lower {core}", f"bottom {core}",
                                                f"{core} below", f"{core} underneath"))
        return (up, low) if dz > 0 else (low, up)
    return None


def resolve_references(
    objects: list[SpatialObject], viewpoint: Viewpoint, config: QAConfig | None = None
) -> tuple[list[Reference], list[int]]:
    """Referring phrases for the objects, with SpatialVLM's ambiguity resolution.

    Returns:
        (references of the kept objects in input order, indices of the dropped objects).
        A caption shared by two objects gets qualifiers (see module doc); shared by three or
        more, or two that no qualifier separates clearly, drops those objects.
    """
    cfg = config or QAConfig()
    groups: dict[str, list[int]] = {}
    for i, o in enumerate(objects):
        groups.setdefault(caption_key(o.name), []).append(i)
    refs: dict[int, Reference] = {}
    dropped: list[int] = []
    for gid, (_key, members) in enumerate(groups.items()):
        base = referring_phrase(objects[members[0]].name)
        if len(members) == 1:
            i = members[0]
            name = objects[i].name
            refs[i] = Reference(i, referring_phrase(name), (caption_key(name),), gid)
            continue
        if len(members) == 2:
            i, j = members
            q = _qualify_pair(objects[i], objects[j], base, viewpoint, cfg)
            if q is not None:
                refs[i] = Reference(i, q[0][0], q[0][1], gid)
                refs[j] = Reference(j, q[1][0], q[1][1], gid)
                continue
        dropped.extend(members)
    return [refs[i] for i in sorted(refs)], sorted(dropped)


# ----------------------------------------------------------------------------------------------
# Evaluation of one question type (shared by the generator and the answerer)
# ----------------------------------------------------------------------------------------------

_REL = {
    "left": "left_of", "right": "right_of", "above": "above", "below": "below",
    "behind": "behind", "front": "in_front_of", "closer": "closer_to_camera",
    "farther": "farther_from_camera", "taller": "taller", "shorter": "shorter",
    "wider": "wider", "thinner": "thinner", "bigger": "bigger", "smaller": "smaller",
}
_PAIR_MEASURE = {
    "direct_distance": "center_distance", "gap_distance": "surface_distance",
    "horizontal_distance": "horizontal_distance", "vertical_distance": "vertical_distance",
}


@dataclass
class _Outcome:
    value: float | bool | None
    unit: str | None
    ambiguous: bool = False
    choice: int | None = None  # 0 = subject, 1 = object
    length: float | None = None  # non-negative metres written as {D}
    hour: int | None = None
    direction: str | None = None  # {dir}
    positive: bool = True  # predicate holds / signed quantity points the asked way


def _evaluate(
    tname: str, a: SpatialObject, b: SpatialObject | None, vp: Viewpoint, cfg: QAConfig,
    direction: str | None = None,
) -> _Outcome:
    """The answer to question type ``tname`` about subject ``a`` and reference ``b``.

    ``direction`` (answerer only) is the direction the question asks for lateral_offset
    ("left"/"right") and behind_offset ("behind"/"front"); the generator leaves it None and
    takes the true one."""
    pc = cfg.predicate
    kind = QUESTION_TYPES[tname].kind
    stem = tname.rsplit("_", 1)[0]
    if kind == "predicate":
        r = P.relation(_REL[stem], a, b, vp, pc)
        return _Outcome(r.value, None, r.ambiguous, positive=r.value)
    if kind == "choice":
        r1, r2 = P.relation(_REL[stem], a, b, vp, pc), P.relation(_REL[stem], b, a, vp, pc)
        amb = r1.ambiguous or r2.ambiguous or r1.value == r2.value
        return _Outcome(None, None, amb, choice=0 if r1.value else 1)
    if kind in ("clock", "pair_clock"):
        c = P.clock_direction(a, vp, b if kind == "pair_clock" else None, pc)
        return _Outcome(float(c.hour), "o'clock", c.ambiguous, hour=c.hour)
    if kind == "unary_length":
        m = P.UNARY_MEASURES[tname](a, vp, pc)
        return _Outcome(m.value, "m", False, length=abs(m.value), positive=m.value > 0)
    if tname in _PAIR_MEASURE:
        m = P.PAIR_MEASURES[_PAIR_MEASURE[tname]](a, b, vp, pc)
        return _Outcome(m.value, "m", False, length=m.value)
    if tname in ("taller_by", "wider_by"):
        r = P.relation(tname[:-3], a, b, vp, pc)
        return _Outcome(r.margin, "m", r.ambiguous, length=abs(r.margin), positive=r.value)
    if tname == "lateral_offset":
        lo = P.lateral_offset(a, b, vp).value  # > 0: a right of b
        true_dir = "right" if lo > 0 else "left"
        asked = direction or true_dir
        signed = lo if asked == "right" else -lo
        return _Outcome(signed, "m", abs(lo) < pc.tie_tolerance, length=abs(lo),
                        direction=asked, positive=signed > 0)
    if tname == "behind_offset":
        d = P.depth_offset(a, b, vp, pc).value  # > 0: a behind b
        asked = direction or "behind"
        signed = d if asked == "behind" else -d
        return _Outcome(signed, "m", abs(d) < pc.tie_tolerance, length=abs(d),
                        direction=asked, positive=signed > 0)
    raise ConfigError(f"unknown question type {tname!r}")  # pragma: no cover - guarded above


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def _fill(template: str, **kw) -> str:
    """Format a template and capitalise every sentence start ("Yes. the mug" -> "Yes. The")."""
    text = template.format(**kw)
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------


class _Sampler:
    """Draws distinct (type, key) questions: a type uniformly among those with unused keys,
    then an unused key of it, skipping keys whose answer is a near tie."""

    def __init__(self, types, n_refs: int, rng: np.random.Generator, make) -> None:
        self.types = [t for t in types if self._keys_count(t, n_refs) > 0]
        self.n = n_refs
        self.rng = rng
        self.make = make
        self.pools: dict[str, list] = {}

    @staticmethod
    def _keys_count(t: str, n: int) -> int:
        return n if QUESTION_TYPES[t].kind in ("unary_length", "clock") else n * (n - 1)

    def _pool(self, t: str) -> list:
        if t not in self.pools:
            if QUESTION_TYPES[t].kind in ("unary_length", "clock"):
                keys = [(i, None) for i in range(self.n)]
            else:
                keys = [(i, j) for i in range(self.n) for j in range(self.n) if i != j]
            self.pools[t] = [keys[k] for k in self.rng.permutation(len(keys))]
        return self.pools[t]

    def draw(self, k: int) -> list[QAPair]:
        out: list[QAPair] = []
        while len(out) < k and self.types:
            t = self.types[int(self.rng.integers(len(self.types)))]
            pool = self._pool(t)
            if not pool:
                self.types.remove(t)
                continue
            qa = self.make(t, pool.pop())
            if qa is not None:
                out.append(qa)
        return out


def generate_qa(
    objects: list[SpatialObject],
    viewpoint: Viewpoint,
    rng: np.random.Generator | int,
    n: int,
    config: QAConfig | None = None,
) -> list[QAPair]:
    """Generate up to ``n`` distinct spatial QA pairs about ``objects``.

    Args:
        objects: objects with boxes in a gravity-aligned z-up frame (see predicates).
        viewpoint: the camera the view-dependent words refer to.
        rng: numpy Generator or an int seed; the same seed and inputs give the same pairs.
        n: number of pairs wanted; fewer come back when the scene has fewer answerable distinct
            (type, subject, object) questions.
        config: QAConfig.

    Returns:
        QA pairs in random order, ``round(n * qualitative_fraction)`` of them qualitative when
        the scene allows (the other category fills up any shortfall).
    """
    cfg = config or QAConfig()
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"generate_qa: n must be a non-negative integer, got {n!r}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    refs, _ = resolve_references(objects, viewpoint, cfg)
    types = cfg.types or tuple(QUESTION_TYPES)

    def make(tname: str, key) -> QAPair | None:
        ra = refs[key[0]]
        rb = refs[key[1]] if key[1] is not None else None
        qt = QUESTION_TYPES[tname]
        if qt.qualitative and rb is not None and ra.group == rb.group:
            return None  # the qualifiers would give the answer away
        a, b = objects[ra.index], (objects[rb.index] if rb else None)
        out = _evaluate(tname, a, b, viewpoint, cfg)
        if out.ambiguous:
            return None
        if out.length is not None and (out.length < cfg.min_length or not out.positive):
            return None
        names = {"A": ra.phrase, "B": rb.phrase if rb else ""}
        question = _fill(qt.questions[int(gen.integers(len(qt.questions)))],
                         dir=out.direction or "", **names)
        extra: dict = {}
        if qt.kind == "predicate":
            pool = qt.answers if out.value else qt.negative_answers
            answer = _fill(pool[int(gen.integers(len(pool)))], **names)
        elif qt.kind == "choice":
            x, y = (ra, rb) if out.choice == 0 else (rb, ra)
            answer = _fill(qt.answers[int(gen.integers(len(qt.answers)))],
                           X=x.phrase, Y=y.phrase, **names)
            extra["choice"] = x.phrase
        elif qt.kind in ("clock", "pair_clock"):
            answer = _fill(qt.answers[int(gen.integers(len(qt.answers)))],
                           H=f"{out.hour} o'clock", **names)
        else:
            lt = describe_length(out.length, gen, cfg.units)
            answer = _fill(qt.answers[int(gen.integers(len(qt.answers)))],
                           D=lt.text, dir=out.direction or "", **names)
            extra.update(display_unit=lt.unit, tolerance=lt.tolerance)
        return QAPair(
            question, answer, tname, qt.qualitative, out.value, out.unit, ra.phrase,
            rb.phrase if rb else None, objects[ra.index].id,
            objects[rb.index].id if rb else "", **extra,
        )

    qual = _Sampler([t for t in types if t in QUALITATIVE_TYPES], len(refs), gen, make)
    quant = _Sampler([t for t in types if t in QUANTITATIVE_TYPES], len(refs), gen, make)
    n_qual = int(round(n * cfg.qualitative_fraction))
    pairs = qual.draw(n_qual)
    pairs += quant.draw(n - len(pairs))
    pairs += qual.draw(n - len(pairs))
    return [pairs[i] for i in gen.permutation(len(pairs))]


# ----------------------------------------------------------------------------------------------
# Answering free-form questions
# ----------------------------------------------------------------------------------------------

# A phrase like "than <1>" marks <1> as the reference object of the question.
_MARKER_RE = re.compile(
    r"\b(?:than|of|behind|over|above|below|under|underneath|beneath|with|to|from|at|if)"
    r" <(\d)>"
)


def _has(s: str, *phrases: str) -> bool:
    return any(re.search(rf"(?<![a-z]){p}(?![a-z])", s) for p in phrases)


_LEFT = ("left", "leftmost", "leftward")
_RIGHT = ("right", "rightmost", "rightward")
_BEHIND = ("behind", "farther back", "further back", "at back", "far back", "deeper")
_FRONT = ("in front", "ahead of", "closer to front", "nearer to front")
_ABOVE = ("above", "on top", "over", "higher", "upper")
_BELOW = ("below", "under", "underneath", "beneath", "lower")
_CLOSER = ("closer", "nearer", "nearest", "closest", "less far", "reach first",
           "shorter distance")
_FARTHER = ("farther", "further", "more distant", "farthest", "furthest", "reach last",
            "greater distance")
_SHORTER = ("shorter", "less height", "lesser height", "smaller height", "not as tall",
            r"height of <\d> less")
_TALLER = ("taller", "greater height", "more height", "tallest", r"height of <\d> greater")
_THINNER = ("thinner", "narrower", "less width", "smaller width", "skinnier",
            r"width of <\d> less")
_WIDER = ("wider", "broader", "more width", "greater width", r"width of <\d> greater")
_SMALLER = ("smaller", "tinier", "less space", "lesser in size", "more compact",
            "smaller volume")
_BIGGER = ("bigger", "larger", "more space", "greater in size", "more voluminous",
           "larger volume")
# Order matters: direction words first ("further left" is about left), camera distance
# before sizes ("shorter distance"), height/width before volume ("smaller height").
_COMPARISONS = (
    ("left", _LEFT), ("right", _RIGHT), ("behind", _BEHIND), ("front", _FRONT),
    ("closer", _CLOSER), ("farther", _FARTHER), ("above", _ABOVE), ("below", _BELOW),
    ("shorter", _SHORTER), ("taller", _TALLER), ("thinner", _THINNER), ("wider", _WIDER),
    ("smaller", _SMALLER), ("bigger", _BIGGER),
)
_QUANT = ("how far", "distance", "how close", "apart", "gap", "space between", "clearance",
          "separat[a-z]*", "how near", "offset", "how much", "by what amount", "how many",
          "measure",
          "difference", "how tall", "how wide", "how high", "how deep", "how broad",
          "height", "width", "depth", "how distant", "how big is gap", "vertical size",
          "side to side size", "far away")


def _classify(s: str, n: int) -> tuple[str, str | None]:
    """(question type, asked direction) from the question with objects replaced by <k>."""
    if _has(s, "oclock", "clock", "o clock"):
        if n == 1:
            return "clock_direction", None
        if n >= 2:
            return "relative_clock_direction", None
    if n >= 2 and (_has(s, "which", "who") or re.search(r"<\d> or <\d>", s)):
        for stem, words in _COMPARISONS:
            if _has(s, *words):
                return f"{stem}_choice", None
        raise ParseError(
            "a which-of-two question, but no comparison word was found (left/right, "
            "above/below, closer/farther, taller/shorter, wider/thinner, bigger/smaller)"
        )
    yes_no = not _has(s, "how", "what", "which", "who", "where", "measure", "give", "tell me")
    if _has(s, *_QUANT) and not (yes_no and n >= 2):
        if n >= 2:
            if _has(s, "horizontal", "horizontally", "ignoring height", "along floor",
                    "along ground", "seen from above"):
                return "horizontal_distance", None
            if _has(s, "vertical", "vertically", "up and down", "how far above",
                    "how far below", "how high above"):
                return "vertical_distance", None
            if _has(s, *_WIDER, "width", "side to side"):
                return "wider_by", None
            if _has(s, *_TALLER, "height", "tower"):
                return "taller_by", None
            if _has(s, *_LEFT):
                return "lateral_offset", "left"
            if _has(s, *_RIGHT):
                return "lateral_offset", "right"
            if _has(s, *_BEHIND):
                return "behind_offset", "behind"
            if _has(s, "in front of"):
                return "behind_offset", "front"
            if _has(s, "gap", "space", "clearance", "closest", "nearest", "edge", "surface",
                    "each other"):
                return "gap_distance", None
            return "direct_distance", None
        if n == 1:
            if _has(s, "how tall", "height", "how high", "vertical size", "bottom to top"):
                return "height", None
            if _has(s, "how wide", "width", "how broad", "side to side", "left to right",
                    "across"):
                return "width", None
            if _has(s, "depth", "how deep", "in front of camera", "ahead of camera",
                    "line of sight", "straight ahead", "forward from", "viewing direction"):
                return "depth", None
            return "camera_distance", None
    if n >= 2:
        for stem, words in _COMPARISONS:
            if _has(s, *words):
                return f"{stem}_predicate", None
        raise ParseError(
            "no spatial relation found: ask e.g. 'Is the mug left of the bowl?' or "
            "'How far is the mug from the bowl?'"
        )
    if n == 1:
        raise ParseError(
            "one object found but no question about it (ask its distance, height, width, "
            "depth or clock direction), or a relation that needs a second object"
        )
    raise ParseError("no object mentioned")  # pragma: no cover - handled by the caller


def _ordinal_aliases(objects, members, base, vp, cfg) -> dict[int, tuple[str, tuple[str, ...]]]:
    """Answerer only: three or more same-caption objects, ordered left to right when every
    neighbouring pair is clearly apart -> "the leftmost / second from the left ..." aliases."""
    lat = {i: float(objects[i].box.center @ vp.right) for i in members}
    order = sorted(members, key=lat.get)
    gaps = [lat[order[k + 1]] - lat[order[k]] for k in range(len(order) - 1)]
    if min(gaps) < cfg.qualifier_margin:
        return {}
    core = base[4:] if base.startswith("the ") else base
    words = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
    out = {}
    for k, i in enumerate(order):
        al = []
        if k < len(words):
            al.append(f"{words[k]} {core} from the left")
        if len(order) - 1 - k < len(words):
            al.append(f"{words[len(order) - 1 - k]} {core} from the right")
        if k == 0:
            al += [f"leftmost {core}", f"{core} on the left"]
        if k == len(order) - 1:
            al += [f"rightmost {core}", f"{core} on the right"]
        if al:  # (the middle of very long rows has no ordinal phrase)
            out[i] = (f"the {al[0]}", tuple(al))
    return out


def _answer_references(objects, viewpoint, cfg):
    refs, dropped = resolve_references(objects, viewpoint, cfg)
    by_group: dict[str, list[int]] = {}
    for i in dropped:
        by_group.setdefault(caption_key(objects[i].name), []).append(i)
    extra = []
    for _key, members in by_group.items():
        if len(members) >= 3:
            base = referring_phrase(objects[members[0]].name)
            for i, (phrase, aliases) in _ordinal_aliases(objects, members, base, viewpoint,
                                                         cfg).items():
                extra.append(Reference(i, phrase, aliases, -1 - len(extra)))
    return refs + extra


def answer_question(
    question: str,
    objects: list[SpatialObject],
    viewpoint: Viewpoint,
    config: QAConfig | None = None,
    *,
    unit: str = "auto",
) -> QAPair:
    """Answer a spatial question about ``objects`` from their boxes (deterministic).

    Objects are found by fuzzy-matching their referring phrases (caption, or the qualified
    phrase for same-caption objects: "the red mug on the left", "the nearer red mug", "the
    second red mug from the left"); the first object mentioned is the subject unless a phrase
    such as "than X", "of X", "from X" marks the other one as the reference.

    Args:
        question: free text, e.g. "How far is the red mug from the bowl?".
        objects, viewpoint: as for :func:`generate_qa`.
        unit: "auto" (cm below 1 m, else m) or a display unit ("m", "cm", "in", "ft").

    Returns:
        QAPair; ``ambiguous`` (value None) when the answer is a near tie.

    Raises:
        ParseError: no known object named, an ambiguous object reference, or a question form it
            does not understand (the reason says which and what to ask instead).
    """
    cfg = config or QAConfig()
    if unit != "auto" and unit not in DISPLAY_UNITS:
        raise ConfigError(f"answer_question: unit must be 'auto' or one of {DISPLAY_UNITS}")
    if not isinstance(question, str) or not question.strip():
        raise ParseError("empty question")
    if not objects:
        raise ParseError("there are no objects to answer about (nothing was grounded)")
    refs = _answer_references(objects, viewpoint, cfg)
    mentions = find_mentions(question, [list(r.aliases) for r in refs], cfg.match_threshold)
    tokens = re.findall(r"[a-z0-9]+", question.lower().replace("'", ""))
    parts, pos = [], 0
    for k, m in enumerate(mentions):
        parts += tokens[pos:m.start] + [f"<{k}>"]
        pos = m.end
    parts += tokens[pos:]
    s = " ".join(t for t in parts if t != "the")  # keywords below are written without "the"
    _check_unresolved(s, objects, refs, cfg)
    if not mentions:
        names = sorted({r.phrase for r in refs})
        raise ParseError(f"no known object in the question; known objects: {names}")
    if len(mentions) > 2:
        raise ParseError(
            f"the question names {len(mentions)} objects "
            f"({[refs[m.index].phrase for m in mentions]}); ask about one or two at a time"
        )
    tname, direction = _classify(s, len(mentions))
    qt = QUESTION_TYPES[tname]
    subj, obj = 0, (1 if len(mentions) == 2 else None)
    if obj is not None and qt.kind != "choice" and tname not in _PAIR_MEASURE:
        # (which-of-two and symmetric distances keep the mention order)
        marked = _MARKER_RE.findall(s)
        if marked and int(marked[-1]) in (0, 1):
            obj = int(marked[-1])
            subj = 1 - obj
    ra = refs[mentions[subj].index]
    rb = refs[mentions[obj].index] if obj is not None else None
    a, b = objects[ra.index], (objects[rb.index] if rb else None)
    out = _evaluate(tname, a, b, viewpoint, cfg, direction)
    names = {"A": ra.phrase, "B": rb.phrase if rb else ""}
    common = dict(subject=ra.phrase, object=rb.phrase if rb else None,
                  subject_id=a.id, object_id=b.id if b else "")
    if out.ambiguous:
        return QAPair(question, _not_clearly(tname, names), tname, qt.qualitative, None,
                      out.unit, ambiguous=True, **common)
    if qt.kind == "predicate":
        answer = _fill((qt.answers if out.value else qt.negative_answers)[0], **names)
        return QAPair(question, answer, tname, True, bool(out.value), None, **common)
    if qt.kind == "choice":
        x, y = (ra, rb) if out.choice == 0 else (rb, ra)
        answer = _fill(qt.answers[0], X=x.phrase, Y=y.phrase, **names)
        return QAPair(question, answer, tname, True, None, None, choice=x.phrase, **common)
    if qt.kind in ("clock", "pair_clock"):
        answer = _fill(qt.answers[0], H=f"{out.hour} o'clock", **names)
        return QAPair(question, answer, tname, False, out.value, out.unit, **common)
    u = unit if unit != "auto" else ("cm" if out.length < 1.0 else "m")
    d = format_length(out.length, u, long=(u == "m" and out.length >= 1.0))
    answer = _fill(qt.answers[0], D=d, dir=out.direction or "", **names)
    if not out.positive:
        answer = _opposite(tname, names, d, out)
    return QAPair(question, answer, tname, False, out.value, out.unit, display_unit=u,
                  tolerance=rounding_tolerance(out.length, u), **common)


def _check_unresolved(s: str, objects, refs, cfg: QAConfig) -> None:
    """Raise when the question names a caption shared by several objects without a qualifier
    (the qualified mentions are already replaced by <k> in ``s``)."""
    groups: dict[str, list[int]] = {}
    for i, o in enumerate(objects):
        groups.setdefault(caption_key(o.name), []).append(i)
    shared = [(k, v) for k, v in groups.items() if len(v) > 1]
    if not shared:
        return
    found = find_mentions(s, [k for k, _ in shared], cfg.match_threshold)
    if found:
        key, members = shared[found[0].index]
        options = [r.phrase for r in refs if r.index in members]
        hint = (f"say {' or '.join(repr(o) for o in options)}" if options
                else "they cannot be told apart from here")
        raise ParseError(f"'{key}' could mean any of {len(members)} objects; {hint}")


def _not_clearly(tname: str, names: dict) -> str:
    a, b = names["A"], names["B"]
    qt = QUESTION_TYPES[tname]
    if qt.kind == "predicate":
        return _cap(f"Not clearly; {a} and {b} are too close to call.")
    if qt.kind == "choice":
        return _cap(f"Neither clearly; {a} and {b} are about the same in that respect.")
    if qt.kind in ("clock", "pair_clock"):
        return _cap(f"{a} is between two clock directions (or right at the reference).")
    return _cap(f"{a} and {b} are about the same; the difference is within the tolerance.")


def _opposite(tname: str, names: dict, d: str, out: _Outcome) -> str:
    a, b = names["A"], names["B"]
    if tname == "taller_by":
        return _cap(f"{a} is not taller than {b}; it is {d} shorter.")
    if tname == "wider_by":
        return _cap(f"{a} is not wider than {b}; it is {d} narrower.")
    if tname == "lateral_offset":
        other = "right" if out.direction == "left" else "left"
        return _cap(f"{a} is not to the {out.direction} of {b}; it is {d} to the {other}.")
    if tname == "behind_offset":
        if out.direction == "behind":
            return _cap(f"{a} is not behind {b}; it is {d} in front of it.")
        return _cap(f"{a} is not in front of {b}; it is {d} behind it.")
    if tname == "depth":
        return _cap(f"{a} is behind the camera, {d} back along the viewing direction.")
    return _cap(f"{a}: {d}.")  # pragma: no cover - other lengths are never negative


def answer_objects(
    question: str,
    objects: list[GroundedObject],
    frame: SensorFrame,
    config: QAConfig | None = None,
    *,
    unit: str = "auto",
) -> QAPair:
    """Answer a question about grounded objects of one sensor frame (the ``ask`` service).

    The objects' boxes must share one z-up output frame (``box.frame_id``, e.g. base_link);
    the viewpoint is the camera of ``frame`` (its optical frame looked up in
    ``frame.transforms``). Objects are named by their query, else label, else id.

    An object whose query fits several candidates (``GroundedObject.ambiguous``) is not
    guessed: the answer (type "ambiguous", value None) lists the candidates that remain.

    Raises:
        ParseError: see :func:`answer_question`; also when nothing was grounded.
        CalibrationError: boxes without a frame, in several frames, or no transform from the
            camera to their frame.
    """
    if not objects:
        raise ParseError("there are no objects to answer about (nothing was grounded)")
    frames = {o.box.frame_id for o in objects}
    if len(frames) != 1 or "" in frames:
        raise CalibrationError(
            f"grounded boxes must share one named z-up frame to be compared, got {sorted(frames)}"
        )
    if frame.transforms is None:
        raise CalibrationError("the frame has no transforms: cannot place the camera")
    T = frame.transforms.lookup(frames.pop(), frame.camera.frame_id)
    vp = Viewpoint.from_camera_pose(T)
    unclear = [o for o in objects if getattr(o, "ambiguous", False)]
    if unclear:  # say which candidates remain instead of answering about a guess
        o = unclear[0]
        options = "; ".join(f"{k + 1}) {a}" for k, a in enumerate(o.alternatives)) or \
            "several candidates"
        return QAPair(question, f"Which one? '{o.query}' fits {max(len(o.alternatives), 2)} "
                      f"objects: {options}. Say which, e.g. '{o.query} on the left'.",
                      "ambiguous", True, None, None, o.query, subject_id=o.id)
    spatial = [SpatialObject.from_grounded(o) for o in objects]
    return answer_question(question, spatial, vp, config, unit=unit)
