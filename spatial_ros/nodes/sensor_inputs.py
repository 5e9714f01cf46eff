"""The input callbacks of a sensor node: count, check and hand on each message (cheap; they
never raise: a bad message is counted and skipped with a throttled log line).

``SensorInputs`` is a mixin of ``sensor_node.SensorNode``, which owns the state these
callbacks read and write: ``_stats`` (counters), ``_last_seq`` (sequence numbers per input
and publisher), ``_active``, ``_newest`` / ``_newest_image_ns`` / ``_newest_info_ns``
(newest stamps, ns), ``_sync`` (the synchronizer), ``_inputs`` (its input kinds),
``_state_lock`` with ``_info`` (CameraInfo by stamp), ``_tf`` (static tree) and
``_tf_dynamic`` (/tf history), ``cfg``; and ``_count``, ``_skip`` and ``on_time_jump``.
"""

from __future__ import annotations

from sensor_msgs.msg import CameraInfo

from spatial_ros.io.msgs import stamp_to_ns
from spatial_ros.ros_conversions import tf_message_into_history, tf_message_into_tree

__all__ = ["SensorInputs"]


class SensorInputs:
    """Callbacks of the sensor subscriptions (see the module docstring)."""

    def _count_gap(self, kind: str, info) -> None:
        """Count the messages of ``kind`` that never arrived: a jump in the publisher's
        sequence number (rmw MessageInfo; per publisher, from its first message we saw)."""
        seq = (info or {}).get("publication_sequence_number")
        if not seq:
            return
        gid = (info.get("publisher_gid") or {}).get("data", b"")
        last = self._last_seq.get((kind, gid))
        self._last_seq[(kind, gid)] = seq
        if last is not None and seq > last + 1:
            self._count(f"lost_{kind}", seq - last - 1)

    def _on_input(self, kind: str, msg, info=None) -> None:
        self._count(f"received_{kind}")
        self._count_gap(kind, info)
        try:
            if not self._active:
                if kind == "image":
                    self._count("inactive_images")
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
        message and restart the stale-frame clock, so the new timeline is processed at once
        instead of being judged against the old one; then the subclass's ``on_time_jump``."""
        self._sync.reset()
        self._newest.clear()
        self._newest_image_ns = -1
        self._count("time_jumps")
        self.on_time_jump()
        self.get_logger().warning(
            f"{kind} stamps jumped back {back_ns / 1e9:.3f} s (bag loop or restart?): "
            "synchronizer queues cleared"
        )

    def _on_info(self, msg: CameraInfo) -> None:
        try:
            stamp = stamp_to_ns(msg.header)
            with self._state_lock:
                if 0 <= self._newest_info_ns and stamp < self._newest_info_ns - int(
                        self.cfg.time_jump * 1e9):
                    self._info.clear()  # else the old timeline's entries shadow the new ones
                    self._newest_info_ns = -1
                self._newest_info_ns = max(self._newest_info_ns, stamp)
                self._info.add(msg, stamp)
        except Exception as e:  # noqa: BLE001
            self._skip("bad_camera_info", f"CameraInfo rejected: {e}")

    def _on_tf_static(self, msg) -> None:
        try:
            with self._state_lock:
                tf_message_into_tree(msg, self._tf)
        except Exception as e:  # noqa: BLE001
            self._skip("bad_tf", f"/tf_static rejected: {e}")

    def _on_tf(self, msg) -> None:
        try:
            with self._state_lock:
                tf_message_into_history(msg, self._tf_dynamic)
        except Exception as e:  # noqa: BLE001
            self._skip("bad_tf", f"/tf rejected: {e}")

    def _on_incompatible_qos(self, topic: str, info) -> None:
        self._count("qos_incompatible")
        self.get_logger().warning(
            f"a publisher on {topic} offers a QoS this subscription cannot match "
            f"({getattr(info.last_policy_kind, 'name', info.last_policy_kind)}); when it "
            f"publishes best effort, set qos_reliability: best_effort (now "
            f"{self.cfg.qos_reliability})", throttle_duration_sec=5.0)
