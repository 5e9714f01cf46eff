"""One parser for referring expressions (grounding queries, and the objects of reward goals).

    parse_refexpr("the second crimson crate from the left")
    parse_refexpr("the mug that is to the left of the blue bowl")
    parse_refexpr("that silver passenger car closest to the camera")

Hand-written recursive descent over a word list, because no installable library parses
spatial referring expressions into constraints (general parsers such as spaCy need models
from a hub and still leave the spatial semantics to us). Every step consumes at least one
word and phrase look-ups are bounded by the longest lexicon entry, so parsing is linear in the
input length; inputs longer than ``MAX_CHARS`` are refused before any work, and relations nest
at most ``MAX_DEPTH`` deep.

Words it cannot place are kept in ``RefExpr.unplaced`` (reported, never folded into an object
name); a phrase without any known noun takes its last unknown word as an open-vocabulary head.
It never raises on strange input except :class:`QueryTooLong`.
"""

from __future__ import annotations

import re
import unicodedata

from spatial_ros.errors import ParseError
from spatial_ros.language import colours as colour_table
from spatial_ros.language.lexicon import (
    DETERMINERS,
    MATERIALS,
    NUMBER_WORDS,
    ORDINALS,
    POSITION_WORDS,
    SIZE_ADJECTIVES,
    UNCHECKED,
    VIEWER_WORDS,
    max_noun_words,
    noun_table,
)
from spatial_ros.language.refexpr import (
    ColourWord,
    Extreme,
    NounPhrase,
    RefExpr,
    Relation,
)

MAX_CHARS = 500
MAX_DEPTH = 3
MAX_WORDS = 80


_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|[@-Z\\-_])")


class QueryTooLong(ParseError):
    """A query or goal longer than the parser accepts."""


# Relation phrases (longest first when matched) -> predicate. "{side}" phrases are built below.
_RELATIONS: dict[str, str] = {
    "in front of": "in_front_of", "in the front of": "in_front_of", "before": "in_front_of",
    "ahead of": "in_front_of",
    "behind": "behind", "in back of": "behind", "at the back of": "behind",
    "beyond": "behind", "back of": "behind",
    "above": "above", "over": "above", "higher than": "above",
    "on top of": "on", "on": "on", "onto": "on", "upon": "on", "atop": "on",
    "sitting on": "on", "resting on": "on", "lying on": "on", "standing on": "on",
    "placed on": "on", "stacked on": "on", "on to": "on",
    "below": "below", "lower than": "below", "beneath": "under", "under": "under",
    "underneath": "under", "under neath": "under",
    "next to": "next_to", "beside": "next_to", "besides": "next_to", "alongside": "next_to",
    "by": "next_to", "near": "next_to", "near to": "next_to", "close to": "next_to",
    "nearby": "next_to", "adjacent to": "next_to", "right next to": "next_to",
    "right beside": "next_to", "by the side of": "next_to", "at the side of": "next_to",
    "closest to": "closest_to", "nearest to": "closest_to", "nearest": "closest_to",
    "closest": "closest_to", "nearer to": "closest_to", "closer to": "closest_to",
    "far from": "far_from", "away from": "far_from", "farthest from": "farthest_from",
    "furthest from": "farthest_from", "farther from": "farthest_from",
    "further from": "farthest_from", "furthest away from": "farthest_from",
    "farthest away from": "farthest_from",
    "between": "between", "in between": "between", "amid": "between",
    "inside": "inside", "in": "inside", "within": "inside", "into": "inside",
    "inside of": "inside",
    "towards": "toward", "toward": "toward", "to": "toward",
}
for _side, _pred in (("left", "left_of"), ("right", "right_of")):
    for _pre in ("", "to the ", "on the ", "at the ", "to ", "on ", "at the far ",
                 "to the far ", "on the far ", "just to the ", "immediately to the "):
        for _post in ("", " side", " hand side", " hand", " handside", "-hand side"):
            _RELATIONS[f"{_pre}{_side}{_post} of"] = _pred
    _RELATIONS[f"{_side} from"] = _pred
_MAX_REL = max(len(k.split()) for k in _RELATIONS)

# Position phrases without an object ("on the left", "in the middle") -> axis.
_POSITIONS: dict[str, str] = {}
for _w, _axis in POSITION_WORDS.items():
    _POSITIONS[_w] = _axis
