"""Yaw-only 3D boxes from clusters of points in a z-up frame.

Two bird's-eye-view (BEV) rectangle fits:

* ``"min_area"`` — ``cv2.minAreaRect`` of the BEV points: right when the whole footprint is
  seen (objects on a table seen from above, depth clouds).
* ``"lshape"`` — search-based L-shape fitting (Zhang et al., "Efficient L-shape fitting for
  vehicle detection using laser scanners", IV 2017; variance criterion by default, closeness
  on request): right for LiDAR, which sees one or two sides of a car. Implemented here (no
  library provides it) as a vectorised evaluation of candidate headings, coarse to fine.

A cluster's box heading is its longer BEV side (the box x axis), sizes are full extents.
With ``sensor_xy`` the L-shape heading is fitted on the cluster's *visible contour* only (the
nearest point to the sensor in each azimuth bin): a car's roof and hood rows spread over its
footprint in bird's-eye view and pull the L-shape fit off the sides it is meant for.

Size priors and classes (completion of partly seen boxes) live in ``classify.py``.
"""

from __future__ import annotations

import cv2
import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.types import Box3D


def _lshape_scores(xy: np.ndarray, thetas: np.ndarray, criterion: str, min_dist: float):
    """Score (higher = better) of each heading, and the projections' min/max per heading.

    "closeness": sum of 1 / max(distance to the nearer edge, ``min_dist``);
    "variance": minus the variances of the distances of the points to the edge each is
    nearer to (Zhang et al. 2017's two criteria besides area)."""
    c, s = np.cos(thetas), np.sin(thetas)
    p1 = xy @ np.stack([c, s])  # (M, A) projections on e1
    p2 = xy @ np.stack([-s, c])
    lo1, hi1, lo2, hi2 = p1.min(0), p1.max(0), p2.min(0), p2.max(0)
    d1 = np.minimum(hi1 - p1, p1 - lo1)
    d2 = np.minimum(hi2 - p2, p2 - lo2)
    if criterion == "closeness":
        score = (1.0 / np.maximum(np.minimum(d1, d2), min_dist)).sum(axis=0)
    else:
        # Points go to the edge they are nearer to; d = that distance. Per edge group:
        # var = E[d^2] - E[d]^2, from four column sums (few temporaries: this runs for every
        # cluster of a scan).
        a = (d1 < d2).astype(np.float64)
        d = np.minimum(d1, d2)
        dd = d * d
        n1 = a.sum(0)
        n2 = len(xy) - n1
        s1, q1 = (d * a).sum(0), (dd * a).sum(0)
        s2, q2 = d.sum(0) - s1, dd.sum(0) - q1
        score = -(q1 / np.maximum(n1, 1) - (s1 / np.maximum(n1, 1)) ** 2
                  + q2 / np.maximum(n2, 1) - (s2 / np.maximum(n2, 1)) ** 2)
    return score, lo1, hi1, lo2, hi2


def _rect_lshape(
    xy: np.ndarray, step_deg: float, min_dist: float, criterion: str = "variance"
) -> tuple[float, np.ndarray, np.ndarray]:
    """Best rectangle heading by the L-shape ``criterion``; returns (theta, lo, hi) where
    lo/hi are the min/max projections on the axes e1 = (cos t, sin t), e2 = (-sin t, cos t).

    Coarse to fine: every 3 degrees, then every ``step_deg`` within 2 degrees of the best
    coarse heading (the criteria are smooth at that scale; 2.5x fewer headings than a full
    fine sweep)."""
    coarse = max(3.0, step_deg)
    th = np.radians(np.arange(0.0, 90.0, coarse))
    score = _lshape_scores(xy, th, criterion, min_dist)[0]
    best = float(th[int(np.argmax(score))])
    if coarse > step_deg:
        half = np.radians(coarse - step_deg)
        th = best + np.arange(-half, half + 1e-9, np.radians(step_deg))
    else:
        th = np.array([best])
    score, lo1, hi1, lo2, hi2 = _lshape_scores(xy, th, criterion, min_dist)
    k = int(np.argmax(score))
    return float(th[k]), np.array([lo1[k], lo2[k]]), np.array([hi1[k], hi2[k]])


