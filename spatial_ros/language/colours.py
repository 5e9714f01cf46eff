"""Colour words -> the basic colour terms the appearance reader uses, and colour matching.

A query may name a colour in many ways ("crimson", "navy blue", "sky-blue", "olive", "teal").
The candidate side only knows what the pixels look like, read as Berlin & Kay basic terms by
:func:`spatial_ros.vlm.appearance.colour_name` (red, orange, yellow, green, cyan, blue, purple,
pink, brown, white, gray, black). This module bridges the two:

1. a colour word -> sRGB, from matplotlib's kept colour-name tables (XKCD colour survey, 949
   names, preferred because they are what people call colours; then CSS4, 148 names), plus
   the few names both lack (silver variants, "beige", ...);
2. sRGB -> a *distribution* over basic terms: the term of that colour and of versions of it
   seen under lighter and darker shading (``SHADES``), so that a name on a term boundary
   ("magenta": pink or purple, "teal": cyan or green) keeps both readings;
3. a match score between the word's distribution and the candidate's (the share of the
   candidate's pixels called each term): ``sum_t p_word(t) p_pixels(t)``.

Modifiers "dark", "light", "pale", "bright", "deep" change lightness; "-ish" / "-y" suffixes
("reddish", "bluey") name the term itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import numpy as np

from spatial_ros.vlm.appearance import COLOUR_TERMS, colour_name

# Names some people use that the tables miss or map oddly (sRGB 0..255).
_EXTRA = {
    "silver": (192, 192, 192),
    "silvery": (192, 192, 192),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "golden": (212, 175, 55),
    "ebony": (40, 36, 34),
    "jet": (20, 20, 20),
    "ivory": (250, 248, 236),
    "cream": (250, 245, 220),
    "snow": (250, 250, 250),
    "charcoal": (54, 69, 79),
    "scarlet": (230, 30, 25),
    "crimson": (200, 20, 50),
    "ruby": (200, 20, 60),
    "cherry": (210, 20, 50),
    "azure": (40, 110, 230),
    "cobalt": (0, 71, 171),
    "sapphire": (15, 82, 186),
    "emerald": (30, 160, 80),
    "jade": (0, 168, 107),
    "amber": (255, 170, 0),
    "tangerine": (245, 130, 30),
    "lemon": (250, 230, 40),
    "violet": (140, 60, 200),
    "lilac": (190, 150, 220),
    "lavender": (180, 150, 220),
    "magenta": (220, 40, 170),
    "fuchsia": (230, 50, 170),
    "turquoise": (40, 200, 200),
    "aqua": (30, 200, 210),
    "chocolate": (110, 60, 25),
    "tan": (200, 160, 110),
    "vermilion": (227, 66, 52),
    "pearl": (236, 232, 220),
}
# Names whose usual meaning the sRGB route misses (the hue reader calls dark crimson "pink",
# bluish charcoal "blue"): their basic terms, as people use them.
_USAGE = {
    "maroon": (("red", 1.0),), "burgundy": (("red", 1.0),), "wine": (("red", 1.0),),
    "claret": (("red", 1.0),), "oxblood": (("red", 1.0),), "brick": (("red", 1.0),),
    "charcoal": (("gray", 0.5), ("black", 0.5)), "navy": (("blue", 0.8), ("black", 0.2)),
    "tan": (("brown", 0.5), ("orange", 0.5)), "beige": (("white", 0.5), ("yellow", 0.5)),
    "khaki": (("yellow", 0.5), ("brown", 0.5)), "magenta": (("pink", 0.5), ("purple", 0.5)),
    "silver": (("white", 0.5), ("gray", 0.5)),
}
# A typical surface colour of each basic term (sRGB), the base a modifier changes.
BASIC_RGB = {
    "red": (210, 35, 35), "orange": (245, 125, 25), "yellow": (240, 205, 30),
    "green": (40, 165, 60), "cyan": (40, 200, 210), "blue": (35, 80, 215),
    "purple": (135, 55, 175), "pink": (245, 120, 170), "brown": (120, 72, 35),
    "white": (238, 238, 238), "gray": (128, 128, 128), "black": (30, 30, 32),
}
# Lightness modifiers: how they change a colour (sRGB, 0..255) before it is classified.
_MODIFIERS = ("dark", "light", "pale", "bright", "deep", "pastel", "vivid", "dull")
# Surface-finish words before a colour name that do not change it ("metallic silver").
_FINISH = ("metallic", "glossy", "shiny", "matte", "matt", "neon", "fluorescent", "solid")
# Shading versions of a colour (scale of value) a surface of that colour shows under light.
SHADES = (0.72, 0.86, 1.0, 1.12)
# Words that end in -ish/-y/-ed but name a basic term ("reddish", "bluey", "greyish").
_SUFFIX = re.compile(r"^(red|orange|yellow|green|blue|purpl|pink|brown|white|gr[ae]y|black)"
                     r"(?:dish|ish|y|ey|e)$")


@functools.lru_cache(maxsize=1)
def _tables() -> dict[str, tuple[int, int, int]]:
    """All known colour names (lower case, single spaces) -> sRGB 0..255."""
    from matplotlib.colors import CSS4_COLORS, XKCD_COLORS, to_rgb

    out: dict[str, tuple[int, int, int]] = {}
    for name, hexv in CSS4_COLORS.items():
        out[name.lower()] = tuple(int(round(c * 255)) for c in to_rgb(hexv))  # type: ignore
    for name, hexv in XKCD_COLORS.items():  # the survey wins over CSS4 where both have a name
        key = name.removeprefix("xkcd:").lower().replace("/", " ")
        out[" ".join(key.split())] = tuple(int(round(c * 255)) for c in to_rgb(hexv))  # type: ignore
    for term in COLOUR_TERMS:  # a basic term means its own category, whatever a table says
        out.pop(term, None)
    out.update(_EXTRA)
    return out


@functools.lru_cache(maxsize=1)
def colour_words() -> frozenset[str]:
    """Every single- or multi-word colour name the lexicon knows (basic terms included)."""
    return frozenset(_tables()) | frozenset(COLOUR_TERMS) | {"grey"}


@functools.lru_cache(maxsize=1)
def max_colour_words() -> int:
    return max(len(n.split()) for n in colour_words())


def is_colour_word(word: str) -> bool:
    return word in colour_words() or bool(_SUFFIX.match(word))


def _basic(word: str) -> str | None:
    if word in COLOUR_TERMS:
        return word
    if word == "grey":
        return "gray"
    m = _SUFFIX.match(word)
    if m:
        g = m.group(1)
        return {"grey": "gray", "gray": "gray", "purpl": "purple"}.get(g, g)
    return None


def _shaded(rgb: Iterable[float], modifier: str | None) -> np.ndarray:
    c = np.asarray(list(rgb), dtype=np.float64)
    if modifier in ("dark", "deep"):
        c = c * 0.6
    elif modifier in ("light", "pale", "pastel"):
        c = c + (255.0 - c) * 0.45
    elif modifier in ("bright", "vivid"):
        c = np.clip(c * 1.15, 0, 255)
    elif modifier == "dull":
        c = c * 0.85 + c.mean() * 0.15
    return c


@functools.lru_cache(maxsize=4096)
def term_distribution(phrase: str) -> tuple[tuple[str, float], ...]:
    """See :func:`_term_distribution`; achromatic terms are then spread to their shading
    neighbours (``SHADE_SPREAD``: a white shirt in shadow reads gray)."""
    d = dict(_term_distribution(phrase))
    out: dict[str, float] = {}
    for t, p in d.items():
        spread = SHADE_SPREAD.get(t, {})
        out[t] = out.get(t, 0.0) + p * (1.0 - sum(spread.values()))
        for u, q in spread.items():
            out[u] = out.get(u, 0.0) + p * q
    return tuple(sorted(out.items(), key=lambda x: -x[1]))


# How much of an achromatic name the pixel reader sees as its neighbour under shading or glare
# (saturation is near zero, so only the lightness thresholds separate them).
SHADE_SPREAD = {"white": {"gray": 0.25}, "gray": {"white": 0.15, "black": 0.15},
                "black": {"gray": 0.2}}


@functools.lru_cache(maxsize=4096)
def _term_distribution(phrase: str) -> tuple[tuple[str, float], ...]:
    """The basic-term distribution a colour phrase ("crimson", "dark red", "sky blue",
    "reddish") means: ((term, probability), ...) summing to 1, or () for an unknown phrase.

    A basic term (and its -ish form) means itself; a lightness modifier before a basic term
    keeps the term except where the shading crosses a boundary the reader uses (dark orange
    reads brown); any other name goes through its sRGB and the shading versions ``SHADES``."""
    words = " ".join(phrase.lower().replace("-", " ").split()).split()
    while len(words) > 1 and words[0] in _FINISH:
        words = words[1:]
    if not words:
        return ()
    modifier = words[0] if words[0] in _MODIFIERS and len(words) > 1 else None
    rest = " ".join(words[1:] if modifier else words)
    base = _basic(rest)
    table = _tables()
    whole = " ".join(words)
    if whole in _USAGE:
        return _USAGE[whole]
    if base is not None:
        if modifier is None or base in ("white", "black", "gray"):
            return ((base, 1.0),)
        rgb = BASIC_RGB[base]
    elif whole in table:  # "dark red", "sky blue": table entries of their own
        rgb, modifier = table[whole], None
    elif rest in _USAGE:
        return _USAGE[rest]
    elif rest in table:
        rgb = table[rest]
    elif len(words) > 1 and _basic(words[-1]):  # "jet black", "snow white": the term named last
        return ((_basic(words[-1]), 1.0),)
    else:
        return ()
    c = _shaded(rgb, modifier)
    votes: dict[str, float] = {}
    for s in SHADES:
        t = _usual_term(np.clip(c * s, 0, 255))
        votes[t] = votes.get(t, 0.0) + 1.0
    n = sum(votes.values())
    return tuple(sorted(((t, v / n) for t, v in votes.items()), key=lambda x: -x[1]))


def _usual_term(rgb: np.ndarray) -> str:
    """The reader's term for a NAMED colour, except that dark colours the hue reader calls
    "pink" (plum, grape, maroon) are named purple or red, as people name them; pink is light.
    (The pixel side keeps the reader's term: shaded pink surfaces read dark.)"""
    t = colour_name(rgb)
    r, g, b = (float(x) for x in rgb)
    mx, mn = max(r, g, b), min(r, g, b)
    if t == "pink" and mx < 0.55 * 255 and mx > mn:
        h = (60 * ((g - b) / (mx - mn))) % 360 if mx == r else (
            60 * ((r - g) / (mx - mn)) + 240 if mx == b else 60 * ((b - r) / (mx - mn)) + 120)
        return "red" if h >= 330 or h < 15 else "purple"
    return t


def canonical_term(phrase: str) -> str | None:
    """The single likeliest basic term of a colour phrase (before shading spread), or None
    when unknown."""
    d = _term_distribution(phrase)
    return d[0][0] if d else None


# Shading factors of deep shadow: what a colour reads as on the side of a body or a car that
# the sun does not reach (orange clothes read brown, a white car reads gray).
DEEP_SHADES = (0.4, 0.55, 0.7)


@functools.lru_cache(maxsize=4096)
def shadow_distribution(phrase: str) -> tuple[tuple[str, float], ...]:
    """The basic-term distribution of a colour phrase seen lit or in deep shadow: half its own
    distribution (``term_distribution``), half the terms the pixel reader gives its terms'
    colours darkened by ``DEEP_SHADES``. For telling apart candidates none of which fits the
    phrase itself; () for an unknown phrase."""
    lit = term_distribution(phrase)
    out: dict[str, float] = {}
    for t, p in lit:
        out[t] = out.get(t, 0.0) + 0.5 * p
        for f in DEEP_SHADES:
            u = _usual_term(np.asarray(BASIC_RGB[t], dtype=np.float64) * f)
            out[u] = out.get(u, 0.0) + 0.5 * p / len(DEEP_SHADES)
    return tuple(sorted(out.items(), key=lambda x: -x[1]))


def match_score(phrase_dist: Iterable[tuple[str, float]], pixel_dist: dict[str, float],
                floor: float = 0.02) -> float:
    """How well a candidate's pixels (term -> share of its pixels) fit a colour phrase's
    distribution: sum over terms of p_phrase * p_pixels, at least ``floor`` (a misread colour
    lowers a candidate's score but does not rule it out)."""
    s = sum(p * pixel_dist.get(t, 0.0) for t, p in phrase_dist)
    return max(float(s), floor)


# Lightness (value, 0..1) of the achromatic names in the pixel reader's own calibration: it
# calls a grey pixel white above 0.62 and black below 0.22 (``vlm.appearance``); silver paint
# lies between white and mid gray. The medians of simulated car bodies in daylight were white
# 0.64, silver 0.50, grey 0.34, black 0.09; a sunlit white car on a KITTI frame reads 1.0
# (so "white" is one-sided). A phrase names one of these by its sRGB value.
ACHROMATIC_LIGHTNESS = {"white": 0.64, "silver": 0.5, "gray": 0.34, "black": 0.12}


@functools.lru_cache(maxsize=1024)
def achromatic_name(phrase: str) -> str | None:
    """"white", "silver", "gray" or "black" for a colour phrase that means an achromatic colour
    ("snow white", "metallic silver", "light grey", "charcoal"), by the value of its sRGB; None
    for chromatic or unknown phrases."""
    dist = _term_distribution(phrase)
    if not dist or any(t not in ("white", "gray", "black") for t, _ in dist):
        return None
    words = " ".join(phrase.lower().replace("-", " ").split()).split()
    # "bright silver" is shiny silver, not white: only light/dark words change a grey's value
    while len(words) > 1 and words[0] in (*_FINISH, "bright", "vivid", "dull"):
        words = words[1:]
    whole = " ".join(words)
    modifier = words[0] if words[0] in _MODIFIERS and len(words) > 1 else None
    rest = " ".join(words[1:] if modifier else words)
    base = _basic(rest) or _basic(words[-1])
    table = _tables()
    if whole in table:
        rgb = np.asarray(table[whole], dtype=np.float64)
    elif rest in table:
        rgb = _shaded(table[rest], modifier)
    elif base is not None:
        rgb = _shaded(BASIC_RGB[base], modifier)
    else:
        return None
    v = float(np.max(rgb)) / 255.0
    return "white" if v >= 0.86 else "silver" if v >= 0.62 else "gray" if v >= 0.2 else "black"


def lightness_match(name: str, lightness: float | None, sigma: float = 0.08,
                    floor: float = 0.2) -> float:
    """How well a candidate's achromatic lightness (0..1) fits an achromatic name: a Gaussian
    around ``ACHROMATIC_LIGHTNESS[name]``, one-sided for the extremes (any lighter is still
    white, any darker still black), at least ``floor``; 1 when the lightness is unknown."""
    if lightness is None or name not in ACHROMATIC_LIGHTNESS:
        return 1.0
    d = lightness - ACHROMATIC_LIGHTNESS[name]
    if (name == "white" and d > 0) or (name == "black" and d < 0):
        return 1.0
    return max(floor, float(np.exp(-0.5 * (d / sigma) ** 2)))
