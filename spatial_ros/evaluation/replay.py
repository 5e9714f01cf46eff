"""Offline replay: bag -> SensorFrames -> PerceptionPipeline -> box-file predictions + records.

The frames come from ``spatial_ros.bagio.frames_from_bag`` (the live node's synchronizer,
CameraInfo cache and message decoders) and go through the same ``PerceptionPipeline.process``
the perception node calls, so a replay gives what the node publishes on the same frames
(test/test_eval_live.py checks it over real DDS). No ROS graph is needed.

Outputs per frame: the grounded objects as a ``BoxFrame`` (the shared JSONL box format with the
extras of ``spatial-ros ground``: source, distance, box_2d, frame), the specialist candidates as
another ``BoxFrame`` (for BEV detection metrics in VLM mode), a ``FrameRecord`` (timings,
counts), and for a few frames a ``Snapshot`` (image, camera, points) for the report. Each
predicted frame carries ``sensor_origins``: the camera and LiDAR origins in the output frame
(metres), which distance metrics need.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spatial_ros.boxfile import BoxFrame, BoxRecord, write_box_file
from spatial_ros.errors import DataError
from spatial_ros.types import CameraIntrinsics, Candidate, SensorFrame

log = logging.getLogger(__name__)

DEFAULT_OBJECTS_TOPIC = "/perception_node/objects"


@dataclass
class FrameRecord:
    """What one replayed frame produced (for the per-frame table and latency metrics).

    Attributes:
        index: frame index in the source (bag order).
        stamp_ns: the source image's stamp.
        n_objects: published objects; n_candidates: specialist proposals.
        parse_failures: queries the VLM did not answer with a usable box.
        timings_ms: pipeline stage timings ("specialists", "grounding", "relations", "total").
    """

    index: int
    stamp_ns: int
    n_objects: int
    n_candidates: int
    parse_failures: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "stamp_ns": self.stamp_ns,
            "n_objects": self.n_objects,
            "n_candidates": self.n_candidates,
            "parse_failures": self.parse_failures,
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings_ms.items()},
        }


@dataclass(eq=False)
class Snapshot:
    """Sensor data of one frame kept for the report.

    Attributes:
        index, stamp_ns: frame index and image stamp.
        image: (H, W, 3) uint8 RGB.
        camera: intrinsics of ``image`` (optical frame).
        T_cam_from_out: 4x4, output frame -> camera optical frame.
        points: (N, 3) float32 LiDAR points in the output frame (subsampled), or None.
        output_frame: the z-up frame of the boxes and points.
    """

    index: int
    stamp_ns: int
    image: np.ndarray
    camera: CameraIntrinsics
    T_cam_from_out: np.ndarray
    points: np.ndarray | None
    output_frame: str


@dataclass
class ReplayResult:
    """Everything a replay produced (see module docstring)."""

    predictions: list[BoxFrame]
    candidates: list[BoxFrame]
    records: list[FrameRecord]
    snapshots: list[Snapshot]
    queries: list[str]
    elapsed_s: float
    engine_stats: dict[str, Any] | None = None

    @property
    def frames(self) -> int:
        return len(self.records)

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``predictions.jsonl`` and ``candidates.jsonl`` (box format) into ``out_dir``."""
        out = Path(out_dir)
        paths = {"predictions": out / "predictions.jsonl", "candidates": out / "candidates.jsonl"}
        write_box_file(paths["predictions"], self.predictions)
        write_box_file(paths["candidates"], self.candidates)
        return paths


def object_record(o, frame_index: int) -> BoxRecord:
    """GroundedObject -> BoxRecord with the ``spatial-ros ground`` extras (one definition)."""
    from spatial_ros.commands.ground import object_record as _record

    return _record(o, frame_index)


