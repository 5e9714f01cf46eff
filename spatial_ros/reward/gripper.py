"""Is the grounded target the robot's own gripper? (frames where it is are refused).

The gripper is in view of the camera and the LiDAR, and a colour or shape word can make the
grounding pick it for the object to move ("the crimson block" -> the gripper's cluster). Scored
as the target, the gripper "moves" with every motion of the arm, so a failed episode can earn
full progress. :class:`GripperGuard` decides per frame, causally, from two signals:

* the robot's tool centre point (``tool_frame`` in /tf, between the fingertips): the gripper's
  box holds it, and the gripper's body rises well above it (fingers, wrist). An object in the
  fingers also holds it, but rises above the fingertips by at most its own height (the fingers
  close around it). So a target box that holds the tool point and whose top is more than
  ``rise`` metres above it is the gripper, unless the robot is taking or holding the target: the
  tool point was inside the last accepted target box, or this box is that box's object where
  it was (centre within ``jump``, extents within ``resize``: the tool came to it; a tall object
  grasped low is not refused);
* without a tool point: the tabletop shape classifier (``language.shape.tabletop_posterior``)
  of the target's cluster saying "gripper" with probability >= ``shape_p`` before any frame was
  accepted. (Later in an episode a carried object merges with the gripper into one cluster that
  looks like the gripper, so the shape is only trusted at the start.)

Refused frames get no progress (``EpisodeScorer.refuse``) and do not become the episode's
start; the target's track is dropped so that the next frame grounds it afresh. Boxes and the
tool point in one z-up frame, metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.types import Box3D

REASON = "target resolves to the gripper"


@dataclass(frozen=True)
class GripperGuardConfig:
    """Attributes:
    margin: the tool point within this of the target's box counts as inside it (m).
    rise: a box holding the tool point whose top is more than this above it is the gripper
        (m; the gripper's height above its fingertips is more, an object in the fingers
        rises less).
    jump, resize: a box within ``jump`` (centre, m) and ``resize`` (L1 change of the sorted
        extents, m) of the last accepted target box is that object, taken by the tool.
    shape_p: without a tool point, P(gripper | shape) at or above this refuses the target
        before any frame was accepted, in [0, 1] (above 1 = never).
    """

    margin: float = 0.02
    rise: float = 0.10
    jump: float = 0.15
    resize: float = 0.06
    shape_p: float = 0.5

    def __post_init__(self) -> None:
        bad = [f"{n}={getattr(self, n)} (must be > 0 m)"
               for n in ("margin", "rise", "jump", "resize")
               if not (math.isfinite(getattr(self, n)) and getattr(self, n) > 0)]
        if not self.shape_p >= 0:
            bad.append(f"shape_p={self.shape_p} (must be >= 0)")
        if bad:
            raise ConfigError("gripper guard: invalid " + "; ".join(bad))


class GripperGuard:
    """Per-episode check of the target's box against the robot's gripper (``reset()`` starts
    the next episode)."""

    def __init__(self, config: GripperGuardConfig | None = None) -> None:
        self.config = config or GripperGuardConfig()
        self.reset()

    def reset(self) -> None:
        self._last: Box3D | None = None  # the last accepted target box
        self._holding = False  # the tool point was inside it

    def check(self, target: Box3D, tool: np.ndarray | None,
              gripper_p: float | None = None) -> str:
        """'' when ``target`` may be scored this frame, else why it is the gripper.

        Args:
            target: the target's box this frame.
            tool: the tool centre point (3,) in the box's frame, or None when unknown.
            gripper_p: P(gripper | shape) of the target's cluster, or None when unknown.
        """
        cfg = self.config
        if tool is not None:
            if self._holding or not self._inside(target, tool):
                return ""
            rise = float(target.center[2] + target.size[2] / 2 - np.asarray(tool, float)[2])
            if rise <= cfg.rise or (self._last is not None and self._same(target, self._last)):
                return ""
            return f"{REASON} (its box holds the tool point and rises {rise:.2f} m above it)"
        if self._last is None and gripper_p is not None and gripper_p >= cfg.shape_p:
            return f"{REASON} (its shape is the gripper's, P = {gripper_p:.2f})"
        return ""

    def accept(self, target: Box3D, tool: np.ndarray | None) -> None:
        """Record a frame whose target was scored."""
        self._last = target
        if tool is not None:
            self._holding = self._inside(target, tool)

    def _same(self, box: Box3D, last: Box3D) -> bool:
        """``box`` is the object of ``last`` where it was (the tool came to it)."""
        resize = float(np.abs(np.sort(box.size) - np.sort(last.size)).sum())
        return (float(np.linalg.norm(box.center - last.center)) <= self.config.jump
                and resize <= self.config.resize)

    def _inside(self, box: Box3D, tool: np.ndarray) -> bool:
        return bool(box.contains(np.asarray(tool, float)[None], self.config.margin)[0])

    # ---- state for resumable offline jobs (JSON-able, exact floats) ---------------------------
    def state_dict(self) -> dict:
        return {"last": None if self._last is None else self._last.state_dict(),
                "holding": self._holding}

    def load_state_dict(self, d: dict | None) -> None:
        d = d or {}
        self._last = None if d.get("last") is None else Box3D.from_state_dict(d["last"])
        self._holding = bool(d.get("holding", False))
