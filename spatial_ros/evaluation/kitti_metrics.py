"""KITTI-style detection metrics of specialist candidates against label_2 truth (``spatial-ros
eval --kitti``), on top of ``metrics.bev_detection``.

- **Class-agnostic**: every candidate against every labelled object (DontCare excluded), BEV
  IoU, greedy by score: does the specialist find the objects at all.
- **Class-aware**, per KITTI type (Car, Van, Truck, Pedestrian, Cyclist present in the truth):
  candidates whose type is that class against the objects of that class; objects of the
  class's KITTI neighbour (Van for Car, Person_sitting for Pedestrian, and the reverse) are
  ignored, as KITTI's own evaluation does: a car box on a van is neither a hit nor a false
  positive. Overall: recall = hits over objects summed over classes, mAP = the mean of the
  classes' APs.
- **Targets by LiDAR support** (``point_targets``): recall among vehicles (Car, Van) and people
  (Pedestrian, Cyclist, Person_sitting) with at least ``min_points`` LiDAR points in their box
  (truth records carry ``lidar_points``), the share of those hits whose candidate has the
  right type (the truth's type or its KITTI neighbour), and candidates per frame.

Candidate labels are the specialists' (lower-case); the caller maps them to KITTI types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from spatial_ros.boxfile import BoxFrame, BoxRecord
from spatial_ros.evaluation.metrics import DetectionResult, bev_detection, json_float

KITTI_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Cyclist")
NEIGHBOURS = {"Car": ("Van",), "Van": ("Car",), "Pedestrian": ("Person_sitting",),
              "Person_sitting": ("Pedestrian",)}
GROUPS = {"vehicles": ("Car", "Van"), "people": ("Pedestrian", "Cyclist", "Person_sitting")}


def _only(frames: Sequence[BoxFrame], keep: Callable[[BoxRecord], bool]) -> list[BoxFrame]:
    return [BoxFrame(f.stamp_ns, f.frame_id, [o for o in f.objects if keep(o)], f.extra)
            for f in frames]


def class_detection(
    cand: Sequence[BoxFrame], truth: Sequence[BoxFrame], iou: float,
    pred_type: Callable[[str], str], classes: Sequence[str] | None = None,
) -> dict[str, DetectionResult]:
    """Class-aware BEV detection per KITTI class (module docstring). ``classes``: default the
    ``KITTI_CLASSES`` present in ``truth``."""
    present = {o.label for f in truth for o in f.objects}
    classes = [c for c in (classes or KITTI_CLASSES) if c in present]
    out = {}
    for cls in classes:
        near = NEIGHBOURS.get(cls, ())
        t = _only(truth, lambda o, c=cls, n=near: o.label == c or o.label in n)
        out[cls] = bev_detection(
            cand, t, iou, pred_filter=lambda o, c=cls: pred_type(o.label) == c,
            truth_ignore=lambda o, c=cls: o.label != c,
        )
    return out


def class_aware_summary(per_class: dict[str, DetectionResult]) -> dict[str, Any]:
    """Recall (hits / objects, summed over classes) and mAP (mean of class APs)."""
    n = sum(d.n_truth for d in per_class.values())
    tp = sum(d.tp for d in per_class.values())
    aps = [d.ap for d in per_class.values() if d.ap is not None]
    return {
        "classes": sorted(per_class),
        "recall": json_float(tp / n, 4) if n else None,
        "tp": tp, "n_truth": n,
        "map": json_float(float(np.mean(aps)), 4) if aps else None,
    }


def point_targets(
    cand: Sequence[BoxFrame], truth: Sequence[BoxFrame], pred_type: Callable[[str], str],
    *, iou: float = 0.5, min_points: int = 50,
) -> dict[str, Any]:
    """Recall of well-supported vehicles and people, right types among the hits, candidates
    per frame (module docstring). Truth without ``lidar_points`` counts as unsupported."""
    det = bev_detection(cand, truth, iou)
    hit = {(s, id(t)): p for s, p, t, _ in det.matches}
    out: dict[str, Any] = {"iou": iou, "min_points": min_points}
    right_all = hits_all = 0
    for name, types in GROUPS.items():
        n = hits = right = 0
        for f in truth:
            for o in f.objects:
                if o.label not in types or int(o.extra.get("lidar_points", 0)) < min_points:
                    continue
                n += 1
                p = hit.get((f.stamp_ns, id(o)))
                if p is not None:
                    hits += 1
                    right += pred_type(p.label) in (o.label, *NEIGHBOURS.get(o.label, ()))
        out[name] = {"n": n, "hits": hits, "recall": json_float(hits / n, 4) if n else None,
                     "class_right": right,
                     "class_right_share": json_float(right / hits, 4) if hits else None}
        right_all += right
        hits_all += hits
    out["class_right_share"] = json_float(right_all / hits_all, 4) if hits_all else None
    counts = [len(f.objects) for f in cand]
    out["boxes_per_frame"] = {"max": max(counts, default=0),
                              "mean": json_float(float(np.mean(counts)), 2) if counts else None}
    return out
