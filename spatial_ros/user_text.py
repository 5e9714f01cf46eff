"""Bounding and cleaning the strings users hand to the nodes and tools (queries, questions, goals)
before any parser sees them.

A parser's time grows with its input, so every user-given string is checked against a length cap
FIRST (one ``len()``, constant time), and a rejection quotes only a short prefix and the length,
never the whole input. Within the cap, control characters are removed: ANSI escape sequences
(``ESC [ ... m``, ``ESC ] ... BEL``) as a whole, every other C0/C1 control and DEL one by one;
tab, newline and carriage return become spaces. Runs of whitespace collapse to one space. The
result is what reaches ``active_queries``, a published ``query`` field or a label's ``goal``.
"""

from __future__ import annotations

import re

from spatial_ros.errors import ConfigError

PREVIEW_CHARS = 40

# ECMA-48 / ISO 2022: CSI (ESC [ params intermediates final), OSC/DCS/PM/APC strings (ESC ] ...
# BEL or ESC \), and the other escapes (ESC, intermediates 0x20-0x2F, one final byte 0x30-0x7E:
# ESC c resets a terminal, ESC ( B picks a character set). The C1 forms (0x9B CSI, 0x9D OSC)
# lose their introducer in the control-character pass; their arguments stay as plain text.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b[\]P^_][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, DCS, PM, APC (terminated or cut short)
    r"|\x1b[ -/]*[0-~]"  # other escape sequences
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[\t\n\r]")


class TextTooLong(ConfigError):
    """A user-given string is longer than its cap (the message quotes a prefix and the length)."""


def preview(text: str, chars: int = PREVIEW_CHARS) -> str:
    """A short printable quote of ``text``: its first ``chars`` characters (control characters
    escaped by ``repr``), then '...' when cut."""
    return repr(text[:chars]) + ("..." if len(text) > chars else "")


def strip_controls(text: str) -> str:
    """``text`` without ANSI escape sequences and C0/C1 control characters or DEL (tab, newline
    and carriage return become spaces), whitespace runs collapsed, ends stripped."""
    text = _ESCAPES.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _CONTROLS.sub("", text)
    return " ".join(text.split())


def bounded_text(text: object, what: str, max_chars: int) -> str:
    """Check ``text`` (a user-given ``what``: "query", "question", "goal") against its cap, then
    clean it (:func:`strip_controls`).

    Raises:
        ConfigError: not a string.
        TextTooLong: more than ``max_chars`` characters (checked before anything else reads it).
    """
    if not isinstance(text, str):
        raise ConfigError(f"{what} must be a string, got {type(text).__name__}")
    if len(text) > max_chars:
        raise TextTooLong(
            f"{what} too long: {len(text)} characters > {max_chars} (parameter "
            f"max_{what}_chars): {preview(text)}"
        )
    return strip_controls(text)
