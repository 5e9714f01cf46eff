"""Goal sentences -> :class:`~spatial_ros.reward.goal.Goal`, on the referring-expression parser.

A goal is a verb, the object to move and where it should end up::

    put the red cube next to the blue bowl        put | the red cube | next to the blue bowl
    could you move the crimson block to the left-hand side of the navy bowl, please
    lift the blue ball fifteen centimetres        lift | the blue ball | 0.15 m
    place the red cube so that it is next to the blue bowl

The words after the verb are parsed as ONE referring expression
(``spatial_ros.language.parser``): its last relation to another object is where the object
should go, the rest names the object. So goals and grounding queries share the lexicon
(colour synonyms, noun synonyms and plurals, numbers in words, possessives such as "the blue
bowl's left") and the objects come out canonical ("crimson block" -> red cube), so paraphrases
give the same objective. Words the parser cannot place are reported in ``Goal.ignored``, never
folded into an object name. Linear time; text longer than ``MAX_GOAL_CHARS`` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from spatial_ros.language.lexicon import SURFACES, VIEWER_WORDS
from spatial_ros.language.parser import QueryTooLong, normalise, parse_refexpr
from spatial_ros.language.refexpr import RefExpr, Relation
from spatial_ros.reward.goal import (
    CAMERA,
    DEFAULT_LIFT,
    GOAL_EXAMPLES,
    GOAL_KINDS,
    RELATIVE_KINDS,
    ROBOT,
    Goal,
    GoalError,
    ObjectRef,
)

MAX_GOAL_CHARS = 500
_VERBS = ("put", "place", "move", "set", "bring", "push", "slide", "drag", "pull", "take",
          "carry", "get", "position", "shift", "stack", "relocate", "transfer", "drop",
          "leave", "lay", "deposit", "shove", "nudge", "put down", "set down", "place down",
          "move over", "bring over", "get over", "arrange", "reposition")
_LIFT_VERBS = ("lift", "raise", "hold", "pick up", "elevate", "hoist", "lift up", "raise up",
               "hold up", "pick")
_POLITE = ("please", "could you", "can you", "would you", "will you", "kindly", "now", "then",
           "i want you to", "i'd like you to", "id like you to", "i would like you to",
           "i need you to", "go ahead and", "try to", "you should", "let's", "lets", "robot",
           "hey", "ok", "okay", "and", "just", "please go ahead and", "you need to",
           "you have to", "your task is to", "the task is to", "task", "goal")
_TRAILING = ("please", "thanks", "thank you", "for me", "now", "ok", "okay")
# goal relation predicates of the referring-expression parser -> goal kinds
_KINDS = {"next_to": "next_to", "within": "next_to", "left_of": "left_of",
          "right_of": "right_of", "in_front_of": "in_front_of", "behind": "behind",
          "on": "on_top_of", "above": "on_top_of", "far_from": "away_from",
          "farthest_from": "away_from", "toward": "toward", "closest_to": "toward"}


@dataclass(frozen=True)
class Vocabulary:
    """Restricts what :func:`parse_goal` accepts (the simulator passes its catalog).

    Attributes:
        colours: allowed colour terms (None = any colour words).
        categories: allowed object categories (None = any, unknown nouns included).
        kinds: goal kinds accepted.
        lift_range: (min, max) lift height in metres.
    """

    colours: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    kinds: tuple[str, ...] = GOAL_KINDS
    lift_range: tuple[float, float] = (0.01, 2.0)


OPEN_VOCABULARY = Vocabulary()


def _strip(words: list[str], phrases, trailing: bool = False) -> list[str]:
    table = {tuple(p.split()) for p in phrases}
    longest = max(len(t) for t in table)
    changed = True
    while changed and words:
        changed = False
        for n in range(min(longest, len(words)), 0, -1):
            part = tuple(words[-n:]) if trailing else tuple(words[:n])
            if part in table:
                words = words[:-n] if trailing else words[n:]
                changed = True
                break
        while words and words[-1 if trailing else 0] == ",":
            words = words[:-1] if trailing else words[1:]
            changed = True
    return words


def _verb(words: list[str]) -> tuple[str, list[str]]:
    """("lift" | "move" | "", rest): the goal's verb and the words after it."""
    for verbs, kind in ((_LIFT_VERBS, "lift"), (_VERBS, "move")):
        for v in sorted(verbs, key=lambda x: -len(x.split())):
            n = len(v.split())
            if tuple(words[:n]) == tuple(v.split()):
                return kind, words[n:]
    return "", words


