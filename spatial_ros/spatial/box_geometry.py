"""Exact geometry of oriented 3D boxes (numpy, vectorised): extents, point-box and box-box
distances, overlap, vertical reach. Used by the spatial predicates and the grounding program.
"""

from __future__ import annotations

import numpy as np

from spatial_ros.types import Box3D

Z_UP = np.array([0.0, 0.0, 1.0])
_EPS = 1e-9

# ----------------------------------------------------------------------------------------------
# Exact box geometry (numpy, vectorised)
# ----------------------------------------------------------------------------------------------

# Edges of Box3D.corners(): corner index bits pick -/+ along x (4), y (2), z (1).
_EDGES = np.array([(i, i | bit) for bit in (1, 2, 4) for i in range(8) if not i & bit])


def extent_along(box: Box3D, u: np.ndarray) -> float:
    """Full extent (metres) of the oriented ``box`` along the unit vector ``u``:
    ``sum_i |u . axis_i| * size_i`` (exact for any rotation)."""
    return float(np.abs(np.asarray(u, float) @ box.rotation) @ box.size)


def point_box_distance(points: np.ndarray, box: Box3D) -> np.ndarray:
    """Euclidean distance (metres) from each of the (N, 3) ``points`` to the solid ``box``
    (0 inside)."""
    local = (np.atleast_2d(points)[:, :3] - box.center) @ box.rotation
    excess = np.maximum(np.abs(local) - box.size / 2.0, 0.0)
    return np.linalg.norm(excess, axis=1)


def boxes_overlap(a: Box3D, b: Box3D) -> bool:
    """Whether two solid oriented boxes intersect (touching counts), by the separating-axis
    test on the 15 candidate axes."""
    Ra, Rb = a.rotation, b.rotation
    cross = np.cross(Ra.T[:, None, :], Rb.T[None, :, :]).reshape(9, 3)
    axes = np.vstack([Ra.T, Rb.T, cross])
    norms = np.linalg.norm(axes, axis=1)
    axes = axes[norms > 1e-9] / norms[norms > 1e-9, None]
    ra = np.abs(axes @ Ra) @ (a.size / 2.0)
    rb = np.abs(axes @ Rb) @ (b.size / 2.0)
    sep = np.abs(axes @ (b.center - a.center))
    return not bool(np.any(sep > ra + rb + 1e-12))


def _segment_distances(p1, q1, p2, q2) -> np.ndarray:
    """Distances between segment pairs [p1_k, q1_k] and [p2_k, q2_k] (arrays (K, 3)).

    Minimises |P(s) - Q(t)| over s, t in [0, 1] in closed form: the unconstrained optimum of s
    clamped to [0, 1], t from s, and s recomputed when t is clamped (the standard derivation;
    degenerate and parallel segments fall back to an endpoint)."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a = np.einsum("ij,ij->i", d1, d1)
    e = np.einsum("ij,ij->i", d2, d2)
    f = np.einsum("ij,ij->i", d2, r)
    c = np.einsum("ij,ij->i", d1, r)
    b = np.einsum("ij,ij->i", d1, d2)
    a_s, e_s = np.maximum(a, _EPS), np.maximum(e, _EPS)
    denom = a * e - b * b
    parallel = denom <= _EPS * np.maximum(a * e, _EPS)
    s = np.where(parallel, 0.0, (b * f - c * e) / np.where(parallel, 1.0, denom))
    s = np.clip(s, 0.0, 1.0)
    t = (b * s + f) / e_s
    lo, hi = t < 0.0, t > 1.0
    s = np.where(lo, np.clip(-c / a_s, 0.0, 1.0), s)
    s = np.where(hi, np.clip((b - c) / a_s, 0.0, 1.0), s)
    t = np.clip(t, 0.0, 1.0)
    diff = (p1 + s[:, None] * d1) - (p2 + t[:, None] * d2)
    return np.linalg.norm(diff, axis=1)


def box_box_distance(a: Box3D, b: Box3D) -> float:
    """Exact Euclidean distance (metres) between two solid oriented boxes (0 when they touch
    or intersect).

    No library we depend on does this (shapely is 2D; open3d only gives point-to-mesh
    distances), so it is computed here: for disjoint convex polytopes the closest pair is a
    vertex-to-solid or an edge-to-edge pair, so the minimum over the 16 vertex-to-box distances
    and the 144 edge-edge distances is exact.
    """
    if boxes_overlap(a, b):
        return 0.0
    ca, cb = a.corners(), b.corners()
    best = min(point_box_distance(ca, b).min(), point_box_distance(cb, a).min())
    ia, ib = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    ea, eb = _EDGES[ia.ravel()], _EDGES[ib.ravel()]
    seg = _segment_distances(ca[ea[:, 0]], ca[ea[:, 1]], cb[eb[:, 0]], cb[eb[:, 1]])
    return float(min(best, seg.min()))


def z_interval(box: Box3D) -> tuple[float, float]:
    """(bottom, top) of the box along the z-up axis, metres (a tilted box's full reach)."""
    half = extent_along(box, Z_UP) / 2.0
    return float(box.center[2] - half), float(box.center[2] + half)
