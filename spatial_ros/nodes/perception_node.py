"""Perception node: camera + LiDAR (+ depth) in -> grounded 3D boxes and distances out.

A managed (lifecycle) node, rclpy.lifecycle.LifecycleNode:
  configure  -> parameters validated into PerceptionConfig, subscriptions/publishers/services made
  activate   -> specialists + VLM loaded (CUDA bf16 when available), frames processed
  deactivate -> model freed (torch.cuda.empty_cache), frames ignored
  cleanup    -> everything destroyed
With ``autostart: true`` (default) it configures and activates itself, so ``ros2 launch`` needs no
lifecycle manager.

Threading: subscription callbacks only decode headers and feed the synchronizer; a complete
synchronized set replaces the single pending slot (a newer frame drops an unprocessed older one,
counted); one worker thread decodes and processes the newest frame. Every output copies the source
image's header stamp. Bad input never kills the node: the frame is skipped with a throttled log
line and a diagnostic counter, and nothing is published for it (no empty array that would claim
"nothing found"):

  skipped_frames  undecodable image/cloud, missing CameraInfo or transforms (SpatialRosError)
  model_errors    the VLM backend raised (e.g. CUDA out of memory)
  errors          anything else (the traceback goes to the debug log)
  dropped_old     the frame was older than ``max_frame_age`` when the worker got to it
  dropped_stale   a newer synchronized frame replaced it before the worker got to it
  time_jumps      stamps jumped back by more than ``time_jump`` (bag loop, simulator restart):
                  synchronizer queues, the pending frame and the stale-frame clock are reset

Topics (relative to the node namespace): ~/objects (GroundedObject3DArray), ~/relations
(SpatialRelation), ~/markers (MarkerArray), ~/active_queries (ActiveQueries, transient local),
/diagnostics (DiagnosticArray). Services: ~/set_queries (SetQueries), ~/ask (AskSpatial).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import traceback
from collections import Counter

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from spatial_ros.config import field_help, from_dict
from spatial_ros.errors import (
    CalibrationError,
    ConfigError,
    DataError,
    ModelError,
    SpatialRosError,
)
from spatial_ros.geometry.transforms import TransformTree, make_transform, quaternion_to_matrix
from spatial_ros.io.msgs import MessageFactory, ns_to_stamp, stamp_to_ns
from spatial_ros.msg import ActiveQueries, GroundedObject3DArray, SpatialRelation
from spatial_ros.nodes import spin_node
from spatial_ros.perception import (
    PerceptionConfig,
    PerceptionPipeline,
    PerceptionResult,
    normalize_queries,
)
from spatial_ros.ros_conversions import (
    grounded_objects_to_msg,
    markers_for,
    relation_to_msg,
    sensor_frame_from_msgs,
    tf_message_into_tree,
)
from spatial_ros.srv import AskSpatial, SetQueries
from spatial_ros.sync import ApproximateTimeSynchronizer, LatestBeforeCache
from spatial_ros.types import SensorFrame

try:  # the real tf2_msgs on a robot; the TFMessage-only stand-in off-robot (Makefile)
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - static_transforms parameter still works
    TFMessage = None


# Counters always present in stats() / diagnostics (0 until they happen).
SKIP_COUNTERS = ("skipped_frames", "model_errors", "errors", "bad_input", "bad_camera_info",
                 "bad_tf")
COUNTERS = ("frames", "objects", "parse_failures", "dropped_stale", "dropped_old", "time_jumps",
            *SKIP_COUNTERS)


class StaleFrame(DataError):
    """The frame is older than max_frame_age relative to the newest image (not an error)."""


def parse_static_transforms(lines: list[str]) -> TransformTree:
    """'parent child x y z qx qy qz qw' lines -> TransformTree (ConfigError on bad lines)."""
    tree = TransformTree()
    for line in lines:
        parts = line.split()
        try:
            if len(parts) != 9:
                raise ValueError
            x, y, z, qx, qy, qz, qw = map(float, parts[2:])
        except ValueError:
            raise ConfigError(
                f"static transform {line!r} must be 'parent child x y z qx qy qz qw'"
            ) from None
        R = quaternion_to_matrix(qx, qy, qz, qw)
        tree.set(parts[0], parts[1], make_transform(R, [x, y, z]))
    return tree


class PerceptionNode(LifecycleNode):
    """See the module docstring."""

    def __init__(self, node_name: str = "perception_node", backend=None, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self._backend = backend  # tests inject a backend; else the model loads on activate
        helps = field_help(PerceptionConfig)
        for f in dataclasses.fields(PerceptionConfig):  # one ROS parameter per field, no others
            default = (f.default_factory() if f.default_factory is not dataclasses.MISSING
                       else f.default)
            self.declare_parameter(
                f.name, default,
                ParameterDescriptor(description=helps[f.name],
                                    dynamic_typing=isinstance(default, list)),
            )
        self.f = MessageFactory.rclpy()
        self.cfg: PerceptionConfig | None = None
        self.pipeline: PerceptionPipeline | None = None
        self._active = False
        self._lock = threading.Lock()
        self._busy = threading.Lock()  # held while a frame is processed (unload waits for it)
        self._pending: tuple | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._tf = TransformTree()
        self._info = LatestBeforeCache()
        self._latest: tuple[SensorFrame, PerceptionResult] | None = None
        self._queries: list[str] = []
        self._newest_image_ns = -1
        self._newest: dict[str, int] = {}  # newest stamp per input (time-jump detection)
        self._newest_info_ns = -1
        self.counters: Counter = Counter()
        self._latencies: list[float] = []
        self._e2e_ms: list[float] = []
        self._proc_ms: list[float] = []
        self._entities: list = []
        if self.get_parameter("autostart").value:
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # ---- lifecycle -----------------------------------------------------------------------------
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            values = {f.name: self.get_parameter(f.name).value
                      for f in dataclasses.fields(PerceptionConfig)}
            self.cfg = from_dict(PerceptionConfig, values)
            static = parse_static_transforms(self.cfg.static_transforms)
        except SpatialRosError as e:
            self.get_logger().error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        for parent, child, T in static.edges():
            self._tf.set(parent, child, T)
        cfg = self.cfg
        self.pipeline = PerceptionPipeline(cfg, backend=self._backend)
        self._queries = list(cfg.queries)
        sensor_qos = QoSProfile(
            depth=cfg.qos_depth,
            history=QoSHistoryPolicy.KEEP_LAST,
            reliability=(QoSReliabilityPolicy.BEST_EFFORT if cfg.qos_reliability == "best_effort"
                         else QoSReliabilityPolicy.RELIABLE),
            durability=qos_profile_sensor_data.durability,
        )
        latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                             durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_objects = self.create_lifecycle_publisher(GroundedObject3DArray, "~/objects", 10)
        self.pub_relations = self.create_lifecycle_publisher(SpatialRelation, "~/relations", 50)
        self.pub_markers = self.create_lifecycle_publisher(MarkerArray, "~/markers", 5)
        self.pub_diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        self.pub_queries = self.create_publisher(ActiveQueries, "~/active_queries", latched)
        inputs = (["image"] + (["cloud"] if cfg.cloud_topic else [])
                  + (["depth"] if cfg.depth_topic else []))
        self._inputs = inputs
        self._sync = ApproximateTimeSynchronizer(
            len(inputs), self._on_synced, queue_size=cfg.queue_size, slop_s=cfg.slop,
            reset_on_jump_back_s=cfg.time_jump,
        )
        img_type = CompressedImage if cfg.image_transport == "compressed" else Image
        subs = [self.create_subscription(img_type, cfg.image_topic,
                                         lambda m: self._on_input("image", m), sensor_qos)]
        if cfg.cloud_topic:
            subs.append(self.create_subscription(PointCloud2, cfg.cloud_topic,
                                                 lambda m: self._on_input("cloud", m), sensor_qos))
        if cfg.depth_topic:
            subs.append(self.create_subscription(Image, cfg.depth_topic,
                                                 lambda m: self._on_input("depth", m), sensor_qos))
        subs.append(self.create_subscription(CameraInfo, cfg.camera_info_topic, self._on_info,
                                             sensor_qos))
        if TFMessage is not None:
            subs.append(self.create_subscription(TFMessage, "/tf_static", self._on_tf_static,
                                                 latched))
        self._entities = subs + [
            self.create_service(SetQueries, "~/set_queries", self._srv_set_queries),
            self.create_service(AskSpatial, "~/ask", self._srv_ask),
            self.create_timer(cfg.stats_period, self._publish_stats),
        ]
        self._publish_active_queries()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="perception_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"configured: inputs {inputs}, queries {self._queries}, use_vlm={cfg.use_vlm}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.pipeline.load()
        except SpatialRosError as e:
            self.get_logger().error(f"activate failed: {e}")
            return TransitionCallbackReturn.ERROR
        self._active = True
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        with self._lock:
            self._pending = None
        with self._busy:  # let a frame in progress finish before its model goes away
            self.pipeline.unload()
        self.get_logger().info("inactive: model unloaded")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._shutdown_worker()
        for e in self._entities:
            self._destroy_entity(e)
        self._entities = []
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._shutdown_worker()
        if self.pipeline is not None:
            with self._busy:
                self.pipeline.unload()
        return TransitionCallbackReturn.SUCCESS

    def _destroy_entity(self, e) -> None:
        for destroy in (self.destroy_subscription, self.destroy_service, self.destroy_timer):
            try:
                if destroy(e):
                    return
            except Exception:  # noqa: BLE001 - wrong kind of entity for this destroyer
                continue

    def _shutdown_worker(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=10)
        self._worker = None

    # ---- input callbacks (cheap; never raise) ------------------------------------------------
    def _on_input(self, kind: str, msg) -> None:
        try:
            if not self._active:
                return
            stamp = stamp_to_ns(msg.header)
            newest = self._newest.get(kind)
            if newest is not None and stamp < newest - int(self.cfg.time_jump * 1e9):
                self._time_jump(kind, newest - stamp)
            self._newest[kind] = max(self._newest.get(kind, stamp), stamp)
            if kind == "image":
                self._newest_image_ns = max(self._newest_image_ns, stamp)
            self._sync.add(self._inputs.index(kind), msg, stamp)
        except Exception as e:  # noqa: BLE001 - a bad header must not kill the node
            self._skip("bad_input", f"{kind} message rejected: {e}")

    def _time_jump(self, kind: str, back_ns: int) -> None:
        """Stamps went backwards (bag loop, simulator restart, clock reset): forget every queued
        message and the pending frame, and restart the stale-frame clock, so the new timeline
        is processed at once instead of being judged against the old one."""
        self._sync.reset()
        with self._lock:
            if self._pending is not None:
                self.counters["dropped_stale"] += 1
            self._pending = None
        self._newest.clear()
        self._newest_image_ns = -1
        self.counters["time_jumps"] += 1
        self.get_logger().warning(
            f"{kind} stamps jumped back {back_ns / 1e9:.3f} s (bag loop or restart?): "
            "synchronizer queues and the pending frame cleared"
        )

    def _on_info(self, msg: CameraInfo) -> None:
        try:
            stamp = stamp_to_ns(msg.header)
            if 0 <= self._newest_info_ns and stamp < self._newest_info_ns - int(
                self.cfg.time_jump * 1e9
            ):
                self._info.clear()  # else the old timeline's entries shadow the new ones
                self._newest_info_ns = -1
            self._newest_info_ns = max(self._newest_info_ns, stamp)
            self._info.add(msg, stamp)
        except Exception as e:  # noqa: BLE001
            self._skip("bad_camera_info", f"CameraInfo rejected: {e}")

    def _on_tf_static(self, msg) -> None:
        try:
            tf_message_into_tree(msg, self._tf)
        except Exception as e:  # noqa: BLE001
            self._skip("bad_tf", f"/tf_static rejected: {e}")

    def _on_synced(self, *msgs) -> None:
        with self._lock:
            if self._pending is not None:
                self.counters["dropped_stale"] += 1
            self._pending = (time.monotonic(), msgs)
        self._wake.set()

    def _skip(self, counter: str, message: str) -> None:
        self.counters[counter] += 1
        self.get_logger().warning(message, throttle_duration_sec=2.0)

    # ---- worker --------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.2)
            self._wake.clear()
            with self._lock:
                item, self._pending = self._pending, None
            if item is None or not self._active:
                continue
            received, msgs = item
            with self._busy:
                if not self._active:  # deactivated while waiting for the lock
                    continue
                try:
                    self._process(received, msgs)
                except StaleFrame as e:
                    self.counters["dropped_old"] += 1
                    self.get_logger().debug(str(e))
                except ModelError as e:
                    self._skip("model_errors", str(e))
                except SpatialRosError as e:
                    self._skip("skipped_frames", f"frame skipped: {e}")
                except Exception as e:  # noqa: BLE001 - the node stays alive; trace to debug
                    self._skip("errors", f"frame failed ({type(e).__name__}: {e}); skipped")
                    self.get_logger().debug(traceback.format_exc())

    def _frame_from(self, msgs) -> SensorFrame:
        by_kind = dict(zip(self._inputs, msgs))
        img_msg = by_kind["image"]
        stamp = stamp_to_ns(img_msg.header)
        if self._newest_image_ns - stamp > self.cfg.max_frame_age * 1e9:
            raise StaleFrame(f"frame {stamp} older than max_frame_age; dropped")
        info = self._info.get(stamp) or self._info.latest()
        if info is None:
            raise CalibrationError(f"no CameraInfo on {self.cfg.camera_info_topic} yet")
        return sensor_frame_from_msgs(img_msg, info, by_kind.get("cloud"), by_kind.get("depth"),
                                      self._tf)

    def _process(self, received: float, msgs) -> None:
        t0 = time.perf_counter()
        frame = self._frame_from(msgs)
        queries = list(self._queries)
        result = self.pipeline.process(frame, queries)
        self._latest = (frame, result)
        stamp, fid = result.stamp_ns, result.frame_id
        self.pub_objects.publish(grounded_objects_to_msg(result.objects, stamp, fid, self.f))
        for rel in result.relations:
            self.pub_relations.publish(relation_to_msg(rel, stamp, fid, self.f))
        if self.cfg.publish_markers:
            self.pub_markers.publish(
                markers_for(result.objects, result.relations, stamp, fid, self.f))
        now_ns = self.get_clock().now().nanoseconds
        self.counters["frames"] += 1
        self.counters["objects"] += len(result.objects)
        self.counters["parse_failures"] += result.parse_failures
        self._proc_ms.append((time.perf_counter() - t0) * 1e3)
        self._latencies.append((time.monotonic() - received) * 1e3)
        self._e2e_ms.append((now_ns - stamp) / 1e6)
        # bounded windows: statistics over the last 500 frames, constant memory
        self._proc_ms = self._proc_ms[-500:]
        self._latencies = self._latencies[-500:]
        self._e2e_ms = self._e2e_ms[-500:]

    # ---- services ------------------------------------------------------------------------------
    def _publish_active_queries(self) -> None:
        msg = ActiveQueries()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.queries = list(self._queries)
        self.pub_queries.publish(msg)

    def _srv_set_queries(self, req, resp):
        try:
            queries = normalize_queries(list(req.queries))
        except SpatialRosError as e:
            resp.success, resp.message, resp.active_queries = False, str(e), list(self._queries)
            return resp
        self._queries = queries
        self._publish_active_queries()
        resp.success, resp.active_queries = True, queries
        resp.message = f"{len(queries)} queries active"
        self.get_logger().info(f"queries set: {queries}")
        return resp

    def _srv_ask(self, req, resp):
        resp.value, resp.unit = math.nan, ""
        latest = self._latest
        if latest is None:
            resp.success, resp.message = False, "no frame processed yet"
            return resp
        frame, result = latest
        try:
            from spatial_ros.spatial.qa import answer_objects

            ans = answer_objects(req.question, result.objects, frame)
        except SpatialRosError as e:
            resp.success, resp.message = False, str(e)
            return resp
        resp.success, resp.answer = True, ans.text
        resp.value = float(ans.value) if ans.value is not None else math.nan
        resp.unit = ans.unit or ""
        sec, nsec = ns_to_stamp(result.stamp_ns)
        resp.stamp.sec, resp.stamp.nanosec = sec, nsec
        return resp

    # ---- stats ---------------------------------------------------------------------------------
    def stats(self) -> dict[str, float]:
        def pct(values: list[float], q: float) -> float:
            return float(np.percentile(values, q)) if values else float("nan")

        out = {k: float(self.counters[k]) for k in COUNTERS}
        out.update({k: float(v) for k, v in self.counters.items()})
        sync = getattr(self, "_sync", None)
        out.update(
            latency_p50_ms=pct(self._latencies, 50),
            latency_p95_ms=pct(self._latencies, 95),
            end_to_end_p50_ms=pct(self._e2e_ms, 50),
            end_to_end_p95_ms=pct(self._e2e_ms, 95),
            processing_p50_ms=pct(self._proc_ms, 50),
            processing_p95_ms=pct(self._proc_ms, 95),
            sync_fired=float(getattr(sync, "fired", 0)),
            sync_dropped=float(getattr(sync, "dropped", 0)),
        )
        return out

    def _publish_stats(self) -> None:
        st = DiagnosticStatus()
        st.name = f"{self.get_name()}: perception"
        st.hardware_id = "spatial_ros"
        bad = {k: self.counters[k] for k in SKIP_COUNTERS if self.counters[k]}
        st.level = DiagnosticStatus.OK if not bad else DiagnosticStatus.WARN
        if self.counters["model_errors"]:
            st.level = DiagnosticStatus.ERROR
        st.message = "ok" if not bad else "frames skipped: " + ", ".join(
            f"{k}={v}" for k, v in bad.items())
        st.values = [KeyValue(key=k, value=f"{v:.3f}") for k, v in sorted(self.stats().items())]
        backend = self.pipeline.backend_status() if self.pipeline is not None else {}
        st.values += [KeyValue(key=f"backend.{k}", value=str(v)) for k, v in backend.items()]
        if backend.get("state") in ("unreachable", "rejected"):  # a served model's server
            st.level = DiagnosticStatus.ERROR
            st.message = (f"VLM server {backend['state']} ({backend.get('last_error')}, "
                          f"{backend.get('consecutive_failures')} failed requests in a row); "
                          + st.message)
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [st]
        self.pub_diag.publish(arr)


def main(args=None) -> None:
    rclpy.init(args=args)
    spin_node(PerceptionNode())


if __name__ == "__main__":
    main()
