"""Goals in words -> typed spatial objectives, and where a 3D state stands with respect to them.

One parser and one goal geometry serve the reward annotator and the simulator
(``spatial_ros.sim.trajectory`` plans its trajectories with :func:`parse_goal` and scores its
ground truth with ``reward.goal_measure.measure``), so the annotator's progress on ground-truth
boxes IS the simulator's truth progress. This module defines the goals and their regions;
``reward.goal_measure`` measures a state against them, ``reward.goal_parser`` reads them.

Frames and units: every box is in one gravity-aligned z-up frame (REP-103; base_link in practice),
metres. "The robot" is the origin of that frame. View-dependent words (left, right, in front of,
behind) are as seen from the camera, using ``spatial_ros.spatial.predicates.Viewpoint``: heading
``f`` = the horizontal part of the camera's forward axis, left axis ``l = -right``.

Goal kinds and their *goal regions* (``remaining`` = metres from the state to the region, 0 inside;
"resting" = the target's bottom within ``Tolerances.rest`` of the support surface):

* ``next_to`` — "put the red cube next to the blue bowl": bird's-eye-view gap between the two
  box footprints in (0, G], G = 0.10 m or "within N cm of"; target resting.
  remaining = max(0, gap - G).
* ``left_of`` / ``right_of`` / ``behind`` / ``in_front_of`` — "move the mug to the left of the
  can": with axis a (l, -l, f, -f) and the other horizontal axis o, the centre offset
  r = c_target - c_reference must satisfy r.a >= (extent_target(a) + extent_reference(a)) / 2 +
  0.02 (footprints clearly apart) and |r.o| <= 0.15; target resting.
  remaining = Euclidean distance of (r.a, r.o) to that region.
* ``on_top_of`` — "stack the red cube on the blue box": the target's centre over the reference's
  footprint and its bottom within ``rest`` of the reference's top.
  remaining = hypot(xy distance of the centre to the footprint, max(0, |bottom - top| - rest)).
* ``lift`` — "lift the ball 20 cm above the table": the target's bottom is h +- 0.03 m above the
  support surface (the table). remaining = distance of (bottom - support) to [h - 0.03, h + 0.03].
* ``away_from`` / ``toward`` — "push the box away from the robot", "move the mug towards the
  bowl": the distance to the reference (horizontal centre distance for the robot and the camera,
  footprint gap for objects) grows (shrinks) by D = 0.15 m or "N cm" relative to the episode's
  first frame. remaining = max(0, d0 + D - d) (``toward``: max(0, d - max(d0 - D, 0))).

Reach stage (when the robot's tool point is known, e.g. from /tf): a pick-and-place goal starts
with the gripper travelling to the target, during which the goal region gets no closer. With
the tool point p in the state, progress is staged::

    progress = w * reach + (1 - w) * place,   reach = clip(1 - d(p, target) / d_0, 0, 1)

with d the metres from p to the target's box (0 inside), d_0 its value in the episode's first
frame, ``place`` the goal-region progress above and w = ``REACH_WEIGHT``; ``reach`` is 1 from
the first frame in which the target is more than ``REACH_MOVED`` from where it started (it has
been picked up or pushed), so the gripper leaving after a release costs nothing.

The support surface is ``SceneState.support_z`` when known (the simulator's table top); else the
reference's bottom (it rests on the table); for ``lift`` without either, the target's bottom in
the episode's first frame (it starts on the table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from spatial_ros.errors import ConfigError, ParseError

GOAL_KINDS = (
    "next_to",
    "left_of",
    "right_of",
    "in_front_of",
    "behind",
    "on_top_of",
    "lift",
    "away_from",
    "toward",
)
SIDE_KINDS = ("left_of", "right_of", "in_front_of", "behind")
RELATIVE_KINDS = ("away_from", "toward")
ROBOT = "robot"
CAMERA = "camera"
# Goal-region constants (metres); Tolerances carries them, these are the defaults.
NEXT_TO_GAP = 0.10
BESIDE_DEPTH = 0.15
SIDE_CLEARANCE = 0.02
LIFT_TOL = 0.03
REST_TOL = 0.01
MOVE_AMOUNT = 0.15
DEFAULT_LIFT = 0.10
REACH_WEIGHT = 0.25  # share of progress earned by bringing the tool to the target
REACH_MOVED = 0.03  # metres the target must move from its start to end the reach stage

GOAL_EXAMPLES = (
    "put the red cube next to the blue bowl",
    "move the green mug to the left of the yellow can",
    "lift the blue ball 20 cm above the table",
    "push the box away from the robot",
    "put the red cube within 5 cm of the blue bowl",
    "move the mug in front of the can",
    "stack the red cube on the blue box",
    "move the mug towards the bowl",
)


class GoalError(ParseError):
    """A goal sentence cannot be turned into a spatial objective; the message says why and
    lists sentences that work."""


# ----------------------------------------------------------------------------------------------
# Goals
# ----------------------------------------------------------------------------------------------


class ObjectRef(NamedTuple):
    """An object a goal names: ``colour`` = the words before the head noun ('' for none; a
    colour in the simulator's vocabulary), ``category`` = the head noun ("cube"), or the special
    references ``"robot"`` (the z-up frame's origin) and ``"camera"``. Compares equal to the
    plain tuple ``(colour, category)``."""

    colour: str
    category: str

    @property
    def special(self) -> bool:
        return self.category in (ROBOT, CAMERA)

    @property
    def phrase(self) -> str:
        """The referring phrase used as a grounding query: "the red cube", "the robot"."""
        return "the " + " ".join(w for w in (self.colour, self.category) if w)

    @property
    def name(self) -> str:
        """Short name for explanations: "red cube"."""
        return " ".join(w for w in (self.colour, self.category) if w)


def _fmt_cm(metres: float) -> str:
    return f"{round(metres * 100.0, 2):g} cm"


@dataclass
class Goal:
    """A parsed goal.

    Attributes:
        kind: one of ``GOAL_KINDS``.
        target: the object to move.
        reference: the object (or robot/camera) it is placed relative to; None for ``lift``.
        height: ``lift``: height of the target's bottom above the support surface (metres).
        distance: ``next_to``: largest footprint gap (metres, None = 0.10); ``away_from`` /
            ``toward``: how much the distance must change (metres, None = 0.15).
        ignored: words of the sentence the parser could not place (reported to the user).
        target_phrase, reference_phrase: the object's full referring expression when it has
            spatial words of its own ("the cube on the left"), used as its grounding query.
    """

    kind: str
    target: ObjectRef
    reference: ObjectRef | None = None
    height: float | None = None
    distance: float | None = None
    # set by the parser, not part of the objective (not compared):
    ignored: tuple[str, ...] = field(default=(), compare=False)  # words it could not place
    target_phrase: str = field(default="", compare=False)  # own spatial words ("on the left")
    reference_phrase: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in GOAL_KINDS:
            raise GoalError(f"unknown goal kind {self.kind!r}; known: {', '.join(GOAL_KINDS)}")
        self.target = ObjectRef(*self.target)
        if self.reference is not None:
            self.reference = ObjectRef(*self.reference)
        if self.target.special:
            raise GoalError(f"the {self.target.category} cannot be the object to move")
        if self.kind == "lift":
            if self.reference is not None or self.height is None or not self.height > 0:
                raise GoalError("a lift goal needs a height > 0 and no reference object")
        elif self.reference is None:
            raise GoalError(f"a {self.kind} goal needs a reference object")
        if self.reference is not None and self.reference.special:
            if self.kind not in RELATIVE_KINDS:
                raise GoalError(
                    f"'{self.kind}' relative to the {self.reference.category} is not supported; "
                    f"use 'away from' / 'towards' the {self.reference.category}"
                )
        if self.distance is not None and not (math.isfinite(self.distance) and self.distance > 0):
            raise GoalError(f"goal distance must be > 0 m, got {self.distance}")

    @property
    def text(self) -> str:
        """The canonical sentence (parses back to this goal)."""
        a = self.target.phrase
        b = self.reference.phrase if self.reference else ""
        amount = f"{_fmt_cm(self.distance)} " if self.distance is not None else ""
        if self.kind == "lift":
            return f"lift {a} {_fmt_cm(self.height)} above the table"
        if self.kind == "next_to":
            if self.distance is not None:
                return f"put {a} within {_fmt_cm(self.distance)} of {b}"
            return f"put {a} next to {b}"
        if self.kind in ("left_of", "right_of"):
            return f"move {a} to the {self.kind[:-3]} of {b}"
        if self.kind == "in_front_of":
            return f"move {a} in front of {b}"
        if self.kind == "behind":
            return f"move {a} behind {b}"
        if self.kind == "on_top_of":
            return f"put {a} on top of {b}"
        if self.kind == "away_from":
            return f"push {a} {amount}away from {b}"
        return f"move {a} {amount}towards {b}"

    @property
    def required(self) -> list[ObjectRef]:
        """The objects that must be grounded (the robot and the camera need no grounding)."""
        refs = [self.target]
        if self.reference is not None and not self.reference.special:
            refs.append(self.reference)
        return refs

    @property
    def phrases(self) -> list[str]:
        """Grounding queries, target first ("the red cube", "the blue bowl"; an object's own
        spatial words kept: "the cube on the left")."""
        own = {id(self.target): self.target_phrase, id(self.reference): self.reference_phrase}
        return [own.get(id(r)) or r.phrase for r in self.required]

    @property
    def needs_view(self) -> bool:
        """Whether scoring needs the camera viewpoint."""
        return self.kind in SIDE_KINDS or (
            self.reference is not None and self.reference.category == CAMERA
        )

    def objective(self, tol: Tolerances | None = None) -> Objective:
        """The quantity the goal constrains, its target and tolerance (for messages)."""
        tol = tol or DEFAULT_TOLERANCES
        a = self.target.name
        b = self.reference.name if self.reference else None
        if self.kind == "next_to":
            g = self.distance if self.distance is not None else tol.next_to_gap
            return Objective("gap", a, b, "<=", g, tol.success, f"{a} resting on the table")
        if self.kind in SIDE_KINDS:
            side = {"left_of": "left", "right_of": "right", "in_front_of": "front",
                    "behind": "behind"}[self.kind]
            return Objective(
                f"{side}_clearance", a, b, ">=", tol.side_clearance, tol.success,
                f"as seen from the camera; sideways offset <= {tol.side_depth:.2f} m; "
                f"{a} resting on the table",
            )
        if self.kind == "on_top_of":
            return Objective("top_offset", a, b, "<=", tol.rest, tol.success,
                             f"centre of {a} over the footprint of {b}")
        if self.kind == "lift":
            return Objective("height_above_table", a, None, "=", self.height, tol.lift)
        d = self.distance if self.distance is not None else tol.move_amount
        quantity = "distance_increase" if self.kind == "away_from" else "distance_decrease"
        return Objective(quantity, a, b, ">=", d, tol.success, "since the episode's first frame")


@dataclass(frozen=True)
class Objective:
    """What a goal constrains: ``quantity(subject, object) op target`` (metres), met within
    ``tolerance`` metres, plus conditions in words."""

    quantity: str
    subject: str
    object: str | None
    op: str
    target: float
    tolerance: float
    conditions: str = ""

    def describe(self) -> str:
        """E.g. "gap(red cube, blue bowl) <= 0.10 m (red cube resting on the table)"."""
        args = self.subject if self.object is None else f"{self.subject}, {self.object}"
        tol = f" +- {self.tolerance:.2f}" if self.op == "=" else ""
        extra = f" ({self.conditions})" if self.conditions else ""
        return f"{self.quantity}({args}) {self.op} {self.target:.2f}{tol} m{extra}"


# ----------------------------------------------------------------------------------------------
# Goal geometry
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerances:
    """Sizes of the goal regions (metres).

    Attributes:
        next_to_gap: default largest footprint gap of ``next_to``.
        side_clearance: left/right/front/behind: footprints at least this far apart along the axis.
        side_depth: left/right/front/behind: largest offset along the other horizontal axis.
        lift: half-width of the lift height band.
        rest: the target's bottom within this of the support surface counts as resting.
        move_amount: default distance change of ``away_from`` / ``toward``.
        success: ``remaining`` at or below this counts as in the goal region.
    """

    next_to_gap: float = NEXT_TO_GAP
    side_clearance: float = SIDE_CLEARANCE
    side_depth: float = BESIDE_DEPTH
    lift: float = LIFT_TOL
    rest: float = REST_TOL
    move_amount: float = MOVE_AMOUNT
    success: float = 0.0

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.__dict__.items() if not (math.isfinite(v) and v >= 0)}
        if bad:
            raise ConfigError(f"Tolerances must be finite and >= 0 metres, got {bad}")
        if self.next_to_gap <= 0 or self.move_amount <= 0:
            raise ConfigError(
                f"next_to_gap ({self.next_to_gap}) and move_amount ({self.move_amount}) must be "
                "> 0 m"
            )


DEFAULT_TOLERANCES = Tolerances()


# The parser lives in goal_parser.py (on the referring-expression parser); re-exported here.
from spatial_ros.reward.goal_parser import (  # noqa: E402, F401
    OPEN_VOCABULARY,
    Vocabulary,
    object_ref,
    parse_goal,
)