for _side in ("left", "right"):
    for _pre in ("on the ", "to the ", "at the ", "on the far ", "at the far ", "to the far ",
                 "furthest to the ", "farthest to the ", "most to the ", "the most to the ",
                 "furthest ", "farthest ", "most ", "far "):
        for _post in ("", " side", " hand side", " handside", " of the image",
                      " of the picture", " of the scene", " in the image", " of the view"):
            _POSITIONS[f"{_pre}{_side}{_post}"] = _side
for _p in ("in the middle", "in the center", "in the centre", "at the center", "at the centre",
           "in the middle of the image", "in the center of the image",
           "in the centre of the image", "in the middle of the scene",
           "in the middle of the picture"):
    _POSITIONS[_p] = "middle"
for _p in ("in front", "at the front", "in the front", "up front", "in the foreground",
           "closest", "nearest", "closest by", "nearest by", "closest to us", "nearest to us",
           "closest to me", "nearest to me", "closest to the camera", "nearest to the camera",
           "nearest the camera", "closest to the robot", "nearest the robot", "closest to you",
           "nearest you", "closest to the viewer", "closest to the sensor"):
    _POSITIONS[_p] = "near"
for _p in ("at the back", "in the back", "in the background", "at the rear", "farthest away",
           "furthest away", "far away", "the farthest away", "most distant", "farthest",
           "furthest", "farthest from the camera", "furthest from the camera",
           "farthest from me", "furthest from me", "farthest from us", "furthest from us",
           "farthest from the robot", "furthest from the robot", "farthest from you",
           "furthest from you", "farthest from the viewer", "furthest from the viewer"):
    _POSITIONS[_p] = "far"
for _p in ("at the top", "on top", "up top", "highest up", "the highest up"):
    _POSITIONS[_p] = "high"
for _p in ("at the bottom", "lowest down", "at the lowest", "down low"):
    _POSITIONS[_p] = "low"
_MAX_POS = max(len(k.split()) for k in _POSITIONS)

# Words that open a clause about the object ("the mug that is red", "so that it is next to").
_CLAUSE = ("that is", "that's", "that are", "which is", "which are", "who is", "who are",
           "that", "which", "who", "is", "are", "being", "it is", "so that it is",
           "so that it's", "so it is", "so it's", "such that it is", "such that it's",
           "so that it ends up", "so it ends up", "until it is", "until it's", "so that",
           "so", "where it is", "making sure it is", "placed", "located", "positioned",
           "situated", "sitting", "standing", "lying", "resting", "found", "seen", "appearing",
           "which sits", "that sits", "that stands", "that lies", "it's", "looking", "looks",
           "one that is", "the one that is", "one which is", "ends up", "end up", "lies",
           "sits", "stands", "is located", "is placed", "that is located", "that is placed",
           "which is located", "that are located")
_CLAUSE_SET = frozenset(_CLAUSE)
_CLAUSE_WORDS = frozenset(w for c in _CLAUSE for w in c.split())
# Words that soften or introduce an amount and add nothing ("a bit towards", "up by 20 cm").
_FILLERS = frozenset({"a bit", "a little", "a little bit", "slightly", "somewhat", "just",
                      "up by", "by", "up", "about", "around", "roughly", "approximately",
                      "some", "exactly", "at least", "over", "further", "a few", "more",
                      "right", "all the way", "carefully", "gently", "quickly", "slowly"})
_MAX_CLAUSE = max(len(c.split()) for c in _CLAUSE)
# Words that introduce a colour after the noun ("the pedestrian in blue", "painted red").
_COLOUR_INTRO = frozenset({"in", "coloured", "colored", "painted", "wearing", "dressed",
                           "dressed in", "with", "of colour", "of color", "in colour",
                           "in color", "colour", "color", "clad in", "in a", "wearing a",
                           "with a", "in the colour", "in the color"})
_CLOTHES = frozenset({"shirt", "t shirt", "tshirt", "jacket", "top", "coat", "clothes",
                      "clothing", "hoodie", "sweater", "jumper", "dress", "outfit", "pants",
                      "trousers", "jeans", "vest", "helmet", "hat", "paint", "paintwork",
                      "body", "colour", "color", "finish", "label", "lid", "cover", "cap"})
