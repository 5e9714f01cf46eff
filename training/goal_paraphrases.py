"""Paraphrases of goal sentences with a known objective (for tests, ``bench reward
--paraphrase`` and training data).

    python -m training.goal_paraphrases --goal "put the red cube next to the blue bowl"

Each paraphrase of a canonical goal keeps its objective and changes how it is said: the verb,
politeness, word order (the placement first), "left-hand side", possessives ("on the blue
bowl's left"), numbers in words ("fifteen centimetres"), "so that it is", no verb at all,
colour and noun synonyms. ``STYLES`` names them.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

STYLES = ("verb", "politeness", "fronted", "left_hand", "possessive", "numbers_in_words",
          "so_that", "verbless", "synonyms")
_VERBS = ("place", "set", "move", "shift", "slide", "position", "bring")
_POLITE = ("please {g}", "could you {g}?", "{g}, please", "can you please {g}", "kindly {g}",
           "would you {g} for me", "i'd like you to {g}")
_COLOUR_SYN = {"red": "crimson", "blue": "navy", "green": "emerald", "yellow": "golden",
               "orange": "tangerine", "purple": "violet", "white": "ivory", "black": "ebony",
               "pink": "rose-pink", "cyan": "teal"}
_NOUN_SYN = {"cube": "block", "bowl": "dish", "mug": "cup", "can": "tin", "bottle": "flask",
             "book": "notebook", "box": "crate", "ball": "sphere"}
_NUMBERS = {5: "five", 10: "ten", 15: "fifteen", 20: "twenty", 25: "twenty five",
            30: "thirty", 40: "forty", 50: "fifty"}


def _side_word(kind: str) -> str:
    return {"left_of": "left", "right_of": "right"}.get(kind, "")


def _place_phrase(goal) -> str:
    """The placement part of the canonical sentence ("next to the blue bowl")."""
    b = goal.reference.phrase if goal.reference is not None else ""
    if goal.kind == "next_to":
        if goal.distance is not None:
            return f"within {round(goal.distance * 100):d} cm of {b}"
        return f"next to {b}"
    if goal.kind in ("left_of", "right_of"):
        return f"to the {_side_word(goal.kind)} of {b}"
    if goal.kind == "in_front_of":
        return f"in front of {b}"
    if goal.kind == "behind":
        return f"behind {b}"
    if goal.kind == "on_top_of":
        return f"on top of {b}"
    return ""


def paraphrases(goal, rng: np.random.Generator | None = None) -> list[tuple[str, str]]:
    """(sentence, style) paraphrases of a parsed goal that have its objective."""
    rng = rng or np.random.default_rng(0)
    a = goal.target.phrase
    place = _place_phrase(goal)
    out: list[tuple[str, str]] = []
    g = goal.text
    verb = str(rng.choice(_VERBS))
    if place:
        out.append((f"{verb} {a} {place}", "verb"))
        out.append((str(rng.choice(_POLITE)).format(g=g), "politeness"))
        out.append((f"{place}, {verb} {a}", "fronted"))
        out.append((f"place {a} so that it is {place}", "so_that"))
        out.append((f"{a.removeprefix('the ')} {place}", "verbless"))
    if goal.kind in ("left_of", "right_of"):
        side = _side_word(goal.kind)
        b = goal.reference.phrase
        out.append((f"move {a} to the {side}-hand side of {b}", "left_hand"))
        out.append((f"put {a} on {b}'s {side}", "possessive"))
    if goal.kind == "lift" and goal.height is not None:
        cm = round(goal.height * 100)
        if cm in _NUMBERS:
            out.append((f"lift {a} {_NUMBERS[cm]} centimetres", "numbers_in_words"))
        out.append((str(rng.choice(_POLITE)).format(g=g), "politeness"))
    table = {**_COLOUR_SYN, **_NOUN_SYN}
    syn = " ".join(table.get(w, w) for w in g.split())
    if syn != g:
        out.append((syn, "synonyms"))
    return out


def main(argv: list[str] | None = None) -> int:
    from spatial_ros.reward.goal import parse_goal

    ap = argparse.ArgumentParser(prog="python -m training.goal_paraphrases",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--goal", required=True)
    a = ap.parse_args(argv)
    goal = parse_goal(a.goal)
    for text, style in paraphrases(goal):
        try:
            ok = parse_goal(text) == goal
        except Exception as e:  # noqa: BLE001 - report, do not stop
            ok = f"error: {e}"
        print(f"{style:17s} {ok!s:5.5s} {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
