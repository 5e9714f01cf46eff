"""Offline reward labels: a bag or a directory of episode bags -> one parquet file.

Columns (LeRobot-style; one row per synchronized frame):

=============== ======= =====================================================================
index           int64   row number in the file
episode_index   int64   episode (directory mode: the bag's position in name order)
frame_index     int64   frame within the episode, from 0
timestamp       float32 seconds since the episode's first frame
reward          float32 reward of the transition into this frame (``reward_mode``)
progress        float32 [0, 1]
success         bool    in the goal region (within the tolerances)
goal            string  the goal in words
explanation     string  e.g. "gap(red cube, blue bowl) = 0.31 m (goal <= 0.10 m); progress 0.42"
stamp_ns        int64   the source image's stamp
remaining_m     float32 smoothed metres to the goal region (NaN before the first grounded frame)
grounded        bool    the goal's objects were found in this frame
=============== ======= =====================================================================

Resumable: frames are labelled in chunks; each chunk is written to ``OUT.parts/`` as its own
parquet file (temporary name, then ``os.replace``, so a part is either complete or absent) with
the annotator's causal state in the file's metadata. A restarted job (after SIGKILL, say)
checks that the settings match (``manifest.json``), skips the finished chunks (their frames are
read from the bag but not grounded again) and continues from the saved state, so the merged file
is identical to an uninterrupted run's. The merge is written the same way (temporary file, then
``os.replace``); the parts directory is removed afterwards.

``use_ray``: sources (bags) are spread over Ray actors (each loads the model once) writing parts
into the same directory; the driver merges.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from spatial_ros.errors import ConfigError, DataError
from spatial_ros.fileio import atomic_path
from spatial_ros.reward.annotator import (
    RewardAnnotator,
    RewardAnnotatorConfig,
    RewardLabel,
    TruthGrounding,
    ignored_note,
)

log = logging.getLogger(__name__)

FORMAT = "spatial_ros.reward.parts/1"
_META_KEY = b"spatial_ros.reward"
PART_SCHEMA = pa.schema(
    [
        ("episode_index", pa.int64()),
        ("frame_index", pa.int64()),
        ("timestamp", pa.float32()),
        ("reward", pa.float32()),
        ("progress", pa.float32()),
        ("success", pa.bool_()),
        ("goal", pa.string()),
        ("explanation", pa.string()),
        ("stamp_ns", pa.int64()),
        ("remaining_m", pa.float32()),
        ("grounded", pa.bool_()),
    ]
)
SCHEMA = pa.schema([("index", pa.int64())] + list(PART_SCHEMA))


@dataclass(frozen=True)
class EpisodeSource:
    """One bag to label.

    Attributes:
        index: position among the job's sources (names its part files).
        bag: rosbag2 directory.
        truth: ground-truth box file (truth grounding), or None.
        episode_index: the episode number of all its frames; None = from the truth file's
            episode numbers (a simulated bag with several episodes), else 0.
    """

    index: int
    bag: Path
    truth: Path | None = None
    episode_index: int | None = None


@dataclass
class OfflineResult:
    """What a labelling job wrote."""

    out: Path
    rows: int
    episodes: int
    labelled: int  # frames labelled by this run
    resumed: int  # frames found done in parts from an earlier run
    elapsed_s: float

    @property
    def fps(self) -> float:
        return self.labelled / self.elapsed_s if self.elapsed_s > 0 else float("nan")


# ----------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------


def _is_bag(p: Path) -> bool:
    return (p / "metadata.yaml").is_file()


def _truth_beside(bag: Path) -> Path:
    """``truth.jsonl`` of a ``spatial-ros sim`` output: next to ``OUT/bag`` (or inside it)."""
    for cand in (bag.parent / "truth.jsonl", bag / "truth.jsonl"):
        if cand.is_file():
            return cand
    raise DataError(
        f"no truth.jsonl next to {bag}; pass the ground-truth file with --gt PATH"
    )


def find_episodes(directory: str | os.PathLike) -> list[Path]:
    """Episode bags under ``directory``, in name order: sub-directories that are bags, or
    ``spatial-ros sim`` outputs (``EPISODE/bag``).

    Raises:
        DataError: the directory is missing or holds no bag.
    """
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"episode directory not found: {d}")
    bags = []
    for sub in sorted(p for p in d.iterdir() if p.is_dir()):
        if _is_bag(sub):
            bags.append(sub)
        elif _is_bag(sub / "bag"):
            bags.append(sub / "bag")
    if not bags:
        raise DataError(
            f"no episode bags in {d}: expected sub-directories holding a rosbag2 "
            "(metadata.yaml) or a spatial-ros sim output (bag/)"
        )
    return bags


def sources_for(
    bag: str | os.PathLike | None = None,
    episodes: str | os.PathLike | None = None,
    gt: str | os.PathLike | None = None,
) -> list[EpisodeSource]:
    """The sources of a job: one ``bag`` (episodes from the truth file, else episode 0), or every
    episode bag of ``episodes`` (episode i = the i-th bag). ``gt``: None (perception), "auto"
    (each bag's ``truth.jsonl`` from ``spatial-ros sim``) or a truth file (``bag`` only).

    Raises:
        ConfigError: neither or both of bag/episodes; a single truth file for many episodes.
        DataError: a bag or truth file is missing.
    """
    if (bag is None) == (episodes is None):
        raise ConfigError("give exactly one of --bag BAG or --episodes DIR")
    auto = gt is not None and str(gt) == "auto"
    if bag is not None:
        b = Path(bag)
        if not b.exists():
            raise DataError(f"bag not found: {b}")
        if not _is_bag(b) and _is_bag(b / "bag"):
            b = b / "bag"  # a spatial-ros sim output directory
        truth = None if gt is None else (_truth_beside(b) if auto else Path(gt))
        if truth is not None and not truth.is_file():
            raise DataError(f"ground-truth file not found: {truth}")
        return [EpisodeSource(0, b, truth, None)]
    if gt is not None and not auto:
        raise ConfigError(
            "--episodes labels many bags: use --gt auto (each episode's truth.jsonl) instead "
            "of one truth file"
        )
    return [
        EpisodeSource(i, b, _truth_beside(b) if auto else None, i)
        for i, b in enumerate(find_episodes(episodes))
    ]


def estimate_frames(src: EpisodeSource, config: RewardAnnotatorConfig) -> int | None:
    """Synchronized frames a bag will give (fewest messages among the synchronized topics)."""
    from spatial_ros.bagio import bag_topics

    try:
        topics = bag_topics(src.bag)
    except DataError:
        return None
    want = [t for t in (config.image_topic, config.cloud_topic, config.depth_topic) if t]
    counts = [topics[t][1] for t in want if t in topics]
    return min(counts) if counts and len(counts) == len(want) else None


# ----------------------------------------------------------------------------------------------
# Parts
# ----------------------------------------------------------------------------------------------


def _part_path(parts: Path, src: int, chunk: int) -> Path:
    return parts / f"s{src:05d}-c{chunk:06d}.parquet"


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    with atomic_path(path, suffix=".parquet") as tmp:  # mode 0666 minus the umask
        pq.write_table(table, tmp)


def labels_table(labels: list[RewardLabel]) -> pa.Table:
    """RewardLabels -> a table with ``PART_SCHEMA`` columns."""
    cols = {
        "episode_index": [x.episode_index for x in labels],
        "frame_index": [x.frame_index for x in labels],
        "timestamp": [x.timestamp for x in labels],
        "reward": [x.reward for x in labels],
        "progress": [x.progress for x in labels],
        "success": [x.success for x in labels],
        "goal": [x.goal for x in labels],
        "explanation": [x.explanation for x in labels],
        "stamp_ns": [x.stamp_ns for x in labels],
        "remaining_m": [x.remaining for x in labels],
        "grounded": [x.grounded for x in labels],
    }
    return pa.table(cols, schema=PART_SCHEMA)


def _done_parts(parts: Path, src: int) -> tuple[int, dict | None]:
    """(number of contiguous finished chunks, metadata of the last one) of a source."""
    n, meta = 0, None
    while True:
        p = _part_path(parts, src, n)
        if not p.is_file():
            return n, meta
        raw = pq.read_schema(p).metadata or {}
        if _META_KEY not in raw:
            raise DataError(f"{p} is not a part of a reward labelling job; remove {parts}")
        meta = json.loads(raw[_META_KEY])
        n += 1


class SourceLabeler:
    """Labels sources chunk by chunk into a parts directory (one per process or Ray actor; the
    VLM is loaded once and shared by every source it labels)."""

    def __init__(
        self,
        config: RewardAnnotatorConfig,
        goal: str,
        parts: str | os.PathLike,
        chunk_size: int,
        backend=None,
    ) -> None:
        self.config, self.goal = config, goal
        self.parts, self.chunk_size = Path(parts), int(chunk_size)
        self._backend = backend
        self._pipeline = None

    def _annotator(self, src: EpisodeSource) -> RewardAnnotator:
        cfg = self.config
        truth = TruthGrounding.from_file(src.truth) if src.truth is not None else None
        cfg = dataclasses.replace(cfg, grounding="truth" if truth else "perception", goal="")
        ann = RewardAnnotator(cfg, backend=self._backend, truth=truth,
                              truth_episodes=src.episode_index is None)
        if cfg.grounding == "perception":
            if self._pipeline is None:
                ann.load()
                self._pipeline = ann.pipeline
            ann.pipeline = self._pipeline
        ann.set_goal(self.goal, warn=False)  # label_dataset warned once
        ann.reset(src.episode_index or 0)
        return ann

    def label(self, src: EpisodeSource, on_frames: Callable[[int], None] | None = None) -> int:
        """Label one source (resuming from its finished parts); returns frames labelled now."""
        from spatial_ros.bagio import frames_from_bag

        done, meta = _done_parts(self.parts, src.index)
        if meta is not None and meta["last"]:
            return 0
        ann = self._annotator(src)
        skip = 0
        if meta is not None:
            ann.load_state_dict(meta["state"])
            skip = meta["frames_done"]
        cfg = self.config
        frames = frames_from_bag(
            src.bag, image_topic=cfg.image_topic, info_topic=cfg.camera_info_topic,
            cloud_topic=cfg.cloud_topic or None, depth_topic=cfg.depth_topic or None,
            slop_s=cfg.slop, queue_size=cfg.queue_size,
        )
        chunk, rows, labelled, seen = done, [], 0, 0
        for seen, frame in enumerate(frames, 1):
            if seen <= skip:
                continue
            rows.append(ann.label(frame))
            labelled += 1
            if len(rows) == self.chunk_size:
                self._write(src, chunk, rows, ann, seen, last=False)
                chunk, rows = chunk + 1, []
                if on_frames:
                    on_frames(self.chunk_size)
        self._write(src, chunk, rows, ann, max(seen, skip), last=True)
        if on_frames and rows:
            on_frames(len(rows))
        return labelled

    def _write(self, src, chunk, rows, ann, frames_done: int, last: bool) -> None:
        meta = {"frames_done": frames_done, "last": last, "state": ann.state_dict()}
        table = labels_table(rows).replace_schema_metadata({_META_KEY: json.dumps(meta)})
        _atomic_write_table(table, _part_path(self.parts, src.index, chunk))

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.unload()
            self._pipeline = None


# ----------------------------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------------------------


def _manifest(sources, goal, config, chunk_size) -> dict:
    return {
        "format": FORMAT,
        "goal": goal,
        "chunk_size": chunk_size,
        "config": {k: v for k, v in dataclasses.asdict(config).items()
                   if k not in ("goal", "grounding", "truth_path")},
        "sources": [[str(s.bag), None if s.truth is None else str(s.truth), s.episode_index]
                    for s in sources],
    }


def _prepare(out: Path, parts: Path, manifest: dict, overwrite: bool) -> None:
    if overwrite:
        shutil.rmtree(parts, ignore_errors=True)
        out.unlink(missing_ok=True)
    if out.exists() and not parts.exists():
        raise DataError(f"{out} exists; choose another --out or pass --overwrite")
    parts.mkdir(parents=True, exist_ok=True)
    for stale in parts.glob(".tmp-*"):  # a write interrupted by a kill
        stale.unlink()
    mpath = parts / "manifest.json"
    if mpath.is_file():
        try:
            old = json.loads(mpath.read_text())
        except ValueError:
            old = None
        if old != json.loads(json.dumps(manifest)):
            raise DataError(
                f"{parts} holds an unfinished job with other settings (goal, config or bags); "
                "pass --overwrite to start over, or rerun it with the same settings"
            )
    else:
        tmp = parts / ".tmp-manifest.json"
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(tmp, mpath)


def merge_parts(parts: Path, sources: list[EpisodeSource], out: Path) -> int:
    """Concatenate every source's parts (in order) into ``out`` atomically; returns the rows."""
    tables = []
    for s in sources:
        n, meta = _done_parts(parts, s.index)
        if meta is None or not meta["last"]:
            raise DataError(f"source {s.bag} is not finished in {parts}; rerun the job")
        tables += [pq.read_table(_part_path(parts, s.index, c)) for c in range(n)]
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
    table = table.add_column(0, "index", pa.array(range(table.num_rows), pa.int64()))
    _atomic_write_table(table.cast(SCHEMA), out)
    return table.num_rows


def label_dataset(
    sources: list[EpisodeSource],
    goal: str,
    out: str | os.PathLike,
    config: RewardAnnotatorConfig | None = None,
    *,
    chunk_size: int = 64,
    overwrite: bool = False,
    progress: bool = True,
    use_ray: bool = False,
    ray_workers: int = 0,
    backend=None,
) -> OfflineResult:
    """Label every source against ``goal`` into the parquet file ``out`` (resumable).

    Args:
        sources: from :func:`sources_for`.
        goal: the goal in words (GoalError when unparseable, before any work).
        out: output parquet file; parts go to ``OUT.parts/`` until the merge.
        config: annotator configuration (topics, grounding model, scoring).
        chunk_size: frames per part file (the most work a kill can lose).
        overwrite: discard an existing output and unfinished parts.
        progress: show a tqdm progress bar (frames).
        use_ray: spread sources over Ray actors (``ray.init`` unless already initialised).
        ray_workers: actors (0 = one per available CPU, at most one per source).
        backend: a VLMBackend for perception grounding (not with ``use_ray``).

    Raises:
        GoalError, ConfigError, DataError: bad goal, settings, bags or an unfinished job with
            other settings.
    """
    from tqdm import tqdm

    from spatial_ros.reward.goal import parse_goal

    config = config or RewardAnnotatorConfig()
    note = ignored_note(parse_goal(goal))
    if note:
        log.warning("goal %r: %s (the labels' first explanation of each episode says so too)",
                    goal, note)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    if use_ray and backend is not None:
        raise ConfigError("use_ray loads the model in each Ray actor: pass a model path, not a "
                          "backend object")
    if not sources:
        raise DataError("nothing to label: no sources")
    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    _prepare(out, parts, _manifest(sources, goal, config, chunk_size), overwrite)
    t0 = time.perf_counter()
    resumed = 0
    todo = []
    for s in sources:
        n, meta = _done_parts(parts, s.index)
        resumed += 0 if meta is None else meta["frames_done"]
        if meta is None or not meta["last"]:
            todo.append(s)
    totals = [estimate_frames(s, config) for s in sources]
    total = sum(totals) if all(t is not None for t in totals) else None
    bar = tqdm(total=total, initial=resumed, unit="frame", desc="reward", disable=not progress)
    labelled = 0
    try:
        if use_ray and todo:
            labelled = _label_with_ray(todo, goal, config, parts, chunk_size, ray_workers, bar)
        else:
            worker = SourceLabeler(config, goal, parts, chunk_size, backend)
            try:
                for s in todo:
                    labelled += worker.label(s, bar.update)
            finally:
                worker.close()
    finally:
        bar.close()
    rows = merge_parts(parts, sources, out)
    shutil.rmtree(parts, ignore_errors=True)
    episodes = pq.read_table(out, columns=["episode_index"]).column(0).unique()
    return OfflineResult(out, rows, len(episodes), labelled, resumed,
                         time.perf_counter() - t0)


class _RayLabeler:
    """Ray actor body: one SourceLabeler (one model) per actor."""

    def __init__(self, config, goal, parts, chunk_size):
        self.worker = SourceLabeler(config, goal, parts, chunk_size)

    def label(self, src: EpisodeSource) -> int:
        return self.worker.label(src)


def _label_with_ray(todo, goal, config, parts, chunk_size, workers, bar) -> int:
    import ray
    from ray.util import ActorPool

    if not ray.is_initialized():
        ray.init(num_cpus=workers or None, include_dashboard=False, log_to_driver=False)
    cpus = int(ray.available_resources().get("CPU", 1)) or 1
    n = max(1, min(len(todo), workers or cpus))
    actor = ray.remote(num_cpus=1)(_RayLabeler)
    pool = ActorPool([actor.remote(config, goal, str(parts), chunk_size) for _ in range(n)])
    labelled = 0
    for frames in pool.map_unordered(lambda a, s: a.label.remote(s), todo):
        labelled += frames
        bar.update(frames)
    return labelled