_UNITS = {"mm": 0.001, "millimetre": 0.001, "millimetres": 0.001, "millimeter": 0.001,
          "millimeters": 0.001, "cm": 0.01, "centimetre": 0.01, "centimetres": 0.01,
          "centimeter": 0.01, "centimeters": 0.01, "cms": 0.01, "m": 1.0, "metre": 1.0,
          "metres": 1.0, "meter": 1.0, "meters": 1.0, "in": 0.0254, "inch": 0.0254,
          "inches": 0.0254, "ft": 0.3048, "foot": 0.3048, "feet": 0.3048}
_AMOUNT_UNITS_EXCLUDING_IN = {k: v for k, v in _UNITS.items() if k != "in"}
_COMMANDS = ("find", "show", "show me", "locate", "where is", "where's", "where are",
             "point to", "point at", "point out", "look at", "look for", "give me", "get",
             "grab", "pick", "pick up", "select", "detect", "highlight", "mark", "identify",
             "i mean", "i want", "i need", "can you find", "could you find", "please find",
             "please", "can you", "could you", "would you", "kindly", "hey", "ok", "okay",
             "now", "the one", "i'm looking for", "im looking for", "looking for",
             "search for", "focus on", "what about", "how about", "box", "ground", "and",
             "gimme", "give", "hand me", "pass me", "fetch", "bring me", "fetch me", "take",
             "tell me about", "let's see", "lets see", "i'd like", "id like", "go to",
             "go for", "move to", "reach for", "reach", "touch", "check", "see")
_COMMAND_SET = frozenset(_COMMANDS) - {"box"}  # "box" is a noun
_MAX_COMMAND = max(len(c.split()) for c in _COMMANDS)
_ORDINAL_AXES = {"left": "left", "right": "right", "front": "near", "back": "far",
                 "camera": "near", "top": "high", "bottom": "low", "near": "near",
                 "far": "far", "closest": "near", "nearest": "near", "farthest": "far",
                 "furthest": "far", "rear": "far"}
_SIDE_WORDS = {"left": "left_of", "right": "right_of", "front": "in_front_of",
               "back": "behind", "rear": "behind", "far side": "behind", "near side":
               "in_front_of"}


def normalise(text: str, max_chars: int = MAX_CHARS) -> str:
    """Lower case, control characters removed, hyphens and possessives split, single spaces.

    Raises:
        QueryTooLong: the text has more than ``max_chars`` characters.
    """
    if not isinstance(text, str):
        text = str(text)
    if len(text) > max_chars:
        raise QueryTooLong(
            f"text of {len(text)} characters ({text[:40]!r}...) is longer than the "
            f"{max_chars} accepted; shorten it"
        )
    t = unicodedata.normalize("NFKC", text)
    t = _ANSI.sub(" ", t)  # terminal escape sequences ("\x1b[31m") go whole
    t = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in t)
    t = t.lower().replace("\u2019", "'").replace("`", "'")
    t = re.sub(r"\b(left|right)\s*-\s*(most|hand)\b", r"\1\2", t)
    t = t.replace("lefthand", "left hand").replace("righthand", "right hand")
    t = re.sub(r"(\d)\s*(mm|cm|m|in|ft)\b", r"\1 \2", t)
    t = re.sub(r"\b(\w+)'s\b", lambda m: m.group(1) + (" is" if m.group(1) in
               ("that", "it", "which", "who", "what", "where", "there") else " 's"), t)
    t = re.sub(r"[^a-z0-9.,' ]+", " ", t)  # hyphens, slashes, brackets -> spaces
    t = re.sub(r"(?<![0-9])\.|\.(?![0-9])", " ", t)  # keep decimal points only
    t = t.replace(",", " , ")
    return " ".join(t.split())


class _Words:
    """The word list with longest-match phrase look-ups."""

    def __init__(self, words: list[str]):
        self.w = words

    def __len__(self) -> int:
        return len(self.w)

    def at(self, i: int) -> str:
        return self.w[i] if 0 <= i < len(self.w) else ""

    def match(self, i: int, table, longest: int) -> tuple[str, int] | None:
        """Longest phrase of ``table`` starting at word i: (phrase, index after it)."""
        for n in range(min(longest, len(self.w) - i), 0, -1):
            p = " ".join(self.w[i:i + n])
            if p in table:
                return p, i + n
        return None


