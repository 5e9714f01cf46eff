"""Metrics of a perception run against ground truth, on the shared box format (boxfile.py).

All boxes are compared in ONE z-up frame (the box files' ``frame_id``; base_link for the
simulator, velodyne for KITTI); predictions in another frame are an error, not a silent zero.

- **Grounding** (query objects): for each predicted frame and each query, the truth object is
  the one whose caption (``query`` field of the truth record) equals the query, else the one
  whose label equals it (articles and case ignored). Queries naming no truth object, or more
  than one ("the blue book" with two blue books), are not scorable and reported as such. A
  query without a predicted object scores IoU 0. ``acc@t`` = share of scorable (frame, query)
  pairs with 3D IoU >= t (ScanRefer / Cube-LLM style Acc@0.25 and Acc@0.5).
- **BEV detection** (specialist candidates): greedy matching in descending score order at a BEV
  IoU threshold (PASCAL VOC / KITTI protocol), AP as the area under the interpolated
  precision-recall curve (all recall points, VOC 2010+). Truth the caller marks as "ignored"
  (e.g. objects outside the camera view) neither counts as missed nor makes a match a false
  positive (KITTI's DontCare semantics).
- **Distances**: predicted sensor->object distance (the record's ``distance``) against the truth
  box centre's distance from the same sensor origin (``sensor_origins`` of the predicted
  frame); object<->object centre distances of query pairs. Absolute (m) and relative errors.
- **Parse failures** from the VLM engine's counters; **latency** percentiles (ms); **VOC**
  (value-order correlation, GVL) of a progress curve.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spatial_ros.boxfile import BoxFrame, BoxRecord
from spatial_ros.errors import DataError
from spatial_ros.geometry.iou import iou_3d_matrix, iou_bev_matrix

DEFAULT_STAMP_TOLERANCE_NS = 5_000_000  # 5 ms: predictions carry the source image's stamp
# Object sources whose distance is measured from the LiDAR origin; all others (vlm*, depth,
# onnx) from the camera's optical centre (see spatial_ros.perception / vlm.engine).
LIDAR_SOURCES = frozenset({"lidar"})

_ARTICLE = re.compile(r"^(the|a|an)\s+")


def normalize_phrase(text: str | None) -> str:
    """Lower-case, single spaces, no trailing punctuation, no leading article ("The red mug."
    -> "red mug"); '' for None."""
    if not text:
        return ""
    t = " ".join(str(text).lower().split()).rstrip(".?!")
    return _ARTICLE.sub("", t)


def json_float(x: float | None, nd: int = 6) -> float | None:
    """JSON-safe float rounded to ``nd`` digits (None for NaN/inf/None)."""
    if x is None:
        return None
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


# ----------------------------------------------------------------------------------------------
# frame matching
# ----------------------------------------------------------------------------------------------


def match_frames(
    pred: Sequence[BoxFrame],
    truth: Sequence[BoxFrame],
    tolerance_ns: int = DEFAULT_STAMP_TOLERANCE_NS,
) -> list[tuple[BoxFrame, BoxFrame | None]]:
    """Pair every predicted frame with the truth frame of the nearest stamp (within
    ``tolerance_ns``), or None. Truth frames may be denser (30 Hz truth, 10 Hz predictions)."""
    if not truth:
        return [(p, None) for p in pred]
    stamps = np.array([t.stamp_ns for t in truth], dtype=np.int64)
    order = np.argsort(stamps, kind="stable")
    s = stamps[order]
    q = np.array([p.stamp_ns for p in pred], dtype=np.int64)
    hi = np.clip(np.searchsorted(s, q), 0, len(s) - 1)
    lo = np.clip(hi - 1, 0, len(s) - 1)
    pick = np.where(np.abs(s[lo] - q) <= np.abs(s[hi] - q), lo, hi)
    ok = np.abs(s[pick] - q) <= tolerance_ns
    return [(p, truth[order[i]] if k else None) for p, i, k in zip(pred, pick, ok, strict=True)]


def _check_frames(pred: BoxFrame, truth: BoxFrame) -> None:
    if pred.frame_id and truth.frame_id and pred.frame_id != truth.frame_id:
        raise DataError(
            f"predictions are in frame '{pred.frame_id}' but the truth is in '{truth.frame_id}'; "
            f"re-run with --output-frame {truth.frame_id}"
        )


def truth_for_query(query: str, truth: BoxFrame) -> list[BoxRecord]:
    """Truth objects a query names: by caption (the truth record's ``query``), else by label."""
    q = normalize_phrase(query)
    by_caption = [o for o in truth.objects if normalize_phrase(o.query) == q]
    if by_caption:
        return by_caption
    return [o for o in truth.objects if normalize_phrase(o.label) == q]


def objects_for_query(query: str, frame: BoxFrame) -> list[BoxRecord]:
    """Predicted objects grounding ``query``, best score first."""
    q = normalize_phrase(query)
    out = [o for o in frame.objects if o.query and normalize_phrase(o.query) == q]
    return sorted(out, key=lambda o: -o.score)


# ----------------------------------------------------------------------------------------------
# grounding accuracy
# ----------------------------------------------------------------------------------------------


@dataclass
class GroundingResult:
    """Grounding accuracy of query objects.

    Attributes:
        thresholds: 3D IoU thresholds.
        n: scorable (frame, query) pairs.
        hits: {threshold: pairs with 3D IoU >= threshold}.
        ious_3d, ious_bev: per scorable pair (0 when the query got no object).
        missing: scorable pairs without a predicted object.
        per_query: {query: {"n", "acc@t"..., "mean_iou_3d"}}.
        unmatched: {query: frames where no truth object matches it}.
        ambiguous: {query: frames where more than one truth object matches it}.
        pairs: (stamp_ns, query, pred record or None, truth record) of every scorable pair.
    """

    thresholds: tuple[float, ...]
    n: int = 0
    hits: dict[float, int] = field(default_factory=dict)
    ious_3d: list[float] = field(default_factory=list)
    ious_bev: list[float] = field(default_factory=list)
    missing: int = 0
    per_query: dict[str, dict[str, Any]] = field(default_factory=dict)
    unmatched: dict[str, int] = field(default_factory=dict)
    ambiguous: dict[str, int] = field(default_factory=dict)
    pairs: list[tuple[int, str, BoxRecord | None, BoxRecord]] = field(default_factory=list)

    def acc(self, t: float) -> float | None:
        return self.hits.get(t, 0) / self.n if self.n else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"n": self.n}
        for t in self.thresholds:
            d[f"acc@{t:g}"] = json_float(self.acc(t), 4)
        d["mean_iou_3d"] = json_float(np.mean(self.ious_3d), 4) if self.ious_3d else None
        d["mean_iou_bev"] = json_float(np.mean(self.ious_bev), 4) if self.ious_bev else None
        d["missing"] = self.missing
        d["per_query"] = self.per_query
        d["unmatched_queries"] = self.unmatched
        d["ambiguous_queries"] = self.ambiguous
        return d


