"""Referring-expression queries with known answers from KITTI labels: viewer-relative car
queries ("the car on the left", "the closest car", "the farthest car", "the second car from the
left"), written by the same generator as the simulated ones (``training.refqueries``).

KITTI labels nothing inside its DontCare regions (objects too far, too small or too hidden to
box), and its own evaluation neither rewards nor punishes what lies there. An order that a car
in such a region could change has no answer in the labels, so it is left out
(``dontcare_may_change``): "the farthest car" with a van parked unlabelled 40 m beyond the last
labelled car, "the fourth car from the right" with unlabelled cars parked on the right.

    python -m training.refqueries --kitti ../shared/data/real --out runs/q_kitti.jsonl
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spatial_ros.evaluation.refer import QueryRecord
from training.refqueries import TruthObject, _Gen


@dataclass
class Unlabelled:
    """A KITTI DontCare region: objects there were left unlabelled (too far, too small, ...).

    Attributes:
        columns: (u1, u2) its image columns, pixels.
        range: median distance from the camera of the LiDAR points that project into it,
            metres; inf when none does (beyond the scanner's reach).
    """

    columns: tuple[float, float]
    range: float


def dontcare_may_change(subkind: str, column: float, range_m: float,
                        regions: list[Unlabelled]) -> bool:
    """Whether an unlabelled region could hold a car that changes an order's answer.

    KITTI's own evaluation neither rewards nor punishes what lies in a DontCare region; a
    query must not either. ``subkind``: the order (``left``, ``right``, ``middle``,
    ``<ordinal>_left|right``, ``near``, ``second_near``, ``far``); ``column``: the answer's
    2D-box centre, pixels; ``range_m``: its distance from the camera, metres.
    """
    margin = max(0.8, 0.08 * range_m)  # as the generator's "clearly nearer" (``_Gen.spatial``)
    for r in regions:
        if subkind == "middle":
            return True
        if subkind.endswith("left") and r.columns[0] < column:
            return True
        if subkind.endswith("right") and r.columns[1] > column:
            return True
        if subkind.endswith("near") and r.range < range_m + margin:
            return True
        if subkind == "far" and r.range > range_m - margin:
            return True
    return False


def left_out_line(skipped: list[QueryRecord]) -> str:
    """One line naming the queries ``kitti_queries`` left out ('' when none)."""
    if not skipped:
        return ""
    return (f"left out {len(skipped)} orders that a car in a DontCare region could change "
            "(KITTI labels no object there): "
            + "; ".join(f"{r.frame} {r.query!r}" for r in skipped))


def _unlabelled_regions(kf, T_cam_from_velo: np.ndarray) -> list[Unlabelled]:
    from spatial_ros.geometry.camera import project_points

    labels = [lab for lab in kf.labels if lab.is_dontcare]
    if not labels:
        return []
    ranges = np.zeros(0)
    uv = np.zeros((0, 2))
    if kf.points is not None and len(kf.points):
        P = kf.points[:, :3] @ T_cam_from_velo[:3, :3].T + T_cam_from_velo[:3, 3]
        uv, front = project_points(P, kf.calib.intrinsics)
        uv, ranges = uv[front], np.linalg.norm(P[front], axis=1)
    out = []
    for lab in labels:
        x1, y1, x2, y2 = lab.box_2d
        inside = ((uv[:, 0] >= x1) & (uv[:, 0] <= x2) & (uv[:, 1] >= y1) & (uv[:, 1] <= y2))
        out.append(Unlabelled((float(x1), float(x2)),
                              float(np.median(ranges[inside])) if inside.any() else np.inf))
    return out


def kitti_queries(root: str | Path, seed: int = 0, dontcare: bool = True,
                  skipped: list | None = None) -> list[QueryRecord]:
    """Viewer-relative car queries from KITTI labels ("the car on the left", "the closest
    car", "the farthest car", "the second car from the left"), "the closest car" where one car
    is labelled. Object ids: ``label_<k>``.

    ``dontcare``: leave out an order that a car in a DontCare region could change
    (``dontcare_may_change``): "the farthest car" with a van parked unlabelled 40 m beyond
    the last labelled car has no answer in the labels. The left-out records are appended to
    ``skipped`` when given.
    """
    from spatial_ros.datasets.kitti import iter_kitti_frames

    rng = np.random.default_rng(seed)
    out = []
    for kf in iter_kitti_frames(root):
        sf = kf.sensor_frame()
        T = sf.transforms.lookup(sf.camera.frame_id, sf.points_frame)
        objs, column = [], {}
        for k, lab in enumerate(kf.labels):
            if lab.is_dontcare or lab.box is None or lab.type not in ("Car", "Van"):
                continue
            c = T[:3, :3] @ lab.box.center + T[:3, 3]
            if c[2] <= 0:
                continue
            objs.append(TruthObject(f"label_{k}", "car", "", lab.box, c, 1.0))
            column[objs[-1].id] = 0.5 * float(lab.box_2d[0] + lab.box_2d[2])
        frame = f"kitti:{kf.frame_id}"
        if len(objs) == 1:
            recs = [QueryRecord(frame, "the closest car", "viewer", "near", objs[0].id)]
        else:
            right = np.array([0.0, -1.0, 0.0])  # velodyne frame: x forward, y left, z up
            g = _Gen(objs, frame, rng, tabletop=False, right_axis=right)
            recs = [r for r in g.spatial() if r.kind in ("viewer", "ordinal")]
        regions = _unlabelled_regions(kf, T) if dontcare else []
        by_id = {o.id: o for o in objs}
        for r in recs:
            o = by_id[r.expected]
            if dontcare_may_change(r.subkind, column[o.id], o.range, regions):
                if skipped is not None:
                    skipped.append(r)
            else:
                out.append(r)
    return out
