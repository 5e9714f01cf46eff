"""Pieces of the sensor-node base that need no node: QoS profiles, the ``static_transforms``
parameter, the counter names and the /diagnostics message (see ``sensor_node``)."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

from spatial_ros.errors import ConfigError, DataError
from spatial_ros.geometry.transforms import TransformTree, make_transform, quaternion_to_matrix

# Counters always present in stats() / diagnostics (0 until they happen).
LOSS_COUNTERS = ("dropped_stale", "dropped_full", "dropped_old", "dropped_inactive",
                 "skipped_frames", "empty_cloud", "model_errors", "errors")
# Any of these makes the diagnostics status WARN (model_errors: ERROR).
WARN_COUNTERS = ("skipped_frames", "empty_cloud", "model_errors", "errors", "bad_input",
                 "bad_camera_info", "bad_tf", "lost_image", "lost_cloud", "lost_depth",
                 "qos_incompatible",
                 "dropped_full")
COUNTERS = ("received_image", "received_cloud", "frames", "time_jumps", "rejected_requests",
            "inactive_images", *LOSS_COUNTERS, *WARN_COUNTERS)
# rclpy's own parameters (a node accepts overrides of these besides its config fields)
ROS_PARAMETERS = ("use_sim_time", "start_type_description_service")


class StaleFrame(DataError):
    """The frame is older than max_frame_age relative to the newest image (not an error)."""


class EmptyCloud(DataError):
    """The frame's cloud has no finite point and there is no depth image: nothing to see."""


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


def sensor_qos(reliability: str, depth: int) -> QoSProfile:
    """QoS of the sensor subscriptions: ``reliability`` reliable | best_effort | best_available
    (match the publishers found when subscribing), volatile, keep last ``depth``."""
    policy = {"reliable": QoSReliabilityPolicy.RELIABLE,
              "best_effort": QoSReliabilityPolicy.BEST_EFFORT,
              "best_available": QoSReliabilityPolicy.BEST_AVAILABLE}[reliability]
    return QoSProfile(depth=depth, history=QoSHistoryPolicy.KEEP_LAST, reliability=policy,
                      durability=QoSDurabilityPolicy.VOLATILE)


LATCHED = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


def diagnostics_message(name: str, counters: dict[str, int], stats: dict[str, float],
                        stamp, backend: dict | None = None) -> DiagnosticArray:
    """One DiagnosticStatus ``name``: ERROR after a model error or while a served model's
    server is unreachable or rejects requests (``backend``: the VLM backend's status, each key
    as ``backend.<key>``), WARN while any ``WARN_COUNTERS`` is non-zero (they are listed in the
    message), else OK; every stat as a key/value."""
    st = DiagnosticStatus()
    st.name = name
    st.hardware_id = "spatial_ros"
    bad = {k: counters[k] for k in WARN_COUNTERS if counters.get(k)}
    st.level = DiagnosticStatus.ERROR if counters.get("model_errors") else (
        DiagnosticStatus.WARN if bad else DiagnosticStatus.OK)
    st.message = "ok" if not bad else "frames skipped: " + ", ".join(
        f"{k}={v}" for k, v in bad.items())
    st.values = [KeyValue(key=k, value=f"{v:.3f}") for k, v in sorted(stats.items())]
    backend = backend or {}
    st.values += [KeyValue(key=f"backend.{k}", value=str(v)) for k, v in backend.items()]
    if backend.get("state") in ("unreachable", "rejected"):  # a served model's server
        st.level = DiagnosticStatus.ERROR
        st.message = (f"VLM server {backend['state']} ({backend.get('last_error')}, "
                      f"{backend.get('consecutive_failures')} failed requests in a row); "
                      + st.message)
    arr = DiagnosticArray()
    arr.header.stamp = stamp
    arr.status = [st]
    return arr
