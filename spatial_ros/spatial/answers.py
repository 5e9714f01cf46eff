"""Human-like lengths in text, and parsing answers back (for evaluation and the QA generator).

Rounding rule ("human-like"): two significant figures, but never finer than a unit's natural
step (1 cm, 1 inch, 0.1 ft, 0.01 m): 0.437 m -> "44 cm" / "about 17 inches" / "0.44 m";
2.6 m -> "2.6 meters" / "about 8.5 feet"; 12.34 m -> "12 meters". :func:`rounding_tolerance`
gives the largest error this rounding makes, so a round trip can be checked exactly.

Parsing: :func:`parse_quantity` reads the first length in free text ("roughly 17 inches",
"5 feet 4 inches", "1.5-2 m", "half a meter") as metres; :func:`parse_yes_no`,
:func:`parse_choice` and :func:`parse_clock` read qualitative answers.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

import numpy as np

from spatial_ros.errors import ConfigError

# metres per unit
UNIT_METERS: dict[str, float] = {
    "m": 1.0,
    "cm": 0.01,
    "mm": 0.001,
    "km": 1000.0,
    "in": 0.0254,
    "ft": 0.3048,
    "yd": 0.9144,
}
DISPLAY_UNITS = ("m", "cm", "in", "ft")
"""Units the formatter writes."""

_MIN_STEP = {"m": 0.01, "cm": 1.0, "in": 1.0, "ft": 0.1}
# (singular, plural, abbreviation); inches are never abbreviated ("in" reads as a preposition).
_NAMES = {
    "m": ("meter", "meters", "m"),
    "cm": ("centimeter", "centimeters", "cm"),
    "in": ("inch", "inches", "inches"),
    "ft": ("foot", "feet", "ft"),
}
HEDGES = ("about", "around", "roughly", "approximately", "close to")


def _check_unit(unit: str) -> None:
    if unit not in _MIN_STEP:
        raise ConfigError(f"unknown display unit {unit!r}; use one of {DISPLAY_UNITS}")


def rounding_step(value_in_unit: float, unit: str) -> float:
    """The rounding step (in ``unit``) used for ``value_in_unit``: 2 significant figures, but not
    finer than the unit's minimum step."""
    _check_unit(unit)
    v = abs(value_in_unit)
    step = 10.0 ** (math.floor(math.log10(v)) - 1) if v > 0 else 0.0
    return max(step, _MIN_STEP[unit])


def human_round(meters: float, unit: str) -> float:
    """``meters`` converted to ``unit`` and rounded the human way (see module doc)."""
    v = meters / UNIT_METERS[unit] if unit in UNIT_METERS else math.nan
    step = rounding_step(v, unit)
    r = round(v / step) * step
    # Rounding up can reach the next power of ten (9.96 -> 10.0): re-round on the new step.
    return round(r / rounding_step(r, unit)) * rounding_step(r, unit)


def rounding_tolerance(meters: float, unit: str) -> float:
    """Largest error (metres) of :func:`format_length` for this value and unit."""
    v = meters / UNIT_METERS[unit] if unit in UNIT_METERS else math.nan
    step = max(rounding_step(v, unit), rounding_step(human_round(meters, unit), unit))
    return 0.5 * step * UNIT_METERS[unit] * (1 + 1e-9) + 1e-12


def _number_text(x: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    s = f"{x:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def format_length(
    meters: float, unit: str = "m", *, long: bool = False, hedge: str | None = None
) -> str:
    """A length as a human would say it.

    Args:
        meters: non-negative length in metres.
        unit: "m", "cm", "in" or "ft".
        long: spell the unit out ("meters") instead of abbreviating ("m"); inches are always
            spelled out.
        hedge: optional word put in front ("about").

    Returns:
        e.g. "44 cm", "about 17 inches", "2.6 meters", "1 foot".
    """
    _check_unit(unit)
    if not (math.isfinite(meters) and meters >= 0):
        raise ConfigError(f"format_length: a length must be finite and >= 0, got {meters}")
    r = human_round(meters, unit)
    num = _number_text(r, rounding_step(r, unit))
    sing, plur, abbr = _NAMES[unit]
    name = (sing if num == "1" else plur) if long else abbr
    text = f"{num} {name}"
    return f"{hedge} {text}" if hedge else text