def lshape_heading(
    xy: np.ndarray, step_deg: float = 1.0, criterion: str = "variance",
    min_dist: float = 0.01, max_points: int = 128,
) -> tuple[float, float]:
    """(heading radians in [0, pi/2), residual metres) of the best L-shape through BEV points
    (e.g. a cluster's visible contour). The residual is how far the points scatter about the
    two sides of the L: each point goes to the side it is nearer to, and the residual is the
    median absolute deviation of its distance from that side's median distance (robust to a
    stray point that moves a side): a few cm for a car's flat panels, 0.1-0.3 m for a bush or
    a tree (no surface)."""
    p = np.asarray(xy, dtype=np.float64)[:, :2]
    if len(p) > max_points:
        p = p[:: int(np.ceil(len(p) / max_points))]
    if len(p) < 3:
        return 0.0, 0.0
    p = p - p.mean(axis=0)
    theta = _rect_lshape(p, step_deg, min_dist, criterion)[0]
    e1 = np.array([np.cos(theta), np.sin(theta)])
    e2 = np.array([-np.sin(theta), np.cos(theta)])
    a, b = p @ e1, p @ e2
    d1 = np.minimum(a.max() - a, a - a.min())
    d2 = np.minimum(b.max() - b, b - b.min())
    near1 = d1 < d2
    dev = np.empty(len(p))
    for m, d in ((near1, d1), (~near1, d2)):
        if m.any():
            dev[m] = np.abs(d[m] - np.median(d[m]))
    return theta, float(np.median(dev))


def visible_contour(xy: np.ndarray, sensor_xy, max_bins: int = 90) -> np.ndarray:
    """Indices of the BEV points nearest the sensor in each azimuth bin (within 10 cm of the
    nearest): the faces the sensor saw. Bins: about one per 3 points, 8 to ``max_bins``."""
    d = np.asarray(xy, dtype=np.float64) - np.asarray(sensor_xy, dtype=np.float64)[:2]
    rng = np.hypot(d[:, 0], d[:, 1])
    mean = d.mean(axis=0)
    ref = np.arctan2(mean[1], mean[0])
    az = np.arctan2(d[:, 1], d[:, 0]) - ref
    az = (az + np.pi) % (2 * np.pi) - np.pi  # relative to the mean bearing: no wrap
    lo, hi = float(az.min()), float(az.max())
    nb = int(np.clip(len(d) // 3, 8, max_bins))
    if hi - lo < 1e-9:
        return np.arange(len(d))
    b = np.minimum(((az - lo) * (nb / (hi - lo))).astype(np.int64), nb - 1)
    rmin = np.full(nb, np.inf)
    np.minimum.at(rmin, b, rng)
    return np.flatnonzero(rng <= rmin[b] + 0.1)


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
    lshape_criterion: str = "variance",
    frame_id: str = "",
    sensor_xy=None,
    contour: np.ndarray | None = None,
    yaw: float | None = None,
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
        lshape_criterion: "variance" (default; robust to the 5-10 cm thick band of points a
            3D LiDAR leaves on a car's side) or "closeness".
        frame_id: frame of the points.
        sensor_xy: (x, y) of the sensor: the L-shape heading is fitted on the visible contour
            (see the module docstring); None = on all points.
        contour: indices of the visible-contour points when already known (instead of
            ``sensor_xy``).
        yaw: use this heading (radians) instead of fitting one (e.g. from ``lshape_heading``).

    Returns:
        The box; its x axis is the longer BEV side, yaw in (-pi/2, pi/2].
    """
    p = np.asarray(points, dtype=np.float64)[:, :3]
    xy = p[:, :2]
    xy_fit = xy
    if method == "lshape" and contour is not None and len(contour) >= 3:
        xy_fit = xy[contour]
    elif sensor_xy is not None and method == "lshape" and len(xy) >= 8:
        xy_fit = xy[visible_contour(xy, sensor_xy)]
    if len(xy_fit) > max_fit_points:
        xy_fit = xy_fit[:: int(np.ceil(len(xy_fit) / max_fit_points))]
    if yaw is not None:
        theta = float(yaw)
    elif len(xy_fit) < 3:
        theta = 0.0
    elif method == "lshape":
        theta = _rect_lshape(xy_fit - xy_fit.mean(0), lshape_step_deg, lshape_min_dist,
                             lshape_criterion)[0]
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
