"""A class for a LiDAR cluster from the shape and size of its box, and completion of partly seen
boxes to the class's typical size.

A LiDAR sees one or two sides of an object, so a cluster's box is the *visible* part: its sides
may be shorter than the object's (never much longer), its height is reliable when the bottom is
extended to the ground, except at range where dark glass returns nothing (a car 40 m away shows
only its body below the windows). Each category is a ``SizePrior``: typical full size (KITTI
training-set means for the street classes) and the range of visible extents it can produce.
The cluster gets the category whose ranges admit it at the lowest cost (log-size mismatch,
height weighted most; see ``prior_cost``), or ``unknown_label`` when none does ("misc").

Labels are lower-case (``"car"``, ``"van"``, ``"truck"``, ``"pedestrian"``, ``"cyclist"``,
``"pole"``, ``"misc"``); ``evaluation.runs.kitti_type`` maps them to KITTI's type names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.types import Box3D


@dataclass(frozen=True)
class SizePrior:
    """Typical full size of a category and the visible extents it admits.

    Attributes:
        label: category name given to matching clusters ("car").
        length, width, height: typical full extents, metres (length >= width).
        tolerance: default slack (unitless) for the ranges below: visible sides up to
            ``(1 + tolerance)`` times the prior's, height within ``[1 - tolerance, 1 +
            tolerance]`` times ``height``.
        min_visible: the longer visible BEV side must reach this fraction of ``width``.
        grow_below: a side is grown to the prior's extent only when it is shorter than this
            fraction of it (0 = never grow: pedestrians vary too much to invent their depth).
        min_height, max_height: visible heights admitted, metres (None: from ``tolerance``).
        max_length, max_width: longest visible sides admitted, metres (None: from
            ``tolerance``).
        min_length: shortest longer visible side admitted, metres (None: ``min_visible`` x
            ``width``), e.g. a cyclist seen from the side is longer than a pedestrian.
        grow_height: raise a box lower than ``height`` to it (upper parts unseen, e.g. car
            windows at range), keeping its bottom.
        max_roughness: largest median distance (metres) of the visible contour from the box
            sides (``boxfit.edge_residual``): vehicles have flat panels, bushes do not;
            None = any.
    """

    label: str
    length: float
    width: float
    height: float
    tolerance: float = 0.3
    min_visible: float = 0.5
    grow_below: float = 1.0
    min_height: float | None = None
    max_height: float | None = None
    max_length: float | None = None
    max_width: float | None = None
    min_length: float | None = None
    grow_height: bool = False
    max_roughness: float | None = None

    def __post_init__(self) -> None:
        if not (0 < self.width <= self.length and self.height > 0 and 0 <= self.tolerance < 1
                and 0 <= self.grow_below <= 1 and self.min_visible >= 0):
            raise ConfigError(
                f"SizePrior {self.label!r}: need 0 < width <= length, height > 0, "
                f"0 <= tolerance < 1, 0 <= grow_below <= 1, min_visible >= 0 (got "
                f"length={self.length}, width={self.width}, height={self.height}, "
                f"tolerance={self.tolerance}, grow_below={self.grow_below}, "
                f"min_visible={self.min_visible})"
            )
        if self.h_range[0] > self.h_range[1]:
            raise ConfigError(f"SizePrior {self.label!r}: min_height {self.h_range[0]} > "
                              f"max_height {self.h_range[1]}")

    @property
    def h_range(self) -> tuple[float, float]:
        t = self.tolerance
        lo = (1 - t) * self.height if self.min_height is None else self.min_height
        hi = (1 + t) * self.height if self.max_height is None else self.max_height
        return lo, hi

    @property
    def l_max(self) -> float:
        return (1 + self.tolerance) * self.length if self.max_length is None else self.max_length

    @property
    def w_max(self) -> float:
        return (1 + self.tolerance) * self.width if self.max_width is None else self.max_width

    @property
    def l_min(self) -> float:
        return self.min_visible * self.width if self.min_length is None else self.min_length


# Vehicle sides are flat panels: their visible contour scatters a few cm about the L-shape
# (range noise 2 cm, rounded corners), vegetation 0.1-0.3 m.
VEHICLE_ROUGHNESS = 0.08

# KITTI training-set mean sizes (length, width, height). Visible heights: a car's top may be
# glass that returns nothing at range, so its box can be as low as its body (0.7 m); a van is
# taller than any car, a truck taller than a van. Poles: thin and taller than a person.
STREET_CLASSES: tuple[SizePrior, ...] = (
    SizePrior("car", 3.88, 1.63, 1.53, min_height=0.7, max_height=1.95, max_length=5.4,
              max_width=2.2, min_length=0.9, grow_below=0.95, grow_height=True,
              max_roughness=VEHICLE_ROUGHNESS),
    SizePrior("van", 5.08, 1.90, 2.21, min_height=1.85, max_height=2.7, max_length=6.5,
              max_width=2.5, min_length=1.4, grow_below=0.95, max_roughness=VEHICLE_ROUGHNESS),
    SizePrior("truck", 10.1, 2.59, 3.25, min_height=2.5, max_height=4.5, max_length=16.0,
              max_width=3.2, min_length=1.8, grow_below=0.0, max_roughness=VEHICLE_ROUGHNESS),
    SizePrior("pedestrian", 0.84, 0.66, 1.76, min_height=1.0, max_height=2.05,
              max_length=1.25, max_width=1.0, min_length=0.15, grow_below=0.0),
    SizePrior("cyclist", 1.76, 0.60, 1.74, min_height=1.2, max_height=2.1, max_length=2.3,
              max_width=1.1, min_length=1.1, grow_below=0.0),
    SizePrior("pole", 0.3, 0.3, 3.0, min_height=2.1, max_height=1e9, max_length=0.7,
              max_width=0.7, min_length=0.02, grow_below=0.0),
)


def prior_cost(
    L: float, W: float, H: float, pr: SizePrior, facing: str | None = None
) -> tuple[float, bool] | None:
    """(cost, end_on) of explaining visible extents (L >= W, H) by ``pr``; None if impossible.

    ``end_on``: the longer visible side is the object's width (seen from the front/back), the
    shorter one part of its length; possible while that side is at most 1.2 x ``width``.
    ``facing``: which visible side faces the sensor ("L", "W"; None = oblique view). The
    facing side is seen whole while the other is seen at a grazing angle, sparsely and often
    cut short: a facing long side that can be a width is the object's end (end-on), a facing
    short side is its width (side-on). For an oblique view the cheaper reading wins.

    The cost adds the log-size mismatch of each dimension with its role in the prior; a side
    SHORTER than its role may be partly hidden, so it counts half and at most ``0.5 · log 2``
    (an unseen depth costs the same whatever the prior). Height weighs three times a side
    (bottom on the ground, top from the highest row); a box lower than the prior costs half
    as much when the prior admits hidden tops (``grow_height``).
    """
    h_lo, h_hi = pr.h_range
    if not (h_lo <= H <= h_hi and W <= pr.w_max and pr.l_min <= L <= pr.l_max):
        return None

    def m(x: float, ref: float) -> float:
        if x >= ref:
            return float(np.log(x / ref))
        return 0.5 * float(min(np.log(ref / max(x, 1e-3)), np.log(2.0)))

    hc = float(np.log(H / pr.height))
    h = 3.0 * abs(hc) * (0.5 if (hc < 0 and pr.grow_height) else 1.0)
    side_on = m(L, pr.length) + m(W, pr.width)
    can_end = L <= min(pr.w_max, 1.2 * pr.width)
    if can_end:
        end_on = m(L, pr.width) + m(W, pr.length)
        if facing == "L" or (facing is None and end_on < side_on):
            return h + end_on, True
    return h + side_on, False


def classify_extents(
    L: float, W: float, H: float, priors, open_top: bool = False, roughness: float = 0.0,
    facing: str | None = None,
) -> tuple[SizePrior | None, bool]:
    """The best-matching prior for visible extents (L >= W, H) and whether it is seen end-on;
    (None, False) when no prior admits them. ``open_top``: the object goes on above the
    height window seen, so only priors without a height limit (poles) may take it.
    ``roughness``: the contour's distance from the box sides, metres (see ``SizePrior``).
    ``facing``: see ``prior_cost``."""
    best, best_cost, best_end = None, np.inf, False
    for pr in priors:
        if open_top and pr.h_range[1] < 1e6:
            continue
        if pr.max_roughness is not None and roughness > pr.max_roughness:
            continue
        c = prior_cost(L, W, H, pr, facing)
        if c is not None and c[0] < best_cost:
            best, best_cost, best_end = pr, c[0], c[1]
    return best, best_end


def facing_side(box: Box3D, sensor_xy, max_angle_deg: float = 30.0) -> str | None:
    """"L" or "W": the box side (along its x or y axis) that faces the sensor, i.e. lies within
    ``max_angle_deg`` of perpendicular to the line of sight; None for an oblique view."""
    los = box.center[:2] - np.asarray(sensor_xy, dtype=np.float64)[:2]
    n = float(np.linalg.norm(los))
    if n < 1e-6:
        return None
    yaw = box.yaw
    c = abs(float(np.cos(yaw) * los[0] + np.sin(yaw) * los[1])) / n  # |cos(L-axis, LOS)|
    lim = float(np.sin(np.radians(max_angle_deg)))
    if c <= lim:
        return "L"
    if c >= float(np.cos(np.radians(max_angle_deg))):
        return "W"
    return None


def complete_with_prior(
    box: Box3D, priors, sensor_xy=(0.0, 0.0), open_top: bool = False, roughness: float = 0.0,
    cut_xy=None,
) -> tuple[Box3D, str]:
    """Classify a visible box and grow it to the best-matching prior, away from the sensor.

    The face nearest the sensor is what the LiDAR saw, so it stays in place and the box grows
    towards the far side. If the longer visible side can be the object's width, the length
    axis may be the other one (seen end-on): decided by which side faces the sensor, or for
    an oblique view by the cheaper reading (``prior_cost``). Sides grow only when shorter
    than ``grow_below`` x the prior's; the height grows (bottom kept) when the prior says
    ``grow_height``. ``open_top``, ``roughness``: see
    ``classify_extents``. ``cut_xy``: where the object runs out of the sensor's field of view
    (``lidar_boxes.truncation_point``): along the box axis closer to the line of sight's normal the
    hidden part lies there, so the box grows towards it instead.

    Returns:
        (box, label): the completed box and the prior's label, or the input box and "" when no
        prior matches.
    """
    L, W, H = (float(v) for v in box.size)
    if min(L, H) <= 0:
        return box, ""
    facing = facing_side(box, sensor_xy)
    pr, end_on = classify_extents(L, W, H, priors, open_top, roughness, facing)
    if pr is None:
        return box, ""
    yaw = box.yaw
    ax_len = np.array([np.cos(yaw), np.sin(yaw)])
    ax_wid = np.array([-np.sin(yaw), np.cos(yaw)])
    ctr = box.center.copy()
    s = np.asarray(sensor_xy, dtype=np.float64)
    if end_on:  # the visible long side is the width; the length runs along ax_wid
        new_len, new_wid = max(L, pr.width), max(W, pr.length)
    else:
        new_len, new_wid = max(L, pr.length), max(W, pr.width)
    new_len = new_len if L < pr.grow_below * new_len else L
    new_wid = new_wid if W < pr.grow_below * new_wid else W
    los = ctr[:2] - s
    los = los / max(float(np.linalg.norm(los)), 1e-9)
    for axis, old, new in ((ax_len, L, new_len), (ax_wid, W, new_wid)):
        if new > old:
            if cut_xy is not None and abs(float(axis @ los)) < 0.7:
                toward = np.asarray(cut_xy, dtype=np.float64)[:2] - ctr[:2]
                away = 1.0 if axis @ toward >= 0 else -1.0
            else:
                away = 1.0 if axis @ (ctr[:2] - s) >= 0 else -1.0
            ctr[:2] = ctr[:2] + axis * away * (new - old) / 2.0
    new_h = H
    if pr.grow_height and H < pr.height:
        new_h = pr.height
        ctr[2] += (new_h - H) / 2.0
    size = [new_len, new_wid, new_h]
    if size[1] > size[0]:
        size = [size[1], size[0], size[2]]
        yaw = yaw + np.pi / 2.0
    yaw = float(np.arctan2(np.sin(yaw), np.cos(yaw)))
    return Box3D.from_yaw(ctr, size, yaw, box.frame_id), pr.label
