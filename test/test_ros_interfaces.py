"""Every custom message round-trips between two real rclpy nodes over DDS; every service
answers."""

from __future__ import annotations

import math
import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy")
pytestmark = pytest.mark.ros

from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy  # noqa: E402
from spatial_ros.msg import (  # noqa: E402
    GroundedObject3D,
    GroundedObject3DArray,
    RewardLabel,
    SpatialRelation,
)
from spatial_ros.srv import AskSpatial, SetGoal, SetQueries  # noqa: E402


@pytest.fixture(scope="module")
def ros_context():
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx, domain_id=77)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _object(i: int) -> GroundedObject3D:
    o = GroundedObject3D()
    o.id = f"q{i}"
    o.query = "the red mug"
    o.label = "mug"
    o.score = 0.75
    o.center.position.x, o.center.position.y, o.center.position.z = 1.5, -0.25, 0.8 + i
    o.center.orientation.z, o.center.orientation.w = math.sin(0.2), math.cos(0.2)
    o.size.x, o.size.y, o.size.z = 0.1, 0.08, 0.12
    o.box_2d = [10.0, 20.0, 110.0, 220.0]
    o.distance = 1.75
    o.source = "vlm+lidar"
    return o


def _messages():
    arr = GroundedObject3DArray()
    arr.header.stamp.sec, arr.header.stamp.nanosec = 12, 345
    arr.header.frame_id = "base_link"
    arr.objects = [_object(0), _object(1)]
    rel = SpatialRelation()
    rel.header.frame_id = "base_link"
    rel.subject_id, rel.object_id, rel.predicate = "q0", "q1", "distance"
    rel.value, rel.unit, rel.answer = 0.42, "m", "The red mug is 42 cm from the bowl."
    lab = RewardLabel()
    lab.header.stamp.sec = 7
    lab.goal, lab.frame_index, lab.reward = "put the red cube next to the blue bowl", 3, 0.125
    lab.progress, lab.success, lab.explanation = 0.5, True, "distance 0.09 m <= 0.10 m"
    return {"objects": arr, "relation": rel, "reward": lab, "single": _object(5)}


def _assert_equal(a, b):
    for name in a.get_fields_and_field_types():
        va, vb = getattr(a, name), getattr(b, name)
        if hasattr(va, "get_fields_and_field_types"):
            _assert_equal(va, vb)
        elif isinstance(va, list):
            assert len(va) == len(vb), name
            for x, y in zip(va, vb, strict=True):
                _assert_equal(x, y) if hasattr(x, "get_fields_and_field_types") else None
        elif isinstance(va, float):
            assert va == pytest.approx(vb, rel=1e-6), name
        else:
            assert list(va) == list(vb) if hasattr(va, "__len__") and not isinstance(va, str) \
                else va == vb, name


def _spin(ctx, *nodes):
    ex = MultiThreadedExecutor(context=ctx)
    for n in nodes:
        ex.add_node(n)
    t = threading.Thread(target=ex.spin, daemon=True)
    t.start()
    return ex, t


def test_every_message_roundtrips_over_dds(ros_context):
    sent = _messages()
    types = {k: type(v) for k, v in sent.items()}
    pub_node = rclpy.create_node("iface_pub", context=ros_context)
    sub_node = rclpy.create_node("iface_sub", context=ros_context)
    qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    received: dict[str, object] = {}
    pubs = {k: pub_node.create_publisher(t, f"/iface_test/{k}", qos) for k, t in types.items()}
    for k, t in types.items():
        sub_node.create_subscription(t, f"/iface_test/{k}",
                                     lambda m, k=k: received.setdefault(k, m), qos)
    ex, _ = _spin(ros_context, pub_node, sub_node)
    try:
        deadline = time.monotonic() + 20
        while len(received) < len(sent) and time.monotonic() < deadline:
            for k, p in pubs.items():
                if k not in received:
                    p.publish(sent[k])
            time.sleep(0.1)
        assert set(received) == set(sent), f"missing: {set(sent) - set(received)}"
        for k in sent:
            _assert_equal(sent[k], received[k])
        assert received["objects"].objects[1].center.position.z == pytest.approx(1.8)
        assert list(received["objects"].objects[0].box_2d) == [10.0, 20.0, 110.0, 220.0]
        assert received["reward"].success is True
    finally:
        ex.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()


def test_every_service_answers(ros_context):
    server = rclpy.create_node("iface_server", context=ros_context)
    client_node = rclpy.create_node("iface_client", context=ros_context)

    def set_queries(req, resp):
        resp.success = True
        resp.active_queries = [q.strip() for q in req.queries if q.strip()]
        resp.message = f"{len(resp.active_queries)} queries active"
        return resp

    def ask(req, resp):
        resp.success, resp.answer, resp.value, resp.unit = True, f"echo: {req.question}", 0.5, "m"
        resp.stamp.sec = 3
        return resp

    def set_goal(req, resp):
        resp.success, resp.message = True, f"goal: {req.goal}"
        return resp

    server.create_service(SetQueries, "/iface_test/set_queries", set_queries)
    server.create_service(AskSpatial, "/iface_test/ask", ask)
    server.create_service(SetGoal, "/iface_test/set_goal", set_goal)
    ex, _ = _spin(ros_context, server, client_node)
    try:
        calls = [
            (SetQueries, "/iface_test/set_queries",
             SetQueries.Request(queries=["the red mug", " "])),
            (AskSpatial, "/iface_test/ask", AskSpatial.Request(question="how far?")),
            (SetGoal, "/iface_test/set_goal", SetGoal.Request(goal="lift the ball")),
        ]
        results = []
        for srv_type, name, req in calls:
            cli = client_node.create_client(srv_type, name)
            assert cli.wait_for_service(timeout_sec=20), name
            fut = cli.call_async(req)
            deadline = time.monotonic() + 20
            while not fut.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert fut.done(), f"{name} did not answer"
            results.append(fut.result())
        assert results[0].success and results[0].active_queries == ["the red mug"]
        assert results[1].answer == "echo: how far?" and results[1].unit == "m"
        assert results[2].message == "goal: lift the ball"
    finally:
        ex.shutdown()
        server.destroy_node()
        client_node.destroy_node()
