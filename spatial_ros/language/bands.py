"""Where on a candidate its colour is read: height bands of its own points ("the pedestrian in
blue" is the torso) and, for vehicles, the body below the windows, sampled in the image under
the points when the LiDAR saw only the cabin.

A far car returns only its upper rows: at 40 m the scan's rows are 0.3 m apart, and the lower
ones are often blocked by whatever stands in front, so its points sit on the windows and
read black. The body is still in the image, straight below them. ``body_samples`` places
points at door height (``BODY_HEIGHTS`` above the ground beside it, ``ground_beside``) under
the candidate's own points and projects them; pixels inside the 2D box of a nearer candidate
(an occluder) are left out.
On 80 held-out simulated street scenes, 29 of 400 cars matched by a candidate read black
from their points alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spatial_ros.geometry.camera import project_points
from spatial_ros.types import SensorFrame
from spatial_ros.vlm.appearance import achromatic_lightness, sample_pixels, term_shares

# Height bands (fractions of the points' height span, from the lowest) where a category's
# colour is seen: a car's paint is below the windows, a person's clothes colour is the torso.
# Others: the whole object.
BANDS = {"body": (0.1, 0.5), "torso": (0.45, 0.85)}
BAND_OF = {"car": "body", "van": "body", "truck": "body", "pedestrian": "torso",
           "cyclist": "torso"}

# Metres above the road where a vehicle's body (doors, not windows, above the wheels, the
# black sills and bumpers) is: simulated cars are painted from 0.18 to 0.70-0.88 m, real
# cars' doors run from about 0.4 to 1.0 m. With the road known, the "body" band is the
# points in BODY_SPAN plus samples at BODY_HEIGHTS under them.
BODY_HEIGHTS = (0.45, 0.58, 0.7)
BODY_SPAN = (0.4, 0.75)
MAX_COLUMNS = 150  # points whose columns are sampled (a random subset of a dense car)
MIN_BAND_POINTS = 5


def ground_beside(box, scene: np.ndarray | None, margin: float = 2.0,
                  min_points: int = 10) -> float | None:
    """Height of the ground next to an object (z-up frame, metres): the 10th percentile of
    the scan's returns in a ring ``margin`` metres wide around its box's footprint (0.2 m
    clear of it) and lower than its top: the road or pavement beside a car, also when
    something in front hides the road on its line of sight. None with fewer than
    ``min_points`` returns there. ``scene``: (N, 3), sorted by
    x (``np.argsort`` once per frame) so that only a slice of it is read."""
    if scene is None or not len(scene):
        return None
    c = np.asarray(box.center, dtype=np.float64)
    half = np.asarray(box.size[:2], dtype=np.float64) / 2.0
    reach = float(np.hypot(*half)) + margin
    lo, hi = np.searchsorted(scene[:, 0], [c[0] - reach, c[0] + reach])
    S = scene[lo:hi]
    S = S[np.abs(S[:, 1] - c[1]) < reach]
    if len(S) < min_points:
        return None
    R = np.asarray(box.rotation, dtype=np.float64)[:2, :2]
    q = np.abs((S[:, :2] - c[:2]) @ R)  # |along|, |across| the box's axes
    ring = np.all(q < half + margin, axis=1) & np.any(q > half + 0.2, axis=1)
    ring &= S[:, 2] < c[2] + float(box.size[2]) / 2
    if ring.sum() < min_points:
        return None
    return float(np.percentile(S[ring, 2], 10))


def body_samples(P_zup: np.ndarray, road_z: float, T_opt_from_zup: np.ndarray, camera,
                 occluders: Sequence[np.ndarray] = (), seed: int = 0) -> np.ndarray:
    """(M, 2) pixels of a vehicle's body under its points: each point's (x, y) in the z-up
    frame at ``BODY_HEIGHTS`` above ``road_z`` (metres), projected; samples behind the
    camera, off the image or inside one of the ``occluders`` (2D boxes x1, y1, x2, y2 px of
    nearer candidates) are dropped."""
    xy = np.asarray(P_zup, dtype=np.float64)[:, :2]
    if len(xy) > MAX_COLUMNS:
        xy = xy[np.random.default_rng(seed).choice(len(xy), MAX_COLUMNS, replace=False)]
    Q = np.concatenate([np.column_stack([xy, np.full(len(xy), road_z + h)])
                        for h in BODY_HEIGHTS])
    Q = Q @ T_opt_from_zup[:3, :3].T + T_opt_from_zup[:3, 3]
    uv, front = project_points(Q, camera)
    ok = front & np.isfinite(uv).all(1)
    ok &= (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & \
        (uv[:, 1] < camera.height)
    for b in occluders:
        ok &= ~((uv[:, 0] >= b[0]) & (uv[:, 0] <= b[2]) & (uv[:, 1] >= b[1]) &
                (uv[:, 1] <= b[3]))
    return uv[ok]


def band_colours(frame: SensorFrame, P_opt: np.ndarray | None, T_zup_from_opt: np.ndarray,
                 road_z: float | None = None, occluders: Sequence[np.ndarray] = (),
                 ) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """What a candidate's points (``P_opt``, (M, 3) optical frame) see in each height band of
    ``BANDS``: (band -> term -> share of the colour terms, band -> lightness of the
    achromatic pixels); bands with too few samples are left out; the lightness of all its
    points is under "all". With ``road_z`` (the road's height under it in the z-up frame),
    the "body" band is read at door height (``body_samples``)."""
    if P_opt is None or len(P_opt) < 8:
        return {}, {}
    uv, front = project_points(P_opt, frame.camera)
    light = {}
    whole = achromatic_lightness(sample_pixels(frame.image, uv[front]))
    if whole is not None:
        light["all"] = whole
    P_zup = P_opt @ T_zup_from_opt[:3, :3].T + T_zup_from_opt[:3, 3]
    z = P_zup[:, 2]
    lo, hi = float(z.min()), float(z.max())
    out = {}
    for name, (a, b) in BANDS.items():
        if name == "body" and road_z is not None:
            h = z - road_z
            sel = front & (h >= BODY_SPAN[0]) & (h <= BODY_SPAN[1])
            uv_band = np.concatenate([uv[sel], body_samples(
                P_zup, road_z, np.linalg.inv(T_zup_from_opt), frame.camera, occluders)])
        else:
            sel = front & (z >= lo + a * (hi - lo)) & (z <= lo + b * (hi - lo))
            uv_band = uv[sel]
        if len(uv_band) >= MIN_BAND_POINTS:
            rgb = sample_pixels(frame.image, uv_band)  # once for the terms and the lightness
            got = term_shares(rgb)
            if got:
                out[name] = got
            lit = achromatic_lightness(rgb)
            if lit is not None:
                light[name] = lit
    return out, light
