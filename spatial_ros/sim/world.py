"""Running the simulated world: frame schedule, in-memory frames, and bag + truth output.

Schedule: camera frame i is taken at ``start + i / camera_rate`` and a LiDAR scan at every
``camera_rate / lidar_rate``-th camera frame, at the same nominal instant (so scan and image see
the same scene state). Header stamps add a seeded uniform jitter of +-``stamp_jitter_s`` to each
message independently. Every random draw comes from a numpy Generator seeded by
(seed, purpose, index), so a run, or any single frame of it, is reproducible.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spatial_ros.boxfile import write_box_file
from spatial_ros.errors import DataError
from spatial_ros.geometry.transforms import TransformTree
from spatial_ros.sim.config import SimConfig
from spatial_ros.sim.raycast import RayWorld, render_camera, render_lidar
from spatial_ros.sim.scene import (
    GRIPPER_TCP_FRAME,
    LIDAR_FRAME,
    OPTICAL_FRAME,
    Rig,
    Scene,
    scene_for_config,
)
from spatial_ros.sim.trajectory import Trajectory, parse_goal, plan_trajectory
from spatial_ros.sim.truth import FrameTruth, compute_truth
from spatial_ros.types import SensorFrame

NS = 1_000_000_000
TOPICS = {
    "image": "/camera/image_raw",
    "camera_info": "/camera/camera_info",
    "depth": "/camera/depth/image_raw",
    "points": "/lidar/points",
    "tf_static": "/tf_static",
    "tf": "/tf",  # tabletop only: base_link -> gripper_tcp at every camera frame's stamp
}
MAX_SCENE_ATTEMPTS = 12
# Random streams (second element of every seed sequence).
_S_CAMERA, _S_LIDAR, _S_STAMP_CAM, _S_STAMP_LIDAR, _S_EPISODE = 0xCA3, 0x11D, 0x57A, 0x57B, 0xE9


@dataclass(eq=False)
class SimFrame:
    """One simulated camera frame with its sensor data and exact truth.

    Attributes:
        index: camera frame index in the run.
        stamp_ns: the image's header stamp.
        image: (H, W, 3) uint8 RGB.
        depth: (H, W) float32 metres (noise applied, NaN = no return) as published.
        depth_exact: (H, W) float32 noise-free depth.
        instance: (H, W) int32 object index per pixel (-1 = background), index into
            ``scene.objects`` / ``truth.objects``.
        points: (N, 4) float32 x, y, z, intensity in the lidar frame, or None when no scan was
            taken at this frame.
        point_object: (N,) int32 object index of each point (-1 = background), or None.
        lidar_stamp_ns: the scan's header stamp, or None.
        truth: ground truth (boxes in base_link, trajectory state).
        scene: the scene state that was rendered.
        u: normalised episode time in [0, 1].
    """

    index: int
    stamp_ns: int
    image: np.ndarray
    depth: np.ndarray
    depth_exact: np.ndarray
    instance: np.ndarray
    points: np.ndarray | None
    point_object: np.ndarray | None
    lidar_stamp_ns: int | None
    truth: FrameTruth
    scene: Scene
    u: float = 0.0

    def transform_tree(self) -> TransformTree:
        """Static rig transforms plus this frame's dynamic ones (base_link -> gripper_tcp on a
        tabletop), as a bag replay evaluates them at the image stamp."""
        tree = self.scene.rig.transform_tree()
        for parent, child, T in self.scene.dynamic_transform_tree().edges():
            tree.set(parent, child, T)
        return tree

    def sensor_frame(self) -> SensorFrame:
        """The pipeline's view of this frame (what a bag replay of it yields)."""
        rig = self.scene.rig
        return SensorFrame(
            stamp_ns=self.stamp_ns,
            image=self.image,
            camera=rig.intrinsics,
            points=self.points,
            points_frame=LIDAR_FRAME,
            depth=self.depth,
            transforms=self.transform_tree(),
            index=self.index,
        )


