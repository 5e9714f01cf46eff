"""Score what the perception node published against the simulator's exact truth (ROS-free).

An adapter: the node's outputs (objects and relations of one published frame, decoded from
its messages) and the simulator's ``FrameTruth`` become box-file frames, and the metrics are
those of :mod:`spatial_ros.evaluation.metrics` (one definition; ``spatial-ros eval`` scores
bags the same way): Acc@IoU of the query objects (``grounding_accuracy``: a query names the one
truth object with that caption; ambiguous or unknown queries are not scored; a query without
a published object is a miss) and BEV recall of specialist candidates (``bev_detection``).

This module adds what the node tests and ``spatial-ros bench load`` assert per item:

- sensor distance error of each correctly grounded query (3D IoU >= ``min_iou``): the published
  ``distance`` against the distance from the SAME sensor origin (the LiDAR for LiDAR candidates,
  the camera otherwise, as the pipeline measures) to the truth box centre;
- pair distance error of each published centre-to-centre ``distance`` relation between two
  grounded queries, against the truth boxes' centre distance;
- the share of those errors within a tolerance ("within +-10 %"), and the choice of queries
  (:func:`grounding_queries`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from spatial_ros.boxfile import BoxFrame, BoxRecord
from spatial_ros.evaluation.metrics import (
    LIDAR_SOURCES,
    DetectionResult,
    GroundingResult,
    bev_detection,
    grounding_accuracy,
    truth_for_query,
)
from spatial_ros.geometry.iou import iou_3d
from spatial_ros.types import GroundedObject, Relation

# one published frame: (objects, relations, published stamp, the replayed frame's FrameTruth)
Output = tuple[Sequence[GroundedObject], Sequence[Relation], int, object]


def grounding_queries(truth, min_visible_fraction: float = 0.3,
                      exclude_categories: Sequence[str] = ("gripper",)) -> list[str]:
    """Captions of the unambiguous, visible objects of a ``FrameTruth``, in truth order: the
    queries whose answer is well defined (the ones the node tests and the bench ask)."""
    out = []
    for o in truth.objects:
        if o.ambiguous_with or o.box_2d is None or o.category in exclude_categories:
            continue
        if o.visible_fraction < min_visible_fraction or o.caption in out:
            continue
        out.append(o.caption)
    return out


def truth_box_frame(truth, stamp_ns: int) -> BoxFrame:
    """``FrameTruth`` as a box-file frame stamped ``stamp_ns`` (a replayed frame carries a new
    stamp), each record with its ``lidar_points`` extra."""
    bf = truth.box_frame()
    for rec, o in zip(bf.objects, truth.objects, strict=True):
        rec.extra["lidar_points"] = int(o.lidar_points or 0)
    return BoxFrame(int(stamp_ns), bf.frame_id, bf.objects, dict(bf.extra))


def output_box_frame(objects: Sequence[GroundedObject], stamp_ns: int, frame_id: str,
                     origins: Mapping[str, Sequence[float]]) -> BoxFrame:
    """Published objects as a box-file frame (the ``spatial-ros ground`` record layout), with
    the sensor origins (``evaluation.replay.sensor_origins``) in its extras."""
    from spatial_ros.evaluation.replay import object_record

    recs = [object_record(o, -1) for o in objects]
    return BoxFrame(int(stamp_ns), frame_id, recs,
                    {"sensor_origins": {k: [float(x) for x in v] for k, v in origins.items()}})


def _frac(flags: Sequence[bool]) -> float:
    return float(np.mean(flags)) if len(flags) else math.nan


@dataclass
class NodeScore:
    """Scores of many published frames.

    Attributes:
        grounding: ``evaluation.metrics.GroundingResult`` (Acc@IoU 0.25/0.5, per-query IoUs).
        distance_errors: relative sensor-distance errors of the queries grounded with 3D IoU
            >= ``min_iou``, with their source.
        pair_errors: relative errors of the published pair ``distance`` relations whose two
            objects are both grounded with 3D IoU >= ``min_iou`` (the distance computation,
            like ``distance_errors``; wrong objects are counted by ``grounding``).
        pair_errors_all: the same for every published pair relation, wrong objects included.
    """

    grounding: GroundingResult
    distance_errors: list[tuple[str, float]] = field(default_factory=list)
    pair_errors: list[float] = field(default_factory=list)
    pair_errors_all: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.grounding.n

    def accuracy(self, iou_threshold: float = 0.25) -> float:
        acc = self.grounding.acc(iou_threshold)
        return math.nan if acc is None else acc

    def distance_within(self, rel_tol: float = 0.10) -> float:
        return _frac([e <= rel_tol for _, e in self.distance_errors])

    def pair_within(self, rel_tol: float = 0.10) -> float:
        return _frac([e <= rel_tol for e in self.pair_errors])

    def sources(self) -> set[str]:
        return {s for s, _ in self.distance_errors}

    def as_dict(self) -> dict[str, float]:
        errs = [e for _, e in self.distance_errors]
        return {
            "queries": self.n,
            "missing": self.grounding.missing,
            "acc_iou25": self.accuracy(0.25),
            "acc_iou50": self.accuracy(0.5),
            "distance_within_10pct": self.distance_within(0.10),
            "distance_median_rel_error": float(np.median(errs)) if errs else math.nan,
            "pairs": len(self.pair_errors),
            "pair_within_10pct": self.pair_within(0.10),
            "pairs_all": len(self.pair_errors_all),
            "pair_all_within_10pct": _frac([e <= 0.10 for e in self.pair_errors_all]),
        }


def score_outputs(outputs: Iterable[Output], queries: Sequence[str],
                  origins: Mapping[str, Sequence[float]], output_frame: str = "base_link",
                  min_iou: float = 0.25) -> NodeScore:
    """Score published frames (``(objects, relations, stamp_ns, FrameTruth)`` each) for
    ``queries``. ``origins``: {"camera": xyz, "lidar": xyz} in ``output_frame``."""
    preds: list[BoxFrame] = []
    truths: list[BoxFrame] = []
    pair_errors: list[float] = []
    pair_errors_all: list[float] = []
    for objects, relations, stamp, truth in outputs:
        p = output_box_frame(objects, stamp, output_frame, origins)
        t = truth_box_frame(truth, stamp)
        preds.append(p)
        truths.append(t)
        by_id = {o.id: o for o in objects}
        for r in relations:
            if r.predicate != "distance" or r.subject_id == "sensor":
                continue
            a, b = by_id.get(r.subject_id), by_id.get(r.object_id)
            if a is None or b is None or not a.query or not b.query:
                continue
            ta, tb = truth_for_query(a.query, t), truth_for_query(b.query, t)
            if len(ta) == 1 and len(tb) == 1:
                d_true = float(np.linalg.norm(ta[0].box.center - tb[0].box.center))
                err = abs(float(r.value) - d_true) / d_true
                pair_errors_all.append(err)
                if min(iou_3d(a.box, ta[0].box), iou_3d(b.box, tb[0].box)) >= min_iou:
                    pair_errors.append(err)
    g = grounding_accuracy(preds, truths, list(queries), thresholds=(0.25, 0.5))
    dist: list[tuple[str, float]] = []
    for (_, _, o, gt), iou in zip(g.pairs, g.ious_3d, strict=True):
        if o is None or iou < min_iou:
            continue
        source = str(o.extra.get("source", ""))
        origin = np.asarray(origins["lidar" if source in LIDAR_SOURCES else "camera"], float)
        d_true = float(np.linalg.norm(gt.box.center - origin))
        dist.append((source, abs(float(o.extra["distance"]) - d_true) / d_true))
    return NodeScore(g, dist, pair_errors, pair_errors_all)


def candidate_recall(outputs: Iterable[tuple[Sequence[GroundedObject], int, object]],
                     iou_threshold: float = 0.5, min_lidar_points: int = 30,
                     output_frame: str = "base_link") -> DetectionResult:
    """BEV detection of specialists-only outputs (``(objects, stamp_ns, FrameTruth)`` each):
    truth objects with fewer than ``min_lidar_points`` LiDAR returns are ignored (DontCare);
    ``.recall`` is the share of the others found at BEV IoU >= ``iou_threshold``."""
    preds, truths = [], []
    for objects, stamp, truth in outputs:
        preds.append(output_box_frame(objects, stamp, output_frame, {}))
        truths.append(truth_box_frame(truth, stamp))

    def ignore(rec: BoxRecord) -> bool:
        return rec.extra.get("lidar_points", 0) < min_lidar_points

    return bev_detection(preds, truths, iou_threshold, truth_ignore=ignore)
