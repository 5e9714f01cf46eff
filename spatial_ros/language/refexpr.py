"""Referring expressions as data: what a query says about the object it means.

A referring expression (RefCOCO, Sr3D, Talk2Car) is a noun phrase plus constraints that single
out one object among distractors of the same kind::

    "the second red box from the left"      NounPhrase(box, colours=red) + Extreme(left, rank 2)
    "the bigger of the two bottles"         NounPhrase(bottle) + Extreme(volume max, among 2)
    "the mug to the left of the blue bowl"  NounPhrase(mug) + Relation(left_of, [the blue bowl])
    "the can between the book and the cup"  NounPhrase(can) + Relation(between, [book, cup])

The same structure serves grounding queries and the objects of reward goals, so both speak one
language (``spatial_ros.language.parser``). ``canonical`` renders a phrase in the simulator's
caption style ("the red mug"), which is what the model was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spatial_ros.language.lexicon import ANY

# Axes an Extreme orders candidates by (see spatial_ros.language.program for definitions).
VIEW_AXES = ("left", "right", "middle", "near", "far", "high", "low")
SIZE_AXES = ("volume", "height", "width", "length")
# Relations to other objects (viewer-relative ones as seen from the camera).
RELATIONS = ("left_of", "right_of", "in_front_of", "behind", "above", "below", "on", "under",
             "next_to", "far_from", "closest_to", "farthest_from", "between", "inside")


_SIZE_WORDS = {("volume", "max"): "biggest", ("volume", "min"): "smallest",
               ("height", "max"): "tallest", ("height", "min"): "shortest",
               ("width", "max"): "widest", ("width", "min"): "narrowest",
               ("length", "max"): "longest", ("length", "min"): "shortest"}
_ORDINAL_WORDS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth",
                  7: "seventh", 8: "eighth", 9: "ninth", 10: "tenth", -1: "last"}
_RELATION_WORDS = {"left_of": "to the left of", "right_of": "to the right of",
                   "in_front_of": "in front of", "behind": "behind", "above": "above",
                   "on": "on", "below": "below", "under": "under", "next_to": "next to",
                   "far_from": "far from", "closest_to": "closest to",
                   "farthest_from": "farthest from", "between": "between",
                   "inside": "inside", "toward": "towards"}


@dataclass(frozen=True)
class ColourWord:
    """A colour as written ("crimson", "dark red") and the basic terms it means
    (``language.colours.term_distribution``)."""

    text: str
    terms: tuple[tuple[str, float], ...]

    @property
    def term(self) -> str:
        """The basic term the word names ("crimson" -> "red")."""
        from spatial_ros.language.colours import canonical_term

        return canonical_term(self.text) or (self.terms[0][0] if self.terms else self.text)


@dataclass(frozen=True)
class NounPhrase:
    """The object words of a referring expression.

    Attributes:
        head: the noun as written ("crate", "cars", "one"), "" when there is none.
        categories: canonical categories the noun admits (("box",); ("car", "van", "truck")
            for "vehicle"; ("*",) for "object"/"one"; () for a noun the lexicon lacks).
        colours: colour words (all must hold).
        materials: material words (kept, not checked by the geometry).
        plural: the noun is plural ("the boxes").
        unchecked: known adjectives no sensor can check ("shiny").
    """

    head: str = ""
    categories: tuple[str, ...] = ()
    colours: tuple[ColourWord, ...] = ()
    materials: tuple[str, ...] = ()
    plural: bool = False
    unchecked: tuple[str, ...] = ()

    @property
    def any_category(self) -> bool:
        return ANY in self.categories

    @property
    def category(self) -> str | None:
        """The single canonical category, when the noun names exactly one."""
        return self.categories[0] if len(self.categories) == 1 and not self.any_category \
            else None

    def canonical(self) -> str:
        """The phrase in the simulator's caption style: "the red mug", "the object"."""
        col = " ".join(c.term for c in self.colours)
        if self.category in ("pedestrian", "cyclist") and col:
            return f"the {self.category} in {col}"
        noun = self.category or (self.head if self.head and not self.any_category
                                 else "object")
        noun = noun.replace("_", " ")
        return "the " + " ".join(w for w in (col, noun) if w)


