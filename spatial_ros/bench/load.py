"""`spatial-ros bench load`: the perception node under sensor load, over real DDS.

The node runs in its own process, started exactly as users start it (``spatial-ros run
perception`` with config/perception.yaml plus ``-p`` overrides) on a private DDS domain. This
process publishes simulated tabletop frames — rendered ONCE, then replayed cyclically with fresh
stamps (the wall clock at publish time) — at ``--image-hz`` (30) images + CameraInfo and
``--cloud-hz`` (10) clouds, plus /tf_static, and listens to the node's outputs and /diagnostics.

After ``--warmup`` seconds (not counted: imports, first allocations, model load) it measures
for ``--duration`` seconds (60):

- output rate: arrays received per second;
- end-to-end latency: receipt time of an array minus its header stamp (= the source image's
  publish time), p50/p95/max;
- frame accounting from the node's /diagnostics counters (deltas over the window): synchronized
  image+cloud sets, processed frames, frames dropped because a newer one replaced them while
  the worker was busy (``dropped_stale``) or because they were too old (``dropped_old``),
  skipped/failed frames, and the images the synchronizer could not pair (at 30/10 Hz two of
  three images have no cloud by design);
- RSS of the node process (psutil), sampled every 0.25 s: start and end are the MEDIANS of
  the first and last quarter (at most 10 s) of the samples (a single sample swings by +-3 %
  with the transient arrays of the frame in flight), growth % between them (also over the
  second half alone), the maximum, and the least-squares slope (MB/min);
- correctness under load, scored against the simulator's truth of each replayed frame
  (spatial_ros.perception_metrics): LiDAR candidate BEV recall/precision @IoU 0.5 in
  specialists-only mode, Acc@IoU0.25 and distance errors with ``--model``.

Specialists-only by default; ``--model DIR`` runs the VLM (queries: the scene's unambiguous
captions, or ``--query``).

QoS: the node's default (reliable, for the publishers here too). A simulated tabletop cloud is
~530 KB; with Fast DDS's default transports (UDP + a 512 KB shared-memory segment) most
best-effort clouds of that size are lost between processes (``--qos best_effort`` shows it;
``--dds-transports LARGE_DATA``, Fast DDS's large-data builtin transports, helps in part); the
report says which was used.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from spatial_ros.errors import ConfigError, SpatialRosError

HELP = "perception node under 30 Hz images + 10 Hz clouds: output rate, latency, drops, RSS"

NODE = "/perception_node"


@dataclass
class LoadConfig:
    """A load run (seconds, Hz)."""

    duration: float = 60.0
    warmup: float = 10.0
    image_hz: float = 30.0
    cloud_hz: float = 10.0
    scans: int = 4
    seed: int = 0
    model: str = ""
    queries: list[str] = field(default_factory=list)
    max_new_tokens: int = 48
    domain_id: int = -1
    qos_reliability: str = "reliable"
    dds_transports: str = ""
    startup_timeout: float = 180.0

    def __post_init__(self) -> None:
        bad = []
        if not self.duration > 0 or not self.warmup >= 0:
            bad.append(f"duration={self.duration} (> 0), warmup={self.warmup} (>= 0)")
        if not (self.image_hz > 0 and self.cloud_hz > 0):
            bad.append(f"image_hz={self.image_hz}, cloud_hz={self.cloud_hz} (> 0)")
        elif abs(self.image_hz / self.cloud_hz - round(self.image_hz / self.cloud_hz)) > 1e-9:
            bad.append(f"image_hz={self.image_hz} must be a whole multiple of "
                       f"cloud_hz={self.cloud_hz} (each scan is taken with one image)")
        if self.scans < 1:
            bad.append(f"scans={self.scans} (>= 1)")
        if self.domain_id > 232:
            bad.append(f"domain_id={self.domain_id} (0..232, or -1 = pick one)")
        if self.qos_reliability not in ("best_effort", "reliable"):
            bad.append(f"qos_reliability={self.qos_reliability!r} (best_effort | reliable)")
        if bad:
            raise ConfigError("invalid load run: " + "; ".join(bad))
        if self.domain_id < 0:  # private domain: no crosstalk with tests on this machine
            self.domain_id = 100 + os.getpid() % 100


@dataclass
class LoadResult:
    """What a load run measured (counts over the measured window)."""

    config: dict
    window_s: float
    images_published: int
    clouds_published: int
    publish_rate_hz: float
    outputs: int
    output_rate_hz: float
    latency_ms: dict[str, float]
    latency_first_half_p95_ms: float
    latency_second_half_p95_ms: float
    node_counters: dict[str, float]
    rss_start_mb: float
    rss_end_mb: float
    rss_max_mb: float
    rss_growth_pct: float
    rss_slope_mb_per_min: float
    rss_second_half_growth_pct: float
    rss_samples_mb: list[float]
    accuracy: dict[str, float]
    node_log_tail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


class _Scene:
    """Simulated frames rendered once and their messages built once (stamps set at publish)."""

    def __init__(self, cfg: LoadConfig, f) -> None:
        from spatial_ros.io.camera_info import intrinsics_to_camera_info
        from spatial_ros.io.image import encode_image
        from spatial_ros.io.pointcloud import array_to_pointcloud2
        from spatial_ros.ros_conversions import tree_to_tf_message
        from spatial_ros.sim import SimConfig, iter_frames

        ratio = int(round(cfg.image_hz / cfg.cloud_hz))
        sim = SimConfig("tabletop", seed=cfg.seed, frames=cfg.scans * 3, lidar_rate_hz=10.0,
                        camera_rate_hz=30.0)
        frames = [fr for fr in iter_frames(sim) if fr.points is not None][: cfg.scans]
        self.frames = frames
        self.ratio = ratio
        sf = frames[0].sensor_frame()
        self.transforms, self.camera = sf.transforms, sf.camera
        # /tf_static: the rig only (sf.transforms also holds the moving gripper_tcp frame)
        self.tf_msg = tree_to_tf_message(frames[0].scene.rig.transform_tree(),
                                         frames[0].stamp_ns, f)
        self.msgs = [
            (
                intrinsics_to_camera_info(sf.camera, fr.stamp_ns, f),
                encode_image(fr.image, "rgb8", fr.stamp_ns, sf.camera.frame_id, f),
                array_to_pointcloud2(fr.points, fr.stamp_ns, sf.points_frame, f),
            )
            for fr in frames
        ]


def _set_stamp(msg, stamp_ns: int) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)


def _node_command(cfg: LoadConfig, queries: list[str], run_s: float) -> list[str]:
    params = {
        "use_vlm": bool(cfg.model), "qos_reliability": cfg.qos_reliability,
        "stats_period": 0.5, "queries": queries, "relation_pairs": [],
        "max_new_tokens": cfg.max_new_tokens,
    }
    if cfg.model:
        params["model_path"] = str(Path(cfg.model).expanduser().resolve())
    cmd = [sys.executable, "-c", "import sys; from spatial_ros.cli import main; sys.exit(main())",
           "run", "perception", "--duration", f"{run_s:.0f}"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={json.dumps(v)}"]
    return cmd


def run_load(cfg: LoadConfig, log=print) -> LoadResult:
    """Run the node in a child process under load and measure it (module docstring).

    Raises:
        SpatialRosError: the node did not come up (its log tail is in the message).
    """
    import psutil
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from tf2_msgs.msg import TFMessage

    from spatial_ros.io.msgs import MessageFactory, stamp_to_ns
    from spatial_ros.msg import GroundedObject3DArray
    from spatial_ros.perception_metrics import grounding_queries

    f = MessageFactory.rclpy()
    scene = _Scene(cfg, f)
    queries = list(cfg.queries) or (grounding_queries(scene.frames[0].truth) if cfg.model else [])
    run_s = cfg.warmup + cfg.duration + cfg.startup_timeout + 30
    env = dict(os.environ, ROS_DOMAIN_ID=str(cfg.domain_id))
    if cfg.dds_transports:  # read when a DDS participant is created: set for both processes
        os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = env["FASTDDS_BUILTIN_TRANSPORTS"] = \
            cfg.dds_transports
    logdir = Path(tempfile.mkdtemp(prefix="spatial_ros_load_"))
    log_file = open(logdir / "node.log", "w")  # noqa: SIM115 - closed in finally
    child = subprocess.Popen(_node_command(cfg, queries, run_s), env=env, stdout=log_file,
                             stderr=subprocess.STDOUT)

    def tail() -> str:
        log_file.flush()
        return "\n".join((logdir / "node.log").read_text(errors="replace").splitlines()[-15:])

    ctx = rclpy.context.Context()
    rclpy.init(context=ctx, domain_id=cfg.domain_id)
    io = rclpy.create_node("load_bench_io", context=ctx)
    rel = (QoSReliabilityPolicy.BEST_EFFORT if cfg.qos_reliability == "best_effort"
           else QoSReliabilityPolicy.RELIABLE)
    sensor = QoSProfile(depth=5, reliability=rel)
    latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                         durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    pub_img = io.create_publisher(Image, "/camera/image_raw", sensor)
    pub_info = io.create_publisher(CameraInfo, "/camera/camera_info", sensor)
    pub_cloud = io.create_publisher(PointCloud2, "/lidar/points", sensor)
    pub_tf = io.create_publisher(TFMessage, "/tf_static", latched)
    pub_tf.publish(scene.tf_msg)

    lock = threading.Lock()
    outputs: list[tuple[int, int, object]] = []  # (receipt ns, stamp ns, msg)
    diags: list[tuple[float, dict[str, float]]] = []

    def on_objects(msg) -> None:
        now = time.time_ns()
        with lock:
            outputs.append((now, stamp_to_ns(msg.header), msg))

    def on_diag(msg) -> None:
        for st in msg.status:
            if st.name.startswith(NODE.strip("/")):
                vals = {}
                for kv in st.values:
                    try:
                        vals[kv.key] = float(kv.value)
                    except ValueError:
                        continue
                with lock:
                    diags.append((time.monotonic(), vals))

    io.create_subscription(GroundedObject3DArray, f"{NODE}/objects", on_objects, 50)
    io.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(io)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()

    stop = threading.Event()
    published: dict[int, int] = {}  # image stamp -> scene frame index (only images with a scan)
    counts = {"images": 0, "clouds": 0}
    window = {"start": None, "end": None}

    def publisher() -> None:
        period = 1.0 / cfg.image_hz
        t_next = time.monotonic()
        i = 0
        while not stop.is_set():
            k = (i // scene.ratio) % len(scene.msgs)
            info, img, cloud = scene.msgs[k]
            stamp = time.time_ns()
            for m in (info, img):
                _set_stamp(m, stamp)
            pub_info.publish(info)
            pub_img.publish(img)
            counted = window["start"] is not None and window["end"] is None
            if i % scene.ratio == 0:
                _set_stamp(cloud, stamp)
                pub_cloud.publish(cloud)
                published[stamp] = k
                counts["clouds"] += counted
            counts["images"] += counted
            i += 1
            t_next += period
            delay = t_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:  # far behind (overloaded machine): do not burst to catch up
                t_next = time.monotonic()

    proc = psutil.Process(child.pid)
    pub_thread = None
    try:
        t0 = time.monotonic()
        while not diags:  # lifecycle publishers: the first /diagnostics means "active"
            if child.poll() is not None:
                raise SpatialRosError(f"the perception node exited ({child.returncode}):\n"
                                      + tail())
            if time.monotonic() - t0 > cfg.startup_timeout:
                raise SpatialRosError(f"the perception node did not become active within "
                                      f"{cfg.startup_timeout:.0f} s:\n" + tail())
            pub_tf.publish(scene.tf_msg)
            time.sleep(0.2)
        log(f"node active after {time.monotonic() - t0:.1f} s (pid {child.pid}, domain "
            f"{cfg.domain_id}); warm-up {cfg.warmup:.0f} s, then {cfg.duration:.0f} s measured")
        pub_thread = threading.Thread(target=publisher, name="load_publisher", daemon=True)
        pub_thread.start()
        time.sleep(cfg.warmup)

        def snapshot() -> dict[str, float]:
            with lock:
                return dict(diags[-1][1]) if diags else {}

        d0 = snapshot()
        rss: list[tuple[float, float]] = [(0.0, proc.memory_info().rss / 2**20)]
        t_start, window["start"] = time.monotonic(), time.time_ns()
        while time.monotonic() - t_start < cfg.duration:
            time.sleep(min(0.25, max(0.0, cfg.duration - (time.monotonic() - t_start))))
            rss.append((time.monotonic() - t_start, proc.memory_info().rss / 2**20))
            if child.poll() is not None:
                raise SpatialRosError("the perception node died under load:\n" + tail())
        window["end"] = time.time_ns()
        window_s = time.monotonic() - t_start
        stop.set()
        pub_thread.join(timeout=5)
        time.sleep(1.5)  # in-flight frames and the next /diagnostics
        d1 = snapshot()
    finally:
        stop.set()
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        node_tail = tail()
        log_file.close()
        ex.shutdown()
        io.destroy_node()
        rclpy.try_shutdown(context=ctx)

    with lock:
        got = [(r, s, m) for r, s, m in outputs if window["start"] <= s < window["end"]]
    lat = np.array([(r - s) / 1e6 for r, s, _ in got])
    half = len(lat) // 2
    deltas = {k: d1.get(k, float("nan")) - d0.get(k, 0.0) for k in (
        "frames", "objects", "dropped_stale", "dropped_old", "skipped_frames", "errors",
        "model_errors", "parse_failures", "sync_fired", "sync_dropped", "time_jumps")}
    deltas["processing_p50_ms"] = d1.get("processing_p50_ms", float("nan"))
    deltas["processing_p95_ms"] = d1.get("processing_p95_ms", float("nan"))
    t, mb = np.array(rss).T
    slope = float(np.polyfit(t, mb, 1)[0] * 60.0) if len(t) >= 3 else float("nan")
    k = max(1, min(40, len(mb) // 4))
    start, end = float(np.median(mb[:k])), float(np.median(mb[-k:]))
    h = len(mb) // 2
    mid = float(np.median(mb[max(0, h - k // 2): h - k // 2 + k]))
    return LoadResult(
        config=asdict(cfg) | {"queries": queries},
        window_s=window_s,
        images_published=counts["images"],
        clouds_published=counts["clouds"],
        publish_rate_hz=counts["images"] / window_s,
        outputs=len(got),
        output_rate_hz=len(got) / window_s,
        latency_ms={"p50": _pct(lat, 50), "p95": _pct(lat, 95),
                    "max": float(lat.max()) if len(lat) else float("nan")},
        latency_first_half_p95_ms=_pct(lat[:half], 95),
        latency_second_half_p95_ms=_pct(lat[half:], 95),
        node_counters=deltas,
        rss_start_mb=start,
        rss_end_mb=end,
        rss_max_mb=float(mb.max()),
        rss_growth_pct=(end - start) / start * 100.0,
        rss_slope_mb_per_min=slope,
        rss_second_half_growth_pct=(end - mid) / mid * 100.0,
        rss_samples_mb=[round(float(v), 2) for v in mb[::4]],  # 1 s apart
        accuracy=_score(got, published, scene, queries),
        node_log_tail=node_tail,
    )


def _score(got, published, scene: _Scene, queries: list[str]) -> dict[str, float]:
    """Correctness of the outputs received under load (module docstring)."""
    from spatial_ros.evaluation.replay import sensor_origins
    from spatial_ros.perception_metrics import candidate_recall, score_outputs
    from spatial_ros.ros_conversions import msg_to_grounded_objects

    frames = []
    for _, stamp, msg in got:
        k = published.get(stamp)
        if k is not None:
            frames.append((msg_to_grounded_objects(msg)[2], stamp, scene.frames[k].truth))
    if not frames:
        return {}
    if queries:
        origins = sensor_origins(scene.frames[0].sensor_frame(), "base_link")
        return score_outputs([(o, [], s, t) for o, s, t in frames], queries, origins).as_dict()
    det = candidate_recall(frames)
    return {"candidate_bev_recall_iou50": det.recall, "truth_objects": det.n_truth,
            "candidate_bev_precision_iou50": det.precision}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=10.0, help="unmeasured seconds first")
    parser.add_argument("--image-hz", type=float, default=30.0)
    parser.add_argument("--cloud-hz", type=float, default=10.0)
    parser.add_argument("--scans", type=int, default=4, help="distinct frames replayed")
    parser.add_argument("--seed", type=int, default=0, help="tabletop scene seed")
    parser.add_argument("--model", default="", help="VLM model directory (default: "
                        "specialists-only)")
    parser.add_argument("--query", action="append", default=[],
                        help="query (repeatable; default with --model: the scene's captions)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--qos", dest="qos_reliability", default="reliable",
                        choices=("best_effort", "reliable"))
    parser.add_argument("--domain-id", type=int, default=-1, help="DDS domain (-1: pick one)")
    parser.add_argument("--dds-transports", default="",
                        help="FASTDDS_BUILTIN_TRANSPORTS for both processes, e.g. LARGE_DATA "
                        "(best-effort clouds over 512 KB are otherwise mostly lost; '' = as the "
                        "environment says)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")


def run(args) -> int:
    cfg = LoadConfig(
        duration=args.duration, warmup=args.warmup, image_hz=args.image_hz,
        cloud_hz=args.cloud_hz, scans=args.scans, seed=args.seed, model=args.model,
        queries=list(args.query), max_new_tokens=args.max_new_tokens,
        domain_id=args.domain_id, qos_reliability=args.qos_reliability,
        dds_transports=args.dds_transports,
    )
    r = run_load(cfg)
    c, lat = r.node_counters, r.latency_ms
    mode = f"VLM {cfg.model} ({len(r.config['queries'])} queries)" if cfg.model \
        else "specialists-only"
    mode += f", QoS {cfg.qos_reliability}"
    if cfg.dds_transports:
        mode += f", FASTDDS_BUILTIN_TRANSPORTS={cfg.dds_transports}"
    print(f"perception node under load, {mode}: {cfg.image_hz:g} Hz images + {cfg.cloud_hz:g} Hz "
          f"clouds for {r.window_s:.1f} s (after {cfg.warmup:g} s warm-up)")
    print(f"  published   {r.images_published} images ({r.publish_rate_hz:.1f} Hz), "
          f"{r.clouds_published} clouds")
    print(f"  outputs     {r.outputs} arrays = {r.output_rate_hz:.2f} Hz")
    print(f"  latency     p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, max "
          f"{lat['max']:.1f} ms (p95 first half {r.latency_first_half_p95_ms:.1f}, second half "
          f"{r.latency_second_half_p95_ms:.1f})")
    print(f"  node        synced {c['sync_fired']:.0f}, processed {c['frames']:.0f}, dropped "
          f"stale {c['dropped_stale']:.0f} + old {c['dropped_old']:.0f}, skipped "
          f"{c['skipped_frames']:.0f}, errors {c['errors'] + c['model_errors']:.0f}, "
          f"unpaired/overflow {c['sync_dropped']:.0f}; processing p50 "
          f"{c['processing_p50_ms']:.1f} ms, p95 {c['processing_p95_ms']:.1f} ms")
    print(f"  RSS         {r.rss_start_mb:.1f} -> {r.rss_end_mb:.1f} MB "
          f"({r.rss_growth_pct:+.2f} %, second half {r.rss_second_half_growth_pct:+.2f} %, max "
          f"{r.rss_max_mb:.1f} MB, slope {r.rss_slope_mb_per_min:+.2f} MB/min)")
    print("  accuracy    " + ", ".join(f"{k} {v:.3g}" for k, v in r.accuracy.items()))
    if args.json:
        args.json.write_text(json.dumps(r.to_dict(), indent=2) + "\n")
    return 0