def _fronted(words: list[str]) -> list[str]:
    """"next to the blue bowl, put the red cube" -> "put the red cube next to the blue bowl":
    a placement said before the verb moves after the object."""
    from spatial_ros.language.parser import starts_relation

    if not words or not starts_relation(words):
        return words
    for k in range(1, len(words)):
        if _verb(words[k:])[0]:
            head = [w for w in words[:k] if w != ","]
            tail = [w for w in words[k:] if w != ","] if words[k - 1] == "," else words[k:]
            return tail + head
    return words


def object_ref(expr: RefExpr | str, text: str, vocab: Vocabulary | None = None) -> ObjectRef:
    """The canonical object a referring expression (or its words: "the crimson block") names
    (colour terms, category), checked against ``vocab``. GoalError says what is wrong with it."""
    vocab = vocab or OPEN_VOCABULARY
    if isinstance(expr, str):
        try:
            expr = parse_refexpr(expr, MAX_GOAL_CHARS, viewer_relations=True)
        except QueryTooLong as e:
            raise GoalError(f"goal refused: {e}") from None
    np_ = expr.np
    words = expr.text.split()
    if any(w in VIEWER_WORDS for w in words[-2:]) and not np_.colours and (
            not np_.head or np_.head in VIEWER_WORDS):
        return ObjectRef("", CAMERA if "camera" in words else ROBOT)
    if np_.head in SURFACES or (np_.category is None and np_.head.split()[-1:] and
                                np_.head.split()[-1] in SURFACES):
        raise GoalError(
            f"goal {text!r}: '{expr.text}' is a surface, not an object to ground; for heights "
            "use e.g. 'lift the blue ball 20 cm above the table'"
        )
    if not np_.head:
        raise GoalError(f"goal {text!r} names no object in '{expr.text}'")
    category = np_.category or np_.head  # an unknown noun is kept as written
    colour = " ".join(c.term for c in np_.colours)
    if vocab.colours is not None:
        if len(np_.colours) != 1:
            raise GoalError(
                f"goal {text!r}: name objects as '<colour> <object>' (e.g. 'the red cube'), "
                f"got '{expr.text}'"
            )
        if colour not in vocab.colours:
            raise GoalError(f"unknown colour '{np_.colours[0].text}' in goal {text!r}; "
                            f"colours: {', '.join(vocab.colours)}")
    if vocab.categories is not None and category not in vocab.categories:
        raise GoalError(f"unknown object '{np_.head}' in goal {text!r}; objects: "
                        f"{', '.join(vocab.categories)}")
    return ObjectRef(colour, category)


def parse_goal(text: str, vocabulary: Vocabulary | None = None) -> Goal:
    """Parse a goal sentence (see the module docstring).

    Raises:
        GoalError: (a ParseError) too long, no object or no placement found, an unknown colour
            or object for ``vocabulary``, the same object twice, an unsupported kind or height.
    """
    vocab = vocabulary or OPEN_VOCABULARY
    try:
        norm = normalise(text, MAX_GOAL_CHARS)
    except QueryTooLong as e:
        raise GoalError(f"goal refused: {e}") from None
    words = _fronted(_strip(_strip(norm.split(), _POLITE), _TRAILING, trailing=True))
    verb, rest = _verb(words)
    if not rest:
        raise GoalError(f"cannot parse goal {_short(text)!r}; use one of: "
                        + "; ".join(GOAL_EXAMPLES))
    expr = parse_refexpr(" ".join(rest), MAX_GOAL_CHARS, viewer_relations=True)
    rels = [(k, c) for k, c in enumerate(expr.constraints) if isinstance(c, Relation)]
    target_expr = RefExpr(expr.text, expr.np, tuple(c for c in expr.constraints
                                                    if not isinstance(c, Relation)),
                          expr.unplaced, None)
    goal: Goal
    if rels:
        k, rel = rels[-1]
        # earlier relations belong to the object ("the cube left of the can next to the bowl")
        target_expr = RefExpr(expr.text, expr.np, tuple(
            c for j, c in enumerate(expr.constraints) if j != k), expr.unplaced, None)
        goal = _placement(verb, rel, expr, target_expr, text, vocab)
    elif verb == "lift" or (expr.amount is not None and verb == ""):
        goal = _lift(expr.amount, target_expr, text, vocab)
    else:
        raise GoalError(f"cannot parse goal {_short(text)!r}: say where the object should go; "
                        "use one of: " + "; ".join(GOAL_EXAMPLES))
    if goal.kind not in vocab.kinds:
        raise GoalError(f"goal {_short(text)!r} is a '{goal.kind}' goal; supported here: "
                        f"{', '.join(vocab.kinds)}")
    goal.ignored = tuple(expr.unplaced)
    goal.target_phrase = _phrase(target_expr)
    return goal


