"""sensor_msgs/PointCloud2 <-> numpy structured arrays, for rclpy and rosbags messages alike.

Replaces ``sensor_msgs_py.point_cloud2`` (not installable off-robot) for any field layout: the
fields become a numpy structured dtype with the message's offsets and ``point_step`` as item
size, so decoding is one ``np.frombuffer`` (zero-copy when no byte swap or row padding is needed)
whatever the padding, field order, datatypes, ``count`` > 1, organised (height > 1) layout or
``is_bigendian`` flag. Coordinates are metres in ``header.frame_id``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spatial_ros.errors import DecodeError
from spatial_ros.io.msgs import MessageFactory, buffer_u8

# sensor_msgs/PointField datatype constants -> numpy element types.
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
_DATATYPES = {
    INT8: np.dtype(np.int8),
    UINT8: np.dtype(np.uint8),
    INT16: np.dtype(np.int16),
    UINT16: np.dtype(np.uint16),
    INT32: np.dtype(np.int32),
    UINT32: np.dtype(np.uint32),
    FLOAT32: np.dtype(np.float32),
    FLOAT64: np.dtype(np.float64),
}
_DATATYPE_OF = {(dt.kind, dt.itemsize): code for code, dt in _DATATYPES.items()}
INTENSITY_NAMES = ("intensity", "i", "reflectance")


def fields_to_dtype(fields: Any, point_step: int, big_endian: bool = False) -> np.dtype:
    """The numpy structured dtype of a list of ``sensor_msgs/PointField`` (item size =
    ``point_step``; fields with ``count`` > 1 become sub-arrays; ``count`` 0 is read as 1).

    Raises:
        DecodeError: unknown datatype, empty/duplicate names, or a field past ``point_step``.
    """
    order = ">" if big_endian else "<"
    names, formats, offsets = [], [], []
    for f in fields:
        name, dtcode, off, count = str(f.name), int(f.datatype), int(f.offset), int(f.count)
        if dtcode not in _DATATYPES:
            raise DecodeError(
                f"PointField {name!r} has unknown datatype {dtcode}; expected 1..8 "
                "(INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64)"
            )
        if not name or name in names:
            raise DecodeError(f"PointField names must be unique and non-empty, got {name!r} "
                              f"(fields so far: {names})")
        base = _DATATYPES[dtcode].newbyteorder(order)
        count = max(count, 1)
        if off < 0 or off + base.itemsize * count > point_step:
            raise DecodeError(
                f"PointField {name!r} (offset {off}, {count} x {base.itemsize} B) does not fit in "
                f"point_step {point_step}; the cloud is malformed"
            )
        names.append(name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(off)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": int(point_step)})


def _native(dt: np.dtype) -> np.dtype:
    return dt.newbyteorder("=")


def pointcloud2_to_array(msg: Any, skip_nans: bool = False) -> np.ndarray:
    """Structured array (flattened to N = height x width points) of a PointCloud2.

    Fields are accessed by name (``arr["x"]``) in native byte order. Without byte swapping or row
    padding the result is a zero-copy (possibly read-only) view of ``msg.data``.

    Args:
        msg: rclpy or rosbags ``sensor_msgs/PointCloud2``.
        skip_nans: drop points whose x, y or z is NaN (organised clouds lose their grid).

    Raises:
        DecodeError: malformed cloud (data length != height x row_step, row_step <
            width x point_step, point_step smaller than its fields, unknown datatype).
    """
    h, w = int(msg.height), int(msg.width)
    ps, rs = int(msg.point_step), int(msg.row_step)
    big = bool(msg.is_bigendian)
    if ps <= 0 and h * w > 0:
        raise DecodeError(f"PointCloud2 point_step {ps} must be > 0 for {h * w} points")
    dt = fields_to_dtype(msg.fields, ps, big)
    buf = buffer_u8(msg.data)
    if buf.size != h * rs:
        raise DecodeError(
            f"PointCloud2 data has {buf.size} B but height {h} x row_step {rs} = {h * rs} B"
        )
    if rs < w * ps:
        raise DecodeError(f"PointCloud2 row_step {rs} < width {w} x point_step {ps}")
    if rs == w * ps:
        arr = buf.view(dt) if buf.size else np.zeros(0, dt)
    else:  # padded rows (rare): drop the padding
        arr = np.ascontiguousarray(buf.reshape(h, rs)[:, : w * ps]).reshape(-1).view(dt)
    if big:
        arr = arr.astype(_native(dt))
    if skip_nans:
        arr = arr[finite_xyz_mask(arr, nan_only=True)]
    return arr


def finite_xyz_mask(arr: np.ndarray, nan_only: bool = False) -> np.ndarray:
    """Boolean mask of points whose x, y, z are all valid (not NaN; also not Inf unless
    ``nan_only``). Arrays without x/y/z fields are all valid."""
    mask = np.ones(arr.shape[0], dtype=bool)
    for k in ("x", "y", "z"):
        if arr.dtype.names and k in arr.dtype.names:
            v = arr[k]
            mask &= ~np.isnan(v) if nan_only else np.isfinite(v)
    return mask


def _columns(arr: np.ndarray, names: list[str | None]) -> np.ndarray:
    out = np.empty((arr.shape[0], len(names)), dtype=np.float32)
    for i, n in enumerate(names):
        out[:, i] = arr[n] if n is not None else 0.0
    return out


def _xyz_names(msg_or_arr_names: tuple[str, ...]) -> list[str]:
    missing = [k for k in ("x", "y", "z") if k not in msg_or_arr_names]
    if missing:
        raise DecodeError(f"PointCloud2 has no field(s) {missing}; its fields: "
                          f"{list(msg_or_arr_names)}")
    return ["x", "y", "z"]


def _drop_nan_rows(out: np.ndarray) -> np.ndarray:
    bad = np.isnan(out[:, 0]) | np.isnan(out[:, 1]) | np.isnan(out[:, 2])
    return out[~bad] if bad.any() else out


def pointcloud2_to_xyz(msg: Any, skip_nans: bool = True) -> np.ndarray:
    """``(N, 3)`` float32 x, y, z (metres, ``header.frame_id``) of a PointCloud2.

    Raises:
        DecodeError: malformed cloud or no x/y/z fields.
    """
    arr = pointcloud2_to_array(msg)
    out = _columns(arr, _xyz_names(arr.dtype.names or ()))
    return _drop_nan_rows(out) if skip_nans else out


def pointcloud2_to_xyzi(msg: Any, skip_nans: bool = True) -> np.ndarray:
    """``(N, 4)`` float32 x, y, z, intensity of a PointCloud2 (intensity from the first of
    ``INTENSITY_NAMES`` present, 0 when absent).

    Raises:
        DecodeError: malformed cloud or no x/y/z fields.
    """
    arr = pointcloud2_to_array(msg)
    names = arr.dtype.names or ()
    inten = next((n for n in INTENSITY_NAMES if n in names), None)
    out = _columns(arr, [*_xyz_names(names), inten])
    return _drop_nan_rows(out) if skip_nans else out


def dtype_to_fields(dt: np.dtype, factory: MessageFactory) -> list[Any]:
    """``sensor_msgs/PointField`` list describing a numpy structured dtype.

    Raises:
        DecodeError: a field type PointField cannot express (e.g. int64, complex, nested).
    """
    fields = []
    for name in dt.names:
        fdt, off = dt.fields[name][:2]
        count = 1
        if fdt.subdtype is not None:
            fdt, shape = fdt.subdtype
            count = int(np.prod(shape))
        code = _DATATYPE_OF.get((fdt.kind, fdt.itemsize))
        if code is None:
            raise DecodeError(f"field {name!r} of type {fdt} cannot be stored in a PointCloud2; "
                              "use int8/16/32, uint8/16/32, float32 or float64")
        fields.append(factory.new("sensor_msgs/msg/PointField", name=name, offset=int(off),
                                  datatype=code, count=count))
    return fields


def xyzi_dtype(with_intensity: bool = True) -> np.dtype:
    """Packed float32 x, y, z[, intensity] dtype (the usual LiDAR layout, 12 or 16 B)."""
    names = ["x", "y", "z"] + (["intensity"] if with_intensity else [])
    return np.dtype([(n, "<f4") for n in names])


def array_to_pointcloud2(
    arr: np.ndarray,
    stamp_ns: int,
    frame_id: str,
    factory: MessageFactory,
    height: int = 1,
    big_endian: bool = False,
) -> Any:
    """Build a PointCloud2 from a structured array or an ``(N, 3)``/``(N, 4)`` float array.

    Args:
        arr: structured (fields, offsets and item size are kept, padding bytes written as 0),
            or ``(N, 3)`` / ``(N, 4)`` numbers -> float32 x, y, z[, intensity].
        stamp_ns: header stamp, integer nanoseconds.
        frame_id: header frame of the points.
        factory: builds rclpy or rosbags messages.
        height: rows of an organised cloud (N must be divisible by it); 1 = unorganised.
        big_endian: write multi-byte fields big-endian and set ``is_bigendian``.

    Raises:
        DecodeError: wrong shape, N not divisible by ``height``, or unsupported field types.
    """
    a = np.asarray(arr)
    if a.dtype.names is None:
        if a.ndim != 2 or a.shape[1] not in (3, 4):
            raise DecodeError(f"point array must be structured or (N, 3)/(N, 4), got {a.shape}")
        packed = np.zeros(a.shape[0], dtype=xyzi_dtype(a.shape[1] == 4))
        for i, n in enumerate(packed.dtype.names):
            packed[n] = a[:, i]
        a = packed
    a = a.reshape(-1)
    n = a.shape[0]
    if height < 1 or n % height:
        raise DecodeError(f"{n} points cannot form an organised cloud of height {height}")
    dt = a.dtype
    wire = dt.newbyteorder(">" if big_endian else "<")
    has_gaps = dt.itemsize > sum(dt.fields[k][0].itemsize for k in dt.names)
    if has_gaps or wire != dt or not a.flags.c_contiguous:
        out = np.zeros(n, dtype=wire)  # padding bytes written as 0: deterministic bags
        for k in dt.names:
            out[k] = a[k]
        a_wire = out
    else:
        a_wire = a
    data = a_wire.view(np.uint8).reshape(-1)
    width = n // height
    xyz_ok = bool(finite_xyz_mask(a).all())
    return factory.new(
        "sensor_msgs/msg/PointCloud2",
        header=factory.header(stamp_ns, frame_id),
        height=height,
        width=width,
        fields=dtype_to_fields(dt, factory),
        is_bigendian=bool(big_endian),
        point_step=dt.itemsize,
        row_step=width * dt.itemsize,
        data=data,
        is_dense=xyz_ok,
    )
