"""Yaw-only 3D boxes from clusters of points in a z-up frame, and shape-prior completion.

Two bird's-eye-view (BEV) rectangle fits:

* ``"min_area"`` — ``cv2.minAreaRect`` of the BEV points: right when the whole footprint is
  seen (objects on a table seen from above, depth clouds).
* ``"lshape"`` — search-based L-shape fitting (closeness criterion of Zhang et al., "Efficient
  L-shape fitting for vehicle detection using laser scanners", IV 2017): right for LiDAR, which
  sees one or two sides of a car. Implemented here (no library provides it) as one vectorised
  evaluation of all candidate headings.

A cluster's box heading is its longer BEV side (the box x axis), sizes are full extents.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.types import Box3D


@dataclass(frozen=True)
class SizePrior:
    """Typical full size of a category, to complete partially seen clusters (e.g. a car seen
    from behind has a 1.6 m wide visible face; its box is 3.9 m long).

    Attributes:
        label: category name given to matching clusters ("car").
        length, width, height: typical full extents, metres (length >= width).
        tolerance: a cluster matches when each of its extents is at most ``(1 + tolerance)``
            times the prior's and its height is within ``[1 - tolerance, 1 + tolerance]``
            times ``height`` (unitless).
        min_visible: the longer visible BEV side must reach this fraction of ``width``.
        grow_below: a side is grown to the prior's extent only when it is shorter than this
            fraction of it (small objects such as pedestrians vary too much to grow them).
    """

    label: str
    length: float
    width: float
    height: float
    tolerance: float = 0.3
    min_visible: float = 0.5
    grow_below: float = 1.0

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


def _rect_lshape(
    xy: np.ndarray, step_deg: float, min_dist: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """Best rectangle heading by the closeness criterion; returns (theta, lo, hi) where lo/hi
    are the min/max projections on the axes e1 = (cos t, sin t), e2 = (-sin t, cos t)."""
    thetas = np.radians(np.arange(0.0, 90.0, step_deg))
    c, s = np.cos(thetas), np.sin(thetas)
    p1 = xy @ np.stack([c, s])  # (M, A) projections on e1
    p2 = xy @ np.stack([-s, c])
    lo1, hi1, lo2, hi2 = p1.min(0), p1.max(0), p2.min(0), p2.max(0)
    d1 = np.minimum(hi1 - p1, p1 - lo1)
    d2 = np.minimum(hi2 - p2, p2 - lo2)
    d = np.maximum(np.minimum(d1, d2), min_dist)
    best = int(np.argmax((1.0 / d).sum(axis=0)))
    return float(thetas[best]), np.array([lo1[best], lo2[best]]), np.array([hi1[best], hi2[best]])


def _rect_min_area(xy: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    (cx, cy), (w, h), ang = cv2.minAreaRect(xy.astype(np.float32))
    t = np.radians(ang)
    e1, e2 = np.array([np.cos(t), np.sin(t)]), np.array([-np.sin(t), np.cos(t)])
    ctr = np.array([cx, cy])
    half = np.array([w, h]) / 2.0
    mid = np.array([ctr @ e1, ctr @ e2])
    return float(t), mid - half, mid + half


def fit_box(
    points: np.ndarray,
    *,
    method: str = "min_area",
    z_min: float | None = None,
    pad: float = 0.0,
    pad_top: float | None = None,
    max_fit_points: int = 512,
    lshape_step_deg: float = 1.0,
    lshape_min_dist: float = 0.01,
    frame_id: str = "",
) -> Box3D:
    """Yaw-only box around (M>=1, 3+) points of one object in a z-up frame.

    Args:
        points: the cluster, metres.
        method: "min_area" or "lshape" (see the module docstring).
        z_min: bottom of the box (e.g. the ground/table height) instead of the lowest point.
        pad: metres added to each side in BEV and on top (half a point spacing compensates
            for points sampling the surface just inside its true edge).
        pad_top: metres added on top instead of ``pad`` (e.g. half a LiDAR row).
        max_fit_points: the heading is fitted on at most this many evenly strided points.
        lshape_step_deg, lshape_min_dist: L-shape search resolution (degrees) and the
            closeness floor (metres).
        frame_id: frame of the points.

    Returns:
        The box; its x axis is the longer BEV side, yaw in (-pi/2, pi/2].
    """
    p = np.asarray(points, dtype=np.float64)[:, :3]
    xy = p[:, :2]
    if len(xy) > max_fit_points:
        xy_fit = xy[:: int(np.ceil(len(xy) / max_fit_points))]
    else:
        xy_fit = xy
    if len(xy_fit) < 3:
        theta = 0.0
    elif method == "lshape":
        theta = _rect_lshape(xy_fit - xy_fit.mean(0), lshape_step_deg, lshape_min_dist)[0]
    elif method == "min_area":
        theta = _rect_min_area(xy_fit)[0]
    else:
        raise ConfigError(f"fit_box: method must be 'min_area' or 'lshape', got {method!r}")
    # Extents from ALL points along the fitted axes.
    e1 = np.array([np.cos(theta), np.sin(theta)])
    e2 = np.array([-np.sin(theta), np.cos(theta)])
    a, b = xy @ e1, xy @ e2
    lo = np.array([a.min(), b.min()]) - pad
    hi = np.array([a.max(), b.max()]) + pad
    mid = (lo + hi) / 2.0
    ext = hi - lo
    if ext[1] > ext[0]:  # heading = longer side
        theta += np.pi / 2.0
        ext = ext[::-1]
    ctr_xy = mid[0] * e1 + mid[1] * e2
    zlo = float(p[:, 2].min()) if z_min is None else float(min(z_min, p[:, 2].min()))
    zhi = float(p[:, 2].max()) + (pad if pad_top is None else pad_top)
    yaw = float(np.arctan2(np.sin(theta), np.cos(theta)))
    if yaw > np.pi / 2:
        yaw -= np.pi
    elif yaw <= -np.pi / 2:
        yaw += np.pi
    return Box3D.from_yaw(
        [ctr_xy[0], ctr_xy[1], (zlo + zhi) / 2.0], [ext[0], ext[1], zhi - zlo], yaw, frame_id
    )


def _prior_cost(L: float, W: float, H: float, pr: SizePrior) -> tuple[float, bool] | None:
    """(cost, end_on) of explaining visible extents (L >= W, H) by ``pr``; None if impossible.

    ``end_on``: the longer visible side is the object's width (seen from the front/back), the
    shorter one part of its length. The cost adds the log-size mismatch of each dimension
    with its role in the prior; a side SHORTER than its role may be partly hidden, so it counts
    half and at most ``0.5 · log 2`` (an unseen depth costs the same whatever the prior).
    """
    t = pr.tolerance
    if not ((1 - t) * pr.height <= H <= (1 + t) * pr.height and W <= (1 + t) * pr.width):
        return None
    if L > (1 + t) * pr.length or L < pr.min_visible * pr.width:
        return None

    def m(x: float, ref: float) -> float:
        if x >= ref:
            return float(np.log(x / ref))
        return 0.5 * float(min(np.log(ref / max(x, 1e-3)), np.log(2.0)))

    # Height is the most reliable extent (bottom on the ground, top from the highest row):
    # it weighs three times a side.
    h = 3.0 * abs(float(np.log(H / pr.height)))
    side_on = m(L, pr.length) + m(W, pr.width)
    if L <= (1 + t) * pr.width:
        end_on = m(L, pr.width) + m(W, pr.length)
        if end_on < side_on:
            return h + end_on, True
    return h + side_on, False


def complete_with_prior(box: Box3D, priors, sensor_xy=(0.0, 0.0)) -> tuple[Box3D, str]:
    """Grow a partially seen box to the best-matching size prior, away from the sensor.

    The face nearest the sensor is what the LiDAR saw, so it stays in place and the box grows
    towards the far side. If the longer visible side is shorter than ``(1 + tol) · width``, it is
    taken as the object's width and the length axis is the other one (seen end-on); otherwise it
    is the length and the other side grows to ``width``. Among matching priors the one whose
    height and visible side fit best (log-size mismatch) wins.

    Returns:
        (box, label): the completed box and the prior's label, or the input box and "" when no
        prior matches.
    """
    L, W, H = (float(v) for v in box.size)
    if min(L, H) <= 0:
        return box, ""
    scored = [(c, pr) for pr in priors if (c := _prior_cost(L, W, H, pr)) is not None]
    if not scored:
        return box, ""
    (_, end_on), pr = min(scored, key=lambda cp: cp[0][0])
    yaw = box.yaw
    ax_len = np.array([np.cos(yaw), np.sin(yaw)])
    ax_wid = np.array([-np.sin(yaw), np.cos(yaw)])
    ctr = box.center[:2].copy()
    s = np.asarray(sensor_xy, dtype=np.float64)
    if end_on:  # the visible long side is the width; the length runs along ax_wid
        new_len, new_wid = max(L, pr.width), max(W, pr.length)
    else:
        new_len, new_wid = max(L, pr.length), max(W, pr.width)
    new_len = new_len if L < pr.grow_below * new_len else L
    new_wid = new_wid if W < pr.grow_below * new_wid else W
    for axis, old, new in ((ax_len, L, new_len), (ax_wid, W, new_wid)):
        if new > old:
            away = 1.0 if axis @ (ctr - s) >= 0 else -1.0
            ctr = ctr + axis * away * (new - old) / 2.0
    size = [new_len, new_wid, box.size[2]]
    if size[1] > size[0]:
        size = [size[1], size[0], size[2]]
        yaw = yaw + np.pi / 2.0
    yaw = float(np.arctan2(np.sin(yaw), np.cos(yaw)))
    return Box3D.from_yaw([ctr[0], ctr[1], box.center[2]], size, yaw, box.frame_id), pr.label


def extend_away(box: Box3D, direction_xy, amount: float) -> Box3D:
    """Grow a yaw-only box by ``amount`` metres along the BEV unit ``direction_xy`` (its faces on
    that side move, the opposite faces stay): the far side of an object seen from the sensor,
    which sparse sampling or self-occlusion left short."""
    if amount <= 0:
        return box
    v = np.asarray(direction_xy, dtype=np.float64)[:2]
    v = v / max(np.linalg.norm(v), 1e-12)
    yaw = box.yaw
    axes = (np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)]))
    ctr, size = box.center.copy(), box.size.copy()
    for k, e in enumerate(axes):
        c = float(v @ e) * amount
        size[k] += abs(c)
        ctr[:2] += e * c / 2.0
    if size[1] > size[0]:
        size[:2] = size[[1, 0]]
        yaw += np.pi / 2.0
    yaw = float(np.arctan2(np.sin(yaw), np.cos(yaw)))
    return Box3D.from_yaw(ctr, size, yaw, box.frame_id)
