"""Both sensor nodes over real DDS while oversized requests arrive.

A perception node (specialists only) and a reward annotator node (ground-truth grounding) run
as users run them (``spatial-ros run perception|reward``, each in its own process, default QoS)
and take the same 10 Hz stream of simulated frames from this process (image + CameraInfo + a
0.5 MB LiDAR cloud). In the middle of it a 2 MB AskSpatial question and a 1 MB SetGoal goal
(one that the goal templates would parse: "put the red red ... cube next to the blue bowl")
are sent. Checks:

- both are refused in constant time: < 10 ms of the handler's CPU (``request_cpu_max_ms`` in
  /diagnostics), and each round trip (request sent -> reply received here) takes no longer
  than Fast DDS's 3 s resend of a dropped fragment plus the refusal (< 5 s),
  quoting a short prefix and the length, never the whole input; the active goal is unchanged;
- the frames keep flowing meanwhile: the reward node labels every frame, in order, that the
  transport delivered (its FIFO is never full; a frame lost on the way in is counted), the
  perception node accounts for every synchronized frame (processed or counted under
  a named reason: ``sync_fired == frames + dropped_* + skips``, and every image and cloud sent
  either received or counted lost, from its /diagnostics), and the frames sent while the
  requests were served are processed (or counted);
- control characters (BEL, an ESC colour sequence, DEL, a C1 control, an OSC title sequence) in
  SetQueries never reach ``active_queries`` (the list the published ``query`` fields come from).

About 25 s on the 2-core development machine (two node processes start, 3 s of frames).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy")
pytestmark = pytest.mark.ros

DOMAIN = 216 + os.getpid() % 15  # private; bench load uses 100-199
GOAL = "put the red cube next to the blue bowl"
# perception: frames lost under one of these names are counted (none may be lost uncounted)
REWARD_LOSSES = ("dropped_full", "dropped_old", "dropped_stale", "skipped_frames",
                 "empty_cloud", "model_errors", "errors")
PERCEPTION_LOSSES = ("dropped_stale", "dropped_old", "dropped_inactive", "skipped_frames",
                     "empty_cloud", "model_errors", "errors")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """40 frames of a successful episode, a 0.5 MB LiDAR scan with each; truth.jsonl."""
    from spatial_ros.boxfile import write_box_file
    from spatial_ros.sim import CameraConfig, SimConfig, iter_frames

    cfg = SimConfig(camera=CameraConfig(width=96, height=72), goal=GOAL, trajectory="success",
                    seed=21, frames=40, lidar_rate_hz=30.0)
    frames = list(iter_frames(cfg))
    assert all(f.points is not None for f in frames)
    path = tmp_path_factory.mktemp("truth") / "truth.jsonl"
    write_box_file(path, [f.truth.box_frame() for f in frames])
    return frames, path


def _start(kind: str, params: dict, log_path):
    cmd = [sys.executable, "-m", "spatial_ros.cli", "run", kind, "--duration", "180"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={json.dumps(v)}"]
    log = open(log_path, "w")  # noqa: SIM115 - closed by the fixture
    return subprocess.Popen(cmd, env=dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN)), stdout=log,
                            stderr=subprocess.STDOUT), log


@pytest.fixture
def nodes(sim, tmp_path):
    frames, truth = sim
    procs = [
        _start("perception", {"use_vlm": False, "queries": ["the red cube"],
                              "relation_pairs": [], "stats_period": 0.5,
                              "max_frame_age": 5.0}, tmp_path / "perception.log"),
        _start("reward", {"grounding": "truth", "truth_path": str(truth), "goal": GOAL,
                          "qos_depth": 50, "smoothing": "none", "stats_period": 0.5},
               tmp_path / "reward.log"),
    ]
    from rclpy.executors import MultiThreadedExecutor

    # two DDS participants here, as on a robot: the sensors ("io") and a user's terminal
    # sending the requests ("user"); one participant's shared-memory segment (512 KB by
    # default) would carry both the 0.5 MB clouds and the 2 MB request
    contexts, executors, created = [], [], []
    for name in ("requests_test_io", "requests_test_user"):
        ctx = rclpy.context.Context()
        rclpy.init(context=ctx, domain_id=DOMAIN)
        node = rclpy.create_node(name, context=ctx)
        ex = MultiThreadedExecutor(num_threads=2, context=ctx)
        ex.add_node(node)
        threading.Thread(target=ex.spin, daemon=True).start()
        contexts.append(ctx)
        executors.append(ex)
        created.append(node)
    io, user = created

    def logs() -> str:
        out = ""
        for (_, log), name in zip(procs, ("perception", "reward"), strict=True):
            log.flush()
            out += f"--- {name}\n" + (tmp_path / f"{name}.log").read_text()[-1500:]
        return out

    yield io, user, frames, logs
    for p, log in procs:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()
    for ex, node, ctx in zip(executors, created, contexts, strict=True):
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def accounted(d: dict[str, float]) -> bool:
    """Every synchronized set the perception node made is processed or counted lost."""
    return d["sync_fired"] == d["frames"] + sum(d[k] for k in PERCEPTION_LOSSES)


def since(now: dict[str, float], then: dict[str, float]) -> dict[str, float]:
    """Counter increments from the snapshot ``then`` to ``now``."""
    return {k: v - then.get(k, 0.0) for k, v in now.items()}


def wait(cond, timeout=20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def timed_call(client, request) -> dict:
    """Send ``request``; the returned dict gets the reply and its round-trip time (s)."""
    out: dict = {"t0": time.perf_counter()}

    def done(fut):
        out["dt"] = time.perf_counter() - out["t0"]
        out["reply"] = fut.result()

    client.call_async(request).add_done_callback(done)
    return out


def test_oversized_requests_are_refused_fast_while_frames_flow(nodes):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from spatial_ros.msg import ActiveQueries, GroundedObject3DArray, RewardLabel
    from spatial_ros.srv import AskSpatial, SetGoal, SetQueries
    from std_msgs.msg import String
    from tf2_msgs.msg import TFMessage

    from spatial_ros.io.camera_info import intrinsics_to_camera_info
    from spatial_ros.io.image import encode_image
    from spatial_ros.io.msgs import MessageFactory, stamp_to_ns
    from spatial_ros.io.pointcloud import array_to_pointcloud2
    from spatial_ros.ros_conversions import tree_to_tf_message

    io, user, frames, logs = nodes
    f = MessageFactory.rclpy()
    reliable = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                         durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    pubs = {"img": io.create_publisher(Image, "/camera/image_raw", reliable),
            "cloud": io.create_publisher(PointCloud2, "/lidar/points", reliable),
            "info": io.create_publisher(CameraInfo, "/camera/camera_info", reliable)}
    pub_tf = io.create_publisher(TFMessage, "/tf_static", latched)
    objects, labels, active, goals = [], [], [], []
    diags: dict[str, dict[str, float]] = {}

    def on_diag(msg) -> None:
        for st in msg.status:  # ours only (the domain is private, but be sure)
            if st.name in ("perception_node: perception", "reward_annotator: reward"):
                diags[st.name.split(":")[0]] = {
                    kv.key: float(kv.value) for kv in st.values
                    if not kv.key.startswith("backend.")}  # backend.* are words

    io.create_subscription(GroundedObject3DArray, "/perception_node/objects", objects.append,
                           reliable)
    io.create_subscription(RewardLabel, "/reward_annotator/reward", labels.append, reliable)
    io.create_subscription(ActiveQueries, "/perception_node/active_queries", active.append,
                           latched)
    io.create_subscription(String, "/reward_annotator/active_goal", goals.append, latched)
    io.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    ask = user.create_client(AskSpatial, "/perception_node/ask")
    set_goal = user.create_client(SetGoal, "/reward_annotator/set_goal")
    set_queries = user.create_client(SetQueries, "/perception_node/set_queries")
    rig = frames[0].scene.rig
    camera = rig.intrinsics
    pub_tf.publish(tree_to_tf_message(rig.transform_tree(), frames[0].stamp_ns, f))
    assert wait(lambda: {"perception_node", "reward_annotator"} <= set(diags), 120), logs()
    assert wait(lambda: min(p.get_subscription_count() for p in pubs.values()) >= 2), logs()
    for cli in (ask, set_goal, set_queries):
        assert cli.wait_for_service(timeout_sec=30), logs()
    assert wait(lambda: goals and goals[-1].data == GOAL)

    def send(fr, dt_s=0.0) -> int:
        stamp = fr.stamp_ns + int(dt_s * 1e9)
        pubs["info"].publish(intrinsics_to_camera_info(camera, stamp, f))
        pubs["img"].publish(encode_image(fr.image, "rgb8", stamp, camera.frame_id, f))
        pubs["cloud"].publish(array_to_pointcloud2(fr.points, fr.lidar_stamp_ns + int(
            dt_s * 1e9), "lidar", f))
        return stamp

    # warm-up, not measured: until both nodes know our writers and the perception node has
    # processed a frame (its first one imports the specialists); stamps 20 s before the rest
    k = 0
    while not (diags["perception_node"]["frames"] >= 1 and labels):
        assert k < 150, "no frame processed in 30 s:\n" + logs()
        held = send(frames[0], -20.0 + 0.1 * k)  # the newest is held until a later one comes
        k += 1
        time.sleep(0.2)

    # control characters never reach the active list (nor, so, a published query field)
    dirty = "\x07the \x1b[31mred\x1b[0m\x7f cube\x9b\x00"
    ok = timed_call(set_queries, SetQueries.Request(queries=[dirty, "the blue\tbowl\x1b]0;x\x07"]))
    assert wait(lambda: "reply" in ok)
    assert ok["reply"].success and list(ok["reply"].active_queries) == [
        "the red cube", "the blue bowl"]
    assert wait(lambda: active and list(active[-1].queries) == ["the red cube", "the blue bowl"])

    # the snapshot the counts are taken from: once every warm-up frame is received and
    # accounted (two diagnostics 0.6 s apart agree; on a starved machine a fixed sleep read a
    # stale snapshot and two warm-up frames were counted as losses of the measured ones)
    def quiet() -> dict[str, float] | None:
        prev = None
        for _ in range(40):
            d = dict(diags["perception_node"])
            if prev is not None and d["pending"] == 0 and all(
                    d[k] == prev[k] for k in ("received_image", "received_cloud", "sync_fired",
                                              "frames")) and accounted(d):
                return d
            prev = d
            time.sleep(0.6)
        return None

    before = quiet()
    assert before is not None, "the warm-up frames were never all accounted:\n" + logs()
    before_reward = dict(diags["reward_annotator"])
    question = "how far is the red cube from " + "the blue bowl " * 150_000  # 2.1 MB
    goal = "put the red " + "red " * 250_000 + "cube next to the blue bowl"  # 1.0 MB
    assert len(question) > 2_000_000 and len(goal) > 1_000_000
    sent, replies, during = [], [], []
    for k, fr in enumerate(frames[5:35]):
        t_send = time.perf_counter()
        sent.append(send(fr))
        if k in (6, 14, 22):  # three rounds: the question and the goal at the same time
            replies.append((timed_call(ask, AskSpatial.Request(question=question)),
                            timed_call(set_goal, SetGoal.Request(goal=goal))))
        if 6 <= k <= 25:
            during.append(sent[-1])
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - t_send)))  # 10 Hz
    send(frames[35], 0.5)  # a later frame releases the last one from the synchronizers

    assert wait(lambda: all("reply" in r for pair in replies for r in pair), 15)
    ask_ms = [a["dt"] * 1e3 for a, _ in replies]
    goal_ms = [g["dt"] * 1e3 for _, g in replies]
    print(f"2 MB question refused in {', '.join(f'{t:.0f}' for t in ask_ms)} ms; 1 MB goal "
          f"in {', '.join(f'{t:.0f}' for t in goal_ms)} ms (round trips over DDS)")
    for pair in replies:
        for r, text in zip(pair, (question, goal), strict=True):
            msg = r["reply"].message
            assert not r["reply"].success
            assert "too long" in msg and "> 1000" in msg and len(msg) < 300, msg
            assert f"{len(text)} characters" in msg
    # The node's part: each refusal is constant-time work in its handler: < 10 ms of the
    # handler thread's CPU (request_cpu_max_ms; one pass of control-character cleaning over
    # the 1 MB goal alone costs ~30 ms, a parse seconds). Its wall time is printed, not
    # asserted: on 2 busy cores the handler thread can wait hundreds of ms for a core.
    # The transport's part is not the node's: a round trip takes 6-70 ms when Fast DDS
    # delivers the request at once, but a dropped fragment of a 2 MB request waits for the
    # writer's next heartbeat (every 3 s, so 0-3 s later; seen in all three rounds at load
    # 4-7 on 2 cores). So every round trip is bounded by one heartbeat plus the refusal and
    # that scheduling delay (a node that processed the text took 8-15 s before the caps).
    assert wait(lambda: diags["perception_node"].get("rejected_requests") == 3 and
                diags["reward_annotator"].get("rejected_requests") == 3, 5)
    handler = {n: (diags[n]["request_cpu_max_ms"], diags[n]["request_max_ms"])
               for n in ("perception_node", "reward_annotator")}
    print(f"slowest request handler (CPU ms, wall ms): {handler}")
    assert max(cpu for cpu, _ in handler.values()) < 10, handler
    assert max(ask_ms + goal_ms) < 5000, (ask_ms, goal_ms)

    # reward: one label per frame, in order; its FIFO never overflowed (dropped_full); a
    # frame without a label is one the transport lost on the way in (lost_image/lost_cloud,
    # or a partner the synchronizer discarded) or one skipped under a named reason (one
    # clean-clone run on a starved machine still missed labels after 30 s; the counts say
    # whether the transport or the node lost them)
    def reward_missing() -> tuple[list[int], float]:
        done = {stamp_to_ns(m.header) for m in labels}
        r = since(diags["reward_annotator"], before_reward)
        counted = sum(r.get(k, 0.0) for k in (*REWARD_LOSSES, "lost_image", "lost_cloud",
                                               "sync_dropped"))
        return [t for t in sent if t not in done], counted

    assert wait(lambda: len(reward_missing()[0]) <= reward_missing()[1], 45), \
        (reward_missing(), since(diags["reward_annotator"], before_reward), logs())
    stamps = [stamp_to_ns(m.header) for m in list(labels)]  # one snapshot for both checks
    missing = [t for t in sent if t not in set(stamps)]
    print(f"reward: {len(sent) - len(missing)} of {len(sent)} frames labelled, "
          f"{reward_missing()[1]:.0f} counted lost or skipped")
    assert len(missing) <= len(sent) // 5, missing  # the transport loses few, never most
    labelled = [t for t in stamps if t in set(sent)]
    assert labelled == [t for t in sent if t not in missing]  # in order, once each
    assert goals[-1].data == GOAL  # the refused goal changed nothing

    # perception: every synchronized frame processed or counted; the frames sent while the
    # requests were served were processed
    def delta() -> dict[str, float]:
        return since(diags["perception_node"], before)

    counted = {"sync_fired", "frames", "pending", "received_image", "received_cloud",
               "lost_image", "lost_cloud", "sync_dropped", "bad_input", *PERCEPTION_LOSSES}
    expected = {held, *sent}  # the set held at the snapshot fires with the first frame sent

    def settled(d) -> bool:  # the trailing frame arrived (so every gap before it is known),
        # and every synchronized set is processed or counted
        return d["received_image"] + d["lost_image"] >= len(sent) + 1 and \
            d["received_cloud"] + d["lost_cloud"] >= len(sent) + 1 and d["pending"] == 0 and \
            accounted(d)

    assert wait(lambda: settled(delta()), 30), json.dumps({k: delta()[k] for k in counted})
    time.sleep(1.2)  # the counts no longer change
    d = delta()
    print({k: d[k] for k in counted})
    assert settled(d), {k: d[k] for k in counted}
    got = {stamp_to_ns(m.header) for m in objects}
    # every frame not published is counted: as a frame (dropped/skipped), as its image or
    # cloud that never arrived (a frame can lose both), or as a message the synchronizer
    # discarded without a partner (C++ ApproximateTime policy)
    frame_losses = sum(d[k] for k in PERCEPTION_LOSSES)
    assert frame_losses <= len(expected - got) <= frame_losses + d["lost_image"] + \
        d["lost_cloud"] + d["sync_dropped"]
    # frames kept being processed while the requests were served (the rest are counted above,
    # mostly as stale: the node processes the newest frame when it falls behind). A node that
    # blocked on a request (8-15 s before the caps) would process none of these 2 s; on 2 busy
    # cores 9-20 of 20 were processed, so a quarter is the floor, and each round's frames are
    # followed by a processed frame before the next round.
    assert len(set(during) & got) >= len(during) // 4, (len(set(during) & got), len(during))
    for lo, hi in ((0, 8), (8, 16)):
        assert set(during[lo:hi]) & got, (lo, hi, len(set(during) & got))
    assert d["rejected_requests"] == 3
    assert diags["reward_annotator"]["rejected_requests"] == 3
    assert diags["reward_annotator"]["dropped_full"] == 0
