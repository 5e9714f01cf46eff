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
        hidden_top_height: the height (metres) a box lower than it takes, bottom kept, when
            its top is hidden (it reaches the sensor's highest beam or the height window:
            ``open_top``), e.g. a street pole whose upper part passes above a spinning
            LiDAR's top beam at close range; None: the visible height stays.
        round: the object is round in plan view (a pole): its unseen depth is its seen
            breadth, so the box's shorter side grows to its longer one (away from the sensor).
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
    hidden_top_height: float | None = None
    round: bool = False

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
# taller than any car, a truck taller than a van. Poles: thin and taller than a person; one
# whose top is hidden (above the LiDAR's top beam: 2.2 m up at 12 m range for KITTI's +2
# degrees) gets 4.5 m, the middle of street furniture's 3-6 m (sign posts, traffic lights,
# lamps), instead of the cut height.
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
              max_width=0.7, min_length=0.02, grow_below=0.0, hidden_top_height=4.5, round=True),
)


# Facing codes of ``facing_sides``: which visible side faces the sensor.
OBLIQUE, FACING_L, FACING_W = 0, 1, 2
# ``open_top`` codes (``classify_batch``): reaches the sensor's highest beam / the height window.
OPEN_FOV, OPEN_WINDOW = 1, 2


def _mismatch(x: np.ndarray, ref: float) -> np.ndarray:
    """Log-size mismatch of visible extents with a prior's: full when longer, half (and at
    most ``0.5 · log 2``) when shorter, since a side may be partly hidden."""
    x = np.maximum(x, 1e-3)
    return np.where(x >= ref, np.log(x / ref), 0.5 * np.minimum(np.log(ref / x), np.log(2.0)))


def prior_costs(L, W, H, pr: SizePrior, facing=OBLIQUE) -> tuple[np.ndarray, np.ndarray]:
    """(cost, end_on) arrays of explaining visible extents (L >= W, H; arrays) by ``pr``;
    cost is inf where the prior does not admit them.

    ``end_on``: the longer visible side is the object's width (seen from the front/back), the
    shorter one part of its length; possible while that side is at most 1.2 x ``width``.
    ``facing`` (``facing_sides``): the facing side is seen whole while the other is seen at a
    grazing angle, sparsely and often cut short: a facing long side that can be a width is
    the object's end (end-on), a facing short side is its width (side-on). For an oblique
    view the cheaper reading wins.

    The cost adds the log-size mismatch of each dimension with its role in the prior
    (``_mismatch``: an unseen depth costs the same whatever the prior). Height weighs three
    times a side (bottom on the ground, top from the highest row); a box lower than the prior
    costs half as much when the prior admits hidden tops (``grow_height``).
    """
    L, W, H = (np.asarray(v, dtype=np.float64) for v in (L, W, H))
    h_lo, h_hi = pr.h_range
    ok = (h_lo <= H) & (H <= h_hi) & (W <= pr.w_max) & (pr.l_min <= L) & (L <= pr.l_max)
    hc = np.log(np.maximum(H, 1e-3) / pr.height)
    h = 3.0 * np.abs(hc) * np.where((hc < 0) & pr.grow_height, 0.5, 1.0)
    side_on = _mismatch(L, pr.length) + _mismatch(W, pr.width)
    end_on = _mismatch(L, pr.width) + _mismatch(W, pr.length)
    can_end = L <= min(pr.w_max, 1.2 * pr.width)
    use_end = can_end & ((facing == FACING_L) | ((facing == OBLIQUE) & (end_on < side_on)))
    cost = np.where(ok, h + np.where(use_end, end_on, side_on), np.inf)
    return cost, use_end