@dataclass(frozen=True)
class LengthText:
    """A formatted length: ``text`` in ``unit``, off from the true value by at most
    ``tolerance`` metres."""

    text: str
    unit: str
    tolerance: float


# Which units a person uses for a length (weights by range, metres); sub-30 cm feet and
# multi-metre inches read oddly, so they are left out there.
_UNIT_WEIGHTS = (
    (0.3, {"cm": 0.5, "m": 0.15, "in": 0.35}),
    (1.0, {"cm": 0.4, "m": 0.25, "in": 0.25, "ft": 0.1}),
    (3.0, {"m": 0.5, "ft": 0.3, "cm": 0.1, "in": 0.1}),
    (math.inf, {"m": 0.65, "ft": 0.35}),
)


def describe_length(meters: float, rng: np.random.Generator, units=DISPLAY_UNITS) -> LengthText:
    """A randomly but plausibly phrased length: unit by magnitude (see ``_UNIT_WEIGHTS``),
    abbreviated or spelled out, often hedged ("about ...", always likely for imperial units,
    which are conversions)."""
    # The first row whose limit exceeds ``meters``; the last row when none does (NaN).
    weights = next((w for limit, w in _UNIT_WEIGHTS if meters < limit), _UNIT_WEIGHTS[-1][1])
    choices = [u for u in weights if u in units] or [u for u in units if u in _MIN_STEP]
    if not choices:
        raise ConfigError(f"describe_length: no display unit among {units}")
    w = np.array([weights.get(u, 0.1) for u in choices])
    unit = choices[int(rng.choice(len(choices), p=w / w.sum()))]
    long = bool(rng.random() < (0.6 if unit in ("m", "cm") else 1.0))
    p_hedge = 0.7 if unit in ("in", "ft") else 0.25
    hedge = HEDGES[int(rng.integers(len(HEDGES)))] if rng.random() < p_hedge else None
    return LengthText(
        format_length(meters, unit, long=long, hedge=hedge), unit, rounding_tolerance(meters, unit)
    )


# ----------------------------------------------------------------------------------------------
# Parsing lengths
# ----------------------------------------------------------------------------------------------

_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD_VALUE = {w: i for i, w in enumerate(_SMALL)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}

_UNIT_PATTERNS = [
    ("mm", r"millimet(?:er|re)s?|mm"),
    ("cm", r"centimet(?:er|re)s?|cms?"),
    ("km", r"kilomet(?:er|re)s?|km"),
    ("m", r"met(?:er|re)s?|m"),
    ("in", r"inch(?:es)?|in\.?(?=\s*(?:$|[,;:!?)]|\.(?:\s|$)|and\b|tall\b|wide\b|long\b|away\b|"
           r"apart\b|high\b|deep\b))|\"|''|″"),
    ("ft", r"feet|foot|ft|'|′"),
    ("yd", r"yards?|yds?"),
]
_UNIT_RE = "|".join(f"(?P<{name}>{pat})" for name, pat in _UNIT_PATTERNS)
_NUM = r"(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)"
_QTY_RE = re.compile(
    rf"(?<![\w.])(?P<n1>{_NUM})(?:\s*(?:-|–|to)\s*(?P<n2>{_NUM}))?"
    rf"\s*(?:(?:{_UNIT_RE})(?![a-z]))?"
)


