"""`spatial-ros play BAG`: publish a rosbag2's messages through rclpy with their original timing
(for machines without ``ros2 bag play``), optionally recording the perception node's outputs.

    spatial-ros play runs/sim/bag --rate 0.5 --record runs/live
    spatial-ros eval --bag runs/sim/bag --pred-bag runs/live --out runs/eval_live

Messages are published as the serialized bytes stored in the bag (no decode/encode), on
publishers of the bag's message types: reliable, keep-last 10; /tf_static and every topic the
bag recorded as transient-local are published latched (transient local, depth 1) so nodes that
start later still get the static transforms. Header stamps are the bag's (original) stamps; the
gaps between messages follow the bag's log times divided by ``--rate``. ``--loop`` starts over
(nodes see the stamps jump back; the perception node resets its synchronizer then).

``--record OUT`` subscribes to the perception node's outputs (``~/objects`` and ``~/relations``
of ``/perception_node`` by default; the types are discovered from the graph) and writes every
message it receives into a rosbag2 at OUT (``spatial_ros.bagio.BagWriter``, log time = receive
time), keeping on for ``--record-grace`` seconds after the last message was published.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spatial_ros.errors import ConfigError, DataError
from spatial_ros.msg_packages import message_class

HELP = "publish a bag's messages through rclpy with original timing (and record node outputs)"

log = logging.getLogger(__name__)

DEFAULT_RECORD_TOPICS = ("/perception_node/objects", "/perception_node/relations")


def add_arguments(parser) -> None:
    parser.add_argument("bag", help="rosbag2 directory (MCAP or sqlite3)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (> 0)")
    parser.add_argument("--loop", action="store_true", help="start over at the end")
    parser.add_argument(
        "--topics",
        nargs="+",
        default=None,
        metavar="T",
        help="publish only these topics (default: all)",
    )
    parser.add_argument(
        "--start-delay",
        type=float,
        default=1.0,
        help="seconds to wait for discovery before the first message",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=10.0,
        help="then wait up to this many seconds until every discovered "
        "subscriber (and recorded publisher) is matched",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="stop after this many seconds (0 = at the end of the bag)",
    )
    parser.add_argument(
        "--clock",
        action="store_true",
        help="also publish the bag time on /clock (for use_sim_time nodes)",
    )
    parser.add_argument("--record", metavar="OUT", help="record the node outputs into this bag")
    parser.add_argument(
        "--record-topics",
        nargs="+",
        default=list(DEFAULT_RECORD_TOPICS),
        metavar="T",
        help="topics to record (default: %(default)s)",
    )
    parser.add_argument("--record-storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument(
        "--record-grace",
        type=float,
        default=2.0,
        help="seconds to keep recording after the last published message",
    )


@dataclass
class PlayStats:
    """What a playback did.

    Attributes:
        published: {topic: messages published}.
        recorded: {topic: messages recorded} (empty without recording).
        loops: passes over the bag.
        elapsed_s: wall time of the playback (without start delay and grace).
        skipped_topics: bag topics whose message type is not importable here (or not of a
            known message package, ``spatial_ros.msg_packages``).
    """

    published: Counter = field(default_factory=Counter)
    recorded: Counter = field(default_factory=Counter)
    loops: int = 0
    elapsed_s: float = 0.0
    skipped_topics: list[str] = field(default_factory=list)


def _msg_class(msgtype: str):
    """rclpy message class of 'pkg/msg/Name', imported only for a known message package
    (``spatial_ros.msg_packages``); None, with a warning saying why, otherwise."""
    try:
        return message_class(msgtype)
    except ConfigError as e:
        log.warning("%s", e)
        return None


def _latched(conn) -> bool:
    if conn.topic == "/tf_static":
        return True
    try:
        from rosbags.interfaces import QosDurability

        profiles = conn.ext.offered_qos_profiles or []
        return any(
            getattr(p, "durability", None) == QosDurability.TRANSIENT_LOCAL for p in profiles
        )
    except (AttributeError, ImportError):
        return False


class _Recorder:
    """Subscribes (raw) to the wanted topics once the graph shows their types; writes every
    message into a BagWriter (thread-safe)."""

    def __init__(self, node, path: Path, topics: Sequence[str], storage: str) -> None:
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy

        from spatial_ros.bagio import BagWriter

        self.node = node
        self.wanted = list(topics)
        self.writer = BagWriter(path, storage=storage).open()
        self.typestore = self.writer.typestore
        self.types: dict[str, str] = {}
        self.counts: Counter = Counter()
        self.lock = threading.Lock()
        self.discover_lock = threading.Lock()
        self.qos = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)
        self.subs = []
        self.timer = node.create_timer(0.1, self.discover)

    def discover(self) -> None:
        with self.discover_lock:  # the spin thread's timer and the waiting main thread
            self._discover()

    def _discover(self) -> None:
        missing = [t for t in self.wanted if t not in self.types]
        if not missing:
            if self.timer is not None:
                self.node.destroy_timer(self.timer)
                self.timer = None
            return
        graph = dict(self.node.get_topic_names_and_types())
        for topic in missing:
            names = graph.get(topic)
            if not names:
                continue
            msgtype = names[0]
            cls = _msg_class(msgtype)
            if cls is None:
                log.warning("cannot record %s (type %s)", topic, msgtype)
                self.types[topic] = ""
                continue
            with self.lock:
                self.writer.add_topic(topic, msgtype)
            self.types[topic] = msgtype
            self.subs.append(
                self.node.create_subscription(
                    cls,
                    topic,
                    lambda raw, t=topic, m=msgtype: self.on_message(t, m, raw),
                    self.qos,
                    raw=True,
                )
            )
            log.info("recording %s (%s)", topic, msgtype)

    def on_message(self, topic: str, msgtype: str, raw: bytes) -> None:
        msg = self.typestore.deserialize_cdr(raw, msgtype)
        with self.lock:
            if self.writer is not None:
                self.writer.write(topic, msg, time.time_ns())
                self.counts[topic] += 1

    def close(self) -> None:
        with self.lock:
            w, self.writer = self.writer, None
        if w is not None:
            w.close()


def _wait_matched(node, pubs: dict, recorder: _Recorder | None, timeout: float) -> None:
    """Block (up to ``timeout`` s) until the recorded topics are discovered and every
    subscriber / publisher the graph knows on our topics is matched: with volatile QoS a
    message sent before matching is lost, and discovery on a busy machine can take seconds."""
    end = time.monotonic() + timeout
    pending: list[str] = []
    while time.monotonic() < end:
        pending = [
            t for t, p in pubs.items() if p.get_subscription_count() < node.count_subscribers(t)
        ]
        if recorder is not None:
            recorder.discover()
            pending += [t for t in recorder.wanted if not recorder.types.get(t)]
            pending += [
                s.topic_name
                for s in recorder.subs
                if s.get_publisher_count() < node.count_publishers(s.topic_name)
            ]
        if not pending:
            return
        time.sleep(0.05)
    log.warning("still waiting for %s after %.0f s; playing anyway", sorted(set(pending)), timeout)


def play(
    bag: str | Path,
    *,
    rate: float = 1.0,
    loop: bool = False,
    topics: Sequence[str] | None = None,
    start_delay: float = 1.0,
    duration: float = 0.0,
    clock: bool = False,
    record: str | Path | None = None,
    record_topics: Sequence[str] = DEFAULT_RECORD_TOPICS,
    record_storage: str = "mcap",
    record_grace: float = 2.0,
    wait_timeout: float = 10.0,
    domain_id: int | None = None,
) -> PlayStats:
    """Publish ``bag`` (module docstring). Runs its own rclpy context (``domain_id`` or
    ROS_DOMAIN_ID) and shuts it down at the end. After ``start_delay`` it waits up to
    ``wait_timeout`` seconds for the subscribers it can see (and, when recording, the recorded
    topics' publishers) to be matched.

    Raises:
        ConfigError: bad rate/delays; DataError: unreadable bag, unknown topics, an existing
            record path, or nothing recorded.
    """
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
    from rosbags.highlevel import AnyReader

    from spatial_ros.io.msgs import default_typestore, ns_to_stamp

    if rate <= 0 or min(start_delay, duration, record_grace, wait_timeout) < 0:
        raise ConfigError(
            f"rate ({rate}) must be > 0; start_delay ({start_delay}), duration "
            f"({duration}), record_grace ({record_grace}) and wait_timeout "
            f"({wait_timeout}) must be >= 0"
        )
    path = Path(bag)
    if not path.exists():
        raise DataError(f"bag not found: {path}")
    if record is not None and Path(record).exists():
        raise DataError(f"record path {record} exists; remove it or pick another")
    try:
        reader = AnyReader([path], default_typestore=default_typestore())
        reader.open()
    except Exception as e:  # rosbags reader errors
        raise DataError(f"cannot open bag {path}: {e}") from None
    stats = PlayStats()
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    executor = None
    recorder = None
    try:
        conns = reader.connections
        have = {c.topic for c in conns}
        if topics is not None:
            unknown = sorted(set(topics) - have)
            if unknown:
                raise DataError(f"topic(s) {unknown} not in {path}; it has {sorted(have)}")
            conns = [c for c in conns if c.topic in set(topics)]
        node = rclpy.create_node("spatial_ros_player", context=ctx)
        reliable = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1,
            reliability=QoSReliabilityPolicy.RELIABLE,
            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
        )
        pubs: dict[str, object] = {}
        for c in conns:
            if c.topic in pubs:
                continue
            cls = _msg_class(c.msgtype)
            if cls is None:
                stats.skipped_topics.append(c.topic)
                log.warning("not publishing %s (type %s)", c.topic, c.msgtype)
                continue
            pubs[c.topic] = node.create_publisher(
                cls, c.topic, latched if _latched(c) else reliable
            )
        conns = [c for c in conns if c.topic in pubs]
        if not conns:
            raise DataError(f"nothing to publish from {path}")
        clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            clock_pub = node.create_publisher(Clock, "/clock", 10)
        if record is not None:
            recorder = _Recorder(node, Path(record), record_topics, record_storage)
        executor = MultiThreadedExecutor(context=ctx)
        executor.add_node(node)
        threading.Thread(target=executor.spin, name="player_spin", daemon=True).start()
        time.sleep(start_delay)
        _wait_matched(node, pubs, recorder, wait_timeout)
        t_begin = time.monotonic()
        deadline = t_begin + duration if duration > 0 else float("inf")
        stop = False
        while not stop:
            stats.loops += 1
            start = time.monotonic()
            bag_t0 = None
            for conn, t, raw in reader.messages(connections=conns):
                bag_t0 = t if bag_t0 is None else bag_t0
                due = start + (t - bag_t0) / 1e9 / rate
                while (wait := due - time.monotonic()) > 0:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(min(wait, 0.05))
                if time.monotonic() >= deadline or not rclpy.ok(context=ctx):
                    stop = True
                    break
                if clock_pub is not None:
                    from rosgraph_msgs.msg import Clock

                    msg = Clock()
                    msg.clock.sec, msg.clock.nanosec = ns_to_stamp(t)
                    clock_pub.publish(msg)
                pubs[conn.topic].publish(bytes(raw))
                stats.published[conn.topic] += 1
            stop = stop or not loop
        stats.elapsed_s = time.monotonic() - t_begin
        if recorder is not None:
            time.sleep(record_grace)
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if recorder is not None:
            recorder.close()
            stats.recorded = Counter(recorder.counts)
        reader.close()
        rclpy.try_shutdown(context=ctx)
    if recorder is not None and not sum(stats.recorded.values()):
        raise DataError(
            f"nothing recorded on {list(record_topics)}: is the perception node "
            "running (in the same ROS_DOMAIN_ID)?"
        )
    return stats


def run(args) -> int:
    stats = play(
        args.bag,
        rate=args.rate,
        loop=args.loop,
        topics=args.topics,
        start_delay=args.start_delay,
        duration=args.duration,
        clock=args.clock,
        record=args.record,
        record_topics=args.record_topics,
        record_storage=args.record_storage,
        record_grace=args.record_grace,
        wait_timeout=args.wait,
    )
    total = sum(stats.published.values())
    print(
        f"published {total} messages on {len(stats.published)} topics in "
        f"{stats.elapsed_s:.1f} s ({stats.loops} pass{'es' if stats.loops > 1 else ''})"
    )
    if args.record:
        rec = ", ".join(f"{t}: {n}" for t, n in sorted(stats.recorded.items()))
        print(f"recorded {rec} -> {args.record}")
    return 0