def classify_batch(L, W, H, priors, open_top=False, roughness=0.0,
                   facing=OBLIQUE) -> tuple[np.ndarray, np.ndarray]:
    """(index into ``priors`` or -1, end_on) of the best-matching prior for each set of
    visible extents (L >= W, H; arrays). ``open_top``: the object may go on above what was
    seen (True or ``OPEN_WINDOW``: it reaches the top of the height window, so only priors
    without a height limit, poles, may take it; ``OPEN_FOV``: it reaches the sensor's highest
    beam, so priors that admit hidden tops, cars uphill, may take it too). ``roughness``:
    the contour's scatter about the box sides, metres (see ``SizePrior``). ``facing``: see
    ``prior_costs``."""
    L = np.atleast_1d(np.asarray(L, dtype=np.float64))
    shape = L.shape
    costs = np.full((len(priors),) + shape, np.inf)
    ends = np.zeros((len(priors),) + shape, dtype=bool)
    open_top = np.broadcast_to(np.asarray(open_top).astype(np.int64), shape)
    roughness = np.broadcast_to(roughness, shape)
    for k, pr in enumerate(priors):
        c, e = prior_costs(L, W, H, pr, facing)
        if pr.h_range[1] < 1e6:
            shut = (open_top > 0) & ~((open_top == OPEN_FOV) & pr.grow_height)
            c = np.where(shut, np.inf, c)
        if pr.max_roughness is not None:
            c = np.where(roughness > pr.max_roughness, np.inf, c)
        costs[k], ends[k] = c, e
    if not len(priors):
        return np.full(shape, -1), np.zeros(shape, dtype=bool)
    best = np.argmin(costs, axis=0)
    found = np.isfinite(np.take_along_axis(costs, best[None], 0)[0])
    end_on = np.take_along_axis(ends, best[None], 0)[0] & found
    return np.where(found, best, -1), end_on


def prior_cost(L: float, W: float, H: float, pr: SizePrior, facing=OBLIQUE):
    """(cost, end_on) of one set of visible extents (``prior_costs``), None if impossible."""
    c, e = prior_costs(np.array([L]), np.array([W]), np.array([H]), pr, facing)
    return (float(c[0]), bool(e[0])) if np.isfinite(c[0]) else None


def classify_extents(L: float, W: float, H: float, priors, open_top: bool = False,
                     roughness: float = 0.0, facing=OBLIQUE) -> tuple[SizePrior | None, bool]:
    """The best-matching prior for one set of visible extents and whether it is seen end-on
    (``classify_batch``); (None, False) when no prior admits them."""
    k, e = classify_batch([L], [W], [H], priors, open_top, roughness, facing)
    return (priors[int(k[0])], bool(e[0])) if k[0] >= 0 else (None, False)


def facing_sides(center_xy: np.ndarray, yaw: np.ndarray, sensor_xy,
                 max_angle_deg: float = 30.0) -> np.ndarray:
    """(G,) ``FACING_L`` / ``FACING_W``: the box side (along its x or y axis) that lies within
    ``max_angle_deg`` of perpendicular to the line of sight; ``OBLIQUE`` otherwise."""
    los = np.atleast_2d(center_xy)[:, :2] - np.asarray(sensor_xy, dtype=np.float64)[:2]
    n = np.maximum(np.hypot(los[:, 0], los[:, 1]), 1e-9)
    yaw = np.atleast_1d(yaw)
    c = np.abs(np.cos(yaw) * los[:, 0] + np.sin(yaw) * los[:, 1]) / n  # |cos(L axis, LOS)|
    out = np.full(len(yaw), OBLIQUE)
    out[c <= np.sin(np.radians(max_angle_deg))] = FACING_L
    out[c >= np.cos(np.radians(max_angle_deg))] = FACING_W
    return out