def grounding_accuracy(
    pred: Sequence[BoxFrame],
    truth: Sequence[BoxFrame],
    queries: Sequence[str] | None = None,
    thresholds: Sequence[float] = (0.25, 0.5),
    tolerance_ns: int = DEFAULT_STAMP_TOLERANCE_NS,
) -> GroundingResult:
    """Acc@IoU of the query objects (module docstring). ``queries`` default: every query that
    appears in the predictions. Predicted frames without a truth frame are not scored.

    Raises:
        DataError: predictions and truth in different frames.
    """
    if queries is None:
        queries = sorted({o.query for f in pred for o in f.objects if o.query})
    res = GroundingResult(tuple(float(t) for t in thresholds))
    res.hits = {t: 0 for t in res.thresholds}
    per_q: dict[str, list[float]] = defaultdict(list)
    unmatched: Counter = Counter()
    ambiguous: Counter = Counter()
    for p, t in match_frames(pred, truth, tolerance_ns):
        if t is None:
            continue
        _check_frames(p, t)
        for q in queries:
            targets = truth_for_query(q, t)
            if not targets:
                unmatched[q] += 1
                continue
            if len(targets) > 1:
                ambiguous[q] += 1
                continue
            gt = targets[0]
            objs = objects_for_query(q, p)
            if objs:
                o = objs[0]
                i3 = float(iou_3d_matrix([o.box], [gt.box])[0, 0])
                ib = float(iou_bev_matrix([o.box], [gt.box])[0, 0]) if _yaw_only(o) else 0.0
            else:
                o, i3, ib = None, 0.0, 0.0
                res.missing += 1
            res.n += 1
            res.ious_3d.append(i3)
            res.ious_bev.append(ib)
            per_q[q].append(i3)
            res.pairs.append((p.stamp_ns, q, o, gt))
            for thr in res.thresholds:
                res.hits[thr] += int(i3 >= thr)
    for q, ious in per_q.items():
        a = np.asarray(ious)
        entry: dict[str, Any] = {"n": int(a.size)}
        for thr in res.thresholds:
            entry[f"acc@{thr:g}"] = json_float(float((a >= thr).mean()), 4)
        entry["mean_iou_3d"] = json_float(float(a.mean()), 4)
        res.per_query[q] = entry
    res.unmatched, res.ambiguous = dict(unmatched), dict(ambiguous)
    return res


