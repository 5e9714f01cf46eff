"""The lifecycle sensor-node base shared by the perception node and the reward annotator node.

Everything the two nodes do alike lives here once (a fix lands in both):

* parameters: one ROS parameter per field of the node's config dataclass (``config_cls``),
  declared generically with the field's help as description, so a field added to the dataclass
  is a parameter with no node change; on configure they are read back and validated by
  ``config.from_dict`` (the loader of ``spatial-ros run``, the launch files and the offline
  commands: an int is a fine float, a string is not, and fails the configure naming the key;
  parameters given to the node that are no field are logged, naming the nearest field);
* lifecycle (``rclpy.lifecycle.LifecycleNode``): configure -> config validated, core built,
  topics/services made, worker started; activate -> model loaded; deactivate -> queued frames
  dropped (counted), model freed; cleanup; autostart (default) configures and activates;
* inputs: image (raw or compressed), CameraInfo, cloud and/or depth, ``/tf_static`` and ``/tf``
  (each frame gets the static transforms plus the /tf edges at the image stamp, as bag replay
  does), the ``static_transforms`` parameter as fallback extrinsics; sensor QoS from
  ``qos_reliability``/``qos_depth`` (reliable by default: see README, QoS);
* callback groups: sensor callbacks in one mutually exclusive group, services (and other
  requests) in another, the stats timer in a third, so on a MultiThreadedExecutor a service call
  being served never stops frames from arriving;
* synchronization (``ApproximateTimeSynchronizer``) and backwards time jumps (bag loop,
  simulator restart: queues reset, counted, ``on_time_jump`` hook);
* one worker thread fed by a bounded ``FrameQueue`` (perception: capacity 1, a newer frame pushes
  the unprocessed one out; reward: ``max_pending``, oldest pushed out);
* bad input never kills the node and never publishes a wrong message: the frame is skipped with
  a throttled log line and a counter;
* /diagnostics: every counter plus latency/processing/request-handler times (node_stats.py).

Every frame that is lost is counted under exactly one reason (all in /diagnostics):

  dropped_stale     pushed out of the queue by a newer frame (perception), or queued when the
                    stamps jumped back
  dropped_full      pushed out of a full queue (reward: every frame should get a label)
  dropped_old       older than ``max_frame_age`` when the worker got to it (perception)
  dropped_inactive  queued when the node was deactivated
  skipped_frames    undecodable image/cloud, missing CameraInfo or transforms
  empty_cloud       the cloud holds no finite point (all NaN/Inf, or empty) and no depth image
  model_errors      the VLM backend raised (e.g. CUDA out of memory)
  errors            anything else (traceback to the debug log)

and, before a frame is formed (``received_image``/``_cloud``/``_depth`` count what arrived):

  inactive_images   images that arrived while the node was configured but not active
  bad_input         a message whose header cannot be read
  lost_image, lost_cloud, lost_depth
                    messages that never reached the node: gaps in each publisher's sequence
                    numbers (best-effort loss in transport, or the reader's ``qos_depth``
                    history overflowing while the node was starved of CPU)
  sync_dropped      messages the synchronizer could not pair (e.g. 2 of 3 images at 30/10 Hz)

plus the subclass's own (reward: no_goal). ``pending`` is the queue length: at any moment
``sync_fired = frames + dropped_* + skipped_frames + empty_cloud + model_errors + errors
(+ no_goal) + pending`` (+ 1 while a frame is in progress).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import traceback

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from spatial_ros.config import field_help, from_dict, unknown_keys_message
from spatial_ros.errors import CalibrationError, ModelError, SpatialRosError
from spatial_ros.geometry.transforms import TransformHistory, TransformTree
from spatial_ros.io.msgs import MessageFactory, stamp_to_ns
from spatial_ros.nodes.frame_queue import FrameQueue
from spatial_ros.nodes.node_stats import NodeStats
from spatial_ros.nodes.sensor_inputs import SensorInputs
from spatial_ros.nodes.sensor_io import (
    COUNTERS,
    LATCHED,
    ROS_PARAMETERS,
    EmptyCloud,
    StaleFrame,
    diagnostics_message,
    parse_static_transforms,
    sensor_qos,
)
from spatial_ros.ros_conversions import sensor_frame_from_msgs
from spatial_ros.sync import ApproximateTimeSynchronizer, LatestBeforeCache
from spatial_ros.types import SensorFrame

try:  # the real tf2_msgs on a robot; the TFMessage-only stand-in off-robot (Makefile)
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - static_transforms parameter still works
    TFMessage = None

__all__ = ["LATCHED", "EmptyCloud", "SensorNode", "StaleFrame"]


class SensorNode(SensorInputs, LifecycleNode):
    """Base of the sensor nodes (see the module docstring). A subclass sets ``config_cls`` and
    ``kind`` and implements the hooks below; ``self.cfg`` is its validated config after
    configure, ``self.f`` the rclpy message factory, ``self.counters`` the counters.

    Hooks: :meth:`configure_core`, :meth:`create_interfaces`, :meth:`load_core`,
    :meth:`unload_core`, :meth:`handle_frame` (required); :meth:`skip_reason`,
    :meth:`needs_points`, :meth:`on_time_jump`, :meth:`extra_stats`, :meth:`describe`.
    """

    config_cls: type = None  # the config dataclass: one ROS parameter per field
    kind: str = "sensor"  # diagnostics name suffix, worker thread name
    overflow_counter = "dropped_stale"  # the count of frames pushed out of a full queue
    extra_counters: tuple[str, ...] = ()

    def __init__(self, node_name: str, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        helps = field_help(self.config_cls)
        for f in dataclasses.fields(self.config_cls):  # one parameter per field, no others
            default = (f.default_factory() if f.default_factory is not dataclasses.MISSING
                       else f.default)
            # dynamic typing: an int given for a float field (slop: 1) must not throw here;
            # on configure config.from_dict converts it and refuses real type errors by name
            self.declare_parameter(f.name, default, ParameterDescriptor(
                description=helps[f.name], dynamic_typing=True))
        self.f = MessageFactory.rclpy()
        self.cfg = None
        self._active = False
        self._busy = threading.Lock()  # held by the worker per frame; model/goal changes take it
        self._state_lock = threading.Lock()  # transforms and CameraInfo (callbacks vs worker)
        self._frames = FrameQueue(1)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._tf = TransformTree()  # static: /tf_static + the static_transforms parameter
        self._tf_dynamic = TransformHistory()  # /tf
        self._info = LatestBeforeCache()
        self._inputs: list[str] = []
        self._sync: ApproximateTimeSynchronizer | None = None
        self._newest: dict[str, int] = {}  # newest stamp per input (time-jump detection)
        self._last_seq: dict[tuple[str, bytes], int] = {}  # (input, publisher) -> sequence
        self._newest_image_ns = -1
        self._newest_info_ns = -1
        self._stats = NodeStats(window=500)  # counters and timing windows (constant memory)
        self.counters = self._stats.counters
        self._entities: list = []
        self.sensor_group = MutuallyExclusiveCallbackGroup()
        self.request_group = MutuallyExclusiveCallbackGroup()  # services, goal topic
        self._timer_group = MutuallyExclusiveCallbackGroup()
        autostart = self.get_parameter("autostart").value
        if isinstance(autostart, str):  # dynamic typing: a launch argument's text
            autostart = autostart.strip().lower() in ("true", "yes", "1")
        if autostart:
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # ---- hooks -------------------------------------------------------------------------------
    def configure_core(self, cfg) -> None:
        """Build the ROS-free core from ``cfg`` (SpatialRosError fails the configure)."""
        raise NotImplementedError

    def create_interfaces(self, cfg) -> list:
        """Make the node's own publishers, services (:meth:`create_request_service`) and extra
        subscriptions (``callback_group=self.request_group``); return the entities to destroy
        on cleanup."""
        raise NotImplementedError

    def load_core(self) -> None:
        """Load the model (activate); SpatialRosError fails the activation."""

    def unload_core(self) -> None:
        """Free the model (deactivate, shutdown); called with the worker idle."""

    def handle_frame(self, frame: SensorFrame) -> None:
        """Process one decoded frame and publish its outputs (in the worker thread)."""
        raise NotImplementedError

    def skip_reason(self) -> tuple[str, str] | None:
        """(counter, log line) when frames cannot be processed now (before decoding)."""
        return None

    def needs_points(self) -> bool:
        """Frames without any 3D point are skipped (``empty_cloud``)."""
        return True

    def on_time_jump(self) -> None:
        """Stamps jumped back: by default the queued frames are dropped (``dropped_stale``)."""
        self._count("dropped_stale", self._frames.clear())

    def extra_stats(self) -> dict[str, float]:
        return {}

    def describe(self) -> str:
        return f"inputs {self._inputs}"

    # ---- lifecycle ---------------------------------------------------------------------------
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def _warn_unknown_overrides(self) -> None:
        """Parameters handed to this node that are no config field: likely typos, but a
        ``/**`` section of a shared parameter file may hold other nodes' parameters, so the
        node warns (naming the nearest field); ``spatial-ros run`` and the launch files,
        which know the file section, refuse them."""
        given = getattr(self, "_parameter_overrides", {}) or {}
        names = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(k for k in given if k not in names and k not in ROS_PARAMETERS
                         and not k.startswith("qos_overrides."))
        if unknown:
            self.get_logger().warning(
                unknown_keys_message(self.config_cls, unknown, None) + ": ignored")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._warn_unknown_overrides()
            values = {f.name: self.get_parameter(f.name).value
                      for f in dataclasses.fields(self.config_cls)}
            cfg = from_dict(self.config_cls, values)
            static = parse_static_transforms(cfg.static_transforms)
            self.cfg = cfg
            self.configure_core(cfg)
        except SpatialRosError as e:
            self.get_logger().error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        for parent, child, T in static.edges():
            self._tf.set(parent, child, T)
        self._tf_dynamic = TransformHistory(reset_on_jump_back_ns=int(cfg.time_jump * 1e9))
        self._frames = FrameQueue(getattr(cfg, "max_pending", 1))
        self.pub_diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        self._inputs = (["image"] + (["cloud"] if cfg.cloud_topic else [])
                        + (["depth"] if cfg.depth_topic else []))
        self._sync = ApproximateTimeSynchronizer(
            len(self._inputs), self._on_synced, queue_size=cfg.queue_size, slop_s=cfg.slop,
            reset_on_jump_back_s=cfg.time_jump,
        )
        self._entities = self._create_inputs(cfg) + self.create_interfaces(cfg) + [
            self.create_timer(cfg.stats_period, self._publish_stats,
                              callback_group=self._timer_group)]
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name=f"{self.kind}_worker",
                                        daemon=True)
        self._worker.start()
        self.get_logger().info(f"configured: {self.describe()}")
        return TransitionCallbackReturn.SUCCESS

    def _create_inputs(self, cfg) -> list:
        qos = sensor_qos(cfg.qos_reliability, cfg.qos_depth)

        def sub(msg_type, topic, callback, profile=qos):
            events = SubscriptionEventCallbacks(
                incompatible_qos=lambda info, t=topic: self._on_incompatible_qos(t, info),
                use_default_callbacks=False)
            return self.create_subscription(msg_type, topic, callback, profile,
                                            callback_group=self.sensor_group,
                                            event_callbacks=events)

        img_type = CompressedImage if cfg.image_transport == "compressed" else Image
        subs = [sub(img_type, cfg.image_topic, lambda m, i: self._on_input("image", m, i))]
        if cfg.cloud_topic:
            subs.append(sub(PointCloud2, cfg.cloud_topic,
                            lambda m, i: self._on_input("cloud", m, i)))
        if cfg.depth_topic:
            subs.append(sub(Image, cfg.depth_topic, lambda m, i: self._on_input("depth", m, i)))
        subs.append(sub(CameraInfo, cfg.camera_info_topic, self._on_info))
        if TFMessage is not None:
            subs.append(sub(TFMessage, "/tf_static", self._on_tf_static, LATCHED))
            subs.append(sub(TFMessage, "/tf", self._on_tf, QoSProfile(depth=100)))
        return subs

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.load_core()
        except SpatialRosError as e:
            self.get_logger().error(f"activate failed: {e}")
            return TransitionCallbackReturn.ERROR
        self._active = True
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._count("dropped_inactive", self._frames.clear())
        with self._busy:  # a frame in progress finishes before its model goes away
            self.unload_core()
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
        if self.cfg is not None:
            with self._busy:
                self.unload_core()
        return TransitionCallbackReturn.SUCCESS

    def _destroy_entity(self, e) -> None:
        for destroy in (self.destroy_subscription, self.destroy_service, self.destroy_timer,
                        self.destroy_publisher):
            try:
                if destroy(e):
                    return
            except Exception:  # noqa: BLE001 - wrong kind of entity for this destroyer
                continue

    def _shutdown_worker(self) -> None:
        self._stop.set()
        self._frames.wake()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=10)
        self._worker = None

    # ---- counting; the input callbacks are in sensor_inputs.py ---------------------------------
    def _count(self, counter: str, n: int = 1) -> None:
        self._stats.count(counter, n)

    def _skip(self, counter: str, message: str) -> None:
        self._count(counter)
        self.get_logger().warning(message, throttle_duration_sec=2.0)

    def _on_synced(self, *msgs) -> None:
        self._count(self.overflow_counter, self._frames.put((time.monotonic(), msgs)))

    # ---- worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._frames.get(timeout=0.2)
            if item is None:
                continue
            control, payload = item
            with self._busy:
                if control:
                    payload()
                    continue
                if not self._active:  # deactivated while it waited
                    self._count("dropped_inactive")
                    continue
                try:
                    self._process(*payload)
                except StaleFrame as e:
                    self._count("dropped_old")
                    self.get_logger().debug(str(e))
                except EmptyCloud as e:
                    self._skip("empty_cloud", f"frame skipped: {e}")
                except ModelError as e:
                    self._skip("model_errors", str(e))
                except SpatialRosError as e:
                    self._skip("skipped_frames", f"frame skipped: {e}")
                except Exception as e:  # noqa: BLE001 - the node stays alive; trace to debug
                    self._skip("errors", f"frame failed ({type(e).__name__}: {e}); skipped")
                    self.get_logger().debug(traceback.format_exc())

    def frame_from(self, msgs) -> SensorFrame:
        """One synchronized set -> SensorFrame (CameraInfo at the image stamp, static + /tf
        transforms at the image stamp). Raises StaleFrame, CalibrationError, DecodeError,
        EmptyCloud."""
        by_kind = dict(zip(self._inputs, msgs, strict=True))
        img_msg = by_kind["image"]
        stamp = stamp_to_ns(img_msg.header)
        max_age = getattr(self.cfg, "max_frame_age", None)
        if max_age is not None and self._newest_image_ns - stamp > max_age * 1e9:
            raise StaleFrame(f"frame {stamp} older than max_frame_age; dropped")
        with self._state_lock:
            info = self._info.get(stamp) or self._info.latest()
            transforms = self._tf_dynamic.tree_at(stamp, base=self._tf)
        if info is None:
            raise CalibrationError(f"no CameraInfo on {self.cfg.camera_info_topic} yet")
        frame = sensor_frame_from_msgs(img_msg, info, by_kind.get("cloud"),
                                       by_kind.get("depth"), transforms)
        if (self.needs_points() and frame.points is not None and len(frame.points) == 0
                and frame.depth is None):
            raise EmptyCloud(f"the cloud at {stamp} ns has no finite point (all NaN/Inf or "
                             "empty)")
        return frame

    def _process(self, received: float, msgs) -> None:
        t0 = time.perf_counter()
        skip = self.skip_reason()
        if skip is not None:
            self._skip(*skip)
            return
        frame = self.frame_from(msgs)
        self.handle_frame(frame)
        self._count("frames")
        self._stats.record_frame(
            processing_ms=(time.perf_counter() - t0) * 1e3,
            latency_ms=(time.monotonic() - received) * 1e3,
            end_to_end_ms=(self.get_clock().now().nanoseconds - frame.stamp_ns) / 1e6)

    # ---- requests ----------------------------------------------------------------------------
    def create_request_service(self, srv_type, name: str, handler):
        """A service in the request group whose handler times are in the stats
        (``request_p50_ms``, ``request_max_ms``, ``request_cpu_max_ms``; node_stats.py)."""
        def timed(req, resp):
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return handler(req, resp)
            finally:
                self._stats.record_request(wall_ms=(time.perf_counter() - t0) * 1e3,
                                           cpu_ms=(time.thread_time() - c0) * 1e3)

        return self.create_service(srv_type, name, timed, callback_group=self.request_group)

    def reject(self, what: str, error: SpatialRosError) -> str:
        """Count and log a refused request (the message is bounded: it never quotes a whole
        user string); returns the message for the reply."""
        self._count("rejected_requests")
        self.get_logger().warning(f"{what} rejected: {error}", throttle_duration_sec=1.0)
        return str(error)

    # ---- stats -------------------------------------------------------------------------------
    def stats(self) -> dict[str, float]:
        out = self._stats.summary((*COUNTERS, *self.extra_counters))
        out.update(
            sync_fired=float(getattr(self._sync, "fired", 0)),
            sync_dropped=float(getattr(self._sync, "dropped", 0)),
            pending=float(len(self._frames)),
        )
        out.update(self.extra_stats())
        return out

    def _publish_stats(self) -> None:
        counters = self._stats.counter_snapshot()
        self.pub_diag.publish(diagnostics_message(
            f"{self.get_name()}: {self.kind}", counters, self.stats(),
            self.get_clock().now().to_msg(), self.backend_status()))

    def backend_status(self) -> dict:
        """The VLM backend's health for diagnostics (a served model's server state), {} when
        the node has no model loaded or its backend reports nothing."""
        pipe = getattr(self, "pipeline", None)
        if pipe is None:
            pipe = getattr(getattr(self, "annotator", None), "pipeline", None)
        status = getattr(pipe, "backend_status", None)
        return status() if status is not None else {}