def complete_batch(center, size, yaw, index, end_on, priors, sensor_xy=(0.0, 0.0),
                   cut_xy=None, open_top=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(center (G, 3), size (G, 3), yaw (G,)) of yaw-only boxes grown to their priors
    (``index`` into ``priors``, -1 = unchanged; see ``complete_with_prior``). ``cut_xy``:
    (G, 2), NaN where the object is not cut by the field of view. ``open_top``: (G,) or one
    value, non-zero where the object's top is hidden (``classify_batch``)."""
    ctr = np.array(center, dtype=np.float64, ndmin=2)
    size = np.array(size, dtype=np.float64, ndmin=2)
    yaw = np.array(yaw, dtype=np.float64, ndmin=1)
    index = np.asarray(index)
    has = index >= 0
    if not has.any():
        return ctr, size, yaw
    pick = np.where(has, index, 0)
    tab = np.array([[p.length, p.width, p.height, p.grow_below, float(p.grow_height),
                     float(p.round), np.nan if p.hidden_top_height is None
                     else p.hidden_top_height] for p in priors])[pick]
    plen, pwid, phgt, grow, ghgt, rnd, hidden = tab.T
    L, W, H = size[:, 0], size[:, 1], size[:, 2]
    new_len = np.where(end_on, np.maximum(L, pwid), np.maximum(L, plen))
    new_wid = np.where(end_on, np.maximum(W, plen), np.maximum(W, pwid))
    new_len = np.where(L < grow * new_len, new_len, L)
    new_wid = np.where(W < grow * new_wid, new_wid, W)
    round_ = has & (rnd > 0)
    new_len = np.where(round_, np.maximum(new_len, new_wid), new_len)
    new_wid = np.where(round_, new_len, new_wid)
    s = np.asarray(sensor_xy, dtype=np.float64)[:2]
    ax_len = np.column_stack([np.cos(yaw), np.sin(yaw)])
    ax_wid = np.column_stack([-np.sin(yaw), np.cos(yaw)])
    cut = None if cut_xy is None else np.array(cut_xy, dtype=np.float64, ndmin=2)
    out = ctr.copy()
    if cut is not None:  # the box axis that runs into the cut grows towards it
        to_cut = np.nan_to_num(cut) - ctr[:, :2]
        on_len = np.abs(np.einsum("ij,ij->i", ax_len, to_cut)) >= \
            np.abs(np.einsum("ij,ij->i", ax_wid, to_cut))
    for axis, old, new, is_len in ((ax_len, L, new_len, True), (ax_wid, W, new_wid, False)):
        grow_by = np.where(has, np.maximum(new - old, 0.0), 0.0)
        away = np.where(np.einsum("ij,ij->i", axis, ctr[:, :2] - s) >= 0, 1.0, -1.0)
        if cut is not None:
            use = np.isfinite(cut[:, 0]) & (on_len == is_len)
            toward = np.where(np.einsum("ij,ij->i", axis, to_cut) >= 0, 1.0, -1.0)
            away = np.where(use, toward, away)
        out[:, :2] += axis * (away * grow_by / 2.0)[:, None]
    new_h = np.where(has & (ghgt > 0) & (H < phgt), phgt, H)
    if open_top is not None and np.isfinite(hidden).any():
        up = has & np.isfinite(hidden) & (np.broadcast_to(np.asarray(open_top), H.shape) > 0)
        new_h = np.where(up, np.maximum(new_h, np.nan_to_num(hidden)), new_h)
    out[:, 2] += (new_h - H) / 2.0
    length = np.where(has, new_len, L)
    width = np.where(has, new_wid, W)
    swap = width > length
    out_size = np.column_stack([np.maximum(length, width), np.minimum(length, width), new_h])
    yaw2 = np.where(swap, yaw + np.pi / 2.0, yaw)
    yaw2 = np.where(has, np.arctan2(np.sin(yaw2), np.cos(yaw2)), yaw)
    return out, out_size, yaw2


def complete_with_prior(
    box: Box3D, priors, sensor_xy=(0.0, 0.0), open_top: bool = False, roughness: float = 0.0,
    cut_xy=None,
) -> tuple[Box3D, str]:
    """Classify a visible box and grow it to the best-matching prior, away from the sensor.

    The face nearest the sensor is what the LiDAR saw, so it stays in place and the box grows
    towards the far side. If the longer visible side can be the object's width, the length
    axis may be the other one (seen end-on): decided by which side faces the sensor, or for
    an oblique view by the cheaper reading (``prior_costs``). Sides grow only when shorter
    than ``grow_below`` x the prior's; the height grows (bottom kept) when the prior says
    ``grow_height``. ``open_top``, ``roughness``: see ``classify_batch``. ``cut_xy``: where
    the object runs out of the sensor's field of view (``scan_geometry.truncation_point``):
    along the box axis pointing at it the hidden part lies there, so the box grows towards it
    instead.

    Returns:
        (box, label): the completed box and the prior's label, or the input box and "" when no
        prior matches.
    """
    L, W, H = (float(v) for v in box.size)
    if min(L, H) <= 0:
        return box, ""
    facing = facing_sides(box.center[:2], box.yaw, sensor_xy)
    k, end_on = classify_batch([L], [W], [H], priors, open_top, roughness, facing)
    if k[0] < 0:
        return box, ""
    cut = None if cut_xy is None else np.asarray(cut_xy, dtype=np.float64)[None, :2]
    ctr, size, yaw = complete_batch(box.center, box.size, box.yaw, k, end_on, priors,
                                    sensor_xy, cut, open_top)
    return Box3D.from_yaw(ctr[0], size[0], float(yaw[0]), box.frame_id), priors[int(k[0])].label