def _yaw_only(o: BoxRecord) -> bool:
    R = o.box.rotation
    return abs(R[2, 2] - 1.0) < 1e-6


# ----------------------------------------------------------------------------------------------
# BEV detection (candidates)
# ----------------------------------------------------------------------------------------------


@dataclass
class DetectionResult:
    """BEV detection quality at one IoU threshold.

    Attributes:
        iou_threshold: BEV IoU for a true positive.
        n_truth: truth objects counted (ignored ones excluded).
        n_pred: predictions counted (those matching only ignored truth excluded).
        tp, fp: true / false positives over all frames.
        ignored: predictions matched to ignored truth (neither TP nor FP).
        ap: average precision (all-point interpolation), None without truth.
        recall, precision: at the lowest score (all predictions kept).
        matches: (stamp_ns, pred record, truth record, BEV IoU) of every true positive.
        frame_counts: {stamp_ns: (tp, fp, n_truth)}.
    """

    iou_threshold: float
    n_truth: int = 0
    n_pred: int = 0
    tp: int = 0
    fp: int = 0
    ignored: int = 0
    ap: float | None = None
    recall: float | None = None
    precision: float | None = None
    matches: list[tuple[int, BoxRecord, BoxRecord, float]] = field(default_factory=list)
    frame_counts: dict[int, tuple[int, int, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "iou_threshold": self.iou_threshold,
            "ap": json_float(self.ap, 4),
            "recall": json_float(self.recall, 4),
            "precision": json_float(self.precision, 4),
            "tp": self.tp,
            "fp": self.fp,
            "n_truth": self.n_truth,
            "n_pred": self.n_pred,
            "ignored": self.ignored,
            "mean_matched_iou": json_float(np.mean([m[3] for m in self.matches]), 4)
            if self.matches
            else None,
        }


def average_precision(scores: np.ndarray, is_tp: np.ndarray, n_truth: int) -> float | None:
    """Area under the interpolated precision-recall curve (all recall points, VOC 2010+).

    Args:
        scores: (N,) detection scores; is_tp: (N,) bool; n_truth: truth objects (> 0).

    Returns:
        AP in [0, 1], or None when ``n_truth`` is 0.
    """
    if n_truth <= 0:
        return None
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    tp = np.asarray(is_tp, dtype=bool)[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / n_truth
    precision = ctp / np.maximum(ctp + cfp, 1)
    # precision envelope: max precision at any recall >= r
    env = np.maximum.accumulate(precision[::-1])[::-1]
    r = np.concatenate([[0.0], recall])
    return float(np.sum((r[1:] - r[:-1]) * env))


def bev_detection(
    pred: Sequence[BoxFrame],
    truth: Sequence[BoxFrame],
    iou_threshold: float = 0.5,
    *,
    pred_filter: Callable[[BoxRecord], bool] | None = None,
    truth_ignore: Callable[[BoxRecord], bool] | None = None,
    tolerance_ns: int = DEFAULT_STAMP_TOLERANCE_NS,
) -> DetectionResult:
    """BEV detection of the predicted boxes (module docstring). Frames without truth are
    skipped.

    Args:
        pred, truth: box files' frames (same ``frame_id``).
        iou_threshold: BEV IoU for a match, in (0, 1].
        pred_filter: keep only predictions for which it is true (e.g. specialist candidates).
        truth_ignore: truth for which it is true is "ignored" (DontCare semantics).
        tolerance_ns: stamp tolerance for frame pairing.

    Raises:
        DataError: predictions and truth in different frames, or a bad threshold.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise DataError(f"BEV IoU threshold must be in (0, 1], got {iou_threshold}")
    res = DetectionResult(float(iou_threshold))
    all_scores: list[float] = []
    all_tp: list[bool] = []
    for p, t in match_frames(pred, truth, tolerance_ns):
        if t is None:
            continue
        _check_frames(p, t)
        P = [o for o in p.objects if pred_filter is None or pred_filter(o)]
        P.sort(key=lambda o: -o.score)
        ign = [truth_ignore is not None and truth_ignore(o) for o in t.objects]
        T = [o for o, i in zip(t.objects, ign, strict=True) if not i]
        I = [o for o, i in zip(t.objects, ign, strict=True) if i]  # noqa: E741
        res.n_truth += len(T)
        B = iou_bev_matrix([o.box for o in P], [o.box for o in T]) if P and T else None
        Bi = iou_bev_matrix([o.box for o in P], [o.box for o in I]) if P and I else None
        taken = np.zeros(len(T), dtype=bool)
        ftp = ffp = 0
        for k, o in enumerate(P):  # per object (not per point): greedy by score, VOC protocol
            j = -1
            if B is not None:
                row = np.where(taken, -1.0, B[k])
                j = int(row.argmax())
                if row[j] < iou_threshold:
                    j = -1
            if j >= 0:
                taken[j] = True
                ftp += 1
                res.matches.append((p.stamp_ns, o, T[j], float(B[k, j])))
                all_scores.append(o.score)
                all_tp.append(True)
            elif Bi is not None and Bi[k].max() >= iou_threshold:
                res.ignored += 1
            else:
                ffp += 1
                all_scores.append(o.score)
                all_tp.append(False)
        res.tp += ftp
        res.fp += ffp
        res.frame_counts[p.stamp_ns] = (ftp, ffp, len(T))
    res.n_pred = res.tp + res.fp
    if res.n_truth:
        res.ap = average_precision(np.array(all_scores), np.array(all_tp, bool), res.n_truth)
        res.recall = res.tp / res.n_truth
    if res.n_pred:
        res.precision = res.tp / res.n_pred
    return res


# ----------------------------------------------------------------------------------------------
# distances
# ----------------------------------------------------------------------------------------------


@dataclass
class ErrorStats:
    """Errors of predicted against true values (metres for distances).

    Attributes:
        n: number of pairs.
        abs_mean, abs_median, abs_p90, abs_max: absolute error |pred - truth|.
        rel_mean, rel_median: |pred - truth| / truth (pairs with truth > 0).
        bias: mean signed error (pred - truth).
    """

    n: int = 0
    abs_mean: float | None = None
    abs_median: float | None = None
    abs_p90: float | None = None
    abs_max: float | None = None
    rel_mean: float | None = None
    rel_median: float | None = None
    bias: float | None = None

    @classmethod
    def of(cls, pred: Sequence[float], truth: Sequence[float]) -> ErrorStats:
        p = np.asarray(pred, dtype=np.float64).reshape(-1)
        t = np.asarray(truth, dtype=np.float64).reshape(-1)
        if p.shape != t.shape:
            raise DataError(f"{p.size} predicted values but {t.size} true values")
        ok = np.isfinite(p) & np.isfinite(t)
        p, t = p[ok], t[ok]
        if not p.size:
            return cls()
        err = p - t
        a = np.abs(err)
        pos = t > 0
        rel = a[pos] / t[pos]
        return cls(
            n=int(p.size),
            abs_mean=float(a.mean()),
            abs_median=float(np.median(a)),
            abs_p90=float(np.percentile(a, 90)),
            abs_max=float(a.max()),
            rel_mean=float(rel.mean()) if rel.size else None,
            rel_median=float(np.median(rel)) if rel.size else None,
            bias=float(err.mean()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: (v if k == "n" else json_float(v, 4)) for k, v in self.__dict__.items()}


def _origin(frame: BoxFrame, source: str) -> np.ndarray | None:
    origins = frame.extra.get("sensor_origins") or {}
    key = "lidar" if source in LIDAR_SOURCES else "camera"
    o = origins.get(key)
    return None if o is None else np.asarray(o, dtype=np.float64)


def sensor_distance_errors(
    pairs: Sequence[tuple[BoxFrame, BoxRecord, BoxRecord]],
) -> ErrorStats:
    """Errors of predicted sensor->object distances over (pred frame, pred, truth) pairs.

    The true distance is from the origin of the sensor the prediction measured from
    (``sensor_origins`` of the predicted frame: "lidar" for LiDAR candidates, else "camera") to
    the truth box centre. Pairs without a ``distance`` or a known origin are skipped.
    """
    pv, tv = [], []
    for frame, o, gt in pairs:
        d = o.extra.get("distance")
        origin = _origin(frame, str(o.extra.get("source", "")))
        if d is None or origin is None:
            continue
        pv.append(float(d))
        tv.append(float(np.linalg.norm(gt.box.center - origin)))
    return ErrorStats.of(pv, tv)


def pair_distance_errors(
    pred: Sequence[BoxFrame],
    truth: Sequence[BoxFrame],
    pairs: Sequence[tuple[str, str]],
    tolerance_ns: int = DEFAULT_STAMP_TOLERANCE_NS,
) -> ErrorStats:
    """Errors of centre-to-centre distances between the objects of query pairs (both queries
    grounded, both naming exactly one truth object)."""
    pv, tv = [], []
    for p, t in match_frames(pred, truth, tolerance_ns):
        if t is None:
            continue
        _check_frames(p, t)
        for qa, qb in pairs:
            ta, tb = truth_for_query(qa, t), truth_for_query(qb, t)
            oa, ob = objects_for_query(qa, p), objects_for_query(qb, p)
            if len(ta) != 1 or len(tb) != 1 or not oa or not ob:
                continue
            pv.append(float(np.linalg.norm(oa[0].box.center - ob[0].box.center)))
            tv.append(float(np.linalg.norm(ta[0].box.center - tb[0].box.center)))
    return ErrorStats.of(pv, tv)


# ----------------------------------------------------------------------------------------------
# engine counters, latency, progress curves
# ----------------------------------------------------------------------------------------------


def parse_failure_stats(stats: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parse-failure rate from the VLM engine's counters (``EngineStats.as_dict()``).

    Returns:
        {"queries", "parse_failures", "rate", "reasons"}; zeros/None without a model.
    """
    if not stats:
        return {"queries": 0, "parse_failures": 0, "rate": None, "reasons": {}}
    q = int(stats.get("queries", 0))
    f = int(stats.get("parse_failures", 0))
    return {
        "queries": q,
        "parse_failures": f,
        "rate": json_float(f / q, 4) if q else None,
        "reasons": dict(stats.get("failure_reasons", {})),
    }


def latency_percentiles(
    values_ms: Sequence[float], percentiles: Sequence[float] = (50, 90, 95, 99)
) -> dict[str, Any]:
    """{"n", "mean", "max", "p50", ...} of latencies in milliseconds (NaNs dropped)."""
    a = np.asarray(list(values_ms), dtype=np.float64)
    a = a[np.isfinite(a)]
    out: dict[str, Any] = {"n": int(a.size)}
    out["mean"] = json_float(a.mean(), 3) if a.size else None
    out["max"] = json_float(a.max(), 3) if a.size else None
    for q in percentiles:
        out[f"p{q:g}"] = json_float(np.percentile(a, q), 3) if a.size else None
    return out


def value_order_correlation(values: Sequence[float]) -> float | None:
    """VOC (GVL): Spearman rank correlation between values and their frame order; None for
    fewer than 2 values or a constant curve."""
    from scipy.stats import spearmanr

    v = np.asarray(list(values), dtype=np.float64)
    if v.size < 2 or np.all(v == v[0]) or not np.all(np.isfinite(v)):
        return None
    return float(spearmanr(np.arange(v.size), v).statistic)
