"""Plane detection for specialists and training: ground/floor/table planes and gravity alignment.

Planes are ``normal · p + offset = 0`` with a unit ``normal``; distances are metres in the frame
of the input points. A *horizontal* plane is one whose normal lies within ``max_tilt_deg`` of an
``up`` direction (z for REP-103 body frames, -y for camera optical frames).

Why our own RANSAC: open3d's ``segment_plane`` returns the plane with the most inliers whatever
its orientation (in a room that is often a wall), and cannot take a normal or height prior. This
RANSAC draws all hypotheses at once (vectorised), rejects those whose normal is not near ``up``,
scores them on a fixed-size random subset, then refits the winner by least squares on all
inliers. It is deterministic for a given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spatial_ros.errors import ConfigError

# Camera optical frames (z forward, x right, y down): "up" is -y, "forward" is +z.
OPTICAL_UP = (0.0, -1.0, 0.0)
OPTICAL_FORWARD = (0.0, 0.0, 1.0)


@dataclass(eq=False)
class Plane:
    """A plane ``normal · p + offset = 0`` fitted to points.

    Attributes:
        normal: (3,) unit normal, oriented towards the ``up`` direction it was fitted with.
        offset: metres; ``-offset`` is the plane's height along ``normal`` above the origin.
        inliers: (K,) indices into the points the plane was fitted to.
        area: area (m^2) of the minimum rectangle around the inliers, in the plane.
    """

    normal: np.ndarray
    offset: float
    inliers: np.ndarray
    area: float = 0.0

    @property
    def height(self) -> float:
        """Height (metres) of the plane along its normal, measured from the frame origin."""
        return -float(self.offset)

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """(N,) metres above (+) or below (-) the plane along its normal."""
        return np.asarray(points, dtype=np.float64)[:, :3] @ self.normal + self.offset

    def tilt_deg(self, up=(0.0, 0.0, 1.0)) -> float:
        """Angle (degrees) between the normal and ``up``."""
        u = _unit(up)
        return float(np.degrees(np.arccos(np.clip(abs(self.normal @ u), -1.0, 1.0))))


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(3)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n == 0:
        raise ConfigError(f"direction {v.tolist()} must be a finite non-zero 3-vector")
    return v / n


def refit_plane(points: np.ndarray, up=None) -> tuple[np.ndarray, float]:
    """Least-squares plane through (N>=3, 3) points (SVD of the centred points).

    Returns:
        (normal, offset) with the normal oriented towards ``up`` when given.
    """
    p = np.asarray(points, dtype=np.float64)[:, :3]
    c = p.mean(axis=0)
    # Smallest right-singular vector of the centred points = normal; 3x3 problem via covariance.
    w, v = np.linalg.eigh((p - c).T @ (p - c))
    n = v[:, 0]
    if up is not None and n @ _unit(up) < 0:
        n = -n
    return n, float(-n @ c)


def ransac_plane(
    points: np.ndarray,
    *,
    distance: float,
    up=None,
    max_tilt_deg: float = 90.0,
    min_tilt_deg: float = 0.0,
    iterations: int = 256,
    max_eval_points: int = 2048,
    seed: int = 0,
    candidate_mask: np.ndarray | None = None,
    max_refit_points: int = 8192,
) -> Plane | None:
    """Find the plane with the most inliers (optionally constrained to be near-horizontal).

    Args:
        points: (N, 3+) points, metres.
        distance: inlier threshold, metres.
        up: when given, only planes whose normal is within ``max_tilt_deg`` of ``up`` count,
            and the returned normal points towards ``up``.
        max_tilt_deg: see ``up``.
        min_tilt_deg: with ``up``, also reject normals closer than this to ``up`` (e.g. 80
            for vertical planes such as walls).
        iterations: number of 3-point hypotheses (all drawn and scored at once).
        max_eval_points: hypotheses are scored on at most this many random points.
        seed: seed of the random generator (results are deterministic for a seed).
        candidate_mask: (N,) bool; hypotheses are drawn only from these points (e.g. points
            near a ground-height prior). Inliers are still counted among all points.
        max_refit_points: the least-squares refit uses at most this many (strided) inliers.

    Returns:
        The plane (least-squares refit on its inliers, inliers recounted on all points), or
        None when fewer than 3 usable points or no hypothesis satisfies the constraints.
    """
    p = np.asarray(points, dtype=np.float64)[:, :3]
    n_pts = len(p)
    cand = np.arange(n_pts) if candidate_mask is None else np.flatnonzero(candidate_mask)
    if len(cand) < 3:
        return None
    rng = np.random.default_rng(seed)
    tri = p[cand[rng.integers(0, len(cand), size=(iterations, 3))]]  # (I, 3, 3)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(normals, axis=1)
    ok = norm > 1e-12
    normals[ok] /= norm[ok, None]
    if up is not None:
        u = _unit(up)
        cos_tilt = normals @ u
        normals[cos_tilt < 0] *= -1.0
        ok &= np.abs(cos_tilt) >= np.cos(np.radians(max_tilt_deg)) - 1e-12
        ok &= np.abs(cos_tilt) <= np.cos(np.radians(min_tilt_deg)) + 1e-12
    if not np.any(ok):
        return None
    normals, tri = normals[ok], tri[ok]
    offsets = -np.einsum("ij,ij->i", normals, tri[:, 0])
    if len(cand) > max_eval_points:
        ev = cand[rng.choice(len(cand), max_eval_points, replace=False)]
    else:
        ev = cand
    counts = (np.abs(p[ev] @ normals.T + offsets) <= distance).sum(axis=0)
    best = int(np.argmax(counts))
    n, d = normals[best], offsets[best]
    # Least-squares refit on (at most max_refit_points of) the inliers, then count on all.
    inl = np.flatnonzero(np.abs(p @ n + d) <= distance)
    if len(inl) < 3:
        return None
    sub = inl if len(inl) <= max_refit_points else inl[:: len(inl) // max_refit_points + 1]
    n2, d2 = refit_plane(p[sub], up=n)
    c2 = 1.0 if up is None else abs(n2 @ _unit(up))
    if np.cos(np.radians(max_tilt_deg)) <= c2 <= np.cos(np.radians(min_tilt_deg)) + 1e-12:
        n, d = n2, d2  # else the refit tilted out of range: keep the hypothesis
        inl = np.flatnonzero(np.abs(p @ n + d) <= distance)
    return Plane(n, float(d), inl, _plane_area(p[inl], n))


def _plane_basis(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    return a, np.cross(normal, a)


def _largest_patch(points, idx, normal, cell) -> tuple[np.ndarray, float]:
    """The largest connected patch of coplanar points: (its indices, its area in m^2)."""
    from spatial_ros.specialists.clustering import grid_clusters

    a, b = _plane_basis(normal)
    flat = np.stack([points @ a, points @ b, np.zeros(len(points))], axis=1)
    labels, n = grid_clusters(flat, cell=cell, tolerance=cell)
    best = int(np.argmax(np.bincount(labels, minlength=n)))
    keep = labels == best
    return idx[keep], _plane_area(points[keep], normal)


def _plane_area(points: np.ndarray, normal: np.ndarray, max_points: int = 4096) -> float:
    """Area (m^2) of the minimum-area rectangle around points projected into their plane
    (estimated from at most ``max_points`` strided points)."""
    if len(points) < 3:
        return 0.0
    if len(points) > max_points:
        points = points[:: len(points) // max_points + 1]
    a, b = _plane_basis(normal)
    uv = np.stack([points @ a, points @ b], axis=1).astype(np.float32)
    (_, _), (w, h), _ = cv2.minAreaRect(uv)
    return float(w * h)


def fit_horizontal_planes(
    points: np.ndarray,
    up=(0.0, 0.0, 1.0),
    *,
    max_tilt_deg: float = 10.0,
    distance: float = 0.02,
    min_inliers: int = 200,
    min_inlier_fraction: float = 0.02,
    min_area: float = 0.1,
    max_planes: int = 3,
    iterations: int = 256,
    seed: int = 0,
    candidate_mask: np.ndarray | None = None,
    connectivity: float = 0.0,
) -> list[Plane]:
    """Detect up to ``max_planes`` large near-horizontal planes (floor, table tops, ground).

    Planes are found one after the other on the points not yet explained; a plane counts when
    it has at least ``min_inliers`` points, ``min_inlier_fraction`` of all points and an extent
    of ``min_area`` m^2 (so the top of a box on a table is not taken for a table). With
    ``connectivity`` > 0 a plane is only its largest connected patch (gaps up to about that
    many metres), so the tops of several objects at one height, spread over a table, do not
    add up to a "plane"; rejected candidates are set aside and the search goes on (at most
    ``2 · max_planes`` RANSAC runs).

    Args:
        points: (N, 3+) points in any frame, metres.
        up: approximate up direction in that frame ((0, 0, 1) for z-up frames, ``OPTICAL_UP``
            for camera optical frames).
        max_tilt_deg: largest angle between a plane normal and ``up``.
        distance: inlier distance, metres.
        min_inliers, min_inlier_fraction, min_area: acceptance thresholds (see above).
        max_planes: most planes returned.
        iterations: RANSAC hypotheses per plane.
        seed: random seed (deterministic results).
        candidate_mask: (N,) bool restricting where hypotheses are drawn (e.g. a height prior).
        connectivity: patch connectivity (metres); 0 = any inlier belongs to the plane.

    Returns:
        Planes sorted by height along ``up`` (lowest first); each ``inliers`` indexes ``points``.
        Empty when none qualifies.
    """
    if max_planes < 0 or distance <= 0 or not 0 <= max_tilt_deg <= 90:
        raise ConfigError(
            f"fit_horizontal_planes: need max_planes >= 0 (got {max_planes}), distance > 0 "
            f"(got {distance}), 0 <= max_tilt_deg <= 90 (got {max_tilt_deg})"
        )
    p = np.asarray(points, dtype=np.float64)
    p = p if p.shape[1] == 3 else p[:, :3]
    u = _unit(up)
    remaining = np.ones(len(p), dtype=bool)
    need = max(int(min_inliers), int(np.ceil(min_inlier_fraction * len(p))), 3)
    planes: list[Plane] = []
    for k in range(2 * max_planes):
        idx = np.flatnonzero(remaining)
        if len(planes) == max_planes or len(idx) < need:
            break
        first = len(idx) == len(p)  # no copy while nothing has been removed
        cmask = None if candidate_mask is None else np.asarray(candidate_mask)
        cmask = cmask if (first or cmask is None) else cmask[idx]
        pl = ransac_plane(
            p if first else p[idx], distance=distance, up=u, max_tilt_deg=max_tilt_deg,
            iterations=iterations, seed=seed + k, candidate_mask=cmask,
        )
        if pl is None or len(pl.inliers) < need:
            break
        inl = idx[pl.inliers]
        area, normal, offset = pl.area, pl.normal, pl.offset
        if connectivity > 0:
            inl, area = _largest_patch(p[inl], inl, pl.normal, connectivity)
            if len(inl) >= 3:  # refit on the patch alone: stray coplanar rows tilt a plane
                sub = inl if len(inl) <= 8192 else inl[:: len(inl) // 8192 + 1]
                normal, offset = refit_plane(p[sub], up=u)
        if len(inl) < need or area < min_area:
            remaining[idx[pl.inliers]] = False  # not a surface: set aside, keep looking
            if connectivity <= 0:
                break
            continue
        planes.append(Plane(normal, offset, inl, area))
        remaining[inl] = False
    return sorted(planes, key=lambda q: q.height)


def fit_walls(
    points: np.ndarray,
    up=(0.0, 0.0, 1.0),
    *,
    distance: float = 0.03,
    min_area: float = 2.0,
    max_beyond: float = 0.05,
    max_planes: int = 3,
    connectivity: float = 0.1,
    iterations: int = 256,
    seed: int = 0,
    exclude: np.ndarray | None = None,
) -> list[Plane]:
    """Large vertical planes that bound the scene (room walls), for indoor depth clouds.

    A candidate counts only when at most ``max_beyond`` of the points lie behind it (more than
    ``distance`` on the side away from the sensor origin): a wall closes the room, while the
    front of a dresser has the wall behind it.

    Args:
        points: (N, 3+) points in a frame whose origin is the sensor, metres.
        up: up direction in that frame.
        distance: inlier distance, metres.
        min_area: smallest wall patch (m^2).
        max_beyond: largest share of points behind a wall.
        max_planes: most walls returned.
        connectivity: patch connectivity (metres), see ``fit_horizontal_planes``.
        iterations, seed: RANSAC settings.
        exclude: (N,) bool of points to ignore (e.g. floor inliers).

    Returns:
        Walls (normals pointing towards the sensor), most inliers first.
    """
    p = np.asarray(points, dtype=np.float64)[:, :3]
    u = _unit(up)
    remaining = np.ones(len(p), dtype=bool) if exclude is None else ~np.asarray(exclude)
    walls: list[Plane] = []
    for k in range(3 * max_planes):
        idx = np.flatnonzero(remaining)
        if len(walls) == max_planes or len(idx) < 100:
            break
        pl = ransac_plane(p[idx], distance=distance, up=u, max_tilt_deg=90.0, min_tilt_deg=80.0,
                          iterations=iterations, seed=seed + k)
        if pl is None or len(pl.inliers) < 100:
            break
        n, d = pl.normal, pl.offset
        if d < 0:  # orient the normal towards the sensor (origin on its positive side)
            n, d = -n, -d
        inl, area = _largest_patch(p[idx[pl.inliers]], idx[pl.inliers], n, connectivity)
        beyond = np.mean(p @ n + d < -distance)
        remaining[idx[pl.inliers]] = False
        if area >= min_area and beyond <= max_beyond:
            walls.append(Plane(n, float(d), inl, area))
    return walls


def gravity_alignment(
    points: np.ndarray,
    up_hint=OPTICAL_UP,
    forward_hint=OPTICAL_FORWARD,
    *,
    max_tilt_deg: float = 60.0,
    distance: float = 0.02,
    min_inliers: int = 200,
    min_area: float = 0.25,
    seed: int = 0,
) -> np.ndarray:
    """Rotation that makes the dominant horizontal surface (floor/table) level: sensor → upright.

    The largest near-horizontal plane *below* the sensor (walls facing the sensor and ceilings
    are rejected because the sensor origin is not above them) gives the up direction. The
    upright frame follows REP-103 body axes: z = plane normal (up), x = ``forward_hint``
    projected onto the plane, y = z × x (left); its origin stays at the sensor.

    Args:
        points: (N, 3+) points in the sensor frame (e.g. the camera optical frame), metres.
        up_hint: rough up direction in the sensor frame (default: optical frame, -y).
        forward_hint: sensor forward direction (default: optical +z).
        max_tilt_deg: largest angle between the true and hinted up directions.
        distance, min_inliers, min_area, seed: plane detection parameters.

    Returns:
        (4, 4) ``T_upright_from_sensor`` (rotation only).

    Raises:
        DataError: when no horizontal plane is found (say which points / hint to check).
    """
    from spatial_ros.errors import DataError

    p = np.asarray(points, dtype=np.float64)[:, :3]
    p = p[np.all(np.isfinite(p), axis=1)]
    planes = fit_horizontal_planes(
        p, up_hint, max_tilt_deg=max_tilt_deg, distance=distance, min_inliers=min_inliers,
        min_inlier_fraction=0.0, min_area=min_area, max_planes=4, seed=seed,
        connectivity=max(3.0 * distance, 0.05),
    )
    below = [q for q in planes if q.offset > 0]  # sensor origin on the normal's side
    if not below:
        raise DataError(
            f"gravity_alignment: no horizontal plane (>= {min_inliers} points, >= {min_area} m^2,"
            f" within {max_tilt_deg} deg of up_hint {list(up_hint)}) below the sensor among "
            f"{len(p)} points; pass the up direction or the sensor→base transform instead"
        )
    z = max(below, key=lambda q: len(q.inliers)).normal
    f = _unit(forward_hint)
    x = f - (f @ z) * z
    if np.linalg.norm(x) < 1e-6:  # sensor looks straight down: take the hinted up as forward
        x = _unit(up_hint) - (_unit(up_hint) @ z) * z
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, np.cross(z, x), z])
    return T
