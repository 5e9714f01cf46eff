"""rosbag2 (MCAP or sqlite3) writing and reading without ROS, on top of ``rosbags``.

* :class:`BagWriter` — topics + messages built with ``MessageFactory.rosbags()``; deterministic
  output (rosbags writes no wall-clock time: the same messages give byte-identical MCAP files).
* :func:`read_messages` — deserialised messages of any storage, in log-time order.
* :func:`frames_from_bag` — the bag as a stream of ``SensorFrame``, assembled with the same
  ``ApproximateTimeSynchronizer`` / ``LatestBeforeCache`` and decoders a live node uses, with
  ``/tf_static`` read into a ``TransformTree`` and ``/tf`` into a ``TransformHistory``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spatial_ros.errors import DataError
from spatial_ros.geometry.transforms import TransformHistory, TransformTree
from spatial_ros.io.msgs import MessageFactory, default_typestore, stamp_to_ns
from spatial_ros.types import SensorFrame

log = logging.getLogger(__name__)

STORAGES = ("mcap", "sqlite3")


def _qos(latched: bool, depth: int) -> Any:
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)  # 0/0 = "default / infinite" in rosbag2 metadata
    return Qos(
        QosHistory.KEEP_LAST,
        1 if latched else depth,
        QosReliability.RELIABLE,
        QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


class BagWriter:
    """Write a rosbag2 directory (MCAP by default, or sqlite3).

    Use as a context manager; on an exception the partial bag directory is removed.

    Args:
        path: bag directory to create (must not exist).
        storage: "mcap" or "sqlite3".
        typestore: rosbags typestore (default: ``io.msgs.default_typestore()``, which also knows
            the spatial_ros messages); messages must come from a factory using the same store.

    Raises:
        DataError: bad storage name or the path exists.
    """

    def __init__(self, path: str | os.PathLike, storage: str = "mcap", typestore: Any = None):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise DataError(f"unknown bag storage {storage!r}; use one of {STORAGES}")
        self.path = Path(path)
        if self.path.exists():
            raise DataError(f"bag {self.path} exists already; remove it or pick another path")
        self.typestore = typestore if typestore is not None else default_typestore()
        self.factory = MessageFactory.rosbags(self.typestore)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._conns: dict[str, tuple[Any, str]] = {}
        self.counts: dict[str, int] = {}
        self._open = False

    def open(self) -> BagWriter:
        try:
            self._writer.open()
        except Exception as e:  # rosbags WriterError / OSError
            raise DataError(f"cannot create bag {self.path}: {e}") from None
        self._open = True
        return self

    def add_topic(self, topic: str, msgtype: str, latched: bool = False, depth: int = 10) -> None:
        """Declare a topic ("sensor_msgs/msg/Image"); ``latched`` = transient-local QoS
        (e.g. /tf_static) so ``ros2 bag play`` re-publishes it to late subscribers."""
        if topic in self._conns:
            raise DataError(f"topic {topic} added twice")
        conn = self._writer.add_connection(
            topic, msgtype, typestore=self.typestore, offered_qos_profiles=[_qos(latched, depth)]
        )
        self._conns[topic] = (conn, msgtype)
        self.counts[topic] = 0

    def write(self, topic: str, msg: Any, stamp_ns: int) -> None:
        """Serialise (CDR) and write ``msg`` with log time ``stamp_ns``."""
        try:
            conn, msgtype = self._conns[topic]
        except KeyError:
            raise DataError(f"topic {topic} was not added; call add_topic first") from None
        data = self.typestore.serialize_cdr(msg, msgtype)
        self._writer.write(conn, int(stamp_ns), data)
        self.counts[topic] += 1

    def close(self) -> None:
        if self._open:
            self._writer.close()
            self._open = False

    def abort(self) -> None:
        """Stop writing and delete the partial bag."""
        if self._open:
            try:
                self._writer.abort()
            finally:
                self._open = False
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


@dataclass
class BagMessage:
    """One message read from a bag: topic, type, log time (ns) and the deserialised message."""

    topic: str
    msgtype: str
    log_time_ns: int
    msg: Any


def _reader(bag: str | os.PathLike, typestore: Any = None):
    from rosbags.highlevel import AnyReader

    p = Path(bag)
    if not p.exists():
        raise DataError(f"bag not found: {p}")
    try:
        r = AnyReader([p], default_typestore=typestore or default_typestore())
        r.open()
    except Exception as e:  # AnyReaderError and friends
        raise DataError(f"cannot open bag {p}: {e}") from None
    return r


def bag_topics(bag: str | os.PathLike) -> dict[str, tuple[str, int]]:
    """{topic: (msgtype, message count)} of a bag."""
    r = _reader(bag)
    try:
        out: dict[str, tuple[str, int]] = {}
        for c in r.connections:
            t, n = out.get(c.topic, (c.msgtype, 0))
            out[c.topic] = (t, n + c.msgcount)
        return out
    finally:
        r.close()


def read_messages(
    bag: str | os.PathLike, topics: Iterable[str] | None = None, typestore: Any = None
) -> Iterator[BagMessage]:
    """Deserialised messages of ``topics`` (all when None) in log-time order.

    Raises:
        DataError: the bag is missing/unreadable, or a requested topic is not in it.
    """
    r = _reader(bag, typestore)
    try:
        conns = r.connections
        if topics is not None:
            want = set(topics)
            have = {c.topic for c in conns}
            missing = sorted(want - have)
            if missing:
                raise DataError(f"topic(s) {missing} not in bag {bag}; it has {sorted(have)}")
            conns = [c for c in conns if c.topic in want]
        for conn, t, raw in r.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, int(t), r.deserialize(raw, conn.msgtype))
    finally:
        r.close()


def frames_from_bag(
    bag: str | os.PathLike,
    image_topic: str = "/camera/image_raw",
    info_topic: str = "/camera/camera_info",
    cloud_topic: str | None = "/lidar/points",
    depth_topic: str | None = None,
    slop_s: float = 0.05,
    tf_topic: str | None = "/tf_static",
    queue_size: int = 10,
    dynamic_tf_topic: str | None = "/tf",
) -> Iterator[SensorFrame]:
    """Replay a bag as synchronized ``SensorFrame`` objects (the pipeline's input).

    Image, cloud and depth go through ``ApproximateTimeSynchronizer`` (so with a 30 Hz camera
    and a 10 Hz LiDAR there is one frame per scan, paired with the closest image); the
    CameraInfo is the newest with stamp <= the image's (``LatestBeforeCache``); every
    ``tf2_msgs/TFMessage`` on ``tf_topic`` read so far is in ``frame.transforms``, plus the
    dynamic transforms on ``dynamic_tf_topic`` read so far (a frame at stamp t is built when
    the first message after t is read) evaluated at the frame's image stamp
    (``TransformHistory.tree_at``: interpolated between samples, else the nearest within
    100 ms). Bad /tf messages are skipped with a warning.

    Args:
        bag: bag directory (or file).
        image_topic, info_topic: camera topics (any image encoding; CompressedImage too).
        cloud_topic: PointCloud2 topic, or None for camera-only frames.
        depth_topic: aligned depth image topic, or None.
        slop_s: synchronizer slop (seconds).
        tf_topic: static transforms topic, or None.
        queue_size: synchronizer queue per input.
        dynamic_tf_topic: dynamic transforms topic (``tf2_msgs/TFMessage``), or None; a bag
            without it replays with static transforms only.

    Raises:
        DataError: missing topics or an unreadable bag.
    """
    from spatial_ros.errors import CalibrationError
    from spatial_ros.ros_conversions import (
        sensor_frame_from_msgs,
        tf_message_into_history,
        tf_message_into_tree,
    )
    from spatial_ros.sync import ApproximateTimeSynchronizer, LatestBeforeCache

    inputs = [image_topic] + [t for t in (cloud_topic, depth_topic) if t]
    topics = inputs + [info_topic] + ([tf_topic] if tf_topic else [])
    available = bag_topics(bag)
    missing = [t for t in topics if t not in available and t != tf_topic]
    if missing:
        raise DataError(f"topic(s) {missing} not in bag {bag}; it has {sorted(available)}")
    if tf_topic and tf_topic not in available:
        log.warning("no %s in %s: frames carry no transforms", tf_topic, bag)
        topics.remove(tf_topic)
    if dynamic_tf_topic and dynamic_tf_topic in available and dynamic_tf_topic not in topics:
        topics.append(dynamic_tf_topic)
    else:
        dynamic_tf_topic = None  # no dynamic transforms in this bag (fine: e.g. a fixed rig)
    slot = {t: i for i, t in enumerate(inputs)}
    # (messages, the transforms when the set fired): each /tf_static message makes a new tree,
    # so a frame keeps the transforms that were valid for it.
    pending: deque[tuple[tuple[Any, ...], TransformTree]] = deque()
    tree = TransformTree()
    history = TransformHistory()
    sync = ApproximateTimeSynchronizer(
        len(inputs), lambda *m: pending.append((m, tree)), queue_size=queue_size, slop_s=slop_s
    )
    infos = LatestBeforeCache(tolerance_s=0.001)
    count = 0
    skipped = 0
    bad_tf = 0

    def build(msgs: tuple[Any, ...], static: TransformTree) -> SensorFrame | None:
        nonlocal count, skipped
        img = msgs[0]
        stamp = stamp_to_ns(img)
        info = infos.get(stamp)
        if info is None:
            skipped += 1
            log.warning("no CameraInfo on %s at or before %d: frame skipped", info_topic, stamp)
            return None
        i = 1
        cloud = depth = None
        if cloud_topic:
            cloud = msgs[i]
            i += 1
        if depth_topic:
            depth = msgs[i]
        transforms = history.tree_at(stamp, base=static) if dynamic_tf_topic else static
        try:
            fr = sensor_frame_from_msgs(img, info, cloud, depth, transforms, index=count)
        except CalibrationError as e:
            skipped += 1
            log.warning("frame %d skipped: %s", stamp, e)
            return None
        count += 1
        return fr

    for m in read_messages(bag, topics):
        if dynamic_tf_topic and m.topic == dynamic_tf_topic:
            # before building: a /tf sample just after a pending frame lets it interpolate
            try:
                tf_message_into_history(m.msg, history)
            except CalibrationError as e:
                bad_tf += 1
                if bad_tf == 1:
                    log.warning("%s message at %d skipped: %s", dynamic_tf_topic, m.log_time_ns, e)
        # Sets are completed lazily: a set fired at stamp t is built once the bag has moved past
        # t, so a CameraInfo written just after its image (same stamp) is already cached.
        while pending and stamp_to_ns(pending[0][0][0]) < m.log_time_ns:
            fr = build(*pending.popleft())
            if fr is not None:
                yield fr
        if m.topic == info_topic:
            infos.add(m.msg)
        elif tf_topic and m.topic == tf_topic:
            tree = tf_message_into_tree(m.msg, tree.copy())
        if m.topic in slot:
            sync.add(slot[m.topic], m.msg)
    sync.flush()
    while pending:
        fr = build(*pending.popleft())
        if fr is not None:
            yield fr
    if bad_tf > 1:
        log.warning("%d bad messages on %s skipped in %s", bad_tf, dynamic_tf_topic, bag)
    if skipped and not count:
        raise DataError(f"no CameraInfo on {info_topic} matched any image of {bag}")
