"""Human-like lengths, their parser, and qualitative answer parsing."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.errors import ConfigError
from spatial_ros.spatial.answers import (
    DISPLAY_UNITS,
    HEDGES,
    describe_length,
    find_mentions,
    format_length,
    human_round,
    parse_choice,
    parse_clock,
    parse_quantity,
    parse_yes_no,
    rounding_tolerance,
)


@pytest.mark.parametrize(
    ("meters", "unit", "long", "hedge", "text"),
    [
        (0.437, "cm", False, None, "44 cm"),
        (0.437, "in", True, "about", "about 17 inches"),
        (0.437, "m", False, None, "0.44 m"),
        (2.6, "m", True, None, "2.6 meters"),
        (2.6, "ft", True, "about", "about 8.5 feet"),
        (12.34, "m", True, None, "12 meters"),
        (1.0, "m", True, None, "1 meter"),
        (0.3048, "ft", True, None, "1 foot"),
        (0.043, "cm", False, None, "4 cm"),  # not finer than 1 cm
        (0.996, "m", False, None, "1 m"),  # 2 s.f. rounds up to the next decade
        (9.96, "ft", True, None, "33 feet"),
        (123.0, "m", False, None, "120 m"),
    ],
)
def test_format_length(meters, unit, long, hedge, text):
    assert format_length(meters, unit, long=long, hedge=hedge) == text


def test_format_length_singular_and_abbreviations():
    assert format_length(0.0254, "in", long=True) == "1 inch"
    assert format_length(0.0254, "in") == "1 inches"  # inches are never abbreviated to "in"
    assert format_length(0.5, "cm") == "50 cm" and format_length(0.5, "cm", long=True) == (
        "50 centimeters")
    with pytest.raises(ConfigError, match="unknown display unit"):
        format_length(1.0, "yd")
    with pytest.raises(ConfigError, match=">= 0"):
        format_length(-1.0, "m")


@pytest.mark.parametrize(
    ("text", "meters"),
    [
        ("about 17 inches", 0.4318),
        ("It is roughly 17 inches away from the bowl.", 0.4318),
        ("44 cm", 0.44),
        ("0.44 m", 0.44),
        ("2.6 meters", 2.6),
        ("about 8.5 feet", 2.5908),
        ("The mug is approximately 1.5 metres away", 1.5),
        ("5 feet 4 inches", 1.6256),
        ("5 ft, 4 in", 1.6256),
        ("5'4\"", 1.6256),
        ("1.5-2 m", 1.75),
        ("between 30 to 40 cm", 0.35),
        ("half a meter", 0.5),
        ("two meters", 2.0),
        ("twenty-five centimeters", 0.25),
        ("one and a half feet", 0.4572),
        ("a foot and a half", 0.4572),
        ("about a meter", 1.0),
        ("1,200 mm", 1.2),
        ("0.3 km", 300.0),
        ("the 2 mugs are 30 cm apart", 0.30),  # a number with a unit wins over a bare one
        ("3 yards", 2.7432),
        ("12 in.", 0.3048),
        ("It's 0.7", 0.7),  # bare number: default unit metres
    ],
)
def test_parse_quantity(text, meters):
    assert parse_quantity(text) == pytest.approx(meters)


def test_parse_quantity_none_and_units():
    assert parse_quantity("I cannot tell from this image.") is None
    assert parse_quantity("") is None and parse_quantity(None) is None
    assert parse_quantity("It's 3", default_unit=None) is None
    assert parse_quantity("It's 3", default_unit="ft") == pytest.approx(0.9144)
    # "in" followed by a word is the preposition, not inches: bare number -> metres.
    assert parse_quantity("3 in front of the car") == pytest.approx(3.0)
    assert parse_quantity("10 minutes") == pytest.approx(10.0)  # "m" of minutes is no unit


def test_round_trip_every_unit():
    """Random lengths (1 cm .. 50 m, log-uniform) -> text in every unit, long/short, hedged or
    not -> parsed back within the rounding tolerance (and that tolerance is tight: half a
    rounding step, at most 5 % of the value or the unit's half step)."""
    rng = np.random.default_rng(0)
    values = np.exp(rng.uniform(np.log(0.01), np.log(50.0), 400))
    for v in values:
        for unit in DISPLAY_UNITS:
            tol = rounding_tolerance(v, unit)
            half_step_m = {"m": 0.005, "cm": 0.005, "in": 0.0127, "ft": 0.01524}[unit]
            assert tol <= max(0.05 * v, half_step_m) * 1.0001
            for long in (False, True):
                hedge = HEDGES[int(rng.integers(len(HEDGES)))] if rng.random() < 0.5 else None
                text = format_length(v, unit, long=long, hedge=hedge)
                back = parse_quantity(f"I think it is {text} from here.")
                assert abs(back - v) <= tol, (v, unit, text, back)
                assert back == pytest.approx(human_round(v, unit) * {
                    "m": 1.0, "cm": 0.01, "in": 0.0254, "ft": 0.3048}[unit])


def test_describe_length_is_plausible_and_round_trips():
    rng = np.random.default_rng(1)
    seen = set()
    for v in np.exp(rng.uniform(np.log(0.02), np.log(30.0), 300)):
        lt = describe_length(float(v), rng)
        seen.add(lt.unit)
        assert abs(parse_quantity(lt.text) - v) <= lt.tolerance
        if v >= 3.0:
            assert lt.unit in ("m", "ft")  # no "118 inches"
        if v < 0.3:
            assert lt.unit != "ft"  # no "0.6 feet"
    assert seen == set(DISPLAY_UNITS)
    assert describe_length(0.5, np.random.default_rng(3), units=("cm",)).unit == "cm"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Yes, the mug is left of the bowl.", True),
        ("yes", True),
        ("Correct, it is.", True),
        ("That's right, the lamp is taller.", True),
        ("Indeed it is behind.", True),
        ("No, it is to the right.", False),
        ("Nope.", False),
        ("Not really; it is in front.", False),
        ("Incorrect, the bowl is larger.", False),
        ("Certainly not.", False),
        ("The mug isn't above the table.", False),
        ("The mug is above the table.", None),
        ("", None),
    ],
)
def test_parse_yes_no(text, value):
    assert parse_yes_no(text) is value


def test_parse_choice_and_mentions():
    opts = ["the red mug", "the blue bowl"]
    assert parse_choice("The blue bowl is closer.", opts) == 1
    assert parse_choice("It is the red mug, clearly.", opts) == 0
    assert parse_choice("the red mugg is taller", opts) == 0  # typo tolerated
    assert parse_choice("Neither.", opts) is None
    # A one-letter difference in a short word is not a match ("up" vs "cup").
    assert parse_choice("It is higher up.", ["the cup"]) is None
    # Longest/best match wins and each phrase is used once.
    m = find_mentions("is the red mug on the left left of the red mug on the right",
                      [["red mug on the left"], ["red mug on the right"]])
    assert [x.index for x in m] == [0, 1]


@pytest.mark.parametrize(
    ("text", "hour"),
    [("It is at 3 o'clock.", 3), ("at three o'clock", 3), ("12 o’clock", 12),
     ("towards 11 oclock", 11), ("at 13 o'clock", None), ("to the left", None)],
)
def test_parse_clock(text, hour):
    assert parse_clock(text) == hour
