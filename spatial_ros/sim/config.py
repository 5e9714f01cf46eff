"""Configuration of the simulated world: camera, LiDAR, scene and run (typed, self-validating).

Units: metres, degrees for human-facing angles (``*_deg``), seconds (``*_s``), hertz, integer
nanoseconds for stamps. ``None`` fields take the scenario's default (see ``SimConfig.resolved``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from spatial_ros.errors import ConfigError

SCENARIOS = ("tabletop", "street")
TRAJECTORY_MODES = ("none", "success", "fail")
FAIL_MODES = ("stall", "wrong_way", "wrong_object")
STORAGES = ("mcap", "sqlite3")
DEPTH_ENCODINGS = ("32FC1", "16UC1")
# Fixed default start time (2023-11-14T22:13:20Z): bags never depend on the wall clock.
DEFAULT_START_NS = 1_700_000_000_000_000_000


def _bad(cls: str, **vals: Any) -> str:
    return f"{cls}: invalid " + ", ".join(f"{k}={v!r}" for k, v in vals.items())


@dataclass
class CameraConfig:
    """Pinhole RGB camera with an aligned depth image.

    Attributes:
        width, height: image size (pixels).
        hfov_deg: horizontal field of view (degrees), 10..150.
        distortion: plumb_bob coefficients (k1, k2, t1, t2, k3); empty = none. The image is
            rendered *distorted* (each pixel's ray comes from cv2.undistortPoints).
        supersample: odd factor s: colour is rendered at s x s rays per pixel and averaged (anti-
            aliasing, sub-pixel detail); depth and instance masks use the centre ray only, so they
            stay exact at the pixel centre.
        image_noise_std: Gaussian pixel noise (0..255 units).
        depth_encoding: "32FC1" (metres, NaN = no return) or "16UC1" (millimetres, 0 = none).
        depth_noise_std: Gaussian noise added to depth (metres).
        max_depth: returns beyond this (metres) are "no return" in the depth image.
        shadows: cast shadows from the directional light (one extra occlusion query per image).
    """

    width: int = 320
    height: int = 240
    hfov_deg: float = 60.0
    distortion: tuple[float, ...] = ()
    supersample: int = 1
    image_noise_std: float = 2.0
    depth_encoding: str = "32FC1"
    depth_noise_std: float = 0.0
    max_depth: float = 60.0
    shadows: bool = True

    def __post_init__(self) -> None:
        self.distortion = tuple(float(v) for v in self.distortion)
        if not (8 <= self.width <= 8192 and 8 <= self.height <= 8192):
            raise ConfigError(
                _bad("CameraConfig", width=self.width, height=self.height)
                + " (each must be 8..8192 pixels)"
            )
        if not 10.0 <= self.hfov_deg <= 150.0:
            raise ConfigError(_bad("CameraConfig", hfov_deg=self.hfov_deg) + " (10..150)")
        if len(self.distortion) not in (0, 4, 5, 8):
            raise ConfigError(
                _bad("CameraConfig", distortion=self.distortion)
                + " (give 0, 4, 5 or 8 plumb_bob/rational coefficients)"
            )
        if self.supersample < 1 or self.supersample % 2 == 0:
            raise ConfigError(
                _bad("CameraConfig", supersample=self.supersample)
                + " (must be an odd integer >= 1 so a sample sits on the centre)"
            )
        if self.image_noise_std < 0 or self.depth_noise_std < 0:
            raise ConfigError(
                _bad(
                    "CameraConfig",
                    image_noise_std=self.image_noise_std,
                    depth_noise_std=self.depth_noise_std,
                )
                + " (must be >= 0)"
            )
        if self.depth_encoding not in DEPTH_ENCODINGS:
            raise ConfigError(
                _bad("CameraConfig", depth_encoding=self.depth_encoding)
                + f" (one of {DEPTH_ENCODINGS})"
            )
        if self.max_depth <= 0 or (self.depth_encoding == "16UC1" and self.max_depth > 65.535):
            raise ConfigError(
                _bad("CameraConfig", max_depth=self.max_depth, depth_encoding=self.depth_encoding)
                + " (> 0; 16UC1 millimetres cannot exceed 65.535 m)"
            )


@dataclass
class LidarConfig:
    """A spinning multi-beam LiDAR (one scan = all beams x all azimuth steps at one instant).

    Attributes:
        beams: number of lasers, spread evenly over [elevation_min_deg, elevation_max_deg].
        elevation_min_deg, elevation_max_deg: vertical field of view (degrees, in the LiDAR frame).
        azimuth_res_deg: angle between firings (degrees).
        azimuth_fov_deg: horizontal field of view centred on the LiDAR x axis (360 = full turn).
        range_noise_std: Gaussian range noise (metres).
        dropout: probability that a return is lost.
        min_range, max_range: returns outside are dropped (metres).
        intensity_noise_std: Gaussian noise on intensity (0..1 units).
    """

    beams: int = 64
    elevation_min_deg: float = -25.0
    elevation_max_deg: float = 25.0
    azimuth_res_deg: float = 0.15
    azimuth_fov_deg: float = 80.0
    range_noise_std: float = 0.003
    dropout: float = 0.02
    min_range: float = 0.1
    max_range: float = 8.0
    intensity_noise_std: float = 0.02

    def __post_init__(self) -> None:
        if not 1 <= self.beams <= 512:
            raise ConfigError(_bad("LidarConfig", beams=self.beams) + " (1..512)")
        if not -90 <= self.elevation_min_deg < self.elevation_max_deg <= 90:
            raise ConfigError(
                _bad(
                    "LidarConfig",
                    elevation_min_deg=self.elevation_min_deg,
                    elevation_max_deg=self.elevation_max_deg,
                )
                + " (need -90 <= min < max <= 90)"
            )
        if not 0.01 <= self.azimuth_res_deg <= 10 or not 0 < self.azimuth_fov_deg <= 360:
            raise ConfigError(
                _bad(
                    "LidarConfig",
                    azimuth_res_deg=self.azimuth_res_deg,
                    azimuth_fov_deg=self.azimuth_fov_deg,
                )
                + " (resolution 0.01..10, field of view (0, 360])"
            )
        if self.range_noise_std < 0 or self.intensity_noise_std < 0:
            raise ConfigError(
                _bad(
                    "LidarConfig",
                    range_noise_std=self.range_noise_std,
                    intensity_noise_std=self.intensity_noise_std,
                )
                + " (>= 0)"
            )
        if not 0 <= self.dropout < 1:
            raise ConfigError(_bad("LidarConfig", dropout=self.dropout) + " (0 <= p < 1)")
        if not 0 <= self.min_range < self.max_range:
            raise ConfigError(
                _bad("LidarConfig", min_range=self.min_range, max_range=self.max_range)
                + " (0 <= min < max)"
            )

    @property
    def num_azimuths(self) -> int:
        return max(1, int(round(self.azimuth_fov_deg / self.azimuth_res_deg)))


def default_camera(scenario: str) -> CameraConfig:
    """Scenario defaults: tabletop 320x240 @ 50 deg; street KITTI-like 640x192 @ 81 deg."""
    if scenario == "street":
        return CameraConfig(width=640, height=192, hfov_deg=81.0, max_depth=65.0)
    return CameraConfig(width=320, height=240, hfov_deg=50.0, max_depth=20.0)


def default_lidar(scenario: str) -> LidarConfig:
    """Tabletop: dense short-range 64 beams +-25 deg, 80 deg wide, tilted with the camera.
    Street: HDL-64E-like, 64 beams from -24.9 to +2 deg, 0.2 deg steps, 360 deg, 120 m."""
    if scenario == "street":
        return LidarConfig(
            beams=64,
            elevation_min_deg=-24.9,
            elevation_max_deg=2.0,
            azimuth_res_deg=0.2,
            azimuth_fov_deg=360.0,
            range_noise_std=0.02,
            dropout=0.05,
            min_range=0.9,
            max_range=120.0,
        )
    return LidarConfig()


@dataclass
class SimConfig:
    """A simulation run: which world, which sensors, how many frames, which trajectory.

    Attributes:
        scenario: "tabletop" or "street".
        seed: seeds every random choice (scene, trajectory, noise, stamp jitter).
        frames: number of camera frames.
        camera, lidar: sensor settings (None = scenario default).
        num_objects: (min, max) objects per scene (None = tabletop (3, 10), street (8, 20));
            tabletop scenes hold at most 10 objects plus the gripper.
        ambiguous_prob: probability that a tabletop scene holds two objects with the same colour
            and category ("two red mugs").
        trajectory: "none", "success" (reaches the goal) or "fail" (stalls, goes the wrong way or
            moves the wrong object); tabletop only.
        goal: the goal in words (e.g. "put the red cube next to the blue bowl"); None = drawn
            from the scene. The named objects are added to the scene when missing.
        fail_mode: "stall", "wrong_way", "wrong_object" or None (drawn from the seed).
        storage: rosbag2 storage, "mcap" or "sqlite3".
        camera_rate_hz, lidar_rate_hz: sensor rates; camera rate must be a whole multiple of the
            LiDAR rate (each scan is taken at the instant of one camera frame).
        stamp_jitter_s: uniform stamp jitter (+- seconds) applied to every message header.
        start_time_ns: stamp of the first camera frame (fixed default; never the wall clock).
        frames_per_scene: 0 = one scene (and trajectory) for the whole run; N > 0 = a new scene
            every N frames (episodes), with the same sensor rig.
        camera_height: tabletop camera height above the table top (metres); None = U(0.6, 0.9).
        camera_pitch_deg: tabletop camera down-tilt (degrees); None = U(35, 50).
        crop_lidar_to_camera: street only: crop the 360 deg scan to the camera's field of view.
        vary_rig: tabletop: draw a new camera height/pitch and table for every episode (variety
            for training data) instead of keeping episode 0's rig; bags then carry a new
            /tf_static message at each episode start.
    """

    scenario: str = "tabletop"
    seed: int = 0
    frames: int = 30
    camera: CameraConfig | None = None
    lidar: LidarConfig | None = None
    num_objects: tuple[int, int] | None = None
    ambiguous_prob: float = 0.5
    trajectory: str = "none"
    goal: str | None = None
    fail_mode: str | None = None
    storage: str = "mcap"
    camera_rate_hz: float = 30.0
    lidar_rate_hz: float = 10.0
    stamp_jitter_s: float = 0.001
    start_time_ns: int = DEFAULT_START_NS
    frames_per_scene: int = 0
    camera_height: float | None = None
    camera_pitch_deg: float | None = None
    crop_lidar_to_camera: bool = False
    vary_rig: bool = False

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ConfigError(_bad("SimConfig", scenario=self.scenario) + f" (one of {SCENARIOS})")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(_bad("SimConfig", seed=self.seed) + " (a non-negative integer)")
        if self.frames < 1:
            raise ConfigError(_bad("SimConfig", frames=self.frames) + " (at least 1)")
        if isinstance(self.camera, dict):
            self.camera = CameraConfig(**self.camera)
        if isinstance(self.lidar, dict):
            self.lidar = LidarConfig(**self.lidar)
        if self.camera is None:
            self.camera = default_camera(self.scenario)
        if self.lidar is None:
            self.lidar = default_lidar(self.scenario)
        if self.num_objects is None:
            self.num_objects = (3, 10) if self.scenario == "tabletop" else (8, 20)
        lo, hi = (int(v) for v in self.num_objects)
        self.num_objects = (lo, hi)
        cap = 10 if self.scenario == "tabletop" else 40
        if not 1 <= lo <= hi <= cap:
            raise ConfigError(
                _bad("SimConfig", num_objects=self.num_objects)
                + f" (need 1 <= min <= max <= {cap} for {self.scenario})"
            )
        if not 0 <= self.ambiguous_prob <= 1:
            raise ConfigError(_bad("SimConfig", ambiguous_prob=self.ambiguous_prob) + " (0..1)")
        if self.trajectory not in TRAJECTORY_MODES:
            raise ConfigError(
                _bad("SimConfig", trajectory=self.trajectory) + f" (one of {TRAJECTORY_MODES})"
            )
        if self.scenario == "street" and (self.trajectory != "none" or self.goal):
            raise ConfigError(
                _bad(
                    "SimConfig", scenario=self.scenario, trajectory=self.trajectory, goal=self.goal
                )
                + " (goal trajectories exist for the tabletop scenario only)"
            )
        if self.goal is not None and self.trajectory == "none":
            raise ConfigError(
                _bad("SimConfig", goal=self.goal, trajectory=self.trajectory)
                + " (a goal needs --trajectory success or fail)"
            )
        if self.fail_mode is not None and self.fail_mode not in FAIL_MODES:
            raise ConfigError(
                _bad("SimConfig", fail_mode=self.fail_mode) + f" (one of {FAIL_MODES} or None)"
            )
        if self.storage not in STORAGES:
            raise ConfigError(_bad("SimConfig", storage=self.storage) + f" (one of {STORAGES})")
        if self.camera_rate_hz <= 0 or self.lidar_rate_hz <= 0:
            raise ConfigError(
                _bad(
                    "SimConfig",
                    camera_rate_hz=self.camera_rate_hz,
                    lidar_rate_hz=self.lidar_rate_hz,
                )
                + " (> 0)"
            )
        ratio = self.camera_rate_hz / self.lidar_rate_hz
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ConfigError(
                _bad(
                    "SimConfig",
                    camera_rate_hz=self.camera_rate_hz,
                    lidar_rate_hz=self.lidar_rate_hz,
                )
                + " (the camera rate must be a whole multiple of the LiDAR rate)"
            )
        if not 0 <= self.stamp_jitter_s < 0.25 / self.camera_rate_hz:
            raise ConfigError(
                _bad(
                    "SimConfig",
                    stamp_jitter_s=self.stamp_jitter_s,
                    camera_rate_hz=self.camera_rate_hz,
                )
                + " (0 <= jitter < a quarter of the camera period)"
            )
        if self.start_time_ns < 0:
            raise ConfigError(_bad("SimConfig", start_time_ns=self.start_time_ns) + " (>= 0)")
        if self.frames_per_scene < 0:
            raise ConfigError(
                _bad("SimConfig", frames_per_scene=self.frames_per_scene)
                + " (0 = one scene, else >= 1)"
            )
        if self.camera_height is not None and not 0.2 <= self.camera_height <= 2.0:
            raise ConfigError(
                _bad("SimConfig", camera_height=self.camera_height)
                + " (0.2..2.0 m above the table)"
            )
        if self.camera_pitch_deg is not None and not 10 <= self.camera_pitch_deg <= 80:
            raise ConfigError(
                _bad("SimConfig", camera_pitch_deg=self.camera_pitch_deg)
                + " (10..80 degrees down)"
            )
        if self.crop_lidar_to_camera and self.scenario != "street":
            raise ConfigError(
                _bad("SimConfig", crop_lidar_to_camera=True, scenario=self.scenario)
                + " (the tabletop LiDAR already faces the table; use "
                "lidar.azimuth_fov_deg)"
            )
        if self.crop_lidar_to_camera:
            self.lidar = dataclasses.replace(
                self.lidar, azimuth_fov_deg=min(360.0, self.camera.hfov_deg + 4)
            )

    @property
    def lidar_every(self) -> int:
        """Camera frames per LiDAR scan."""
        return int(round(self.camera_rate_hz / self.lidar_rate_hz))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for scene.json)."""
        d = dataclasses.asdict(self)
        d["camera"]["distortion"] = list(self.camera.distortion)
        d["num_objects"] = list(self.num_objects)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimConfig:
        """Inverse of :meth:`to_dict`; unknown keys → ConfigError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"SimConfig: unknown key(s) {unknown}; known: {sorted(names)}")
        d = dict(d)
        if d.get("num_objects") is not None:
            d["num_objects"] = tuple(d["num_objects"])
        if isinstance(d.get("camera"), dict):
            d["camera"] = CameraConfig(**d["camera"])
        if isinstance(d.get("lidar"), dict):
            d["lidar"] = LidarConfig(**d["lidar"])
        return cls(**d)
