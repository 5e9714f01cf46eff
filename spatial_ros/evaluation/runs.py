"""Evaluation runs behind ``spatial-ros eval`` (bag replay, recorded live outputs, KITTI) and
``spatial-ros demo``: predictions -> metrics.json + the report.

Bag mode: replay the bag through the perception pipeline (``replay.replay_bag``), or read
predictions a live node published (``--pred-bag``, recorded by ``spatial-ros play --record``)
or a box file (``--pred``); score them against a truth box file; render the report.

KITTI mode: every KITTI-format frame under a folder (``datasets.kitti.iter_kitti_frames``)
through the pipeline with the street LiDAR preset in the ``velodyne`` frame; the specialist
candidates that project into image_2 are written as KITTI label_2 prediction files (type,
truncation -1, occlusion -1, alpha, 2D box, h w l, x y z of the bottom centre in the rectified
camera frame, rotation_y, score), everything as box files, BEV recall/AP against label_2.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spatial_ros.boxfile import BoxFrame, BoxRecord, read_box_file, write_box_file
from spatial_ros.errors import ConfigError, DataError
from spatial_ros.evaluation import metrics as M
from spatial_ros.evaluation.replay import (
    DEFAULT_OBJECTS_TOPIC,
    ReplayResult,
    Snapshot,
    predictions_from_bag,
    replay_bag,
    replay_frames,
    sensor_origins,
    snapshot_of,
)
from spatial_ros.geometry.iou import iou_3d

log = logging.getLogger(__name__)

# KITTI label_2 types for specialist labels (``specialists.classify``: lower-case class names);
# unlabelled clusters and classes KITTI lacks (pole, misc) become "Misc".
KITTI_TYPES = {
    "car": "Car",
    "van": "Van",
    "truck": "Truck",
    "pedestrian": "Pedestrian",
    "person_sitting": "Person_sitting",
    "cyclist": "Cyclist",
    "tram": "Tram",
}


def _thresholds(name: str, values: Sequence[float]) -> tuple[float, ...]:
    vals = tuple(float(v) for v in values)
    if not vals or any(not 0.0 < v <= 1.0 for v in vals):
        raise ConfigError(f"{name} must be IoU thresholds in (0, 1], got {list(values)}")
    return vals


@dataclass
class EvalConfig:
    """One evaluation run (the ``spatial-ros eval`` arguments).

    Attributes:
        out_dir: output directory (metrics.json, predictions.jsonl, report.html, ...).
        bag: rosbag2 directory (MCAP or sqlite3) with the sensor data.
        kitti: KITTI-format folder (excludes ``bag``).
        gt: truth box file (JSONL); None = predictions only.
        pred: an existing predictions box file to score instead of running the pipeline.
        pred_bag: a bag of a live node's GroundedObject3DArray messages (``play --record``).
        pred_topic: topic of those messages.
        queries: phrases to ground; pairs: 'subject | object' query pairs for distances.
        model: model directory ('' = the embedded default; KITTI: none, LiDAR specialist only).
        specialists_only: no model.
        output_frame: z-up frame of the boxes (must be the truth's frame).
        lidar_preset: "auto", "tabletop" or "street" (default: street for KITTI, else auto).
        device, max_new_tokens, vcot, referring: VLM settings (see PerceptionConfig).
        model_options: further model options (family, dtype, attn_implementation,
            trust_remote_code, threads: ``vlm.backends.options.MODEL_OPTIONS``).
        image_topic, info_topic, cloud_topic, depth_topic, slop: bag topics and sync slop (s).
        max_frames: stop after N frames (0 = all).
        grounding_iou: 3D IoU thresholds of grounding accuracy.
        bev_iou: BEV IoU thresholds of candidate detection.
        min_visible: truth objects with a recorded ``visible_fraction`` below this are ignored
            in detection metrics (out of the camera's view).
        report, report_frames: render report.html, with this many frames drawn.
        reward: reward labels (parquet path) for the curves.
        reward_reach_stage: the labels include the reach stage (labelled with ``tool_frame``):
            the curves compare them with the simulator's staged truth progress.
        truth_detail: simulator truth_detail.jsonl (true progress); default: next to ``gt``.
        backend_options: PerceptionConfig fields of the VLM backend (``backend: openai``,
            ``server_url``... see ``spatial_ros.vlm.served_config``).
    """

    out_dir: str
    bag: str | None = None
    kitti: str | None = None
    gt: str | None = None
    pred: str | None = None
    pred_bag: str | None = None
    pred_topic: str = DEFAULT_OBJECTS_TOPIC
    queries: list[str] = field(default_factory=list)
    pairs: list[str] = field(default_factory=list)
    model: str = ""
    specialists_only: bool = False
    output_frame: str | None = None
    lidar_preset: str | None = None
    device: str = "auto"
    max_new_tokens: int = 48
    vcot: bool = False
    referring: str = "program"
    model_options: dict = field(default_factory=dict)
    image_topic: str = "/camera/image_raw"
    info_topic: str = "/camera/camera_info"
    cloud_topic: str = "/lidar/points"
    depth_topic: str = ""
    slop: float = 0.05
    max_frames: int = 0
    grounding_iou: tuple[float, ...] = (0.25, 0.5)
    bev_iou: tuple[float, ...] | None = None
    min_visible: float = 0.01
    report: bool = True
    report_frames: int = 4
    reward: str | None = None
    reward_reach_stage: bool = False
    backend_options: dict = field(default_factory=dict)
    truth_detail: str | None = None

    def __post_init__(self) -> None:
        from spatial_ros.perception import normalize_queries, parse_pair

        if self.bag and self.kitti:
            raise ConfigError(f"give --bag ({self.bag}) or --kitti ({self.kitti}), not both")
        if not (self.bag or self.kitti or self.pred or self.pred_bag):
            raise ConfigError(
                "nothing to evaluate: give --bag BAG or --kitti DIR (or --pred / "
                "--pred-bag with recorded predictions)"
            )
        if self.kitti and (self.pred or self.pred_bag):
            raise ConfigError(
                "--pred / --pred-bag score recorded predictions of a bag; "
                "they do not combine with --kitti"
            )
        if self.pred and self.pred_bag:
            raise ConfigError(
                f"give --pred ({self.pred}) or --pred-bag ({self.pred_bag}), not both"
            )
        self.queries = normalize_queries(self.queries)
        self.pairs = [parse_pair(p) for p in self.pairs]
        if self.kitti and not self.model and self.backend_options.get("backend") != "openai":
            self.specialists_only = True  # KITTI: the LiDAR specialist, the VLM when a model
        if self.specialists_only and self.queries and not (self.pred or self.pred_bag):
            raise ConfigError(
                f"queries {self.queries} need a model; without one (specialists "
                "only) drop --query or give --model DIR"
            )
        if self.output_frame is None:
            self.output_frame = "velodyne" if self.kitti else "base_link"
        if self.lidar_preset is None:
            self.lidar_preset = "street" if self.kitti else "auto"
        self.grounding_iou = _thresholds("grounding_iou", self.grounding_iou)
        self.bev_iou = _thresholds(
            "bev_iou", self.bev_iou or ((0.5, 0.7) if self.kitti else (0.5,))
        )
        if not 0.0 <= self.min_visible <= 1.0:
            raise ConfigError(f"min_visible must be in [0, 1], got {self.min_visible}")
        if self.max_frames < 0 or self.report_frames < 0:
            raise ConfigError(
                f"max_frames ({self.max_frames}) and report_frames "
                f"({self.report_frames}) must be >= 0"
            )

    @property
    def mode(self) -> str:
        if self.pred_bag:
            return "recorded live outputs"
        if self.pred:
            return "predictions file"
        return "specialists only" if self.specialists_only else "vlm"

    def perception_config(self):
        """The PerceptionConfig of this run (the node's dataclass)."""
        from spatial_ros.perception import PerceptionConfig

        return PerceptionConfig(
            image_topic=self.image_topic,
            camera_info_topic=self.info_topic,
            cloud_topic=self.cloud_topic,
            depth_topic=self.depth_topic,
            slop=self.slop,
            output_frame=self.output_frame,
            queries=self.queries,
            use_vlm=not self.specialists_only,
            model_path=self.model,
            device=self.device,
            max_new_tokens=self.max_new_tokens,
            vcot=self.vcot,
            referring=self.referring,
            lidar_preset=self.lidar_preset,
            relation_pairs=self.pairs,
            **self.model_options,
            **self.backend_options,
        )


@dataclass
class EvalOutcome:
    """What an evaluation run wrote and measured."""

    metrics: dict[str, Any]
    paths: dict[str, Path]
    predictions: list[BoxFrame]
    truth: list[BoxFrame] | None
    replay: ReplayResult | None = None
    report_s: float | None = None


# ----------------------------------------------------------------------------------------------
# metrics of a run
# ----------------------------------------------------------------------------------------------


def summarize(
    predictions: Sequence[BoxFrame],
    truth: Sequence[BoxFrame] | None,
    *,
    queries: Sequence[str],
    pairs: Sequence[str] = (),
    candidates: Sequence[BoxFrame] | None = None,
    records: Sequence[Any] = (),
    engine_stats: dict[str, Any] | None = None,
    grounding_iou: Sequence[float] = (0.25, 0.5),
    bev_iou: Sequence[float] = (0.5,),
    min_visible: float = 0.01,
    detection_classes: Sequence[str] = (),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics (metrics.json sections) and per-frame table rows of a run.

    Candidates for BEV detection are ``candidates`` when given, else the predicted objects that
    ground no query (specialists-only output). ``detection_classes`` adds per-class detection
    (e.g. "Car": predictions labelled car vs Car truth, other truth ignored).
    """
    m: dict[str, Any] = {"frames": {"predicted": len(predictions)}}
    dets: dict[str, M.DetectionResult] = {}
    g = None
    cand = (
        list(candidates)
        if candidates is not None
        else [
            BoxFrame(f.stamp_ns, f.frame_id, [o for o in f.objects if not o.query], f.extra)
            for f in predictions
        ]
    )
    if truth:
        matched = [t for _, t in M.match_frames(predictions, truth) if t is not None]
        m["frames"]["with_truth"] = len(matched)
        if queries:
            g = M.grounding_accuracy(predictions, truth, queries, grounding_iou)
            m["grounding"] = g.to_dict()

        def hidden(o: BoxRecord) -> bool:
            v = o.extra.get("visible_fraction")
            return v is not None and float(v) < min_visible

        # recorded VLM outputs carry no candidates: no detection metrics rather than recall 0
        has_cands = candidates is not None or any(f.objects for f in cand)
        for thr in bev_iou if has_cands else ():
            dets[f"all@{thr:g}"] = M.bev_detection(cand, truth, thr, truth_ignore=hidden)
            for cls in detection_classes:
                key = cls.lower()
                dets[f"{cls}@{thr:g}"] = M.bev_detection(
                    cand,
                    truth,
                    thr,
                    pred_filter=lambda o, k=key: o.label.lower() == k,
                    truth_ignore=lambda o, k=key: hidden(o) or o.label.lower() != k,
                )
        m["detection_bev"] = {k: d.to_dict() for k, d in dets.items()}
        by_stamp = {f.stamp_ns: f for f in predictions}
        cand_by = {f.stamp_ns: f for f in cand}
        first = dets.get(f"all@{bev_iou[0]:g}")
        m["distance"] = {
            "sensor_to_query_object": M.sensor_distance_errors(
                [(by_stamp[s], o, gt) for s, _, o, gt in (g.pairs if g else []) if o is not None]
            ).to_dict()
            if g
            else None,
            "sensor_to_candidate": M.sensor_distance_errors(
                [(cand_by[s], o, gt) for s, o, gt, _ in first.matches]
            ).to_dict()
            if first
            else None,
            "object_pairs": M.pair_distance_errors(
                predictions, truth, [tuple(p.split("|")) for p in pairs]
            ).to_dict()
            if pairs
            else None,
        }
    else:
        m["frames"]["with_truth"] = 0
    m["parse_failures"] = M.parse_failure_stats(engine_stats)
    if records:
        stages = sorted({k for r in records for k in r.timings_ms})
        m["latency_ms"] = {
            s: M.latency_percentiles([r.timings_ms.get(s, np.nan) for r in records])
            for s in stages
        }
    rows = per_frame_rows(
        predictions, truth, queries, records, dets.get(f"all@{bev_iou[0]:g}"), cand
    )
    return m, rows


def per_frame_rows(predictions, truth, queries, records, det, candidates) -> list[dict[str, Any]]:
    """One row per predicted frame: counts, TP/FP, per-query 3D IoU, latency."""
    rec_by = {r.stamp_ns: r for r in records}
    cand_by = {f.stamp_ns: f for f in candidates}
    rows = []
    for p, t in M.match_frames(predictions, truth or []):
        r = rec_by.get(p.stamp_ns)
        row: dict[str, Any] = {
            "frame": r.index if r else p.extra.get("frame_index", ""),
            "stamp_ns": p.stamp_ns,
            "objects": len(p.objects),
            "candidates": len(cand_by[p.stamp_ns].objects) if p.stamp_ns in cand_by else None,
            "truth": len(t.objects) if t else None,
        }
        if det is not None:
            tp, fp, _ = det.frame_counts.get(p.stamp_ns, (None, None, None))
            row["tp"], row["fp"] = tp, fp
        for q in queries:
            objs = M.objects_for_query(q, p)
            tgt = M.truth_for_query(q, t) if t else []
            if objs and len(tgt) == 1:
                row[f"IoU {q}"] = round(iou_3d(objs[0].box, tgt[0].box), 3)
            else:
                row[f"IoU {q}"] = "no object" if not objs else None
        row["total_ms"] = M.json_float(r.timings_ms.get("total"), 1) if r else None
        rows.append(row)
    return rows


def truth_progress_of(
    detail_path: str | os.PathLike | None, staged: bool = False
) -> list[tuple[int, float, int]] | None:
    """(frame index, true progress, stamp_ns) from a simulator truth_detail.jsonl, or None.
    ``staged``: the progress with the reach stage (``TrajectoryState.staged_progress``)."""
    from spatial_ros.reward.goal_measure import staged_progress

    if not detail_path or not Path(detail_path).is_file():
        return None
    out = []
    try:
        for line in Path(detail_path).read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                tr = d.get("trajectory")
                if tr and tr.get("progress") is not None:
                    p = float(tr["progress"])
                    if staged:
                        p = staged_progress(p, float(tr["reach"]))
                    out.append((int(d["index"]), p, int(d["stamp_ns"])))
    except (ValueError, KeyError) as e:
        raise DataError(f"malformed truth detail {detail_path}: {e}") from None
    return out or None


def _reward_metrics(reward: Any) -> dict[str, Any] | None:
    if reward is None:
        return None
    from spatial_ros.evaluation.report import load_reward_curve

    c = load_reward_curve(reward)
    return {
        "frames": int(c.frame_index.size),
        "voc_progress": M.value_order_correlation(c.progress),
        "voc_reward": M.value_order_correlation(c.reward),
        "final_progress": float(c.progress[-1]) if c.progress.size else None,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _finish(
    cfg: EvalConfig,
    metrics: dict[str, Any],
    rows,
    *,
    predictions,
    truth,
    candidates,
    snapshots,
    records,
    paths: dict[str, Path],
    reward=None,
    truth_progress=None,
    replay=None,
    title="",
) -> EvalOutcome:
    out = Path(cfg.out_dir)
    reward = reward if reward is not None else cfg.reward
    rm = _reward_metrics(reward)
    if rm:
        metrics["reward"] = rm
    metrics["per_frame"] = rows
    paths["metrics"] = out / "metrics.json"
    _write_json(paths["metrics"], metrics)
    report_s = None
    if cfg.report:
        from spatial_ros.evaluation.report import write_report

        t0 = time.perf_counter()
        paths["report"] = write_report(
            out,
            metrics=metrics,
            snapshots=snapshots,
            predictions=predictions,
            truth=truth,
            candidates=candidates,
            records=records,
            per_frame=rows,
            reward=reward,
            truth_progress=truth_progress,
            title=title or "spatial_ros evaluation",
        )
        report_s = time.perf_counter() - t0
    return EvalOutcome(
        metrics, paths, list(predictions), list(truth) if truth else None, replay, report_s
    )


def _source(cfg: EvalConfig) -> dict[str, Any]:
    return {
        "bag": cfg.bag,
        "kitti": cfg.kitti,
        "gt": cfg.gt,
        "mode": cfg.mode,
        "model": None
        if cfg.specialists_only or cfg.pred or cfg.pred_bag
        else (cfg.model or "models/default"),
        "queries": list(cfg.queries),
        "output_frame": cfg.output_frame,
        "lidar_preset": cfg.lidar_preset,
    }


# ----------------------------------------------------------------------------------------------
# bag mode
# ----------------------------------------------------------------------------------------------


def _snapshots_from_bag(cfg: EvalConfig, stamps: Sequence[int]) -> tuple[list[Snapshot], dict]:
    """Snapshots of the bag frames at (evenly spread) ``stamps``, and the sensor origins of every
    bag frame by stamp (for predictions recorded without them)."""
    from spatial_ros.bagio import frames_from_bag

    want = sorted(stamps)
    if cfg.report_frames and want:
        idx = np.linspace(0, len(want) - 1, min(cfg.report_frames, len(want))).astype(int)
        keep = {want[i] for i in idx}
    else:
        keep = set()
    snaps, origins = [], {}
    for fr in frames_from_bag(
        cfg.bag,
        image_topic=cfg.image_topic,
        info_topic=cfg.info_topic,
        cloud_topic=cfg.cloud_topic or None,
        depth_topic=cfg.depth_topic or None,
        slop_s=cfg.slop,
    ):
        origins[fr.stamp_ns] = sensor_origins(fr, cfg.output_frame)
        if fr.stamp_ns in keep:
            snaps.append(snapshot_of(fr, cfg.output_frame))
    return snaps, origins


def run_bag_eval(cfg: EvalConfig, backend=None, reward: Any = None) -> EvalOutcome:
    """Evaluate a bag (module docstring). ``backend`` replaces the model (tests, a shared one);
    ``reward`` gives reward labels in memory (rows of (frame_index, progress, reward)) instead
    of ``cfg.reward``.

    Raises:
        DataError: unreadable bag / truth / predictions; ModelError: the model cannot load.
    """
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = read_box_file(cfg.gt) if cfg.gt else None
    paths: dict[str, Path] = {}
    replay = None
    if cfg.pred or cfg.pred_bag:
        preds = (
            read_box_file(cfg.pred)
            if cfg.pred
            else predictions_from_bag(cfg.pred_bag, cfg.pred_topic)
        )
        if cfg.max_frames:
            preds = preds[: cfg.max_frames]
        snaps, origins = (
            _snapshots_from_bag(cfg, [p.stamp_ns for p in preds]) if cfg.bag else ([], {})
        )
        for p in preds:
            if "sensor_origins" not in p.extra and p.stamp_ns in origins:
                p.extra["sensor_origins"] = origins[p.stamp_ns]
        candidates, records, stats = None, [], None
        queries = cfg.queries or sorted({o.query for f in preds for o in f.objects if o.query})
    else:
        replay = replay_bag(
            cfg.bag,
            cfg.perception_config(),
            cfg.queries,
            backend=backend,
            max_frames=cfg.max_frames,
            snapshots=cfg.report_frames,
        )
        preds, candidates = replay.predictions, replay.candidates
        snaps, records, stats = replay.snapshots, replay.records, replay.engine_stats
        queries = cfg.queries
    paths["predictions"] = out / "predictions.jsonl"
    write_box_file(paths["predictions"], preds)
    if candidates is not None:
        paths["candidates"] = out / "candidates.jsonl"
        write_box_file(paths["candidates"], candidates)
    metrics, rows = summarize(
        preds,
        truth,
        queries=queries,
        pairs=cfg.pairs,
        candidates=candidates,
        records=records,
        engine_stats=stats,
        grounding_iou=cfg.grounding_iou,
        bev_iou=cfg.bev_iou,
        min_visible=cfg.min_visible,
    )
    metrics = {"source": _source(cfg), **metrics}
    if replay is not None:
        metrics["throughput"] = {
            "frames": replay.frames,
            "elapsed_s": round(replay.elapsed_s, 3),
            "frames_per_s": M.json_float(replay.fps, 3),
        }
    detail = cfg.truth_detail or (
        str(Path(cfg.gt).with_name("truth_detail.jsonl")) if cfg.gt else None
    )
    return _finish(
        cfg,
        metrics,
        rows,
        predictions=preds,
        truth=truth,
        candidates=candidates,
        snapshots=snaps,
        records=records,
        paths=paths,
        replay=replay,
        reward=reward,
        truth_progress=truth_progress_of(detail, cfg.reward_reach_stage),
        title=f"spatial_ros evaluation: {Path(cfg.bag or cfg.pred or cfg.pred_bag).name}",
    )


# ----------------------------------------------------------------------------------------------
# KITTI mode
# ----------------------------------------------------------------------------------------------


def count_kitti_frames(root: str | os.PathLike) -> int:
    """Number of frames ``iter_kitti_frames(root)`` yields (without loading them)."""
    r = Path(root)
    if (r / "image_2").is_dir():
        return len(list((r / "image_2").glob("*.png")))
    if (r / "image_2.png").is_file():
        return 1
    return (
        sum(1 for d in r.iterdir() if d.is_dir() and (d / "image_2.png").is_file())
        if r.is_dir()
        else 0
    )


def kitti_type(label: str) -> str:
    """KITTI label_2 type of a specialist label ("car" -> "Car"; unknown -> "Misc")."""
    return KITTI_TYPES.get(label.lower(), "Misc")


def dontcare_overlap(boxes: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """(N,) largest share of each 2D box's area inside any DontCare region (x1, y1, x2, y2 px);
    KITTI's evaluation ignores detections with a share > 0.5."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    r = np.asarray(regions, dtype=np.float64).reshape(-1, 4)
    if not len(b) or not len(r):
        return np.zeros(len(b))
    w = np.minimum(b[:, None, 2], r[None, :, 2]) - np.maximum(b[:, None, 0], r[None, :, 0])
    h = np.minimum(b[:, None, 3], r[None, :, 3]) - np.maximum(b[:, None, 1], r[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-9)
    return (inter / area[:, None]).max(axis=1)


def run_kitti_eval(cfg: EvalConfig, backend=None) -> EvalOutcome:
    """Evaluate every KITTI-format frame under ``cfg.kitti`` (module docstring).

    Raises:
        DataError: no KITTI frames, duplicate frame ids, malformed files.
    """
    from spatial_ros.datasets.kitti import KittiLabel, iter_kitti_frames, write_kitti_label
    from spatial_ros.perception import PerceptionPipeline

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    label_dir = out / "label_2"
    kframes: dict[int, Any] = {}
    truth: list[BoxFrame] = []
    written = skipped = 0
    dontcare: set[tuple[int, str]] = set()

    def frames():
        for i, kf in enumerate(iter_kitti_frames(cfg.kitti)):
            stamp = int(kf.frame_id) if kf.frame_id.isdigit() else i
            if stamp in kframes:
                raise DataError(
                    f"two KITTI frames with id {kf.frame_id} under {cfg.kitti}; "
                    "evaluate them separately"
                )
            kframes[stamp] = kf
            if kf.labels:
                recs = [
                    BoxRecord(
                        f"{lab.type.lower()}_{k}",
                        lab.type,
                        lab.box,
                        None,
                        1.0,
                        {
                            "truncated": lab.truncated,
                            "occluded": lab.occluded,
                            "box_2d": [float(v) for v in lab.box_2d],
                            "lidar_points": _points_in(lab.box, kf.points),
                        },
                    )
                    for k, lab in enumerate(kf.labels)
                    if lab.box is not None
                ]
                truth.append(BoxFrame(stamp, cfg.output_frame, recs, {"kitti_frame": kf.frame_id}))
            yield kf.sensor_frame(stamp_ns=stamp, index=i)

    def on_result(frame, res) -> None:
        nonlocal written, skipped
        kf = kframes[frame.stamp_ns]
        labels = []
        for c in res.candidates:
            box = c.box
            if box.frame_id and box.frame_id != cfg.output_frame:
                box = box.transformed(
                    frame.transforms.lookup(cfg.output_frame, box.frame_id), cfg.output_frame
                )
            if c.box_2d is None:  # not in image_2: KITTI evaluates the camera's view only
                skipped += 1
                continue
            labels.append(
                KittiLabel.from_box(
                    box,
                    kf.calib,
                    kitti_type(c.label),
                    score=float(c.score),
                    box_2d=c.box_2d,
                    truncated=-1.0,
                    occluded=-1,
                )
            )
        write_kitti_label(label_dir / f"{kf.frame_id}.txt", labels)
        written += len(labels)
        dc = [lab.box_2d for lab in kf.labels if lab.is_dontcare]
        if dc and labels:
            inside = dontcare_overlap(
                np.array([c.box_2d for c in res.candidates if c.box_2d is not None]), np.array(dc)
            )
            ids = [c.id for c in res.candidates if c.box_2d is not None]
            dontcare.update(
                (frame.stamp_ns, i) for i, f in zip(ids, inside, strict=True) if f > 0.5
            )

    n = count_kitti_frames(cfg.kitti)
    if n == 0:
        raise DataError(
            f"no KITTI frames under {cfg.kitti}: expected image_2/ (KITTI layout) or "
            "frame folders containing image_2.png"
        )
    pcfg = cfg.perception_config()
    pipe = PerceptionPipeline(pcfg, backend=backend)
    pipe.load()
    try:
        replay = replay_frames(
            frames(),
            pipe,
            cfg.queries,
            max_frames=cfg.max_frames,
            snapshots=cfg.report_frames,
            expected_frames=n,
            on_result=on_result,
        )
    finally:
        pipe.unload()
    paths = replay.write(out)
    paths["label_2"] = label_dir
    if truth:
        paths["truth"] = out / "truth.jsonl"
        write_box_file(paths["truth"], truth)
    # Score the predictions written (in image_2), less those inside DontCare regions (KITTI's
    # evaluation ignores them).
    in_view = [
        BoxFrame(
            f.stamp_ns,
            f.frame_id,
            [o for o in f.objects if "box_2d" in o.extra and (f.stamp_ns, o.id) not in dontcare],
            f.extra,
        )
        for f in replay.candidates
    ]
    metrics, rows = summarize(
        replay.predictions,
        truth or None,
        queries=cfg.queries,
        pairs=cfg.pairs,
        candidates=in_view,
        records=replay.records,
        engine_stats=replay.engine_stats,
        grounding_iou=cfg.grounding_iou,
        bev_iou=cfg.bev_iou,
        min_visible=0.0,
    )
    metrics = {"source": _source(cfg), **metrics}
    metrics["kitti"] = {
        "frames": replay.frames,
        "label_files": replay.frames,
        "predictions_written": written,
        "outside_image_skipped": skipped,
        "in_dontcare_ignored": len(dontcare),
        "frames_with_labels": len(truth),
    }
    if truth:
        metrics["kitti"].update(_kitti_class_metrics(in_view, truth, cfg.bev_iou,
                                                     metrics.setdefault("detection_bev", {})))
    metrics["throughput"] = {
        "frames": replay.frames,
        "elapsed_s": round(replay.elapsed_s, 3),
        "frames_per_s": M.json_float(replay.fps, 3),
    }
    return _finish(
        cfg,
        metrics,
        rows,
        predictions=replay.predictions,
        truth=truth or None,
        candidates=in_view,
        snapshots=replay.snapshots,
        records=replay.records,
        paths=paths,
        replay=replay,
        title=f"spatial_ros KITTI evaluation: {cfg.kitti}",
    )


def _points_in(box, points) -> int:
    """LiDAR points inside a label box (0 without a scan)."""
    if points is None or box is None:
        return 0
    return int(np.count_nonzero(box.contains(np.asarray(points)[:, :3])))


def _kitti_class_metrics(cand, truth, thresholds, detection_bev: dict) -> dict[str, Any]:
    """Class-aware detection per KITTI class (added to ``detection_bev`` as "<Class>@<iou>"),
    the class-aware summary per threshold, and the targets by LiDAR support
    (``kitti_metrics``)."""
    from spatial_ros.evaluation import kitti_metrics as K

    aware = {}
    for thr in thresholds:
        per_class = K.class_detection(cand, truth, thr, kitti_type)
        for cls, d in per_class.items():
            detection_bev[f"{cls}@{thr:g}"] = d.to_dict()
        aware[f"{thr:g}"] = K.class_aware_summary(per_class)
    return {"class_aware": aware,
            "targets": K.point_targets(cand, truth, kitti_type, iou=0.5, min_points=50)}


def run_eval(cfg: EvalConfig, backend=None) -> EvalOutcome:
    """``run_kitti_eval`` or ``run_bag_eval`` depending on the config."""
    return run_kitti_eval(cfg, backend) if cfg.kitti else run_bag_eval(cfg, backend)
