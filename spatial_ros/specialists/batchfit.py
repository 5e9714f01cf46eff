"""Yaw-only boxes for many clusters at once (the street preset's box stage).

A 360-degree scan holds 100-300 clusters; fitting them one by one costs more in numpy call
overhead than in arithmetic. Here every step runs once over all clusters: points are
concatenated by cluster, and per-cluster minima, maxima and sums come from ``reduceat`` /
``bincount``. The maths is ``boxfit``'s: the L-shape heading (Zhang et al. 2017) searched
coarse to fine, with the variance criterion on each cluster's visible contour for
vehicle-sized clusters and the closeness criterion on all points for person-sized ones (round
bodies; see ``boxfit``; at most 128 evenly strided points per cluster), extents from all
points along the heading, the bottom on the local ground, pads that grow with range, and the
contour roughness that tells flat panels from foliage (``boxfit.lshape_heading``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COARSE_DEG = 3.0
FINE_DEG = 1.0
MAX_FIT_POINTS = 128


@dataclass(eq=False)
class GroupBoxes:
    """Boxes of G clusters (working frame, z up).

    Attributes:
        center: (G, 3) box centres, metres.
        size: (G, 3) full extents (length >= width, height), metres.
        yaw: (G,) heading of the length axis about +z, radians in (-pi/2, pi/2].
        roughness: (G,) contour scatter about the L-shape sides, metres (0 where the heading
            came from all points: person-sized clusters).
        pad: (G,) metres added to each BEV side.
    """

    center: np.ndarray
    size: np.ndarray
    yaw: np.ndarray
    roughness: np.ndarray
    pad: np.ndarray


def _strided(starts: np.ndarray, counts: np.ndarray, mask: np.ndarray | None,
             max_points: int) -> np.ndarray:
    """Indices (sorted by group) of at most ``max_points`` evenly strided points per group,
    among those in ``mask`` (all when None)."""
    n = int(starts[-1])
    idx = np.arange(n) if mask is None else np.flatnonzero(mask)
    grp = np.searchsorted(starts, idx, side="right") - 1
    cnt = np.bincount(grp, minlength=len(counts))
    first = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    rank = np.arange(len(idx)) - first[grp]
    stride = np.maximum(np.ceil(cnt / max_points), 1).astype(np.int64)
    return idx[rank % stride[grp] == 0]


def _scores(x, y, grp, starts_sub, theta, criterion: str, min_dist: float):
    """(G, A) L-shape scores of headings ``theta`` ((G, A), or (A,) for all groups) for
    points (x, y) of groups ``grp`` (sorted; group g's points start at ``starts_sub[g]``),
    and (lo1, hi1, lo2, hi2).

    This is the box stage's inner loop; arrays are laid out headings x points (reductions
    along contiguous rows run 2x faster), per-group rows are spread to their points by
    ``repeat`` (groups are contiguous) and updated in place (fresh arrays of that size cost
    more than the arithmetic)."""
    counts = np.diff(np.append(starts_sub, len(x)))
    if theta.ndim == 1:  # the same headings for every group
        c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    else:
        c = np.repeat(np.cos(theta).T, counts, axis=1)
        s = np.repeat(np.sin(theta).T, counts, axis=1)
    xr, yr = x[None, :], y[None, :]
    p1 = c * xr
    p1 += s * yr
    p2 = c * yr
    p2 -= s * xr

    def spread(v):
        return np.repeat(v, counts, axis=1)

    lo1 = np.minimum.reduceat(p1, starts_sub, axis=1)
    hi1 = np.maximum.reduceat(p1, starts_sub, axis=1)
    lo2 = np.minimum.reduceat(p2, starts_sub, axis=1)
    hi2 = np.maximum.reduceat(p2, starts_sub, axis=1)
    d1 = spread(hi1)
    d1 -= p1
    np.minimum(d1, np.subtract(p1, spread(lo1), out=p1), out=d1)
    d2 = spread(hi2)
    d2 -= p2
    np.minimum(d2, np.subtract(p2, spread(lo2), out=p2), out=d2)
    if criterion == "closeness":
        d = np.minimum(d1, d2, out=d1)
        np.maximum(d, min_dist, out=d)
        score = np.add.reduceat(np.divide(1.0, d, out=d), starts_sub, axis=1)
    else:  # minus the variances of the distances to the nearer side, per side
        a = (d1 < d2).astype(np.float64)
        d = np.minimum(d1, d2, out=d1)
        n1 = np.add.reduceat(a, starts_sub, axis=1)
        n = counts[None, :].astype(np.float64)
        s_all = np.add.reduceat(d, starts_sub, axis=1)
        a *= d  # d on side 1, else 0
        s1 = np.add.reduceat(a, starts_sub, axis=1)
        a *= d  # d^2 on side 1
        q1 = np.add.reduceat(a, starts_sub, axis=1)
        np.multiply(d, d, out=d)
        q2 = np.add.reduceat(d, starts_sub, axis=1) - q1
        s2 = s_all - s1
        n2 = n - n1
        score = -(q1 / np.maximum(n1, 1) - (s1 / np.maximum(n1, 1)) ** 2
                  + q2 / np.maximum(n2, 1) - (s2 / np.maximum(n2, 1)) ** 2)
    return score.T, (lo1.T, hi1.T, lo2.T, hi2.T)


def _headings(x, y, grp, starts_sub, criterion: str, min_dist: float = 0.01) -> np.ndarray:
    """(G,) best heading in [0, pi/2) per group: every 3 degrees, then every degree within
    2 degrees of the best."""
    G = len(starts_sub)
    coarse = np.radians(np.arange(0.0, 90.0, COARSE_DEG))
    sc, _ = _scores(x, y, grp, starts_sub, coarse, criterion, min_dist)
    best = coarse[np.argmax(sc, axis=1)]
    half = COARSE_DEG - FINE_DEG
    fine = np.radians(np.arange(-half, half + 1e-9, FINE_DEG))
    th = best[:, None] + fine[None, :]
    sc, _ = _scores(x, y, grp, starts_sub, th, criterion, min_dist)
    return th[np.arange(G), np.argmax(sc, axis=1)]


def _roughness(x, y, grp, starts_sub, theta, G: int) -> np.ndarray:
    """(G,) mean absolute deviation of the contour points' distances to the side they are
    nearer to, about that side's mean distance (``boxfit.lshape_heading``'s residual, with
    means instead of medians so that it batches)."""
    _, (lo1, hi1, lo2, hi2) = _scores(x, y, grp, starts_sub, theta[:, None], "closeness", 1.0)
    c, s = np.cos(theta)[grp], np.sin(theta)[grp]
    p1 = x * c + y * s
    p2 = y * c - x * s
    d1 = np.minimum(hi1[grp, 0] - p1, p1 - lo1[grp, 0])
    d2 = np.minimum(hi2[grp, 0] - p2, p2 - lo2[grp, 0])
    side = (d1 >= d2).astype(np.int64)
    d = np.minimum(d1, d2)
    key = grp * 2 + side
    cnt = np.bincount(key, minlength=2 * G)
    mean = np.bincount(key, d, 2 * G) / np.maximum(cnt, 1)
    dev = np.abs(d - mean[key])
    return np.bincount(grp, dev, G) / np.maximum(np.bincount(grp, minlength=G), 1)


def fit_groups(
    xyz: np.ndarray,
    starts: np.ndarray,
    *,
    origin: np.ndarray,
    contour: np.ndarray | None = None,
    ground_z: np.ndarray | None = None,
    pitch: np.ndarray | None = None,
    pad: float = 0.0,
    pad_per_m: float = 0.0,
    top_pad_rows: float = 0.0,
    contour_min_extent: float = 1.5,
) -> GroupBoxes:
    """Boxes of the clusters ``xyz[starts[g]:starts[g + 1]]`` (see the module docstring).

    Args:
        xyz: (M, 3) points sorted by cluster, z-up working frame, metres.
        starts: (G + 1,) first index of each cluster, then M; no cluster is empty.
        origin: (3,) sensor position, metres.
        contour: (M,) bool, on the cluster's visible contour (``lidar._contours``); None =
            headings from all points with the closeness criterion.
        ground_z: (M,) ground height under each point (bottom = the cluster's mean); None =
            the lowest point.
        pitch: (G,) LiDAR row pitch per cluster, radians (``top_pad_rows`` x pitch x range
            raises the top); None = 0.
        pad, pad_per_m: BEV pad per side, metres, plus this much per metre of range.
        top_pad_rows: see ``pitch``.
        contour_min_extent: clusters whose BEV extent reaches this use the contour variance
            L-shape, smaller ones the closeness L-shape on all points, metres.
    """
    p = np.asarray(xyz, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.int64)
    G = len(starts) - 1
    counts = np.diff(starts)
    grp_all = np.repeat(np.arange(G), counts)
    inv_n = 1.0 / counts
    mx = np.add.reduceat(p[:, 0], starts[:-1]) * inv_n
    my = np.add.reduceat(p[:, 1], starts[:-1]) * inv_n
    mz = np.add.reduceat(p[:, 2], starts[:-1]) * inv_n
    x = p[:, 0] - mx[grp_all]
    y = p[:, 1] - my[grp_all]
    ext = np.maximum(np.maximum.reduceat(x, starts[:-1]) - np.minimum.reduceat(x, starts[:-1]),
                     np.maximum.reduceat(y, starts[:-1]) - np.minimum.reduceat(y, starts[:-1]))
    theta = np.zeros(G)
    rough = np.zeros(G)
    big = ext >= contour_min_extent
    if contour is not None:
        ncon = np.add.reduceat(contour.astype(np.int64), starts[:-1])
        big &= ncon >= 3
    else:
        big[:] = False
    for use_contour in (True, False):
        sel = big if use_contour else ~big
        if not sel.any():
            continue
        mask = sel[grp_all] & (contour if use_contour else True)
        idx = _strided(starts, counts, mask, MAX_FIT_POINTS)
        g = grp_all[idx]
        gids, first = np.unique(g, return_index=True)  # the selected groups, in order
        local = np.searchsorted(gids, g)
        th = _headings(x[idx], y[idx], local, first,
                       "variance" if use_contour else "closeness")
        theta[gids] = th
        if use_contour:
            rough[gids] = _roughness(x[idx], y[idx], local, first, th, len(gids))
    # Extents of all points along the heading.
    c, s = np.cos(theta), np.sin(theta)
    a = x * c[grp_all] + y * s[grp_all]
    b = y * c[grp_all] - x * s[grp_all]
    lo_a, hi_a = np.minimum.reduceat(a, starts[:-1]), np.maximum.reduceat(a, starts[:-1])
    lo_b, hi_b = np.minimum.reduceat(b, starts[:-1]), np.maximum.reduceat(b, starts[:-1])
    rng = np.hypot(mx - origin[0], my - origin[1])
    padg = pad + pad_per_m * rng
    len_a = hi_a - lo_a + 2 * padg
    len_b = hi_b - lo_b + 2 * padg
    mid_a, mid_b = (lo_a + hi_a) / 2, (lo_b + hi_b) / 2
    cx = mx + mid_a * c - mid_b * s
    cy = my + mid_a * s + mid_b * c
    zlo = np.minimum.reduceat(p[:, 2], starts[:-1])
    if ground_z is not None:
        zlo = np.minimum(zlo, np.add.reduceat(ground_z, starts[:-1]) * inv_n)
    rng3 = np.sqrt(rng ** 2 + (mz - origin[2]) ** 2)
    pad_top = padg + (0.0 if pitch is None else top_pad_rows * pitch * rng3)
    zhi = np.maximum.reduceat(p[:, 2], starts[:-1]) + pad_top
    swap = len_b > len_a  # heading = the longer side
    yaw = np.where(swap, theta + np.pi / 2, theta)
    yaw = np.arctan2(np.sin(yaw), np.cos(yaw))
    yaw = np.where(yaw > np.pi / 2, yaw - np.pi, yaw)
    yaw = np.where(yaw <= -np.pi / 2, yaw + np.pi, yaw)
    size = np.column_stack([np.maximum(len_a, len_b), np.minimum(len_a, len_b), zhi - zlo])
    center = np.column_stack([cx, cy, (zlo + zhi) / 2])
    return GroupBoxes(center, size, yaw, rough, padg)


def group_pitch(xyz: np.ndarray, starts: np.ndarray, T_w: np.ndarray) -> np.ndarray:
    """(G,) smallest elevation step (radians) between distinct LiDAR rows of each cluster, 0
    with one row (``common.beam_pitch`` for all clusters at once: one sort)."""
    G = len(starts) - 1
    d = (np.asarray(xyz, dtype=np.float64) - T_w[:3, 3]) @ T_w[:3, :3]
    el = np.arctan2(d[:, 2], np.hypot(d[:, 0], d[:, 1]))
    grp = np.repeat(np.arange(G), np.diff(starts))
    order = np.lexsort((el, grp))
    el, grp = el[order], grp[order]
    step = np.diff(el)
    same = (grp[1:] == grp[:-1]) & (step > 1e-4)
    out = np.full(G, np.inf)
    np.minimum.at(out, grp[1:][same], step[same])
    return np.where(np.isfinite(out), out, 0.0)
