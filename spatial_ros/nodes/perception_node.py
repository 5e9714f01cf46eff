"""Perception node: camera + LiDAR (+ depth) in -> grounded 3D boxes and distances out.

A managed (lifecycle) node built on ``spatial_ros.nodes.sensor_node.SensorNode`` (parameters
from PerceptionConfig, lifecycle, QoS, inputs, synchronization, worker, counters, diagnostics):
  configure  -> parameters validated into PerceptionConfig, subscriptions/publishers/services made
  activate   -> specialists + VLM loaded (CUDA bf16 when available), frames processed
  deactivate -> model freed (torch.cuda.empty_cache), frames ignored
  cleanup    -> everything destroyed
With ``autostart: true`` (default) it configures and activates itself, so ``ros2 launch`` needs no
lifecycle manager.

Threading: subscription callbacks only decode headers and feed the synchronizer; a complete
synchronized set replaces the single pending slot (a newer frame pushes an unprocessed older one
out, counted ``dropped_stale``); one worker thread decodes and processes the newest frame.
Services run in their own callback group, so answering one never stops frames from arriving.
Every output copies the source image's header stamp. Bad input never kills the node: the frame
is skipped with a throttled log line and a diagnostic counter (the full list is in
sensor_node's docstring), and nothing is published for it (no empty array that would claim
"nothing found"); an all-NaN/Inf or empty cloud is such a frame (``empty_cloud``).

Requests are bounded before any parser reads them: SetQueries takes at most ``max_queries``
strings of ``max_query_chars`` characters, AskSpatial a question of ``max_question_chars``;
control characters and escape sequences are removed (``spatial_ros.user_text``). A refused
request is answered at once, quoting only a short prefix and the length (``rejected_requests``).

Topics (relative to the node namespace): ~/objects (GroundedObject3DArray), ~/relations
(SpatialRelation), ~/markers (MarkerArray), ~/active_queries (ActiveQueries, transient local),
/diagnostics (DiagnosticArray). Services: ~/set_queries (SetQueries), ~/ask (AskSpatial).
"""

from __future__ import annotations

import math

import rclpy
from visualization_msgs.msg import MarkerArray

from spatial_ros.errors import SpatialRosError
from spatial_ros.io.msgs import ns_to_stamp
from spatial_ros.msg import ActiveQueries, GroundedObject3DArray, SpatialRelation
from spatial_ros.nodes import spin_node
from spatial_ros.nodes.sensor_node import LATCHED, SensorNode
from spatial_ros.perception import (
    NODE_NAME,
    PerceptionConfig,
    PerceptionPipeline,
    PerceptionResult,
    normalize_queries,
)
from spatial_ros.ros_conversions import grounded_objects_to_msg, markers_for, relation_to_msg
from spatial_ros.srv import AskSpatial, SetQueries
from spatial_ros.types import SensorFrame
from spatial_ros.user_text import bounded_text


class PerceptionNode(SensorNode):
    """See the module docstring.

    Args:
        node_name: ROS node name.
        backend: a VLMBackend to use instead of loading ``model_path`` (tests).
    """

    config_cls = PerceptionConfig
    kind = "perception"
    overflow_counter = "dropped_stale"
    extra_counters = ("objects", "parse_failures")

    def __init__(self, node_name: str = NODE_NAME, backend=None, **kwargs) -> None:
        self._backend = backend  # tests inject a backend; else the model loads on activate
        self.pipeline: PerceptionPipeline | None = None
        self._latest: tuple[SensorFrame, PerceptionResult] | None = None
        self._queries: list[str] = []
        super().__init__(node_name, **kwargs)

    # ---- SensorNode hooks ----------------------------------------------------------------------
    def configure_core(self, cfg: PerceptionConfig) -> None:
        self.pipeline = PerceptionPipeline(cfg, backend=self._backend)
        self._queries = list(cfg.queries)

    def create_interfaces(self, cfg: PerceptionConfig) -> list:
        self.pub_objects = self.create_lifecycle_publisher(GroundedObject3DArray, "~/objects", 10)
        self.pub_relations = self.create_lifecycle_publisher(SpatialRelation, "~/relations", 50)
        self.pub_markers = self.create_lifecycle_publisher(MarkerArray, "~/markers", 5)
        self.pub_queries = self.create_publisher(ActiveQueries, "~/active_queries", LATCHED)
        self._publish_active_queries()
        return [
            self.create_request_service(SetQueries, "~/set_queries", self._srv_set_queries),
            self.create_request_service(AskSpatial, "~/ask", self._srv_ask),
        ]

    def load_core(self) -> None:
        self.pipeline.load()

    def unload_core(self) -> None:
        if self.pipeline is not None:
            self.pipeline.unload()

    def describe(self) -> str:
        return (f"inputs {self._inputs}, queries {self._queries}, use_vlm={self.cfg.use_vlm}, "
                f"QoS {self.cfg.qos_reliability} depth {self.cfg.qos_depth}")

    def handle_frame(self, frame: SensorFrame) -> None:
        result = self.pipeline.process(frame, list(self._queries))
        self._latest = (frame, result)
        stamp, fid = result.stamp_ns, result.frame_id
        self.pub_objects.publish(grounded_objects_to_msg(result.objects, stamp, fid, self.f))
        for rel in result.relations:
            self.pub_relations.publish(relation_to_msg(rel, stamp, fid, self.f))
        if self.cfg.publish_markers:
            self.pub_markers.publish(
                markers_for(result.objects, result.relations, stamp, fid, self.f))
        self._count("objects", len(result.objects))
        self._count("parse_failures", result.parse_failures)

    # ---- services ------------------------------------------------------------------------------
    def _publish_active_queries(self) -> None:
        msg = ActiveQueries()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.queries = list(self._queries)
        self.pub_queries.publish(msg)

    def _srv_set_queries(self, req, resp):
        try:
            queries = normalize_queries(req.queries, self.cfg.max_queries,
                                        self.cfg.max_query_chars)
        except SpatialRosError as e:
            resp.success, resp.active_queries = False, list(self._queries)
            resp.message = self.reject("SetQueries", e)
            return resp
        self._queries = queries
        self._publish_active_queries()
        resp.success, resp.active_queries = True, queries
        resp.message = f"{len(queries)} queries active"
        self.get_logger().info(f"queries set: {queries}")
        return resp

    def _srv_ask(self, req, resp):
        resp.value, resp.unit = math.nan, ""
        try:
            question = bounded_text(req.question, "question", self.cfg.max_question_chars)
        except SpatialRosError as e:
            resp.success, resp.message = False, self.reject("AskSpatial", e)
            return resp
        latest = self._latest
        if latest is None:
            resp.success, resp.message = False, "no frame processed yet"
            return resp
        frame, result = latest
        try:
            from spatial_ros.spatial.qa_answer import answer_objects

            ans = answer_objects(question, result.objects, frame)
        except SpatialRosError as e:
            resp.success, resp.message = False, str(e)
            return resp
        resp.success, resp.answer = True, ans.text
        resp.value = float(ans.value) if ans.value is not None else math.nan
        resp.unit = ans.unit or ""
        sec, nsec = ns_to_stamp(result.stamp_ns)
        resp.stamp.sec, resp.stamp.nanosec = sec, nsec
        return resp


def main(args=None) -> None:
    rclpy.init(args=args)
    spin_node(PerceptionNode())


if __name__ == "__main__":
    main()