def _words_to_digits(text: str) -> str:
    """Number words and "a/half a" before a unit to digits ("one and a half feet" -> "1.5
    feet", "half a meter" -> "0.5 meter", "twenty-five cm" -> "25 cm")."""
    t = text
    word = "|".join(sorted(_WORD_VALUE, key=len, reverse=True))

    def compound(m: re.Match) -> str:
        return str(_WORD_VALUE[m.group(1)] + _WORD_VALUE[m.group(2)])

    t = re.sub(rf"\b({'|'.join(_TENS)})[\s-]+({'|'.join(_SMALL[1:10])})\b", compound, t)
    t = re.sub(rf"\b({word})\b", lambda m: str(_WORD_VALUE[m.group(1)]), t)
    unit_word = r"(?=\s*(?:met(?:er|re)|centimet|millimet|kilomet|inch|foot|feet|yard))"
    t = re.sub(r"\b(\d+)\s+and\s+a\s+half\b", lambda m: f"{int(m.group(1)) + 0.5}", t)
    t = re.sub(rf"\bhalf\s+an?\b{unit_word}", "0.5", t)
    t = re.sub(rf"\b(?:an?|one)\b{unit_word}", "1", t)
    t = re.sub(r"\b(?:an?|1)\s+(met(?:er|re)|foot|yard)\s+and\s+a\s+half\b", r"1.5 \1", t)
    return t


def _quantities(text: str) -> list[tuple[float, str | None, int, int]]:
    """All (value, unit or None, start, end) in ``text`` (already lower-case)."""
    out = []
    for m in _QTY_RE.finditer(text):
        v = float(m.group("n1").replace(",", ""))
        if m.group("n2"):
            v = 0.5 * (v + float(m.group("n2").replace(",", "")))
        unit = next((u for u, _ in _UNIT_PATTERNS if m.group(u)), None)
        out.append((v, unit, m.start(), m.end()))
    return out


def parse_quantity(text: str, default_unit: str | None = "m") -> float | None:
    """The first length in ``text``, in metres, or None when there is no number.

    Robust to extra words and hedges ("It is roughly 17 inches away." -> 0.4318). Understands
    metric and imperial units (m, cm, mm, km, inches/", feet/', yards), number words ("two
    meters", "half a meter"), ranges (midpoint: "1.5-2 m" -> 1.75), feet followed by inches
    ("5 feet 4 inches", 5'4"). A number with a unit wins over an earlier bare number
    ("the 2 mugs are 30 cm apart" -> 0.30); a bare number alone is read in ``default_unit``
    (None: bare numbers give None).
    """
    if not isinstance(text, str):
        return None
    t = text.lower().replace("’", "'").replace("“", '"').replace("”", '"')
    t = _words_to_digits(t)
    qs = _quantities(t)
    if not qs:
        return None
    for i, (v, unit, _, end) in enumerate(qs):
        if unit is None:
            continue
        value = v * UNIT_METERS[unit]
        if unit == "ft" and i + 1 < len(qs):
            v2, u2, start2, _ = qs[i + 1]
            gap = t[end:start2]
            if u2 == "in" and re.fullmatch(r"\s*(?:,|and)?\s*", gap):
                value += v2 * UNIT_METERS["in"]
        return value
    if default_unit is None:
        return None
    if default_unit not in UNIT_METERS:
        raise ConfigError(f"parse_quantity: unknown default_unit {default_unit!r}")
    return qs[0][0] * UNIT_METERS[default_unit]


# ----------------------------------------------------------------------------------------------
# Qualitative answers
# ----------------------------------------------------------------------------------------------

YES_OPENERS = (
    "yes", "yeah", "yep", "yup", "indeed", "correct", "that's right", "that is right",
    "that's correct", "that is correct", "true", "affirmative", "sure", "definitely", "certainly",
    "absolutely", "right", "it is", "it does",
)
NO_OPENERS = (
    "no", "nope", "nah", "not", "incorrect", "false", "negative", "actually no", "actually, no",
    "that's not", "that is not", "it is not", "it isn't", "it's not", "it does not",
    "it doesn't", "wrong",
)
_NEGATION_RE = re.compile(r"\b(?:not|no|never|isn't|aren't|doesn't|don't|neither)\b|n't\b")


