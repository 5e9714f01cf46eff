"""Answering free-form spatial questions from 3D boxes (the deterministic answerer of
:mod:`.qa`): :func:`answer_question` parses the common question forms (every phrasing
:func:`.qa.generate_qa` writes included), finds the objects by fuzzy-matching their captions,
resolves repeated captions as the generator does, and answers from the boxes with the same
predicates; :func:`answer_objects` does it for grounded objects (the ``ask`` service and
``spatial-ros ask``).
"""

from __future__ import annotations

import re

from spatial_ros.errors import CalibrationError, ConfigError, ParseError
from spatial_ros.spatial.answers import (
    DISPLAY_UNITS,
    find_mentions,
    format_length,
    rounding_tolerance,
)
from spatial_ros.spatial.predicates import SpatialObject, Viewpoint
from spatial_ros.spatial.qa import (
    _PAIR_MEASURE,
    QAConfig,
    QAPair,
    Reference,
    _cap,
    _evaluate,
    _fill,
    _Outcome,
    caption_key,
    referring_phrase,
    resolve_references,
)
from spatial_ros.spatial.templates import QUESTION_TYPES
from spatial_ros.types import GroundedObject, SensorFrame

__all__ = ["answer_objects", "answer_question"]

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
