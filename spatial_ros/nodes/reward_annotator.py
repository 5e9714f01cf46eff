"""Reward annotator node: synchronized sensor frames + a goal in words -> a RewardLabel per frame.

A thin rclpy adapter over ``spatial_ros.reward.annotator.RewardAnnotator`` (grounding by the
perception pipeline, or by a ground-truth box file with ``grounding: truth``), built like the
perception node:

* managed (lifecycle) node: configure -> parameters validated into RewardAnnotatorConfig,
  topics/services made; activate -> the VLM loaded; deactivate -> model freed; autostart
  (default) configures and activates it without a lifecycle manager;
* callbacks only read headers and feed the synchronizer (``ApproximateTimeSynchronizer``, the
  same as the perception node and bag replay); complete sets go to a FIFO of ``max_pending``
  frames and ONE worker thread labels them in order, so every synchronized frame gets a label
  (reward needs every frame; when the FIFO is full the oldest frame is dropped and counted);
* every label copies the source image's header stamp; its frame_id is the boxes' frame.

Goal: the ``goal`` parameter (also settable at run time), the ``~/set_goal`` service (SetGoal:
replies with the parsed objective or why the goal was rejected) and the ``~/goal`` topic
(std_msgs/String). A new goal starts a new episode (frame_index 0, progress from 0); so does a
jump back in time (bag loop, simulator restart). The active goal is republished on
``~/active_goal`` (std_msgs/String, transient local). Without a goal, frames are counted
(``no_goal``) and not labelled.

Topics (relative to the node namespace): ~/reward (spatial_ros/RewardLabel), ~/active_goal,
/diagnostics. Subscriptions: image, camera_info, cloud/depth (as configured), /tf_static, /tf,
~/goal. Each frame's transforms are the static ones plus the /tf edges evaluated at the image stamp
(``TransformHistory.tree_at``, as bag replay does), so the annotator can look up e.g.
base_link -> gripper_tcp.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from collections import Counter, deque

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import String

from spatial_ros.config import field_help, from_dict
from spatial_ros.errors import CalibrationError, ModelError, SpatialRosError
from spatial_ros.geometry.transforms import TransformHistory, TransformTree
from spatial_ros.io.msgs import MessageFactory, stamp_to_ns
from spatial_ros.msg import RewardLabel
from spatial_ros.nodes import spin_node
from spatial_ros.nodes.perception_node import TFMessage, parse_static_transforms
from spatial_ros.reward.annotator import NODE_NAME, RewardAnnotator, RewardAnnotatorConfig
from spatial_ros.ros_conversions import (
    reward_label_to_msg,
    sensor_frame_from_msgs,
    tf_message_into_history,
    tf_message_into_tree,
)
from spatial_ros.srv import SetGoal
from spatial_ros.sync import ApproximateTimeSynchronizer, LatestBeforeCache
from spatial_ros.types import SensorFrame

SKIP_COUNTERS = ("skipped_frames", "model_errors", "errors", "bad_input", "bad_camera_info",
                 "bad_tf", "dropped_full")
COUNTERS = ("frames", "ungrounded", "no_goal", "episodes", "time_jumps", *SKIP_COUNTERS)


class RewardAnnotatorNode(LifecycleNode):
    """See the module docstring.

    Args:
        node_name: ROS node name.
        backend: a VLMBackend to use instead of loading ``model_path`` (tests).
        truth: a ``TruthGrounding`` to use instead of reading ``truth_path`` (tests).
    """

    def __init__(self, node_name: str = NODE_NAME, backend=None, truth=None, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self._backend, self._truth = backend, truth
        helps = field_help(RewardAnnotatorConfig)
        for f in dataclasses.fields(RewardAnnotatorConfig):  # one parameter per field, no others
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
                else f.default
            self.declare_parameter(f.name, default, ParameterDescriptor(
                description=helps[f.name], dynamic_typing=isinstance(default, list)))
        self.f = MessageFactory.rclpy()
        self.cfg: RewardAnnotatorConfig | None = None
        self.annotator: RewardAnnotator | None = None
        self._active = False
        self._lock = threading.Lock()  # the FIFO
        self._ann_lock = threading.Lock()  # the annotator (worker vs goal changes)
        self._fifo: deque = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._tf = TransformTree()  # static: /tf_static + the static_transforms parameter
        self._tf_dynamic = TransformHistory()  # /tf
        self._tf_lock = threading.Lock()  # both (callbacks write, the worker reads)
        self._info = LatestBeforeCache()
        self._newest_image_ns = -1
        self.counters: Counter = Counter()
        self._proc_ms: list[float] = []
        self._e2e_ms: list[float] = []
        self._entities: list = []
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self.get_parameter("autostart").value:
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # ---- lifecycle ------------------------------------------------------------------------------
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            values = {f.name: self.get_parameter(f.name).value
                      for f in dataclasses.fields(RewardAnnotatorConfig)}
            self.cfg = from_dict(RewardAnnotatorConfig, values)
            static = parse_static_transforms(self.cfg.static_transforms)
            self.annotator = RewardAnnotator(self.cfg, backend=self._backend, truth=self._truth)
        except SpatialRosError as e:
            self.get_logger().error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        for parent, child, T in static.edges():
            self._tf.set(parent, child, T)
        cfg = self.cfg
        self._tf_dynamic = TransformHistory(reset_on_jump_back_ns=int(cfg.time_jump * 1e9))
        sensor_qos = QoSProfile(
            depth=cfg.qos_depth,
            history=QoSHistoryPolicy.KEEP_LAST,
            reliability=(QoSReliabilityPolicy.BEST_EFFORT if cfg.qos_reliability == "best_effort"
                         else QoSReliabilityPolicy.RELIABLE),
            durability=qos_profile_sensor_data.durability,
        )
        latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                             durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_reward = self.create_lifecycle_publisher(RewardLabel, "~/reward", 50)
        self.pub_diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        self.pub_goal = self.create_publisher(String, "~/active_goal", latched)
        inputs = ["image"] + (["cloud"] if cfg.cloud_topic else []) + (
            ["depth"] if cfg.depth_topic else [])
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
            subs.append(self.create_subscription(TFMessage, "/tf", self._on_tf,
                                                 QoSProfile(depth=100)))
        subs.append(self.create_subscription(String, "~/goal", self._on_goal_topic, 10))
        self._entities = subs + [
            self.create_service(SetGoal, "~/set_goal", self._srv_set_goal),
            self.create_timer(cfg.stats_period, self._publish_stats),
        ]
        self._publish_goal()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="reward_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"configured: inputs {inputs}, grounding={cfg.grounding}, goal "
            f"'{self.annotator.goal_text}' -> {self.annotator.objective or 'none yet'}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.annotator.load()
        except SpatialRosError as e:
            self.get_logger().error(f"activate failed: {e}")
            return TransitionCallbackReturn.ERROR
        self._active = True
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        with self._lock:
            self._fifo.clear()
        with self._ann_lock:  # a frame in progress finishes before its model goes away
            self.annotator.unload()
        self.get_logger().info("inactive: model unloaded")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._shutdown_worker()
        for e in self._entities:
            for destroy in (self.destroy_subscription, self.destroy_service, self.destroy_timer):
                try:
                    if destroy(e):
                        break
                except Exception:  # noqa: BLE001 - wrong kind of entity for this destroyer
                    continue
        self._entities = []
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._shutdown_worker()
        if self.annotator is not None:
            with self._ann_lock:
                self.annotator.unload()
        return TransitionCallbackReturn.SUCCESS

    def _shutdown_worker(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=10)
        self._worker = None

    # ---- goal -----------------------------------------------------------------------------------
    def set_goal(self, text: str) -> str:
        """Activate a goal (new episode); returns the objective. Raises GoalError/ConfigError
        (the previous goal stays active)."""
        if self.annotator is None:
            raise SpatialRosError("the node is not configured yet")
        with self._ann_lock:
            self.annotator.set_goal(text)
            objective = self.annotator.objective
        self.counters["episodes"] += 1
        self._publish_goal()
        self.get_logger().info(f"goal set: '{text}' -> {objective}")
        return objective

    def _publish_goal(self) -> None:
        self.pub_goal.publish(String(data=self.annotator.goal_text if self.annotator else ""))

    def _srv_set_goal(self, req, resp):
        try:
            resp.message = self.set_goal(req.goal)
            resp.success = True
        except SpatialRosError as e:
            resp.success, resp.message = False, str(e)
        return resp

    def _on_goal_topic(self, msg: String) -> None:
        try:
            self.set_goal(msg.data)
        except SpatialRosError as e:
            self.get_logger().error(f"goal on ~/goal rejected: {e}")

    def _on_set_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == "goal" and self.annotator is not None and p.value:
                try:
                    self.set_goal(str(p.value))
                except SpatialRosError as e:
                    return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    # ---- input callbacks (cheap; never raise) ---------------------------------------------------
    def _on_input(self, kind: str, msg) -> None:
        try:
            if not self._active:
                return
            stamp = stamp_to_ns(msg.header)
            if kind == "image":
                if 0 <= self._newest_image_ns and \
                        stamp < self._newest_image_ns - int(self.cfg.time_jump * 1e9):
                    self._time_jump(self._newest_image_ns - stamp)
                self._newest_image_ns = max(self._newest_image_ns, stamp)
            self._sync.add(self._inputs.index(kind), msg, stamp)
        except Exception as e:  # noqa: BLE001 - a bad header must not kill the node
            self._skip("bad_input", f"{kind} message rejected: {e}")

    def _time_jump(self, back_ns: int) -> None:
        """Stamps went backwards (bag loop, simulator restart): a new episode."""
        self._sync.reset()
        self._newest_image_ns = -1
        with self._lock:
            self._fifo.append(("new_episode", None))
        self._wake.set()
        self.counters["time_jumps"] += 1
        self.get_logger().warning(
            f"image stamps jumped back {back_ns / 1e9:.3f} s: new episode"
        )

    def _on_info(self, msg: CameraInfo) -> None:
        try:
            self._info.add(msg, stamp_to_ns(msg.header))
        except Exception as e:  # noqa: BLE001
            self._skip("bad_camera_info", f"CameraInfo rejected: {e}")

    def _on_tf_static(self, msg) -> None:
        try:
            with self._tf_lock:
                tf_message_into_tree(msg, self._tf)
        except Exception as e:  # noqa: BLE001
            self._skip("bad_tf", f"/tf_static rejected: {e}")

    def _on_tf(self, msg) -> None:
        try:
            with self._tf_lock:
                tf_message_into_history(msg, self._tf_dynamic)
        except Exception as e:  # noqa: BLE001
            self._skip("bad_tf", f"/tf rejected: {e}")

    def _on_synced(self, *msgs) -> None:
        with self._lock:
            if len(self._fifo) >= self.cfg.max_pending:
                self._fifo.popleft()
                self.counters["dropped_full"] += 1
            self._fifo.append((time.monotonic(), msgs))
        self._wake.set()

    def _skip(self, counter: str, message: str) -> None:
        self.counters[counter] += 1
        self.get_logger().warning(message, throttle_duration_sec=2.0)

    # ---- worker ---------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.2)
            self._wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    if not self._fifo:
                        break
                    received, msgs = self._fifo.popleft()
                if not self._active:
                    continue
                with self._ann_lock:
                    if received == "new_episode":
                        self.annotator.reset()
                        self.counters["episodes"] += 1
                        continue
                    try:
                        self._process(received, msgs)
                    except ModelError as e:
                        self._skip("model_errors", str(e))
                    except SpatialRosError as e:
                        self._skip("skipped_frames", f"frame skipped: {e}")
                    except Exception as e:  # noqa: BLE001 - the node stays alive
                        self._skip("errors", f"frame failed ({type(e).__name__}: {e}); skipped")
                        self.get_logger().debug(traceback.format_exc())

    def _frame_from(self, msgs) -> SensorFrame:
        by_kind = dict(zip(self._inputs, msgs, strict=True))
        img_msg = by_kind["image"]
        stamp = stamp_to_ns(img_msg.header)
        info = self._info.get(stamp) or self._info.latest()
        if info is None:
            raise CalibrationError(f"no CameraInfo on {self.cfg.camera_info_topic} yet")
        with self._tf_lock:
            transforms = self._tf_dynamic.tree_at(stamp, base=self._tf)
        return sensor_frame_from_msgs(img_msg, info, by_kind.get("cloud"), by_kind.get("depth"),
                                      transforms)

    def _process(self, received: float, msgs) -> None:
        t0 = time.perf_counter()
        if self.annotator.goal is None:
            self._skip("no_goal", "no goal set (parameter goal, ~/set_goal or ~/goal): frame "
                       "not labelled")
            return
        frame = self._frame_from(msgs)
        lab = self.annotator.label(frame)
        self.pub_reward.publish(reward_label_to_msg(
            lab.stamp_ns, lab.frame_id, lab.goal, lab.frame_index, lab.reward, lab.progress,
            lab.success, lab.explanation, self.f,
        ))
        self.counters["frames"] += 1
        self.counters["ungrounded"] += not lab.grounded
        self._proc_ms = (self._proc_ms + [(time.perf_counter() - t0) * 1e3])[-500:]
        now_ns = self.get_clock().now().nanoseconds
        self._e2e_ms = (self._e2e_ms + [(now_ns - lab.stamp_ns) / 1e6])[-500:]

    # ---- stats ----------------------------------------------------------------------------------
    def stats(self) -> dict[str, float]:
        def pct(values: list[float], q: float) -> float:
            return float(np.percentile(values, q)) if values else float("nan")

        out = {k: float(self.counters[k]) for k in COUNTERS}
        out.update(
            processing_p50_ms=pct(self._proc_ms, 50),
            processing_p95_ms=pct(self._proc_ms, 95),
            end_to_end_p50_ms=pct(self._e2e_ms, 50),
            pending=float(len(self._fifo)),
        )
        return out

    def _publish_stats(self) -> None:
        st = DiagnosticStatus()
        st.name = f"{self.get_name()}: reward"
        st.hardware_id = "spatial_ros"
        bad = {k: self.counters[k] for k in SKIP_COUNTERS if self.counters[k]}
        st.level = DiagnosticStatus.ERROR if self.counters["model_errors"] else (
            DiagnosticStatus.WARN if bad else DiagnosticStatus.OK)
        st.message = "ok" if not bad else "frames skipped: " + ", ".join(
            f"{k}={v}" for k, v in bad.items())
        st.values = [KeyValue(key=k, value=f"{v:.3f}") for k, v in sorted(self.stats().items())]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [st]
        self.pub_diag.publish(arr)


def main(args=None) -> None:
    rclpy.init(args=args)
    spin_node(RewardAnnotatorNode())


if __name__ == "__main__":
    main()