def render(
    scene: Scene,
    *,
    index: int = 0,
    stamp_ns: int = 0,
    seed: int = 0,
    lidar: bool = True,
    lidar_index: int | None = None,
    lidar_stamp_ns: int | None = None,
    trajectory: Trajectory | None = None,
    u: float = 0.0,
    episode: int = 0,
) -> SimFrame:
    """Render one camera frame (and a LiDAR scan at the same instant) with its ground truth.

    Args:
        scene: the scene (its initial state when a trajectory is given).
        index: frame index (seeds the camera noise together with ``seed``).
        stamp_ns: image stamp to record in the truth.
        seed: run seed for the noise streams.
        lidar: also take a LiDAR scan.
        lidar_index: scan index (seeds the LiDAR noise); default ``index``.
        lidar_stamp_ns: scan stamp to record; default ``stamp_ns``.
        trajectory: move objects along this trajectory to time ``u``.
        u: normalised episode time in [0, 1].
        episode: episode number (recorded in the truth).
    """
    state = trajectory.scene_at(scene, u) if trajectory is not None else scene
    world = RayWorld(state)
    cam = render_camera(world, np.random.default_rng([seed, _S_CAMERA, index]))
    scan = None
    if lidar:
        k = index if lidar_index is None else lidar_index
        scan = render_lidar(world, np.random.default_rng([seed, _S_LIDAR, k]))
        lidar_stamp_ns = stamp_ns if lidar_stamp_ns is None else lidar_stamp_ns
    else:
        lidar_stamp_ns = None
    tstate = trajectory.state(state, u) if trajectory is not None else None
    truth = compute_truth(
        state,
        world,
        cam,
        scan,
        index=index,
        stamp_ns=stamp_ns,
        episode=episode,
        lidar_stamp_ns=lidar_stamp_ns,
        trajectory=tstate,
    )
    return SimFrame(
        index,
        stamp_ns,
        cam.rgb,
        cam.depth,
        cam.depth_exact,
        cam.instance,
        None if scan is None else scan.points,
        None if scan is None else scan.object_index,
        lidar_stamp_ns,
        truth,
        state,
        u,
    )


@dataclass(eq=False)
class Episode:
    """One scene (and trajectory) of a run: frames ``first .. first + count - 1``."""

    number: int
    seed: int
    first: int
    count: int
    scene: Scene
    trajectory: Trajectory | None

    def to_json(self) -> dict[str, Any]:
        return {
            "episode": self.number,
            "seed": self.seed,
            "first_frame": self.first,
            "num_frames": self.count,
            "table_top_z": self.scene.table_top_z,
            "T_base_from_camera_link": self.scene.rig.T_base_from_camera_link.tolist(),
            "T_base_from_lidar": self.scene.rig.T_base_from_lidar.tolist(),
            "table_bounds": None
            if self.scene.table_bounds is None
            else [float(v) for v in self.scene.table_bounds],
            "objects": [
                {
                    "id": o.id,
                    "category": o.category,
                    "colour": o.colour,
                    "caption": o.caption,
                    **o.box.to_dict(),
                }
                for o in self.scene.objects
            ],
            "trajectory": None if self.trajectory is None else self.trajectory.to_json(),
        }


def episode_seed(cfg: SimConfig, number: int) -> int:
    """Seed of episode ``number`` (episode 0 uses the run seed itself)."""
    if number == 0:
        return cfg.seed
    return int(np.random.SeedSequence([cfg.seed, _S_EPISODE, number]).generate_state(1)[0])


def make_episode(cfg: SimConfig, number: int, rig: Rig | None = None) -> Episode:
    """Scene and trajectory of one episode (deterministic)."""
    per = cfg.frames_per_scene or cfg.frames
    first = number * per
    if first >= cfg.frames:
        raise DataError(f"episode {number} starts after the last frame ({cfg.frames} frames)")
    count = min(per, cfg.frames - first)
    seed = episode_seed(cfg, number)
    goal = parse_goal(cfg.goal) if cfg.goal else None
    required = goal.required if goal else ()
    if cfg.trajectory == "none":
        return Episode(
            number, seed, first, count, scene_for_config(cfg, seed, required, rig), None
        )
    # A scene may leave no room for the goal (crowded table, goal already met): redraw the scene
    # from derived seeds, deterministically, a few times before giving up.
    err: DataError | None = None
    for attempt in range(MAX_SCENE_ATTEMPTS):
        if attempt:
            ss = np.random.SeedSequence([cfg.seed, _S_EPISODE, number, attempt])
            seed = int(ss.generate_state(1)[0])
        scene = scene_for_config(cfg, seed, required, rig)
        try:
            traj = plan_trajectory(scene, cfg.trajectory, seed, goal, cfg.fail_mode)
        except DataError as e:
            err = e
            continue
        return Episode(number, seed, first, count, scene, traj)
    raise DataError(f"{err} (tried {MAX_SCENE_ATTEMPTS} scenes)")


def frame_stamps(cfg: SimConfig, index: int) -> tuple[int, int | None, int | None]:
    """(image stamp, LiDAR scan index or None, scan stamp or None) of camera frame ``index``."""
    j = cfg.stamp_jitter_s * NS

    def jitter(stream: int, k: int) -> int:
        if j == 0:
            return 0
        return int(round(np.random.default_rng([cfg.seed, stream, k]).uniform(-j, j)))

    cam = (
        cfg.start_time_ns
        + int(round(index * NS / cfg.camera_rate_hz))
        + jitter(_S_STAMP_CAM, index)
    )
    if index % cfg.lidar_every:
        return cam, None, None
    k = index // cfg.lidar_every
    lid = cfg.start_time_ns + int(round(k * NS / cfg.lidar_rate_hz)) + jitter(_S_STAMP_LIDAR, k)
    return cam, k, lid