@dataclass(frozen=True)
class Extreme:
    """Pick by order along an axis: the ``rank``-th most (1 = the most; -1 = the last) along
    ``axis`` (a VIEW_AXES word, or a SIZE_AXES measure with ``direction``).

    ``among``: the phrase says how many there are ("the bigger of the two boxes" -> 2); None
    when it does not. ``word``: the words that set it (for explanations)."""

    axis: str
    rank: int = 1
    direction: str = "max"
    among: int | None = None
    word: str = ""


@dataclass(frozen=True)
class Relation:
    """The object stands in ``predicate`` (RELATIONS) to the anchor object(s)."""

    predicate: str
    anchors: tuple[RefExpr, ...] = ()
    word: str = ""
    amount: float | None = None  # metres said with it ("20 cm away from", "within 5 cm of")


@dataclass(frozen=True)
class RefExpr:
    """A parsed referring expression.

    Attributes:
        text: the input, normalised (lower case, single spaces).
        np: the object words.
        constraints: Extreme / Relation constraints in the order written.
        unplaced: words the parser could not place (reported, never folded into a name).
        amount: a distance in metres said outside any relation ("lift the ball 20 cm").
    """

    text: str
    np: NounPhrase = field(default_factory=NounPhrase)
    constraints: tuple[Extreme | Relation, ...] = ()
    unplaced: tuple[str, ...] = ()
    amount: float | None = None  # a loose amount in metres ("lift the ball 20 cm")

    @property
    def is_plain(self) -> bool:
        """Only object words (a caption or a paraphrase of one): no spatial constraint."""
        return not self.constraints

    def anchors(self) -> list[RefExpr]:
        return [a for c in self.constraints if isinstance(c, Relation) for a in c.anchors]

    def render(self) -> str:
        """Canonical English for this expression, which parses back to the same structure:
        "the second red box from the left", "the mug to the left of the blue bowl"."""
        np_ = self.np
        pre: list[str] = []
        post: list[str] = []
        for c in self.constraints:
            if isinstance(c, Extreme):
                if c.axis in SIZE_AXES:
                    pre.append(_SIZE_WORDS[(c.axis, c.direction)])
                elif c.axis in ("left", "right"):
                    if c.rank == 1:
                        post.append(f"on the {c.axis}")
                    else:
                        pre.insert(0, _ORDINAL_WORDS.get(c.rank, "last"))
                        post.append(f"from the {c.axis}")
                elif c.axis == "middle":
                    post.append("in the middle")
                else:
                    word = {"near": "camera", "far": "back", "high": "top", "low": "bottom"}
                    if c.rank == 1:
                        post.append({"near": "closest to the camera",
                                     "far": "farthest from the camera", "high": "at the top",
                                     "low": "at the bottom"}[c.axis])
                    else:
                        pre.insert(0, _ORDINAL_WORDS.get(c.rank, "last"))
                        post.append(f"from the {word[c.axis]}")
            else:
                names = " and ".join(a.render() for a in c.anchors) or "the camera"
                if c.predicate == "within" and c.amount is not None:
                    post.append(f"within {round(c.amount * 100, 2):g} cm of {names}")
                else:
                    post.append(f"{_RELATION_WORDS.get(c.predicate, c.predicate)} {names}")
        base = np_.canonical().removeprefix("the ")
        if np_.category in ("pedestrian", "cyclist") and np_.colours:
            noun, _, col = base.partition(" in ")
            words = [*pre, noun] + [f"in {col}"]
        else:
            words = [*pre, base]
        return " ".join(["the", *words, *post])

    def describe(self) -> str:
        """A compact rendering for logs and explanations."""
        parts = [self.np.canonical()]
        for c in self.constraints:
            if isinstance(c, Extreme):
                r = "" if c.rank == 1 else (" last" if c.rank == -1 else f" #{c.rank}")
                among = f" of {c.among}" if c.among else ""
                d = "" if c.axis in VIEW_AXES else f" {c.direction}"
                parts.append(f"[{c.axis}{d}{r}{among}]")
            else:
                parts.append(f"[{c.predicate} " + " & ".join(a.describe() for a in c.anchors)
                             + "]")
        return " ".join(parts)