def _placement(verb: str, rel: Relation, expr: RefExpr, target_expr: RefExpr, text: str,
               vocab: Vocabulary) -> Goal:
    kind = _KINDS.get(rel.predicate)
    anchor = rel.anchors[0] if rel.anchors else None
    if rel.predicate == "above" and anchor is not None and (
            anchor.np.head in SURFACES or anchor.np.category is None and
            anchor.np.head.split()[-1:] and anchor.np.head.split()[-1] in SURFACES):
        return _lift(rel.amount if rel.amount is not None else expr.amount, target_expr, text,
                     vocab)
    if kind is None or anchor is None:
        raise GoalError(f"cannot parse goal {_short(text)!r}: '{rel.word}' is not a placement "
                        "a goal can score; use one of: " + "; ".join(GOAL_EXAMPLES))
    if verb == "lift" and kind not in ("on_top_of",):
        pass  # "lift the cube onto the box", "pick up the cube and ..." read as placement
    target = object_ref(target_expr, text, vocab)
    reference = object_ref(anchor, text, vocab)
    if rel.predicate == "toward" and rel.word == "to" and not reference.special:
        raise GoalError(f"cannot parse goal {_short(text)!r}: 'to {anchor.text}' is ambiguous "
                        "(next to it? on it? towards it?); say which")
    if reference.special and kind not in RELATIVE_KINDS:
        raise GoalError(f"'{kind}' relative to the {reference.category} is not supported; "
                        f"use 'away from' / 'towards' the {reference.category}")
    if reference == target:
        raise GoalError(f"goal {_short(text)!r} names the same object twice")
    distance = rel.amount if rel.amount is not None else expr.amount
    if kind == "next_to" and rel.predicate != "within":
        distance = None
    if kind in ("left_of", "right_of", "in_front_of", "behind", "on_top_of"):
        distance = None
    if distance is not None and not distance > 0:
        raise GoalError(f"the distance in goal {_short(text)!r} must be > 0")
    goal = Goal(kind, target, reference, None, distance)
    goal.reference_phrase = _phrase(anchor)
    return goal


def _lift(amount: float | None, target_expr: RefExpr, text: str, vocab: Vocabulary) -> Goal:
    h = DEFAULT_LIFT if amount is None else amount
    if not h > 0:
        raise GoalError(f"the distance in goal {_short(text)!r} must be > 0")
    lo, hi = vocab.lift_range
    if not lo <= h <= hi:
        raise GoalError(f"lift height {h:.2f} m in {_short(text)!r} must be "
                        f"{round(lo * 100):d}..{round(hi * 100):d} cm")
    return Goal("lift", object_ref(target_expr, text, vocab), None, h)


def _phrase(expr: RefExpr) -> str:
    """The grounding query of an object with spatial words of its own ("the cube on the
    left"), canonical; "" for a plain object (its ObjectRef phrase serves)."""
    return expr.render() if expr.constraints else ""


def _short(text: str, n: int = 120) -> str:
    t = " ".join(str(text).split())
    return t if len(t) <= n else f"{t[:n]}... ({len(t)} characters)"