def candidate_record(c: Candidate, frame: SensorFrame, output_frame: str) -> BoxRecord:
    """A specialist candidate in ``output_frame`` as a BoxRecord (extras: source, distance from
    its sensor's origin, num_points, box_2d)."""
    tf = frame.transforms
    src = c.box.frame_id or frame.points_frame
    box = (
        c.box
        if src == output_frame
        else c.box.transformed(tf.lookup(output_frame, src), output_frame)
    )
    sensor = frame.points_frame if c.source == "lidar" else frame.camera.frame_id
    centre = tf.lookup(sensor, src) @ np.append(c.box.center, 1.0)
    extra: dict[str, Any] = {
        "source": c.source,
        "distance": float(np.linalg.norm(centre[:3])),
        "num_points": int(c.num_points),
        "frame": frame.index,
    }
    if c.box_2d is not None:
        extra["box_2d"] = [float(v) for v in c.box_2d]
    return BoxRecord(c.id, c.label, box, None, float(c.score), extra)


def sensor_origins(frame: SensorFrame, output_frame: str) -> dict[str, list[float]]:
    """Camera optical centre and LiDAR origin in ``output_frame`` (metres), where known."""
    tf = frame.transforms
    out: dict[str, list[float]] = {}
    if tf is None:
        return out
    for key, name in (("camera", frame.camera.frame_id), ("lidar", frame.points_frame)):
        if name and tf.can_transform(output_frame, name):
            out[key] = [round(float(v), 9) for v in tf.lookup(output_frame, name)[:3, 3]]
    return out


