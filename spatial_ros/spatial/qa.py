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

:func:`answer_question` (in :mod:`.qa_answer`, also importable from here) parses the common
question forms (all generated phrasings included), finds the objects by fuzzy-matching their
captions, and answers from the boxes — the ``ask`` service and ``spatial-ros ask`` use it on
grounded objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.spatial import predicates as P
from spatial_ros.spatial.answers import (
    DISPLAY_UNITS,
    describe_length,
)
from spatial_ros.spatial.predicates import PredicateConfig, SpatialObject, Viewpoint
from spatial_ros.spatial.templates import (
    QUALITATIVE_TYPES,
    QUANTITATIVE_TYPES,
    QUESTION_TYPES,
)

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


def __getattr__(name: str):
    """``answer_question`` and ``answer_objects`` live in :mod:`.qa_answer` (which imports this
    module); they stay importable from here."""
    if name in ("answer_question", "answer_objects"):
        from spatial_ros.spatial import qa_answer

        return getattr(qa_answer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