def parse_yes_no(text: str) -> bool | None:
    """True for an affirmative answer, False for a negative one, None when it is neither.

    The opening words decide ("Yes, ..." / "No, ..." / "Correct" / "Not really"); otherwise a
    negation anywhere makes it False, an affirmative word True."""
    if not isinstance(text, str):
        return None
    t = re.sub(r"\s+", " ", text.lower().replace("’", "'")).strip(" \"'.,!")
    for phrase in sorted(NO_OPENERS + YES_OPENERS, key=len, reverse=True):
        if re.match(rf"{re.escape(phrase)}(?![\w'])", t):
            if phrase in YES_OPENERS and re.match(rf"{re.escape(phrase)}\W*not\b", t):
                return False  # "certainly not"
            return phrase in YES_OPENERS
    if _NEGATION_RE.search(t):
        return False
    if re.search(r"\b(?:yes|indeed|correct|true)\b", t):
        return True
    return None


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("'", ""))


_ARTICLES = {"the", "a", "an", "this", "that"}


@dataclass(frozen=True)
class Mention:
    """A phrase found in a text: ``index`` into the phrase list, token span [start, end),
    similarity ``score`` in [0, 1]."""

    index: int
    start: int
    end: int
    score: float


def find_mentions(
    text: str, phrases: list[list[str]] | list[str], threshold: float = 0.82
) -> list[Mention]:
    """Fuzzy-find phrases in ``text`` (each phrase or each list of aliases once at most).

    Token windows of the phrase's length +-1 are scored with difflib's ratio against the phrase
    (leading articles ignored); overlapping candidates are resolved greedily by score, then by
    length. Returns the mentions in text order.
    """
    toks = _tokens(text)
    cands: list[tuple[float, int, int, int, int]] = []
    for idx, entry in enumerate(phrases):
        aliases = [entry] if isinstance(entry, str) else list(entry)
        for alias in aliases:
            ptoks = _tokens(alias)
            while ptoks and ptoks[0] in _ARTICLES:
                ptoks = ptoks[1:]
            if not ptoks:
                continue
            matcher = difflib.SequenceMatcher(None, "", " ".join(ptoks))  # caches the target
            L = len(ptoks)
            for n in range(max(1, L - 1), L + 2):
                for s in range(0, len(toks) - n + 1):
                    window = toks[s:s + n]
                    if window[0] in _ARTICLES:
                        continue
                    matcher.set_seq1(" ".join(window))
                    # cheap upper bounds first; ratio() only for plausible windows
                    if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
                        continue
                    score = matcher.ratio()
                    if score >= threshold:
                        cands.append((score, n, idx, s, s + n))
    cands.sort(key=lambda c: (-c[0], -c[1], c[3], c[2]))
    taken = np.zeros(len(toks), dtype=bool)
    used: set[int] = set()
    out = []
    for score, _, idx, s, e in cands:
        if idx in used or taken[s:e].any():
            continue
        taken[s:e] = True
        used.add(idx)
        out.append(Mention(idx, s, e, score))
    return sorted(out, key=lambda m: m.start)


def parse_choice(text: str, options: list[str], threshold: float = 0.82) -> int | None:
    """Index of the option a which-object answer names (the first one mentioned), or None when
    it names none of them."""
    if not isinstance(text, str):
        return None
    found = find_mentions(text, list(options), threshold)
    return found[0].index if found else None


_CLOCK_RE = re.compile(r"\b(\d{1,2})(?::00)?\s*(?:o\s*'?\s*clock|oclock|:00)")


def parse_clock(text: str) -> int | None:
    """The clock hour (1..12) in "at 3 o'clock" / "three o'clock" / "3:00", or None."""
    if not isinstance(text, str):
        return None
    t = _words_to_digits(text.lower().replace("’", "'"))
    m = _CLOCK_RE.search(t)
    if not m:
        return None
    h = int(m.group(1))
    return h if 1 <= h <= 12 else None