def _number(ws: _Words, i: int) -> tuple[float, int] | None:
    """A number in digits ("20", "2.5") or words ("twenty five", "one and a half", "a")."""
    w = ws.at(i)
    if re.fullmatch(r"\d+(?:\.\d+)?|\.\d+", w):
        return float(w), i + 1
    if w not in NUMBER_WORDS or w in ("a", "an", "half") and ws.at(i + 1) not in _UNITS \
            and ws.at(i + 1) != "half":
        return None
    total, j = 0.0, i
    while ws.at(j) in NUMBER_WORDS and ws.at(j) not in ("a", "an") or (j == i and w in
                                                                      ("a", "an")):
        v = NUMBER_WORDS[ws.at(j)]
        total = total * v if v == 100 and total else total + v
        j += 1
        if ws.at(j) == "and" and ws.at(j + 1) in ("a", "half"):  # "one and a half"
            j += 2 if ws.at(j + 1) == "a" else 1
            if ws.at(j) == "half":
                total += 0.5
                j += 1
            break
    return (total, j) if j > i else None


def _amount(ws: _Words, i: int) -> tuple[float, int] | None:
    """A distance: number + unit ("20 cm", "fifteen centimetres", "0.2 m"), in metres."""
    n = _number(ws, i)
    if n is None:
        return None
    v, j = n
    if ws.at(j) in _UNITS:
        return v * _UNITS[ws.at(j)], j + 1
    return None


