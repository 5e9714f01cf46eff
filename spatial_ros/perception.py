"""The perception pipeline, ROS-free: SensorFrame + queries -> grounded 3D objects and distances.

One implementation serves the live node (``spatial_ros.nodes.perception_node``), ``spatial-ros
ground`` and bag replay (``spatial-ros eval``), so replay reproduces what the node publishes.

Per frame: specialists (LiDAR clustering, optional depth lifting) propose candidate 3D boxes ->
the VLM engine grounds each active query with the candidates in its prompt (Cube-LLM specialist
box prompts) -> objects in ``output_frame`` + distances (sensor<->object, configured pairs).
Without a VLM (``use_vlm: false``) every candidate is published with its distance.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import math
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spatial_ros.config import field_help, param
from spatial_ros.errors import CalibrationError, ConfigError, ModelError, SpatialRosError
from spatial_ros.types import Candidate, GroundedObject, Relation, SensorFrame
from spatial_ros.user_text import bounded_text
from spatial_ros.vlm.backends.options import BackendConfig, model_option, model_options_of
from spatial_ros.vlm.served_config import BACKENDS, served_config_from, served_param

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "default"
QOS_RELIABILITY = ("reliable", "best_effort", "best_available")


@dataclass
class PerceptionConfig:
    """Parameters of the perception node (config/perception.yaml documents each one)."""

    # --- inputs -------------------------------------------------------------------------------
    image_topic: str = param("/camera/image_raw", "image topic (sensor_msgs/Image or, with "
                             "image_transport=compressed, sensor_msgs/CompressedImage)")
    image_transport: str = param("raw", "'raw' or 'compressed'")
    camera_info_topic: str = param("/camera/camera_info", "sensor_msgs/CameraInfo topic")
    cloud_topic: str = param("/lidar/points", "sensor_msgs/PointCloud2 topic; '' = no LiDAR")
    depth_topic: str = param("", "aligned depth image topic (16UC1 mm / 32FC1 m); '' = none")
    qos_reliability: str = param("reliable", "sensor QoS reliability: reliable (default: a "
                                 "0.5 MB cloud or a camera image crosses processes whole) | "
                                 "best_effort (for publishers that only offer best effort) | "
                                 "best_available (match the publishers present at start)")
    qos_depth: int = param(5, "sensor subscription queue depth (messages)")
    slop: float = param(0.05, "max stamp spread of a synchronized image/cloud set (s)")
    queue_size: int = param(10, "synchronizer queue length per input (messages)")
    max_frame_age: float = param(1.0, "frames whose image stamp is older than this relative to "
                                 "the newest image seen are dropped unprocessed (s)")
    time_jump: float = param(0.5, "a stamp this much older than the newest on its input (bag "
                             "loop, simulator restart) clears the queues and restarts (s)")
    static_transforms: list = param([], "fallback extrinsics when /tf_static has none: "
                                    "'parent child x y z qx qy qz qw' (m, quaternion)")
    # --- outputs ------------------------------------------------------------------------------
    output_frame: str = param("base_link", "frame of the published boxes (z up)")
    publish_markers: bool = param(True, "publish visualization_msgs/MarkerArray on ~/markers")
    sensor_distances: bool = param(True, "publish a sensor<->object distance relation per object")
    relation_pairs: list = param(["the red mug | the blue bowl"],
                                 "query pairs 'subject | object' whose distances are published")
    stats_period: float = param(1.0, "period of the diagnostics / stats output (s)")
    # --- grounding ----------------------------------------------------------------------------
    queries: list = param(["the red mug", "the blue bowl"],
                          "initial natural-language queries (SetQueries replaces them)")
    max_queries: int = param(32, "most queries per SetQueries call and per frame")
    max_query_chars: int = param(200, "longest query (characters); longer ones are refused "
                                 "before any parsing")
    max_question_chars: int = param(1000, "longest AskSpatial question (characters); longer "
                                    "ones are refused before any parsing")
    use_vlm: bool = param(True, "run the VLM; false = specialists-only (all candidates published)")
    model_path: str = param("", "local model directory; '' = the embedded default "
                            "(models/default). backend openai: the folder holding the served "
                            "model's spatial_ros_vlm.json ('' = models/default's for family "
                            "cube-llm)")
    device: str = param("auto", "auto | cpu | cuda | cuda:N")
    backend: str = param("transformers", "transformers (model_path loaded in this process) | "
                         "openai (a model served over HTTP by vLLM, SGLang, Ollama or "
                         "llama.cpp: server_url, served_model)")
    server_url: str = served_param("server_url")
    served_model: str = served_param("served_model")
    api_key_env: str = served_param("api_key_env")
    image_max_side: int = served_param("image_max_side")
    image_format: str = served_param("image_format")
    jpeg_quality: int = served_param("jpeg_quality")
    timeout_s: float = served_param("timeout_s")
    retries: int = served_param("retries")
    concurrency: int = served_param("concurrency")
    top_logprobs: int = served_param("top_logprobs")
    max_new_tokens: int = param(48, "generation budget per query (tokens)")
    family: str = model_option("family")
    dtype: str = model_option("dtype")
    attn_implementation: str = model_option("attn_implementation")
    trust_remote_code: bool = model_option("trust_remote_code")
    threads: int = model_option("threads")
    specialist_prompts: bool = param(True, "put specialist candidate boxes into the VLM prompt")
    vcot: bool = param(False, "visual chain-of-thought: ask the 2D box first, then the 3D box")
    visual_prompts: bool = param(False, "draw candidate marks on the image (ViP-LLaVA style)")
    referring: str = param(
        "program", "how queries are understood: program (parse the referring expression; "
        "names from each candidate's shape and colour, ties broken by the model's tag scores; "
        "spatial words such as left, closest, second, bigger, next to, between evaluated in "
        "3D; queries it cannot answer go to the model) | model (every query to the model)")
    lidar_preset: str = param("auto", "LiDAR specialist preset: auto (chosen once from the "
                              "first cloud's ranges and the cloud topic/frame, logged) | "
                              "tabletop | street")
    use_depth_specialist: bool = param(False, "also propose candidates from the depth image")
    min_score: float = param(0.0, "objects scoring below this are not published [0, 1]")
    # --- node -----------------------------------------------------------------------------------
    autostart: bool = param(True, "configure + activate on start (false: drive it with a "
                            "lifecycle manager)")

    def __post_init__(self) -> None:
        if self.image_transport not in ("raw", "compressed"):
            raise ConfigError(
                f"image_transport must be raw|compressed, got {self.image_transport!r}"
            )
        if self.qos_reliability not in QOS_RELIABILITY:
            raise ConfigError(f"qos_reliability must be {'|'.join(QOS_RELIABILITY)}, "
                              f"got {self.qos_reliability!r}")
        for name in ("slop", "max_frame_age", "stats_period", "time_jump"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0 s, got {getattr(self, name)}")
        if self.time_jump <= self.slop:
            raise ConfigError(f"time_jump ({self.time_jump} s) must be > slop ({self.slop} s), "
                              "else jittered stamps would reset the synchronizer")
        if self.qos_depth < 1 or self.queue_size < 1 or self.max_new_tokens < 1:
            raise ConfigError(
                f"qos_depth ({self.qos_depth}), queue_size ({self.queue_size}) and max_new_tokens "
                f"({self.max_new_tokens}) must be >= 1"
            )
        if self.lidar_preset not in ("auto", "tabletop", "street"):
            raise ConfigError(
                f"lidar_preset must be auto|tabletop|street, got {self.lidar_preset!r}"
            )
        if not self.cloud_topic and not self.depth_topic:
            raise ConfigError("set cloud_topic or depth_topic: specialists need 3D data")
        if self.use_depth_specialist and not self.depth_topic:
            raise ConfigError("use_depth_specialist is true but depth_topic is empty")
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"min_score must be in [0, 1], got {self.min_score}")
        if self.referring not in ("program", "model"):
            raise ConfigError(f"referring must be program|model, got {self.referring!r}")
        BackendConfig(device=self.device, **model_options_of(self))  # ConfigError if invalid
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be {' | '.join(BACKENDS)}, got {self.backend!r}")
        served_config_from(self)  # validates the served-model settings (ConfigError)
        if min(self.max_queries, self.max_query_chars, self.max_question_chars) < 1:
            raise ConfigError(
                f"max_queries ({self.max_queries}), max_query_chars ({self.max_query_chars}) and "
                f"max_question_chars ({self.max_question_chars}) must be >= 1"
            )
        self.queries = normalize_queries(self.queries, self.max_queries, self.max_query_chars)
        self.relation_pairs = [parse_pair(p) for p in self.relation_pairs]

    @property
    def resolved_model_path(self) -> Path:
        return Path(self.model_path).expanduser() if self.model_path else DEFAULT_MODEL_DIR


def normalize_queries(queries, max_queries: int = 32, max_chars: int = 200) -> list[str]:
    """Clean each query (``user_text.bounded_text``: length cap first, control characters and
    escape sequences removed, whitespace collapsed), drop empties and duplicates (keeping order).
    Raises ConfigError on non-strings, a query over ``max_chars`` characters, or more than
    ``max_queries`` queries (checked on the list as given, before any query is read)."""
    if isinstance(queries, str):
        raise ConfigError("queries must be a list of strings, not one string")
    queries = list(queries)
    if len(queries) > max_queries:
        raise ConfigError(f"{len(queries)} queries given; at most {max_queries} (parameter "
                          "max_queries)")
    out: list[str] = []
    for q in queries:
        q = bounded_text(q, "query", max_chars)
        if q and q not in out:
            out.append(q)
    return out


def parse_pair(p) -> str:
    """Validate 'subject | object' (returned normalised as 'a|b')."""
    if not isinstance(p, str) or p.count("|") != 1 or not all(s.strip() for s in p.split("|")):
        raise ConfigError(f"relation pair {p!r} must look like 'the red mug | the blue bowl'")
    a, b = (" ".join(s.split()) for s in p.split("|"))
    return f"{a}|{b}"


@dataclass
class PerceptionResult:
    """What one frame produced (all in ``frame_id``, stamped with the source image's stamp)."""

    stamp_ns: int
    frame_id: str
    objects: list[GroundedObject]
    relations: list[Relation]
    candidates: list[Candidate]
    timings_ms: dict[str, float] = field(default_factory=dict)
    parse_failures: int = 0


class PerceptionPipeline:
    """Specialists + VLM engine for one stream of frames. ``load()`` before ``process()``;
    ``unload()`` frees the model (and GPU memory).

    Args:
        config: the node's configuration.
        backend: a VLMBackend to use instead of loading ``config.resolved_model_path`` (tests,
            a model shared between pipelines). An injected backend is never closed here.
    """

    def __init__(self, config: PerceptionConfig, backend=None) -> None:
        self.config = config
        self._backend = backend  # injected (tests, a shared model) or built in load()
        self._owns_backend = backend is None
        self.engine = None
        self.lidar = None
        self.lidar_choice = None  # PresetChoice made from the first cloud (lidar_preset auto)
        self.depth = None
        self._loaded = False

    # ---- lifecycle ---------------------------------------------------------------------------
    def load(self) -> None:
        """Build the specialists and, with ``use_vlm``, load the model (CUDA bf16 when a GPU is
        available and ``device`` allows it, CPU fp32 otherwise).

        Raises:
            ModelError: the model directory is missing or not loadable.
            ConfigError: ``device`` asks for CUDA on a machine without it.
        """
        from spatial_ros.specialists import DepthSpecialist, LidarSpecialist, LidarSpecialistConfig

        cfg = self.config
        self.lidar = None
        self.lidar_choice = None
        if cfg.lidar_preset != "auto":
            self.lidar = LidarSpecialist(LidarSpecialistConfig.preset(cfg.lidar_preset))
        self.depth = DepthSpecialist() if cfg.use_depth_specialist else None
        if cfg.use_vlm:
            from spatial_ros.vlm.engine import EngineConfig, SpatialEngine

            if self._backend is None and cfg.backend == "openai":
                from spatial_ros.vlm.served import served_backend_for

                # nothing is sent yet: a server that is down does not stop the node starting
                self._backend = served_backend_for(cfg, DEFAULT_MODEL_DIR)
            if self._backend is None:
                from spatial_ros.vlm.backend import TransformersBackend

                # dtype "auto" = bfloat16 on CUDA, float32 on CPU (BackendConfig).
                self._backend = TransformersBackend(cfg.resolved_model_path, device=cfg.device,
                                                    **model_options_of(cfg))
            self.engine = SpatialEngine(
                self._backend,
                EngineConfig(
                    specialist_prompts=cfg.specialist_prompts,
                    vcot=cfg.vcot,
                    visual_prompts=cfg.visual_prompts,
                    max_new_tokens=cfg.max_new_tokens,
                    referring=cfg.referring,
                ),
            )
        self._loaded = True

    def unload(self) -> None:
        """Drop the engine and an owned model, collect garbage, and on CUDA return the cached
        blocks to the driver (``torch.cuda.memory_allocated()`` is back to its value before
        ``load()``). Safe to call twice. An injected backend is left alone."""
        self.engine = None
        if self._owns_backend and self._backend is not None:
            close = getattr(self._backend, "close", None)
            if close:
                close()
            self._backend = None
        gc.collect()  # model modules hold reference cycles: free the tensors now, not later
        torch = sys.modules.get("torch")  # never import torch just to free nothing
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def backend_status(self) -> dict:
        """Health of the VLM backend for diagnostics: ``backend`` and ``state`` always; a
        served model adds server_url, consecutive_failures, last_error and request counts
        (``ServedBackend.status``). ``state`` "unreachable" means the server is down: frames
        fail with ModelError until it answers again."""
        b = self._backend
        if not self.config.use_vlm:
            return {"backend": "none", "state": "ok"}
        if b is None:
            return {"backend": self.config.backend, "state": "not loaded"}
        status = getattr(b, "status", None)
        if callable(status):
            return dict(status())
        return {"backend": self.config.backend, "state": "ok"}

    @property
    def loaded(self) -> bool:
        return self._loaded and (self.engine is not None or not self.config.use_vlm)

    @property
    def lidar_preset(self) -> str:
        """The LiDAR preset in use ("" while ``auto`` has not seen a cloud yet)."""
        return self.lidar.config.preset_name if self.lidar is not None else ""

    def _lidar_for(self, frame: SensorFrame):
        """The LiDAR specialist; with ``lidar_preset: auto`` built on the first frame with
        points, from the preset ``specialists.choose_preset`` picks (logged with its
        reason)."""
        if self.lidar is None and frame.points is not None and len(frame.points):
            from spatial_ros.specialists import (
                LidarSpecialist,
                LidarSpecialistConfig,
                choose_preset,
            )

            cfg = self.config
            meta = [frame.points_frame, cfg.cloud_topic]
            self.lidar_choice = choose_preset(frame.points, meta)
            log.info("lidar_preset auto: %s (%s)", self.lidar_choice.preset,
                     self.lidar_choice.reason)
            self.lidar = LidarSpecialist(LidarSpecialistConfig.preset(self.lidar_choice.preset))
        return self.lidar

    # ---- per frame ---------------------------------------------------------------------------
    def candidates(self, frame: SensorFrame) -> list[Candidate]:
        """Specialist proposals for the frame; boxes in ``output_frame`` (z up) when the frame's
        transforms connect it to the sensors, else in the sensor frame."""
        cfg = self.config
        lidar = self._lidar_for(frame)
        cands: list[Candidate] = (
            list(lidar.propose_frame(frame, base_frame=cfg.output_frame)) if lidar else []
        )
        if self.depth is not None and frame.depth is not None:
            tf = frame.transforms
            T_base = tf.lookup(cfg.output_frame, frame.camera.frame_id) if tf is not None else None
            cands += self.depth.propose(
                frame.depth, frame.camera, T_base_from_camera=T_base, base_frame=cfg.output_frame
            )
        return cands

    def process(self, frame: SensorFrame, queries: list[str],
                distinct: bool = False) -> PerceptionResult:
        """Ground ``queries`` on ``frame`` (``distinct``: they name different objects, see
        ``SpatialEngine.ground``).

        Raises:
            CalibrationError: the output frame is not connected to the sensors.
            ModelError: the VLM backend failed on this frame (e.g. CUDA out of memory); the
                frame has no result, the pipeline stays usable for the next one.
        """
        if not self.loaded:
            raise ConfigError("PerceptionPipeline.process() before load()")
        cfg = self.config
        t0 = time.perf_counter()
        tf = frame.transforms
        if tf is None or not tf.can_transform(cfg.output_frame, frame.camera.frame_id):
            raise CalibrationError(
                f"no transform from '{frame.camera.frame_id}' to output_frame "
                f"'{cfg.output_frame}': publish /tf_static or set static_transforms"
            )
        cands = self.candidates(frame)
        t1 = time.perf_counter()
        failures = 0
        if cfg.use_vlm:
            before = self.engine.stats.parse_failures
            try:
                objects = self.engine.ground(frame, queries, cands, output_frame=cfg.output_frame,
                                             distinct=distinct)
            except SpatialRosError:
                raise
            except Exception as e:  # noqa: BLE001 - any backend failure -> one typed error
                raise ModelError(
                    f"VLM backend failed on frame {frame.stamp_ns} ({type(e).__name__}: {e}); "
                    "frame skipped. Check the device's memory and the model directory"
                ) from e
            failures = self.engine.stats.parse_failures - before
        else:
            objects = [self._candidate_object(c, frame) for c in cands]
        objects = [o for o in objects if o.score >= cfg.min_score]
        t2 = time.perf_counter()
        relations = self.relations(objects)
        t3 = time.perf_counter()
        return PerceptionResult(
            frame.stamp_ns, cfg.output_frame, objects, relations, cands,
            {"specialists": (t1 - t0) * 1e3, "grounding": (t2 - t1) * 1e3,
             "relations": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3},
            failures,
        )

    def _candidate_object(self, c: Candidate, frame: SensorFrame) -> GroundedObject:
        tf, src = frame.transforms, c.box.frame_id or frame.points_frame
        box = c.box.transformed(tf.lookup(self.config.output_frame, src), self.config.output_frame)
        # Distance from the SENSOR origin (the source's sensor frame), not from output_frame.
        sensor = frame.points_frame if c.source == "lidar" else frame.camera.frame_id
        centre_in_sensor = tf.lookup(sensor, src) @ np.append(c.box.center, 1.0)
        return GroundedObject(
            id=c.id, query="", label=c.label, score=c.score, box=box, box_2d=c.box_2d,
            distance=float(np.linalg.norm(centre_in_sensor[:3])), source=c.source,
        )

    def relations(self, objects: list[GroundedObject]) -> list[Relation]:
        """Distances of the frame just processed.

        - sensor<->object (``sensor_distances``): ``distance`` from the sensor origin (camera
          for VLM objects, the LiDAR for LiDAR candidates) to the box centre, metres.
        - each configured pair whose two queries were grounded: ``distance`` (centre to
          centre) and ``surface_distance`` (closest surfaces), metres, both from
          ``SpatialEngine.distance``: from the fused candidates' points when both objects have
          them, else between the boxes (the answer text says which).
        """
        cfg = self.config
        out: list[Relation] = []
        if cfg.sensor_distances:
            for o in objects:
                if math.isfinite(o.distance):
                    name = o.query or o.label or o.id
                    out.append(Relation("sensor", o.id, "distance", o.distance, "m",
                                        f"{name} is {o.distance:.2f} m away"))
        if self.engine is None:
            return out  # specialists-only: objects carry no query, so no pair applies
        by_query = {o.query: o for o in objects if o.query}
        for pair in cfg.relation_pairs:
            qa, qb = pair.split("|")
            a, b = by_query.get(qa), by_query.get(qb)
            if a is None or b is None:
                continue
            d = self.engine.distance(a, b)
            how = "closest points" if d["method"] == "points" else "box surfaces"
            out.append(Relation(a.id, b.id, "distance", d["center"], "m",
                                f"{qa} is {d['center']:.2f} m from {qb} (centre to centre)"))
            out.append(Relation(a.id, b.id, "surface_distance", d["surface"], "m",
                                f"the closest surfaces of {qa} and {qb} are {d['surface']:.2f} m "
                                f"apart ({how})"))
        return out


# ---- config/perception.yaml, generated from PerceptionConfig (its single source) ----------------

NODE_NAME = "perception_node"
CONFIG_FILE = Path(__file__).resolve().parents[1] / "config" / "perception.yaml"
_YAML_HEADER = """\
# Parameters of the perception node, GENERATED from spatial_ros/perception.py (PerceptionConfig):
# edit the dataclass, then run `python -m spatial_ros.perception > config/perception.yaml`
# (test/test_launch.py fails when this file and the dataclass disagree).
# Used unchanged by `ros2 launch spatial_ros perception.launch.py` and by
# `spatial-ros run perception --config config/perception.yaml`.
"""


def _yaml_value(value) -> str:
    """A ROS 2 parameter-file literal: JSON is valid YAML, floats keep their decimal point (a
    ROS double), strings are quoted (so '' and 'true' stay strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)


def config_yaml(node_name: str = NODE_NAME) -> str:
    """The text of config/perception.yaml: every PerceptionConfig field with its default and its
    help as a comment. An empty-list default cannot be written in a ROS parameter file (the
    element type is unknown), so such a field is written as a commented-out line."""
    helps = field_help(PerceptionConfig)
    defaults = PerceptionConfig()
    lines = [_YAML_HEADER.rstrip("\n"), f"{node_name}:", "  ros__parameters:"]
    for f in dataclasses.fields(PerceptionConfig):
        value = getattr(defaults, f.name)
        if f.name == "relation_pairs":  # normalised 'a|b' -> the documented 'a | b' spelling
            value = [p.replace("|", " | ") for p in value]
        lines += textwrap.wrap(helps[f.name], 95, initial_indent="    # ",
                               subsequent_indent="    #   ")
        if isinstance(value, list) and not value:
            lines.append(f"    # {f.name}: []   (default; a ROS parameter file cannot hold [])")
        else:
            lines.append(f"    {f.name}: {_yaml_value(value)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(config_yaml(), end="")
