"""Build ROS messages the same way for rclpy and for ``rosbags`` (bag writing without ROS).

Both kinds of message share field names, so the codecs in ``spatial_ros.io`` read either. What
differs is construction: rclpy classes have defaults and want ``array.array`` for numeric
sequences; rosbags classes are plain dataclasses without defaults that want numpy arrays. The
``MessageFactory`` hides that difference::

    f = MessageFactory.rosbags()            # or MessageFactory.rclpy()
    msg = f.new("sensor_msgs/msg/Image", header=f.header(stamp_ns, "camera_optical_frame"),
                height=480, width=640, encoding="rgb8", step=1920, data=rgb.tobytes())

Fields left out get their ROS default (0, "", False, empty or zero arrays, default sub-messages).
A nested message may also be given as a dict of its fields.
"""

from __future__ import annotations

import array
import functools
import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spatial_ros.errors import ConfigError

NS_PER_S = 1_000_000_000

# rosbags base type name -> numpy dtype (for arrays/sequences of numbers).
_NP_DTYPES = {
    "bool": np.bool_,
    "byte": np.uint8,
    "octet": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}
# Non-zero defaults from .msg files, which rosbags' field definitions do not carry.
_ROSBAGS_FIELD_DEFAULTS = {"geometry_msgs/msg/Quaternion": {"w": 1.0}}
# rclpy (rosidl IDL) element type name -> (numpy dtype, array.array typecode).
_RCLPY_NUMERIC = {
    "octet": (np.uint8, "B"),
    "uint8": (np.uint8, "B"),
    "int8": (np.int8, "b"),
    "uint16": (np.uint16, "H"),
    "int16": (np.int16, "h"),
    "uint32": (np.uint32, "I"),
    "int32": (np.int32, "i"),
    "uint64": (np.uint64, "Q"),
    "int64": (np.int64, "q"),
    "float": (np.float32, "f"),
    "double": (np.float64, "d"),
}


# ----------------------------------------------------------------------------------------------
# Stamps
# ----------------------------------------------------------------------------------------------


def ns_to_stamp(ns: int) -> tuple[int, int]:
    """Split integer nanoseconds into ROS ``(sec, nanosec)`` with ``0 <= nanosec < 1e9``."""
    sec, nsec = divmod(int(ns), NS_PER_S)
    return int(sec), int(nsec)


def stamp_to_ns(header_or_time: Any) -> int:
    """Integer nanoseconds of a ``builtin_interfaces/Time``, a ``std_msgs/Header`` or any message
    with a ``header`` (rclpy or rosbags)."""
    t = header_or_time
    if hasattr(t, "header"):
        t = t.header
    if hasattr(t, "stamp"):
        t = t.stamp
    try:
        return int(t.sec) * NS_PER_S + int(t.nanosec)
    except AttributeError:
        raise ConfigError(
            f"cannot read a stamp from {type(header_or_time).__name__}: pass a Header, a Time or "
            "a message with a header (or give stamp_ns explicitly)"
        ) from None


# ----------------------------------------------------------------------------------------------
# rosbags type store
# ----------------------------------------------------------------------------------------------


def _msg_dirs() -> list[Path]:
    """Where our msg/*.msg definitions live: the source tree, then installed ament shares."""
    dirs = [Path(__file__).resolve().parents[2] / "msg"]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share" / "spatial_ros" / "msg")
    return dirs


def register_spatial_ros_types(typestore: Any) -> Any:
    """Register the package's own messages (msg/*.msg, e.g. ``spatial_ros/msg/GroundedObject3D``)
    in a rosbags ``Typestore`` so bags can carry them. Idempotent; returns the typestore.

    Raises:
        ConfigError: when no msg/ folder with our definitions can be found.
    """
    from rosbags.typesys import get_types_from_msg

    for d in _msg_dirs():
        files = sorted(d.glob("*.msg")) if d.is_dir() else []
        if files:
            break
    else:
        raise ConfigError(
            f"spatial_ros msg/*.msg definitions not found in {[str(d) for d in _msg_dirs()]}; "
            "run from the source checkout or source the install (AMENT_PREFIX_PATH)"
        )
    types: dict = {}
    for f in files:
        name = f"spatial_ros/msg/{f.stem}"
        if name not in typestore.types:
            types.update(get_types_from_msg(f.read_text(), name))
    if types:
        typestore.register(types)
    return typestore