def snapshot_of(frame: SensorFrame, output_frame: str, max_points: int = 30000) -> Snapshot:
    """The report's copy of a frame: image, camera, LiDAR points in ``output_frame`` (an even
    subsample of at most ``max_points``)."""
    tf = frame.transforms
    T_cam = tf.lookup(frame.camera.frame_id, output_frame)
    pts = None
    if frame.points is not None and tf.can_transform(output_frame, frame.points_frame):
        p = frame.points[:, :3]
        if len(p) > max_points:
            p = p[:: int(np.ceil(len(p) / max_points))]
        T = tf.lookup(output_frame, frame.points_frame)
        pts = (p @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
    return Snapshot(
        frame.index, frame.stamp_ns, frame.image, frame.camera, T_cam, pts, output_frame
    )


def pick_snapshot_indices(expected_frames: int | None, count: int) -> set[int] | None:
    """Evenly spread frame indices for ``count`` snapshots (None: keep the first ``count``)."""
    if count <= 0:
        return set()
    if not expected_frames:
        return None
    return {int(i) for i in np.linspace(0, expected_frames - 1, min(count, expected_frames))}


def replay_frames(
    frames: Iterable[SensorFrame],
    pipeline,
    queries: list[str],
    *,
    max_frames: int = 0,
    snapshots: int = 4,
    expected_frames: int | None = None,
    on_result: Callable[[SensorFrame, Any], None] | None = None,
) -> ReplayResult:
    """Run a loaded ``PerceptionPipeline`` over frames.

    Args:
        frames: SensorFrames (from ``frames_from_bag``, a dataset, the simulator).
        pipeline: a loaded ``spatial_ros.perception.PerceptionPipeline``.
        queries: phrases to ground on every frame.
        max_frames: stop after this many frames (0 = all).
        snapshots: frames to keep for the report, spread over ``expected_frames`` when known.
        expected_frames: how many frames ``frames`` yields (for spreading snapshots).
        on_result: called with (frame, PerceptionResult) after each frame.

    Returns:
        ReplayResult (``elapsed_s`` covers decoding and processing).
    """
    out_frame = pipeline.config.output_frame
    keep = pick_snapshot_indices(
        min(expected_frames, max_frames) if expected_frames and max_frames else expected_frames,
        snapshots,
    )
    preds: list[BoxFrame] = []
    cands: list[BoxFrame] = []
    records: list[FrameRecord] = []
    snaps: list[Snapshot] = []
    t0 = time.perf_counter()
    for frame in frames:
        res = pipeline.process(frame, queries)
        origins = sensor_origins(frame, out_frame)
        extra = {
            "frame_index": frame.index,
            "sensor_origins": origins,
            "timings_ms": {k: round(float(v), 3) for k, v in res.timings_ms.items()},
            "parse_failures": res.parse_failures,
        }
        preds.append(
            BoxFrame(
                res.stamp_ns,
                res.frame_id,
                [object_record(o, frame.index) for o in res.objects],
                extra,
            )
        )
        cands.append(
            BoxFrame(
                res.stamp_ns,
                res.frame_id,
                [candidate_record(c, frame, out_frame) for c in res.candidates],
                {"frame_index": frame.index, "sensor_origins": origins},
            )
        )
        records.append(
            FrameRecord(
                frame.index,
                res.stamp_ns,
                len(res.objects),
                len(res.candidates),
                res.parse_failures,
                dict(res.timings_ms),
            )
        )
        pos = len(records) - 1
        if (keep is None and len(snaps) < snapshots) or (keep is not None and pos in keep):
            snaps.append(snapshot_of(frame, out_frame))
        if on_result is not None:
            on_result(frame, res)
        if max_frames and len(records) >= max_frames:
            break
    elapsed = time.perf_counter() - t0
    stats = pipeline.engine.stats.as_dict() if getattr(pipeline, "engine", None) else None
    return ReplayResult(preds, cands, records, snaps, list(queries), elapsed, stats)


def replay_bag(
    bag: str | os.PathLike,
    config,
    queries: list[str] | None = None,
    *,
    backend=None,
    max_frames: int = 0,
    snapshots: int = 4,
) -> ReplayResult:
    """Replay a rosbag2 (MCAP or sqlite3) through the perception pipeline.

    Args:
        bag: bag directory.
        config: ``PerceptionConfig`` (topics, slop, output frame, model, ...); the same
            dataclass the node fills from its parameters.
        queries: phrases to ground (default: ``config.queries``).
        backend: a VLM backend to use instead of loading ``config.model_path`` (tests).
        max_frames: stop after this many frames (0 = all).
        snapshots: frames kept for the report.

    Raises:
        DataError: unreadable bag or missing topics; ModelError: the model cannot be loaded.
    """
    from spatial_ros.bagio import bag_topics, frames_from_bag
    from spatial_ros.perception import PerceptionPipeline

    queries = list(config.queries if queries is None else queries)
    topics = bag_topics(bag)
    driver = config.cloud_topic or config.depth_topic or config.image_topic
    expected = topics.get(driver, ("", 0))[1] or None
    frames = frames_from_bag(
        bag,
        image_topic=config.image_topic,
        info_topic=config.camera_info_topic,
        cloud_topic=config.cloud_topic or None,
        depth_topic=config.depth_topic or None,
        slop_s=config.slop,
        queue_size=config.queue_size,
    )
    pipe = PerceptionPipeline(config, backend=backend)
    pipe.load()
    try:
        return replay_frames(
            frames,
            pipe,
            queries,
            max_frames=max_frames,
            snapshots=snapshots,
            expected_frames=expected,
        )
    finally:
        pipe.unload()


def predictions_from_bag(
    bag: str | os.PathLike, topic: str = DEFAULT_OBJECTS_TOPIC
) -> list[BoxFrame]:
    """Grounded-object arrays recorded from a live node (``spatial-ros play --record``) as box
    frames, one per message, in recording order.

    Raises:
        DataError: the bag is unreadable or has no ``topic``.
    """
    from spatial_ros.bagio import read_messages
    from spatial_ros.ros_conversions import msg_to_grounded_objects

    out: list[BoxFrame] = []
    for m in read_messages(bag, [topic]):
        stamp, frame_id, objects = msg_to_grounded_objects(m.msg)
        recs = []
        for o in objects:
            rec = object_record(o, -1)
            rec.extra.pop("frame", None)
            recs.append(rec)
        out.append(BoxFrame(stamp, frame_id, recs, {"log_time_ns": m.log_time_ns}))
    if not out:
        raise DataError(f"no messages on {topic} in {bag}")
    return out