class _Parser:
    def __init__(self, words: list[str], viewer_relations: bool = False):
        self.ws = _Words(words)
        self.viewer_relations = viewer_relations

    # -- noun phrase pieces ------------------------------------------------------------------

    def colour(self, i: int) -> tuple[ColourWord, int] | None:
        m = self.ws.match(i, colour_table.colour_words(), colour_table.max_colour_words())
        if m is None:
            w = self.ws.at(i)
            if colour_table.is_colour_word(w):
                m = (w, i + 1)
            else:
                return None
        phrase, j = m
        # "light blue", "dark red": a lightness word before a colour
        if phrase in ("light", "dark", "pale", "bright", "deep") and j < len(self.ws):
            nxt = self.colour(j)
            if nxt is not None:
                c, k = nxt
                terms = colour_table.term_distribution(f"{phrase} {c.text}") or c.terms
                return ColourWord(f"{phrase} {c.text}", terms), k
            return None
        terms = colour_table.term_distribution(phrase)
        if not terms:
            return None
        if self.ws.at(j) in ("coloured", "colored", "colour", "color", "tinted", "hued"):
            j += 1
        return ColourWord(phrase, terms), j

    def noun(self, i: int) -> tuple[str, tuple[str, ...], bool, int] | None:
        m = self.ws.match(i, noun_table(), max_noun_words())
        if m is None:
            return None
        phrase, j = m
        cats, plural = noun_table()[phrase]
        return phrase, cats, plural, j

    # -- the expression -----------------------------------------------------------------------

    def refexpr(self, i: int, depth: int, stop: frozenset[str] = frozenset()) \
            -> tuple[RefExpr, int]:
        ws = self.ws
        start = i
        head, cats, plural = "", (), False
        colours: list[ColourWord] = []
        sizes: list[tuple[str, str]] = []
        materials: list[str] = []
        unchecked: list[str] = []
        cons: list = []
        unplaced: list[str] = []
        unknown: list[str] = []  # unknown words before the head
        ordinal: int | None = None
        among: int | None = None
        amount: float | None = None
        pending_axes: list[tuple[str, str]] = []  # (axis, word) from adjectives before the head

        # --- before the head ---------------------------------------------------------------
        while i < len(ws) and not head:
            w = ws.at(i)
            if w in stop:
                break
            if w == "," or w in ("'s", "and", "or"):
                if w == ",":
                    i += 1
                    continue
                break
            if w in DETERMINERS and not (w == "one" and self._is_head_one(i)):
                if w == "one" and ws.at(i + 1) == "of":  # "one of the boxes"
                    i += 2
                    continue
                i += 1
                continue
            if w in ORDINALS and ws.at(i + 1) != "of":
                ordinal = ORDINALS[w]
                i += 1
                continue
            if w == "of" and (sizes or pending_axes or ordinal):
                # "the bigger of the two boxes", "the second of the cars"
                j = i + 1
                while ws.at(j) in DETERMINERS - {"one"}:
                    j += 1
                n = _number(ws, j)
                if n is not None and n[0] >= 2:
                    among, j = int(n[0]), n[1]
                i = j
                continue
            am = _amount(ws, i)
            if am is not None:
                amount, i = am[0], am[1]
                continue
            m = ws.match(i, _RELATIONS, _MAX_REL)
            pm = ws.match(i, _POSITIONS, _MAX_POS)
            if m is not None and m[0] not in ("on", "in", "by", "to", "over", "before",
                                              "near", "closest", "nearest"):
                if pm is None or pm[1] <= m[1]:
                    break  # a relation with no noun before it: "left of the can"
            if pm is not None and len(pm[0].split()) > 1 and pm[0].split()[0] in (
                    "on", "in", "at", "to", "up", "down"):
                break  # "on the left" after no noun: handled after the head
            c = self.colour(i)
            n = self.noun(i)
            if c is not None and n is not None and (
                    n[3] > c[1] or n[3] == c[1] and self._phrase_ends(c[1], stop)):
                c = None  # "coffee cup" is a noun, not a coffee-coloured cup; "the brick"
            if c is not None and not (ws.at(i) in ("light", "dark") and self.colour(i + 1)
                                      is None):
                colours.append(c[0])
                i = c[1]
                continue
            if n is not None and not (n[0] == "one" and not self._is_head_one(i)):
                # a noun followed by another noun: the last one is the head ("toy car")
                nxt = self.noun(n[3])
                if nxt is not None and nxt[0] not in ("one",) and n[3] < len(ws):
                    unchecked.append(n[0])
                    i = n[3]
                    continue
                head, cats, plural, i = n
                break
            if pm is not None:
                axis = pm[0]
                pending_axes.append((_POSITIONS[axis], axis))
                i = pm[1]
                continue
            if w in SIZE_ADJECTIVES:
                sizes.append(SIZE_ADJECTIVES[w])
                i += 1
                if ws.at(i) == "one" and self._is_head_one(i):
                    continue
                continue
            if w in MATERIALS:
                materials.append(w)
                i += 1
                continue
            if w in UNCHECKED:
                unchecked.append(w)
                i += 1
                continue
            if w in ("most", "very", "really", "quite", "rather", "pretty", "kind", "sort",
                     "of", "ish", "coloured", "colored", "little"):
                i += 1
                continue
            # an unknown word: the head when no known noun follows before the phrase ends
            # (a word followed by a determiner is a verb or filler: "gimme that red cup")
            unknown.append(w)
            i += 1
            if ws.at(i) not in DETERMINERS and self._phrase_ends(i, stop):
                head = unknown.pop()
                break
        unplaced.extend(unknown)

        # --- after the head --------------------------------------------------------------------
        clause = False  # the last words opened a clause ("that is"): a colour may follow
        while i < len(ws):
            w = ws.at(i)
            if ws.at(i - 1) not in _CLAUSE_WORDS:
                clause = False
            if w in stop:
                break
            if w == "and" and self._starts_object(i + 1) and ws.at(i + 1) != "is":
                break  # a second object ("the cube and the bowl"): not part of this one
            if w in (",", "and", "please", "thanks", "now"):
                i += 1
                continue
            if w == "'s":
                break
            m = ws.match(i, _CLAUSE_SET, _MAX_CLAUSE)
            if m is not None and m[0] not in ("is", "are") or w in ("is", "are"):
                i = m[1] if m is not None else i + 1
                clause = True
                continue
            f = ws.match(i, _FILLERS, 3)
            if f is not None and (_amount(ws, f[1]) is not None or ws.match(
                    f[1], _RELATIONS, _MAX_REL) is not None):
                i = f[1]  # "a bit towards", "up by 20 cm", "over to the left of"
                continue
            am = _amount(ws, i)
            if am is not None:
                amount, i = am
                continue
            if w == "from" and ws.at(i + 1) in ("the", "") and ordinal is not None or (
                    w == "from" and ordinal is not None):
                j = i + 1
                while ws.at(j) in ("the", "its", "our", "my", "your"):
                    j += 1
                side = ws.at(j)
                if side in _ORDINAL_AXES:
                    pending_axes.append((_ORDINAL_AXES[side], f"from the {side}"))
                    i = j + 1
                    if ws.at(i) in ("side", "end", "edge"):
                        i += 1
                    continue
            if w == "of" and (sizes or pending_axes or ordinal):
                j = i + 1
                while ws.at(j) in DETERMINERS - {"one"}:
                    j += 1
                n = _number(ws, j)
                if n is not None and n[0] >= 2:
                    among, j = int(n[0]), n[1]
                    nn = self.noun(j)
                    if nn is not None:
                        j = nn[3]
                    i = j
                    continue
                if ws.at(j) in ("them", "all", "those", "these"):
                    i = j + 1
                    continue
                nn = self.noun(j)
                if nn is not None:  # "the biggest of the boxes"
                    i = nn[3]
                    continue
            # colour after the noun: "the pedestrian in blue", "the mug that is red"
            ci = i
            intro = ws.match(i, _COLOUR_INTRO, 3)
            if intro is not None:
                ci = intro[1]
            c = self.colour(ci)
            if c is not None and (intro is not None or clause or ws.at(i - 1) == ","):
                colours.append(c[0])
                i = c[1]
                cl = ws.match(i, _CLOTHES, 2)
                if cl is not None:
                    i = cl[1]
                continue
            if w in SIZE_ADJECTIVES:
                sizes.append(SIZE_ADJECTIVES[w])
                i += 1
                continue
            if w in MATERIALS or w in UNCHECKED:
                (materials if w in MATERIALS else unchecked).append(w)
                i += 1
                continue
            pm = ws.match(i, _POSITIONS, _MAX_POS)
            rm = ws.match(i, _RELATIONS, _MAX_REL)
            if pm is not None and (rm is None or pm[1] > rm[1] or not self._starts_object(
                    rm[1])):
                # "on the left", "closest to the camera" (longer than any relation reading)
                if not (rm is not None and pm[1] == rm[1]):
                    pending_axes.append((_POSITIONS[pm[0]], pm[0]))
                    i = pm[1]
                    continue
            if rm is not None and depth < MAX_DEPTH:
                got = self.relation(rm[0], rm[1], depth)
                if got is not None:
                    rel, i, viewer_axis = got
                    if viewer_axis is not None:
                        pending_axes.append((viewer_axis, rm[0]))
                    else:
                        cons.append(rel)
                    # words the anchors could not place are this expression's to report
                    unplaced.extend(w for a in rel.anchors for w in a.unplaced)
                    continue
            if pm is not None:
                pending_axes.append((_POSITIONS[pm[0]], pm[0]))
                i = pm[1]
                continue
            if w in ("most", "very", "really", "one", "ones", "of", "the", "side", "one's"):
                i += 1
                continue
            n = self.noun(i)
            if n is not None and n[0] in ("one", "ones"):
                i = n[3]
                continue
            unplaced.append(w)
            i += 1

        rank = ordinal if ordinal is not None else 1
        for axis, word in pending_axes:  # "the second box from the left", "the closest car"
            cons.insert(0, Extreme(axis, rank, "max", among, word))
            rank = 1
        if ordinal is not None and not pending_axes:  # "the second box": from the left
            cons.insert(0, Extreme("left", ordinal, "max", among, "ordinal"))
        for measure, direction in sizes:  # "the bigger of the two boxes", "the small cube"
            cons.insert(0, Extreme(measure, 1, direction, among, f"{direction} {measure}"))
        np_ = NounPhrase(head, tuple(cats), tuple(colours), tuple(materials), plural,
                         tuple(unchecked))
        text = " ".join(ws.w[start:i])
        return RefExpr(text, np_, tuple(cons), tuple(unplaced), amount), i

    def relation(self, phrase: str, i: int, depth: int):
        """The anchor(s) after relation ``phrase`` (ending before word i): (Relation, next
        index, viewer axis or None), or None when no object follows."""
        pred = _RELATIONS[phrase]
        ws = self.ws
        amount = None
        if phrase == "within":
            am = _amount(ws, i)
            if am is not None and ws.at(am[1]) == "of":
                amount, i = am[0], am[1] + 1
                pred = "within"
        if not self._starts_object(i):
            return None
        viewer = self._viewer(i)
        if viewer is not None:
            axis = {"closest_to": "near", "next_to": "near", "farthest_from": "far",
                    "far_from": "far"}.get(pred)
            if axis is not None and pred not in ("far_from",) and not self.viewer_relations:
                return Relation(pred, (), phrase), viewer, axis
            anchor = RefExpr(" ".join(ws.w[i:viewer]), NounPhrase("robot", ("robot",)))
            return Relation(pred, (anchor,), phrase, amount), viewer, None
        a, j = self.refexpr(i, depth + 1, stop=frozenset({"and"}) if pred == "between"
                            else frozenset())
        anchors = [a]
        if pred == "between" and ws.at(j) == "and":
            b, j = self.refexpr(j + 1, depth + 1)
            anchors.append(b)
        # possessive side: "on the blue bowl's left (side)"
        if ws.at(j) == "'s":
            side = ws.match(j + 1, _SIDE_WORDS, 2)
            if side is not None:
                pred, j = _SIDE_WORDS[side[0]], side[1]
                if ws.at(j) in ("side", "hand", "end"):
                    j += 1
                if ws.at(j) == "side":
                    j += 1
        return Relation(pred, tuple(anchors), phrase, amount), j, None

    # -- look-ahead helpers -------------------------------------------------------------------

    def _viewer(self, i: int) -> int | None:
        """Index after a phrase naming the viewer ("me", "the camera", "the robot")."""
        ws = self.ws
        j = i
        while ws.at(j) in ("the", "my", "our", "your", "this"):
            j += 1
        if ws.at(j) in VIEWER_WORDS:
            return j + 1
        return None

    def _starts_object(self, i: int) -> bool:
        ws = self.ws
        w = ws.at(i)
        return bool(w) and w not in (",", "and", "'s", "is", "that", "which") and (
            w in DETERMINERS or self.noun(i) is not None or self.colour(i) is not None
            or w in VIEWER_WORDS or w in ORDINALS or w in POSITION_WORDS
            or w in SIZE_ADJECTIVES)

    def _is_head_one(self, i: int) -> bool:
        """'one' at word i is a head noun ("the red one"), not a determiner or number."""
        ws = self.ws
        prev = ws.at(i - 1)
        nxt = ws.at(i + 1)
        if nxt == "of" or self.noun(i + 1) is not None or self.colour(i + 1) is not None:
            return False
        return prev not in ("", ",") and prev not in ("the", "a", "an") or nxt in ("", ",")

    def _phrase_ends(self, i: int, stop: frozenset[str]) -> bool:
        ws = self.ws
        if i >= len(ws) or ws.at(i) in stop or ws.at(i) in (",", "and", "'s"):
            return True
        if ws.match(i, _CLAUSE_SET, _MAX_CLAUSE) is not None:
            return True
        if ws.match(i, _RELATIONS, _MAX_REL) is not None:
            return True
        if ws.match(i, _POSITIONS, _MAX_POS) is not None:
            return self.noun(i) is None and self.colour(i) is None
        if _amount(ws, i) is not None:
            return True
        return ws.at(i) in ("from", "of") or (ws.at(i) in _COLOUR_INTRO and
                                             self.colour(i + 1) is not None)


