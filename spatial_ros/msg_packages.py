"""The ROS message packages whose Python modules may be imported for a type named in a bag or
found on the ROS graph.

A rosbag2 names its message types as text ("sensor_msgs/msg/PointCloud2"); importing
``<package>.msg`` for whatever a bag says would run the ``__init__`` of any importable module a
crafted bag names. ``spatial-ros play`` (and anything else that turns a type name into an rclpy
class) imports only packages on this list; other topics are skipped with a warning.
"""

from __future__ import annotations

import importlib

from spatial_ros.errors import ConfigError

KNOWN_MSG_PACKAGES = frozenset({
    "builtin_interfaces",
    "diagnostic_msgs",
    "geometry_msgs",
    "nav_msgs",
    "rcl_interfaces",
    "rosgraph_msgs",
    "sensor_msgs",
    "shape_msgs",
    "spatial_ros",
    "std_msgs",
    "stereo_msgs",
    "tf2_msgs",
    "trajectory_msgs",
    "unique_identifier_msgs",
    "vision_msgs",
    "visualization_msgs",
})


def message_class(type_name: str) -> type:
    """The rclpy class of ``type_name`` ('pkg/msg/Name' or 'pkg/Name').

    Raises:
        ConfigError: the package is not in ``KNOWN_MSG_PACKAGES`` (nothing is imported), the
            name is malformed, or the package/type is not importable here.
    """
    parts = type_name.split("/")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[1] != "msg"):
        raise ConfigError(f"message type {type_name!r} is not 'package/msg/Name'")
    pkg, name = parts[0], parts[-1]
    if pkg not in KNOWN_MSG_PACKAGES:
        raise ConfigError(f"message package {pkg!r} is not one of the known message packages "
                          f"({', '.join(sorted(KNOWN_MSG_PACKAGES))}); not imported")
    if not name.isidentifier():
        raise ConfigError(f"message type {type_name!r} has no valid class name")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError):
        raise ConfigError(f"message type {pkg}/msg/{name} is not importable here") from None
