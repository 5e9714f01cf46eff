"""Which LiDAR preset fits a cloud ("street" or "tabletop"), and a warning when the one in use
plainly does not.

The two presets look at different worlds: "tabletop" keeps points within 3 m of the sensor and
above a table, "street" looks for cars and people 2-80 m away. The clearest physical signal is
how far the returns are: the median 3D range (tilt-independent, robust to a few far returns)
is about 1-2 m for a depth camera or LiDAR over a table and 8-15 m for a roof LiDAR on a street.
Between those, the share of returns beyond 10 m decides, and names in the bag's metadata
(topic, frame, sensor model: "velodyne", "ouster", "kitti"... or "realsense", "tabletop"...)
break a tie. ``choose_preset`` says why it chose, so a user can check and override.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# Median 3D range (m) below which a cloud is a close-range (tabletop) scene and above which it
# is a street scene; in between the share of returns farther than FAR_RANGE decides.
TABLETOP_MEDIAN_MAX = 2.5
STREET_MEDIAN_MIN = 5.0
FAR_RANGE = 10.0
FAR_SHARE_STREET = 0.25
# Words in topic names, frame ids or sensor names that hint at the scene (whole words).
STREET_WORDS = ("velodyne", "velo", "ouster", "os_sensor", "os1", "hesai", "pandar", "livox",
                "kitti", "nuscenes", "waymo", "lidar_top", "vlp16", "hdl64", "hdl32", "street")
TABLETOP_WORDS = ("realsense", "tabletop", "table", "azure", "kinect", "zed", "orbbec",
                  "gripper", "wrist", "tcp", "manipulator")


@dataclass(frozen=True)
class PresetChoice:
    """The preset chosen for a cloud and why.

    Attributes:
        preset: "street" or "tabletop".
        reason: the evidence in words (ranges, share of far returns, metadata words).
        median_range: median 3D range of the finite returns, metres.
        far_share: share of returns farther than ``FAR_RANGE`` metres.
    """

    preset: str
    reason: str
    median_range: float
    far_share: float


def _hint(names: Iterable[str]) -> tuple[int, list[str]]:
    """(+1 street / -1 tabletop / 0 none, words found) from metadata strings."""
    words = set()
    for n in names:
        words.update(w for w in re.split(r"[^a-z0-9_]+", str(n).lower()) if w)
        words.update(w for w in re.split(r"[^a-z0-9]+", str(n).lower()) if w)
    street = sorted(w for w in words if w in STREET_WORDS)
    table = sorted(w for w in words if w in TABLETOP_WORDS)
    if street and not table:
        return 1, street
    if table and not street:
        return -1, table
    return 0, street + table


def range_stats(points: np.ndarray, max_points: int = 20_000) -> tuple[float, float, int]:
    """(median 3D range m, share beyond ``FAR_RANGE``, finite points) of a sensor-frame cloud;
    an evenly strided subset of about ``max_points`` is enough."""
    p = np.asarray(points)
    if p.ndim != 2 or p.shape[1] < 3 or len(p) == 0:
        return 0.0, 0.0, 0
    step = max(1, len(p) // max_points)
    q = np.asarray(p[::step, :3], dtype=np.float64)
    r = np.sqrt(np.einsum("ij,ij->i", q, q))
    r = r[np.isfinite(r) & (r > 0)]
    if len(r) == 0:
        return 0.0, 0.0, 0
    n = int(np.count_nonzero(np.isfinite(np.asarray(p[:, :3], dtype=np.float64).sum(axis=1))))
    return float(np.median(r)), float(np.mean(r > FAR_RANGE)), n


def choose_preset(points: np.ndarray, metadata: Iterable[str] = ()) -> PresetChoice:
    """The preset for a cloud in its sensor frame (see the module docstring).

    Args:
        points: (N, 3+) x, y, z in the sensor frame (the origin is the sensor), metres.
        metadata: names that describe the source: topic, frame id, sensor model, bag name.

    Returns:
        The choice; "tabletop" for an empty cloud without metadata hints (the default).
    """
    med, far, n = range_stats(points)
    hint, words = _hint(metadata)
    said = f" (metadata: {', '.join(words)})" if words else ""
    facts = f"median range {med:.1f} m, {far:.0%} of returns beyond {FAR_RANGE:.0f} m"
    if n == 0:
        preset = "street" if hint > 0 else "tabletop"
        return PresetChoice(preset, f"no finite points; {preset} from metadata{said}"
                            if hint else "no finite points; default tabletop", med, far)
    if med <= TABLETOP_MEDIAN_MAX and not (hint > 0 and far >= FAR_SHARE_STREET):
        return PresetChoice("tabletop", f"close-range cloud: {facts}{said}", med, far)
    if med >= STREET_MEDIAN_MIN:
        return PresetChoice("street", f"far-reaching cloud: {facts}{said}", med, far)
    if hint:
        preset = "street" if hint > 0 else "tabletop"
        return PresetChoice(preset, f"ambiguous ranges ({facts}); {preset} from the "
                            f"metadata{said}", med, far)
    preset = "street" if far >= FAR_SHARE_STREET else "tabletop"
    return PresetChoice(preset, f"mid-range cloud: {facts}", med, far)


def preset_warning(preset: str, points_sensor: np.ndarray, n_candidates: int,
                   n_cropped: int, n_valid: int) -> str:
    """A warning (what is wrong and what to do) when the preset in use plainly does not fit a
    cloud that is clearly not empty, else "".

    It warns when the cloud has at least 1000 finite points, the data point to the other
    preset, and the preset found nothing or kept under 10 % of the points in its range crop.
    """
    kept = n_cropped / max(n_valid, 1)
    if not preset or n_valid < 1000 or (n_candidates > 0 and kept >= 0.1):
        return ""
    choice = choose_preset(points_sensor)
    if choice.preset == preset:
        return ""
    what = "found no candidates" if n_candidates == 0 else \
        f"kept only {kept:.0%} of the points in its range"
    return (f"LiDAR preset '{preset}' {what} in a cloud of {n_valid:,} points that looks like "
            f"a {choice.preset} scene ({choice.reason}): set lidar_preset to "
            f"'{choice.preset}' or 'auto'")
