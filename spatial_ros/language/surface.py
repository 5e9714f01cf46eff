"""Is this LiDAR cluster a vehicle at all? Evidence beyond the box's size.

On real streets a LiDAR clusterer proposes hedges, garden walls and fences behind parked cars
with car-sized boxes: a box's extents cannot tell them apart, and a model trained on simulated
scenes has never seen either. Four cues can, each computed from the candidate's own data:

- **vegetation share**: the share of the pixels its points hit that are leaf-green by the excess
  green index (2g - r - b) / (r + g + b) between 0.1 (the usual vegetation threshold of RGB
  cameras) and 0.5 (above it: saturated green paint, which foliage does not reach), with green
  above red (yellow paint also has a high index);
- **surface scatter**: the median ratio of the smallest to the largest eigenvalue of the
  k-nearest-neighbour covariance of its points (Weinmann et al.'s "scattering"): car panels,
  glass and walls are locally planar (< 0.05), foliage is not (> 0.1);
- **clearance and top above the road**: how far its lowest and highest points lie above the
  lowest returns on the line of sight just in front of it. A vehicle's wheels and sills reach
  down to the road it stands on (< 0.5 m) unless something in front hides them, and a car's
  roof is at most about 2 m up (KITTI's cars: 1.2-2.0 m tall); a hedge seen over a parked car
  or a fence often starts a metre up and reaches 2-3 m (one on raised ground does not: the
  road under it is that ground).

- **one flat wall seen obliquely**: the cluster as a whole is a single vertical plane (the
  smallest principal axis of its points is horizontal and under 5 cm of spread) whose normal
  is more than 45 degrees off the line of sight. A vehicle is a solid: seen from any bearing
  but straight at one face, two faces show (an L in plan view), and a real car's curved panels
  make even one face 0.1-0.3 m deep; a garden wall, fence or facade seen along the street is
  one flat plane at a grazing angle. (A box-shaped simulated car seen straight from behind is
  flat too, but faces the sensor: its normal is within about 20 degrees of the line of sight.)

For poles one more cue, **crowding**: scan points within a metre of it at its own heights that
are neither its own nor a person's or a vehicle's (people wait by poles and cars park next to
them). A pole stands free of fixed structures; a sliver the clusterer cut from a facade (distant
walls seen at a grazing angle break into pole-like pieces) has the rest of the wall beside it
(``standalone_likelihood``).

``vehicle_likelihood`` turns the vehicle cues into a factor in (0, 1] that multiplies a
vehicle noun's membership (``Program.membership``): soft, so that a car the cues misjudge (an
occluded one) stays in the set when nothing better fits. The thresholds are physical (index
and eigenvalue conventions, vehicle dimensions), not fitted to frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VEHICLES = ("car", "van", "truck")
MOVERS = (*VEHICLES, "pedestrian", "cyclist")  # labels of things that stop next to a pole
EXG_LEAF = (0.1, 0.5)  # excess-green index range of foliage (above: green paint)
# highest plausible top above the road, metres, of what each vehicle noun names
TOP_MAX = {"car": 2.0, "van": 2.7}
MIN_POINTS = 20  # fewer points: no scatter estimate
NEIGHBOURS = 10
SCATTER_VOXEL = 0.08  # metres
CORRIDOR_HALF_WIDTH = 1.5  # metres either side of the line of sight
CORRIDOR_LENGTH = 10.0  # metres of road in front of the object that are looked at
MIN_ROAD_POINTS = 5
MAX_GRADE = 0.15  # steepest road slope believed
# nouns of things that stand free (people do not: they stand by cars, walls and each other)
STANDALONE = ("pole",)
CROWD_RADIUS = 1.0  # metres around a free-standing candidate that should hold no other object
# foreign points (``crowding``) within CROWD_RADIUS: up to CROWD_FREE a pole, from CROWD_WALL on
# a sliver of something bigger. Street training scenes 0-119, 532 pole-shaped candidates: 181 of
# the 183 true poles had 0-1 (and 4 of the 349 others); 7 others and no pole had 2-3; of the
# 340 with 4 or more, 2 were poles.
CROWD_FREE, CROWD_WALL = 1.0, 4.0
OWN_POINT_M = 0.05  # a scan point this close to a cluster point is the cluster's own
WALL_THICKNESS = 0.05  # metres: spread along the smallest principal axis of a flat wall
WALL_TILT = 0.3  # |z| of that axis below this: the plane is vertical
WALL_INCIDENCE = 45.0  # degrees between the plane's normal and the line of sight: oblique


@dataclass(frozen=True)
class SurfaceEvidence:
    """Cues of one candidate (None: not measurable, e.g. too few points or no road seen).

    Attributes:
        vegetation: share of its point pixels that are leaf-green, [0, 1].
        scatter: median smallest/largest neighbourhood eigenvalue ratio, [0, 1].
        clearance: metres from the road on its line of sight up to its lowest point.
        top: the same up to its highest point.
        crowding: foreign scan points around it at its own heights (``crowding``).
        wall: whether its points form one flat vertical plane seen obliquely (``flat_wall``).
    """

    vegetation: float | None = None
    scatter: float | None = None
    clearance: float | None = None
    top: float | None = None
    crowding: int | None = None
    wall: bool | None = None


def vegetation_share(image: np.ndarray, uv: np.ndarray) -> float | None:
    """Share of the pixels at ``uv`` ((N, 2) u, v px) whose 3x3 median is leaf-green; None when
    none falls on the image."""
    from spatial_ros.vlm.appearance import sample_pixels

    rgb = sample_pixels(image, uv, max_samples=1000)
    if not len(rgb):
        return None
    exg = (2.0 * rgb[:, 1] - rgb[:, 0] - rgb[:, 2]) / (rgb.sum(1) + 1e-6)
    leafy = (exg > EXG_LEAF[0]) & (exg < EXG_LEAF[1]) & (rgb[:, 1] > 1.05 * rgb[:, 0])
    return float(np.mean(leafy))


def surface_scatter(points: np.ndarray | None, k: int = NEIGHBOURS) -> float | None:
    """Median smallest/largest eigenvalue ratio of each point's k-neighbourhood covariance
    ((N, 3) metres, any frame); None below ``MIN_POINTS`` points."""
    from scipy.spatial import cKDTree

    if points is None or len(points) < max(MIN_POINTS, k + 1):
        return None
    P = np.asarray(points, dtype=np.float64)[:, :3]
    # one point per SCATTER_VOXEL cube, so that neighbourhoods span decimetres whatever the
    # scan density: range noise of a few centimetres then cannot pass for foliage
    _, first = np.unique(np.floor(P / SCATTER_VOXEL).astype(np.int64), axis=0,
                         return_index=True)
    P = P[np.sort(first)]
    if len(P) < max(MIN_POINTS, k + 1):
        return None
    _, idx = cKDTree(P).query(P, k=k)
    nb = P[idx] - P[idx].mean(axis=1, keepdims=True)
    ev = np.linalg.eigvalsh(np.einsum("nki,nkj->nij", nb, nb) / k)
    return float(np.median(np.maximum(ev[:, 0], 0.0) / np.maximum(ev[:, 2], 1e-12)))


def road_clearance(cluster: np.ndarray | None, scene: np.ndarray | None,
                   origin: np.ndarray) -> tuple[float, float] | None:
    """Metres from the road on the line of sight up to the cluster's lowest and highest points
    (clearance, top). ``cluster`` (M, 3) and ``scene`` (N, 3, the whole scan) in one z-up
    frame; ``origin`` (3,) the sensor there.

    The road is read in a corridor ``CORRIDOR_HALF_WIDTH`` wide over the last
    ``CORRIDOR_LENGTH`` metres before the cluster's nearest point: the 10th-percentile height of
    each 1 m slice (the lowest returns: road, not obstacles), a straight line through the
    slices (a slope; slices well above it, e.g. a parked car's body, dropped once), evaluated
    at the cluster. None when fewer than two slices saw anything."""
    if cluster is None or scene is None or not len(cluster) or not len(scene):
        return None
    C = np.asarray(cluster, dtype=np.float64)[:, :3]
    o = np.asarray(origin, dtype=np.float64)[:2]
    c = C[:, :2].mean(axis=0) - o
    r = float(np.hypot(*c))
    if r < 1e-6:
        return None
    u = c / r
    near = float(((C[:, :2] - o) @ u).min())
    S = np.asarray(scene, dtype=np.float64)
    S = S[S[:, 2] < C[:, 2].min()]  # only returns below the cluster can be its road
    rel = S[:, :2] - o
    along = rel @ u
    across = np.abs(rel @ np.array([-u[1], u[0]]))
    start = max(1.0, near - CORRIDOR_LENGTH)
    sel = (along > start) & (along < near - 0.3) & (across < CORRIDOR_HALF_WIDTH)
    if sel.sum() < MIN_ROAD_POINTS:
        return None
    a, z = along[sel], S[sel, 2]
    slot = np.floor(a - start).astype(np.int64)
    xs, zs = [], []
    for k in np.unique(slot):
        m = slot == k
        if m.sum() >= 2:
            xs.append(float(a[m].mean()))
            zs.append(float(np.percentile(z[m], 10)))
    if len(xs) < 2:
        return None
    xs_a, zs_a = np.array(xs), np.array(zs)
    keep = np.ones(len(xs_a), dtype=bool)
    for _ in range(2):  # fit, drop slices well above the line (obstacle bodies), refit
        slope = float(np.clip(np.polyfit(xs_a[keep], zs_a[keep], 1)[0], -MAX_GRADE, MAX_GRADE))
        offset = float(np.median(zs_a[keep] - slope * xs_a[keep]))  # the line at that slope
        low = zs_a - (offset + slope * xs_a) < 0.2
        if low.sum() < 2 or (low == keep).all():
            break
        keep = low
    road = offset + slope * near if len(xs) >= 3 else float(np.min(zs_a))
    return float(C[:, 2].min() - road), float(C[:, 2].max() - road)


def flat_wall(cluster: np.ndarray | None, origin: np.ndarray) -> bool | None:
    """Whether the cluster's points ((M, 3), z-up frame) form one flat vertical plane whose
    normal is more than ``WALL_INCIDENCE`` degrees off the line of sight from ``origin`` (3,),
    the sensor in that frame (module docstring); None below ``MIN_POINTS`` points."""
    if cluster is None or len(cluster) < MIN_POINTS:
        return None
    C = np.asarray(cluster, dtype=np.float64)[:, :3]
    centre = C.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov((C - centre).T))
    normal = evecs[:, 0]  # the smallest principal axis
    sight = centre[:2] - np.asarray(origin, dtype=np.float64)[:2]
    flat = np.hypot(*normal[:2])
    if np.sqrt(max(evals[0], 0.0)) >= WALL_THICKNESS or abs(normal[2]) >= WALL_TILT or \
            flat < 1e-9 or np.hypot(*sight) < 1e-6:
        return False
    cos = abs(normal[:2] @ sight) / (flat * np.hypot(*sight))
    return bool(np.degrees(np.arccos(min(1.0, cos))) > WALL_INCIDENCE)


def crowding(cluster: np.ndarray | None, scene: np.ndarray | None,
             radius: float = CROWD_RADIUS, movers: Sequence[np.ndarray] = ()) -> int | None:
    """Scan points within ``radius`` metres (horizontally) of the cluster's centre, between
    0.2 m above its lowest point and its top, that are neither the cluster's own nor any of
    ``movers`` (the points of the people and vehicles around it): none for a pole standing
    free, many for a sliver the clusterer cut from a facade or a hedge. All (N, 3) in one z-up
    frame; None without points."""
    from scipy.spatial import cKDTree

    if cluster is None or scene is None or not len(cluster) or not len(scene):
        return None
    C = np.asarray(cluster, dtype=np.float64)[:, :3]
    S = np.asarray(scene, dtype=np.float64)
    c = C[:, :2].mean(axis=0)
    near = (np.abs(S[:, 0] - c[0]) < radius) & (np.abs(S[:, 1] - c[1]) < radius)
    near &= (S[:, 2] > C[:, 2].min() + 0.2) & (S[:, 2] < C[:, 2].max())
    N = S[near]
    N = N[np.hypot(N[:, 0] - c[0], N[:, 1] - c[1]) < radius]
    if not len(N):
        return 0
    reach = radius + OWN_POINT_M
    near_movers = []
    for M in movers:
        M = np.asarray(M, dtype=np.float64)[:, :3]
        near_movers.append(M[(np.abs(M[:, 0] - c[0]) < reach) & (np.abs(M[:, 1] - c[1]) < reach)])
    d, _ = cKDTree(np.vstack([C, *near_movers])).query(N, k=1)
    return int((d > OWN_POINT_M).sum())


def standalone_likelihood(ev: SurfaceEvidence) -> float:
    """Factor in [0.1, 1] for "this candidate stands free" (a pole): 1 with up to
    ``CROWD_FREE`` foreign points around it, 0.1 from ``CROWD_WALL`` on (linear between)."""
    return _ramp(None if ev.crowding is None else float(ev.crowding), CROWD_FREE, CROWD_WALL,
                 0.1)


def _ramp(x: float | None, lo: float, hi: float, floor: float) -> float:
    """1 at or below ``lo``, ``floor`` at or above ``hi``, linear between; 1 for None."""
    if x is None:
        return 1.0
    t = min(1.0, max(0.0, (x - lo) / (hi - lo)))
    return 1.0 - t * (1.0 - floor)


def vehicle_likelihood(ev: SurfaceEvidence, categories: tuple[str, ...] = VEHICLES,
                       green_named: bool = False) -> float:
    """Factor in [0.05, 1] for "this candidate is one of ``categories``" (vehicle nouns) from
    the cues (module docstring); ``green_named``: the words say it is green, so leaf-green
    pixels do not count."""
    f = 1.0 if green_named else _ramp(ev.vegetation, 0.1, 0.25, 0.1)
    f *= _ramp(ev.scatter, 0.09, 0.13, 0.1)
    f *= _ramp(ev.clearance, 0.8, 1.2, 0.3)
    if ev.wall:
        f *= 0.15
    if ev.top is not None and all(c in TOP_MAX for c in categories):
        hi = max(TOP_MAX[c] for c in categories)
        f *= _ramp(ev.top, hi, hi + 0.4, 0.2)
    return max(0.05, f)