def iter_episodes(cfg: SimConfig) -> Iterator[Episode]:
    per = cfg.frames_per_scene or cfg.frames
    rig = None
    for e in range((cfg.frames + per - 1) // per):
        ep = make_episode(cfg, e, None if cfg.vary_rig else rig)
        rig = ep.scene.rig
        yield ep


def iter_frames(config: SimConfig, episodes: list[Episode] | None = None) -> Iterator[SimFrame]:
    """Simulate in memory: yields one :class:`SimFrame` per camera frame (no bag written).

    ``frame.sensor_frame()`` is the ``SensorFrame`` the pipeline consumes; ``frame.truth`` is the
    exact truth. LiDAR points are present on every ``camera_rate / lidar_rate``-th frame (set
    ``lidar_rate_hz = camera_rate_hz`` for a scan with every frame).

    Args:
        config: the run.
        episodes: filled with the :class:`Episode` objects as they start (optional).
    """
    for ep in iter_episodes(config):
        if episodes is not None:
            episodes.append(ep)
        for k in range(ep.count):
            i = ep.first + k
            u = k / (ep.count - 1) if ep.count > 1 else 1.0
            stamp, scan_idx, scan_stamp = frame_stamps(config, i)
            yield render(
                ep.scene,
                index=i,
                stamp_ns=stamp,
                seed=config.seed,
                lidar=scan_idx is not None,
                lidar_index=scan_idx,
                lidar_stamp_ns=scan_stamp,
                trajectory=ep.trajectory,
                u=u,
                episode=ep.number,
            )


# ----------------------------------------------------------------------------------------------
# Output: rosbag2 + truth files
# ----------------------------------------------------------------------------------------------


@dataclass
class SimResult:
    """What :func:`simulate` wrote, and how fast."""

    out_dir: Path
    bag_path: Path
    truth_path: Path
    detail_path: Path
    scene_path: Path
    frames: int
    scans: int
    elapsed_s: float
    episodes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are shareable data files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def scene_json(cfg: SimConfig, rig: Rig, episodes: list[Episode], scans: int) -> dict[str, Any]:
    """Contents of scene.json: config, seed, camera intrinsics, extrinsics, episodes."""
    intr = rig.intrinsics
    return {
        "format": "spatial_ros.sim/1",
        "scenario": cfg.scenario,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "frames": cfg.frames,
        "scans": scans,
        "topics": {k: v for k, v in TOPICS.items() if k != "tf" or cfg.scenario == "tabletop"},
        "frames_ids": {
            "base": "base_link",
            "camera": "camera_link",
            "optical": OPTICAL_FRAME,
            "lidar": LIDAR_FRAME,
            "gripper_tcp": GRIPPER_TCP_FRAME,
        },
        "camera": {
            "width": intr.width,
            "height": intr.height,
            "K": intr.K.tolist(),
            "D": intr.D.tolist(),
            "distortion_model": intr.distortion_model,
            "frame_id": intr.frame_id,
            "hfov_deg": rig.camera.hfov_deg,
            "depth_encoding": rig.camera.depth_encoding,
        },
        "extrinsics": {
            "T_base_from_camera_link": rig.T_base_from_camera_link.tolist(),
            "T_base_from_camera_optical": rig.T_base_from_optical.tolist(),
            "T_base_from_lidar": rig.T_base_from_lidar.tolist(),
            "T_camera_optical_from_lidar": rig.T_optical_from_lidar.tolist(),
        },
        "lidar": dataclasses.asdict(rig.lidar),
        "episodes": [e.to_json() for e in episodes],
    }


def simulate(
    config: SimConfig,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    on_frame: Callable[[SimFrame], None] | None = None,
) -> SimResult:
    """Simulate a run and write ``out_dir/bag`` (rosbag2), ``truth.jsonl`` (box format),
    ``truth_detail.jsonl`` and ``scene.json``. Byte-identical for the same config.

    Args:
        config: the run.
        out_dir: output directory (created).
        overwrite: replace an existing bag and truth files in ``out_dir``.
        on_frame: called after each frame is written (progress bars).

    Raises:
        DataError: the output exists (without ``overwrite``) or cannot be written.
    """
    from spatial_ros.bagio import BagWriter
    from spatial_ros.io.camera_info import intrinsics_to_camera_info
    from spatial_ros.io.image import encode_image
    from spatial_ros.io.pointcloud import array_to_pointcloud2
    from spatial_ros.ros_conversions import tree_to_tf_message

    out = Path(out_dir)
    bag = out / "bag"
    paths = [bag, out / "truth.jsonl", out / "truth_detail.jsonl", out / "scene.json"]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise DataError(
            f"{existing[0]} exists; choose another output directory or overwrite (--overwrite)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        for p in existing:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    except OSError as e:
        raise DataError(f"cannot prepare output directory {out}: {e}") from None

    t0 = time.perf_counter()
    episodes: list[Episode] = []
    truth_frames, details = [], []
    scans = 0
    cam_cfg = last_rig = None
    with BagWriter(bag, storage=config.storage) as w:
        f = w.factory
        w.add_topic(TOPICS["tf_static"], "tf2_msgs/msg/TFMessage", latched=True)
        w.add_topic(TOPICS["image"], "sensor_msgs/msg/Image")
        w.add_topic(TOPICS["camera_info"], "sensor_msgs/msg/CameraInfo")
        w.add_topic(TOPICS["depth"], "sensor_msgs/msg/Image")
        w.add_topic(TOPICS["points"], "sensor_msgs/msg/PointCloud2")
        if config.scenario == "tabletop":  # the scenario with a gripper (moving frames)
            w.add_topic(TOPICS["tf"], "tf2_msgs/msg/TFMessage", depth=100)
        for fr in iter_frames(config, episodes):
            rig = fr.scene.rig
            if rig is not last_rig:  # first frame, or a new episode with its own rig
                last_rig, cam_cfg = rig, rig.camera
                tf_stamp = max(0, min(fr.stamp_ns, fr.lidar_stamp_ns or fr.stamp_ns) - 5_000_000)
                w.write(
                    TOPICS["tf_static"],
                    tree_to_tf_message(rig.transform_tree(), tf_stamp, f),
                    tf_stamp,
                )
            # /tf first: at equal stamps a reader has the gripper pose before the image
            msgs = []
            dynamic = fr.scene.dynamic_transform_tree()
            if dynamic.edges():
                tf_msg = tree_to_tf_message(dynamic, fr.stamp_ns, f)
                msgs.append((fr.stamp_ns, TOPICS["tf"], tf_msg))
            msgs += [
                (
                    fr.stamp_ns,
                    TOPICS["image"],
                    encode_image(fr.image, "rgb8", fr.stamp_ns, OPTICAL_FRAME, f),
                ),
                (
                    fr.stamp_ns,
                    TOPICS["camera_info"],
                    intrinsics_to_camera_info(rig.intrinsics, fr.stamp_ns, f),
                ),
                (
                    fr.stamp_ns,
                    TOPICS["depth"],
                    encode_image(
                        _depth_for(fr.depth, cam_cfg.depth_encoding),
                        cam_cfg.depth_encoding,
                        fr.stamp_ns,
                        OPTICAL_FRAME,
                        f,
                    ),
                ),
            ]
            if fr.points is not None:
                scans += 1
                msgs.append(
                    (
                        fr.lidar_stamp_ns,
                        TOPICS["points"],
                        array_to_pointcloud2(fr.points, fr.lidar_stamp_ns, LIDAR_FRAME, f),
                    )
                )
            for stamp, topic, msg in sorted(msgs, key=lambda m: m[0]):  # stable: ties keep order
                w.write(topic, msg, stamp)
            truth_frames.append(fr.truth.box_frame())
            details.append(json.dumps(fr.truth.to_json(), separators=(",", ":")))
            if on_frame is not None:
                on_frame(fr)
    write_box_file(out / "truth.jsonl", truth_frames)
    _atomic_write_text(out / "truth_detail.jsonl", "\n".join(details) + "\n")
    sj = scene_json(config, episodes[0].scene.rig, episodes, scans)
    _atomic_write_text(out / "scene.json", json.dumps(sj, indent=1) + "\n")
    return SimResult(
        out,
        bag,
        out / "truth.jsonl",
        out / "truth_detail.jsonl",
        out / "scene.json",
        config.frames,
        scans,
        time.perf_counter() - t0,
        [e.to_json()["trajectory"] or {} for e in episodes],
    )


def _depth_for(depth_m: np.ndarray, encoding: str) -> np.ndarray:
    """Depth in the wire encoding: 32FC1 metres (NaN kept), 16UC1 millimetres (0 = none)."""
    if encoding == "32FC1":
        return depth_m.astype(np.float32)
    mm = np.where(np.isfinite(depth_m), np.rint(depth_m * 1000.0), 0.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)