def starts_relation(words: list[str]) -> bool:
    """Whether the words begin with a relation phrase ("next to", "to the left of")."""
    m = _Words(words).match(0, _RELATIONS, _MAX_REL)
    return m is not None and m[0] not in ("to", "in", "on", "by", "over", "before")


def strip_command(words: list[str]) -> list[str]:
    """Drop leading command / politeness words ("find", "show me", "can you") — repeatedly,
    so "can you please find" goes too."""
    ws = _Words(words)
    i = 0
    while i < len(ws):
        m = ws.match(i, _COMMAND_SET, _MAX_COMMAND)
        if m is None:
            break
        i = m[1]
    return words[i:]


def parse_refexpr(text: str, max_chars: int = MAX_CHARS,
                  viewer_relations: bool = False) -> RefExpr:
    """Parse a referring expression (see the module docstring). Never raises on odd input
    except :class:`QueryTooLong` (a ParseError) for text longer than ``max_chars``.

    ``viewer_relations``: keep relations to the viewer ("away from you", "closer to the
    camera") as relations to a "robot" anchor instead of orders by distance (goals)."""
    norm = normalise(text, max_chars)
    words = strip_command(norm.split())
    extra = words[MAX_WORDS:]
    words = words[:MAX_WORDS]
    p = _Parser(words, viewer_relations)
    expr, j = p.refexpr(0, 0)
    rest = [w for w in words[j:] if w != ","]
    unplaced = expr.unplaced + tuple(rest) + tuple(extra)
    return RefExpr(norm, expr.np, expr.constraints, unplaced, expr.amount)