def newest_ros2_store() -> Any:
    """The rosbags ``Stores`` member used by default: ROS2_KILTED (the distro of the rclpy wheels
    we run against) when this rosbags knows it, else the newest ROS 2 store it has."""
    from rosbags.typesys import Stores

    if hasattr(Stores, "ROS2_KILTED"):
        return Stores.ROS2_KILTED
    return [s for s in Stores if s.name.startswith("ROS2_")][-1]


@functools.lru_cache(maxsize=1)
def default_typestore() -> Any:
    """Shared rosbags typestore (``newest_ros2_store()`` + spatial_ros types). Use the same store
    for writing and reading bags."""
    from rosbags.typesys import get_typestore

    return register_spatial_ros_types(get_typestore(newest_ros2_store()))


# ----------------------------------------------------------------------------------------------
# Factory
# ----------------------------------------------------------------------------------------------


def _split_type(type_name: str) -> tuple[str, str]:
    parts = type_name.split("/")
    if len(parts) == 3 and parts[1] == "msg":
        return parts[0], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ConfigError(f"bad message type {type_name!r}: expected 'pkg/msg/Name', e.g. "
                      "'sensor_msgs/msg/Image'")


class MessageFactory:
    """Builds rclpy or rosbags messages through one interface (see module docstring).

    Use the constructors ``MessageFactory.rclpy()`` and ``MessageFactory.rosbags(typestore)``.

    Attributes:
        kind: "rclpy" or "rosbags".
        typestore: the rosbags ``Typestore`` (None for rclpy).
    """

    def __init__(self, kind: str, typestore: Any = None) -> None:
        if kind not in ("rclpy", "rosbags"):
            raise ConfigError(f"MessageFactory kind must be 'rclpy' or 'rosbags', got {kind!r}")
        self.kind = kind
        self.typestore = typestore
        self._classes: dict[str, Any] = {}

    @classmethod
    def rclpy(cls) -> MessageFactory:
        """Factory of rclpy messages (needs the ROS 2 Python message packages)."""
        return cls("rclpy")

    @classmethod
    def rosbags(cls, typestore: Any = None) -> MessageFactory:
        """Factory of rosbags messages; ``typestore`` defaults to ``default_typestore()``."""
        return cls("rosbags", default_typestore() if typestore is None else typestore)

    def __repr__(self) -> str:
        return f"MessageFactory({self.kind!r})"

    # -- classes -----------------------------------------------------------------------------

    def msg_class(self, type_name: str) -> Any:
        """The message class for ``type_name`` ("pkg/msg/Name")."""
        cls = self._classes.get(type_name)
        if cls is not None:
            return cls
        pkg, name = _split_type(type_name)
        full = f"{pkg}/msg/{name}"
        if self.kind == "rclpy":
            try:
                cls = getattr(importlib.import_module(f"{pkg}.msg"), name)
            except (ImportError, AttributeError):
                raise ConfigError(
                    f"rclpy message type {full} is not importable; install/build its package and "
                    "source the environment (build/env.sh)"
                ) from None
        else:
            try:
                cls = self.typestore.types[full]
            except KeyError:
                raise ConfigError(
                    f"message type {full} is not in the rosbags typestore; register it "
                    "(register_spatial_ros_types or typestore.register)"
                ) from None
        self._classes[type_name] = cls
        return cls

    # -- construction ------------------------------------------------------------------------

    def new(self, type_name: str, **fields: Any) -> Any:
        """A message of ``type_name`` with ``fields`` set and every other field at its default.

        Numeric arrays may be given as numpy arrays, lists, bytes or ``array.array``; nested
        messages as messages or dicts of their fields.
        """
        if self.kind == "rclpy":
            return self._new_rclpy(type_name, fields)
        return self._new_rosbags(type_name, fields)

    def time(self, stamp_ns: int) -> Any:
        """A ``builtin_interfaces/msg/Time`` for integer nanoseconds."""
        sec, nsec = ns_to_stamp(stamp_ns)
        return self.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec)

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        """A ``std_msgs/msg/Header``."""
        return self.new("std_msgs/msg/Header", stamp=self.time(stamp_ns), frame_id=str(frame_id))

    # rclpy ----------------------------------------------------------------------------------

    def _new_rclpy(self, type_name: str, fields: Mapping[str, Any]) -> Any:
        cls = self.msg_class(type_name)
        ftypes = cls.get_fields_and_field_types()
        msg = cls()
        for k, v in fields.items():
            if k not in ftypes:
                raise ConfigError(f"{type_name} has no field {k!r}; fields: {sorted(ftypes)}")
            setattr(msg, k, self._rclpy_value(ftypes[k], v))
        return msg

    def _rclpy_value(self, ftype: str, v: Any) -> Any:
        if isinstance(v, Mapping) and "/" in ftype and not ftype.startswith("sequence<"):
            pkg, name = ftype.split("/")[0], ftype.split("/")[-1]
            return self._new_rclpy(f"{pkg}/msg/{name}", v)
        if ftype.startswith("sequence<"):
            elem = ftype[len("sequence<"):-1].split(",")[0].strip()
            if elem in _RCLPY_NUMERIC and not isinstance(v, array.array):
                dtype, code = _RCLPY_NUMERIC[elem]
                out = array.array(code)
                out.frombytes(_as_numeric(v, dtype).tobytes())
                return out
            if "/" in elem and not isinstance(v, (str, bytes)):
                pkg, name = elem.split("/")[0], elem.split("/")[-1]
                return [self._new_rclpy(f"{pkg}/msg/{name}", e) if isinstance(e, Mapping) else e
                        for e in v]
            return v
        if "[" in ftype:  # fixed-size array: rclpy stores numpy arrays
            elem = ftype.split("[")[0]
            if elem in _RCLPY_NUMERIC:
                return _as_numeric(v, _RCLPY_NUMERIC[elem][0]).copy()
        return v

    # rosbags --------------------------------------------------------------------------------

    def _new_rosbags(self, type_name: str, fields: Mapping[str, Any]) -> Any:
        pkg, name = _split_type(type_name)
        full = f"{pkg}/msg/{name}"
        cls = self.msg_class(full)
        _, fdefs = self.typestore.fielddefs[full]
        names = {f for f, _ in fdefs}
        unknown = set(fields) - names
        if unknown:
            raise ConfigError(f"{full} has no field(s) {sorted(unknown)}; fields: {sorted(names)}")
        kwargs = {}
        defaults = _ROSBAGS_FIELD_DEFAULTS.get(full, {})
        for fname, desc in fdefs:
            if fname not in fields and fname in defaults:
                kwargs[fname] = defaults[fname]
            elif fname in fields:
                kwargs[fname] = self._rosbags_value(desc, fields[fname])
            else:
                kwargs[fname] = self._rosbags_default(desc)
        return cls(**kwargs)

    def _rosbags_default(self, desc: tuple) -> Any:
        from rosbags.interfaces import Nodetype

        node, detail = desc
        if node == Nodetype.BASE:
            base = detail[0]
            if base in ("string", "wstring"):
                return ""
            if base == "bool":
                return False
            if base.startswith("float"):
                return 0.0
            return 0
        if node == Nodetype.NAME:
            return self._new_rosbags(detail, {})
        (sub_node, sub_detail), length = detail
        if sub_node == Nodetype.BASE and sub_detail[0] in _NP_DTYPES:
            n = length if node == Nodetype.ARRAY else 0
            return np.zeros(n, dtype=_NP_DTYPES[sub_detail[0]])
        if node == Nodetype.ARRAY:
            return [self._rosbags_default((sub_node, sub_detail)) for _ in range(length)]
        return []

    def _rosbags_value(self, desc: tuple, v: Any) -> Any:
        from rosbags.interfaces import Nodetype

        node, detail = desc
        if node == Nodetype.NAME and isinstance(v, Mapping):
            return self._new_rosbags(detail, v)
        if node in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            (sub_node, sub_detail), _ = detail
            if sub_node == Nodetype.BASE and sub_detail[0] in _NP_DTYPES:
                return _as_numeric(v, _NP_DTYPES[sub_detail[0]])
            if sub_node == Nodetype.NAME:
                return [self._new_rosbags(sub_detail, e) if isinstance(e, Mapping) else e
                        for e in v]
            return list(v)
        return v


def _as_numeric(v: Any, dtype: Any) -> np.ndarray:
    """A 1-D numpy array of ``dtype`` from an ndarray, list, bytes-like or ``array.array``.
    Bytes-like input is reinterpreted (no copy), everything else converted by value."""
    if isinstance(v, np.ndarray):
        return np.ascontiguousarray(v, dtype=dtype).reshape(-1)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return np.frombuffer(v, dtype=dtype)
    if isinstance(v, array.array):
        a = np.frombuffer(v, dtype=v.typecode)
        return a if a.dtype == dtype else a.astype(dtype)
    return np.asarray(v, dtype=dtype).reshape(-1)


def buffer_u8(data: Any) -> np.ndarray:
    """The bytes of a message ``data`` field (rclpy ``array.array``, rosbags ``np.ndarray``,
    ``bytes`` from other readers, or a list) as a 1-D uint8 array, without copying when
    possible."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)
