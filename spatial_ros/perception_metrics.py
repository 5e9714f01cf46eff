"""Score perception outputs against the simulator's exact truth (ROS-free).

The node tests (real DDS) and ``spatial-ros bench load`` score what the perception node
published with these functions, so a test and a benchmark count the same way.

Definitions (all boxes in one z-up output frame, metres):

- grounding query: the caption of a truth object that is unambiguous (no other object with the
  same caption), in view (projects into the image, visible fraction >= a minimum) and not the
  gripper. :func:`grounding_queries` lists them.
- Acc@IoU t: share of (frame, query) pairs whose published object for that query has 3D IoU >= t
  with the truth box. A query without a published object counts as a miss.
- distance error: ``|d - d_true| / d_true`` where ``d`` is the published sensor distance and
  ``d_true`` the distance from the SAME sensor origin to the truth box centre (the camera for VLM
  objects, the LiDAR for LiDAR candidates; :func:`sensor_origins`).
- pair distance error: the same for published centre-to-centre ``distance`` relations between
  two grounded queries, against the truth boxes' centre distance.
- candidate recall (specialists-only mode): share of truth objects with at least
  ``min_lidar_points`` LiDAR returns that some published box overlaps with 3D IoU >= t.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from spatial_ros.errors import CalibrationError
from spatial_ros.geometry.iou import iou_3d
from spatial_ros.types import GroundedObject, Relation

# Which sensor a published object's ``distance`` is measured from, by its ``source``.
SOURCE_SENSOR = {
    "vlm": "camera", "vlm+lidar": "camera", "vlm+depth": "camera", "vlm+onnx": "camera",
    "depth": "camera", "onnx": "camera", "lidar": "lidar",
}


def sensor_origins(transforms, output_frame: str, camera_frame: str,
                   lidar_frame: str = "lidar") -> dict[str, np.ndarray]:
    """Origins (3,) of the camera and the LiDAR in ``output_frame`` (metres).

    Raises:
        CalibrationError: a sensor frame is not connected to ``output_frame``.
    """
    out = {}
    for name, frame in (("camera", camera_frame), ("lidar", lidar_frame)):
        if not transforms.can_transform(output_frame, frame):
            raise CalibrationError(f"no transform from {frame!r} to {output_frame!r}")
        out[name] = np.asarray(transforms.lookup(output_frame, frame))[:3, 3].copy()
    return out


def grounding_queries(truth, min_visible_fraction: float = 0.3,
                      exclude_categories: Sequence[str] = ("gripper",)) -> list[str]:
    """Captions of the unambiguous, visible truth objects of a frame (``FrameTruth``), in truth
    order: the queries whose answer is well defined."""
    out = []
    for o in truth.objects:
        if o.ambiguous_with or o.box_2d is None or o.category in exclude_categories:
            continue
        if o.visible_fraction < min_visible_fraction or o.caption in out:
            continue
        out.append(o.caption)
    return out


@dataclass
class QueryOutcome:
    """One (frame, query) pair.

    Attributes:
        stamp_ns: the frame's source image stamp.
        query: the caption.
        truth_id: id of the truth object it names.
        found: a published object carries this query.
        iou: 3D IoU of that object with the truth box (0 when not found).
        distance: its published sensor distance (m; NaN when not found).
        true_distance: truth box centre to the same sensor origin (m; NaN when not found).
        source: the published object's source ('' when not found).
    """

    stamp_ns: int
    query: str
    truth_id: str
    found: bool
    iou: float = 0.0
    distance: float = math.nan
    true_distance: float = math.nan
    source: str = ""

    @property
    def distance_error(self) -> float:
        """Relative distance error (NaN when not found)."""
        if not self.found or not self.true_distance > 0:
            return math.nan
        return abs(self.distance - self.true_distance) / self.true_distance


@dataclass
class PairOutcome:
    """One published centre-to-centre pair distance (metres) and its truth."""

    stamp_ns: int
    subject: str
    object: str
    distance: float
    true_distance: float

    @property
    def error(self) -> float:
        return abs(self.distance - self.true_distance) / self.true_distance


def _frac(flags: Sequence[bool]) -> float:
    return float(np.mean(flags)) if len(flags) else math.nan


@dataclass
class GroundingScore:
    """Outcomes of many frames; the metrics are methods so any threshold can be asked for."""

    queries: list[QueryOutcome] = field(default_factory=list)
    pairs: list[PairOutcome] = field(default_factory=list)

    def accuracy(self, iou_threshold: float = 0.25) -> float:
        """Acc@IoU: share of all (frame, query) pairs grounded with IoU >= the threshold."""
        return _frac([q.found and q.iou >= iou_threshold for q in self.queries])

    def found_rate(self) -> float:
        """Share of (frame, query) pairs with any published object."""
        return _frac([q.found for q in self.queries])

    def distance_within(self, rel_tol: float = 0.10, min_iou: float = 0.25) -> float:
        """Share of correctly grounded queries (IoU >= ``min_iou``) whose sensor distance is
        within ``rel_tol`` of the truth (NaN when none was grounded)."""
        ok = [q for q in self.queries if q.found and q.iou >= min_iou]
        return _frac([q.distance_error <= rel_tol for q in ok])

    def pair_within(self, rel_tol: float = 0.10) -> float:
        """Share of published pair distances within ``rel_tol`` of the truth (NaN if none)."""
        return _frac([p.error <= rel_tol for p in self.pairs])

    def as_dict(self) -> dict[str, float]:
        errs = [q.distance_error for q in self.queries if q.found]
        return {
            "queries": len(self.queries),
            "found_rate": self.found_rate(),
            "acc_iou25": self.accuracy(0.25),
            "acc_iou50": self.accuracy(0.5),
            "distance_within_10pct": self.distance_within(0.10),
            "distance_median_rel_error": float(np.median(errs)) if errs else math.nan,
            "pairs": len(self.pairs),
            "pair_within_10pct": self.pair_within(0.10),
        }


def score_frame(
    objects: Sequence[GroundedObject],
    truth,
    queries: Sequence[str],
    origins: Mapping[str, np.ndarray],
    relations: Sequence[Relation] = (),
    stamp_ns: int | None = None,
) -> tuple[list[QueryOutcome], list[PairOutcome]]:
    """Score one published frame against its ``FrameTruth``.

    Args:
        objects: the published objects (boxes in the truth's frame, e.g. base_link).
        truth: the frame's ``FrameTruth``.
        queries: the active queries; those not naming a truth object are ignored.
        origins: sensor origins in the output frame (:func:`sensor_origins`).
        relations: the published relations of the frame (pair distances are scored).
        stamp_ns: the published stamp (default: the truth's).
    """
    stamp = truth.stamp_ns if stamp_ns is None else int(stamp_ns)
    by_caption = {o.caption: o for o in truth.objects if not o.ambiguous_with}
    by_query: dict[str, GroundedObject] = {}
    for o in objects:
        if o.query and o.query not in by_query:
            by_query[o.query] = o
    outcomes: list[QueryOutcome] = []
    for q in queries:
        t = by_caption.get(q)
        if t is None:
            continue
        o = by_query.get(q)
        if o is None:
            outcomes.append(QueryOutcome(stamp, q, t.id, False))
            continue
        origin = origins[SOURCE_SENSOR.get(o.source, "camera")]
        outcomes.append(QueryOutcome(
            stamp, q, t.id, True, iou_3d(o.box, t.box), float(o.distance),
            float(np.linalg.norm(t.box.center - origin)), o.source,
        ))
    by_id = {o.id: o for o in objects}
    pairs: list[PairOutcome] = []
    for r in relations:
        if r.predicate != "distance" or r.subject_id == "sensor":
            continue
        a, b = by_id.get(r.subject_id), by_id.get(r.object_id)
        if a is None or b is None or a.query not in by_caption or b.query not in by_caption:
            continue
        d_true = float(np.linalg.norm(by_caption[a.query].box.center
                                      - by_caption[b.query].box.center))
        pairs.append(PairOutcome(stamp, a.query, b.query, float(r.value), d_true))
    return outcomes, pairs


def score_grounding(
    frames: Iterable[tuple[Sequence[GroundedObject], Sequence[Relation], object]],
    queries: Sequence[str],
    origins: Mapping[str, np.ndarray],
) -> GroundingScore:
    """Score many frames: ``frames`` yields (objects, relations, FrameTruth)."""
    score = GroundingScore()
    for objects, relations, truth in frames:
        q, p = score_frame(objects, truth, queries, origins, relations)
        score.queries += q
        score.pairs += p
    return score


def candidate_recall(objects: Sequence[GroundedObject], truth, iou_threshold: float = 0.5,
                     min_lidar_points: int = 30) -> tuple[int, int]:
    """(matched, total): truth objects with >= ``min_lidar_points`` LiDAR returns that a
    published box overlaps with 3D IoU >= ``iou_threshold`` (specialists-only mode)."""
    total = matched = 0
    for t in truth.objects:
        if (t.lidar_points or 0) < min_lidar_points:
            continue
        total += 1
        matched += any(iou_3d(t.box, o.box) >= iou_threshold for o in objects)
    return matched, total
