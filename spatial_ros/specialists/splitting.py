"""Split a LiDAR cluster that is two objects side by side: cars parked bumper to bumper, people
walking shoulder to shoulder, a pedestrian next to a car.

Connectivity alone cannot separate objects closer than the clustering gap, but their *height
profile* can. Along the cluster's principal bird's-eye-view axis, the highest point in each
thin slice traces roofs and heads; two objects leave a valley between two peaks: between two
cars the bumpers (0.5-0.7 m) under roofs of 1.4-1.5 m, between two people the shoulders, which
stand at about 0.82 of a person's stature (anthropometric acromion height), or an empty gap.
A single object has no such valley: a car's profile rises from bumper over hood to roof and
falls again; a cyclist's from wheel over handlebar to the rider's head.

``best_cut`` finds the deepest valley along the cluster's box heading (lowest
``valley / min(left peak, right peak)``); the LiDAR specialist accepts the cut only when the
pieces get classes of their own (see ``lidar_boxes.py``). Hand-written (a few vectorised
lines): no library offers profile splitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cut:
    """A proposed split of a cluster.

    Attributes:
        left, right: indices of the points on each side.
        ratio: valley height over the lower of the two peaks (0 = an empty gap).
        drop: lower peak minus valley height, metres.
    """

    left: np.ndarray
    right: np.ndarray
    ratio: float
    drop: float


def principal_axis(xy: np.ndarray) -> np.ndarray:
    """Unit (2,) direction of largest BEV spread of the points."""
    d = xy - xy.mean(axis=0)
    cov = d.T @ d
    w, v = np.linalg.eigh(cov)
    return v[:, int(np.argmax(w))]


def best_cut(
    xy: np.ndarray,
    height: np.ndarray,
    *,
    slice_width: float = 0.1,
    min_piece_length: float = 0.3,
    min_piece_points: int = 5,
    min_piece_fraction: float = 0.1,
    max_ratio: float = 0.85,
    min_drop: float = 0.2,
    axis=None,
    min_peak_ratio: float = 0.0,
) -> Cut | None:
    """The deepest height valley along the principal axis that leaves two substantial pieces.

    Args:
        xy: (N, 2) BEV points of one cluster, metres.
        height: (N,) their heights above the ground, metres.
        slice_width: profile resolution, metres.
        min_piece_length: each piece spans at least this much of the axis, metres.
        min_piece_points, min_piece_fraction: each piece holds at least this many points and
            this share of the cluster.
        max_ratio: valleys higher than this fraction of the lower peak are no valleys.
        min_drop: the lower peak stands at least this much above the valley, metres.
        min_peak_ratio: the lower peak is at least this fraction of the higher one (two
            people: both peaks are heads; a cyclist's handlebar is not a second head).
        axis: (2,) profile direction, e.g. the heading of the cluster's box (an L-shaped car
            seen at its corner has a diagonal principal axis); None = principal axis.

    Returns:
        The cut, or None when the profile has no valley that qualifies.
    """
    n = len(xy)
    need = max(min_piece_points, int(np.ceil(min_piece_fraction * n)))
    if n < 2 * need:
        return None
    ax = principal_axis(xy) if axis is None else np.asarray(axis, dtype=np.float64)[:2]
    t = xy @ ax
    t0 = float(t.min())
    nb = int((float(t.max()) - t0) / slice_width) + 1
    edge = int(np.ceil(min_piece_length / slice_width))
    if nb < 2 * edge + 1:
        return None
    k = np.minimum(((t - t0) / slice_width).astype(np.int64), nb - 1)
    prof = np.zeros(nb)
    np.maximum.at(prof, k, np.maximum(height, 1e-3))  # empty slices stay 0 (a gap)
    cnt = np.cumsum(np.bincount(k, minlength=nb))
    left_peak = np.maximum.accumulate(prof)
    right_peak = np.maximum.accumulate(prof[::-1])[::-1]
    j = np.arange(edge, nb - edge)  # cut slice; left = slices < j, right = slices > j
    low = np.minimum(left_peak[j - 1], right_peak[j + 1])
    high = np.maximum(left_peak[j - 1], right_peak[j + 1])
    ratio = prof[j] / np.maximum(low, 1e-6)
    drop = low - prof[j]
    n_left = cnt[j - 1]
    n_right = n - cnt[j]
    ok = (ratio <= max_ratio) & (drop >= min_drop) & (n_left >= need) & (n_right >= need)
    ok &= low >= min_peak_ratio * high
    if not ok.any():
        return None
    cand = np.flatnonzero(ok)
    best = cand[np.argmin(ratio[cand])]
    jj = int(j[best])
    # A gap spanning several empty slices: cut in its middle.
    if prof[jj] == 0.0:
        lo = hi = jj
        while lo - 1 >= 0 and prof[lo - 1] == 0.0:
            lo -= 1
        while hi + 1 < nb and prof[hi + 1] == 0.0:
            hi += 1
        jj = (lo + hi) // 2
    left = np.flatnonzero(k < jj)
    right = np.flatnonzero(k >= jj)
    return Cut(left, right, float(ratio[best]), float(drop[best]))
