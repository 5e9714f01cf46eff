"""sensor_msgs/PointCloud2 <-> numpy structured arrays, for rclpy and rosbags messages alike.

Replaces ``sensor_msgs_py.point_cloud2`` (not installable off-robot) for any field layout: the
fields become a numpy structured dtype with the message's offsets and ``point_step`` as item
size, so decoding is one ``np.frombuffer`` (zero-copy when no byte swap or row padding is needed)
whatever the padding, field order, datatypes, organised (height > 1) layout or ``is_bigendian``
flag. Coordinates are metres in ``header.frame_id``.

Semantics follow ``sensor_msgs_py.point_cloud2`` (its test suite is re-expressed in
``test/test_io_pointcloud_upstream.py``):

* a field with ``count`` > 1 is read as ``name_0 .. name_{count-1}``; ``count`` 0 is refused;
  an empty field name reads as ``unnamed_field_<index>``; duplicate names are refused;
* ``pointcloud2_to_array(skip_nans=True)`` drops a point when ANY (selected) field is NaN, and
  does nothing when the cloud says ``is_dense``;
* clouds we create say ``is_dense = False`` unless the caller vouches otherwise.

Deliberate differences (each tested): errors are ``DecodeError`` with the reason, not
``AssertionError``; an organised cloud reshapes to ``(height, width)``, the row-major layout
sensor_msgs defines (upstream's ``reshape_organized_cloud`` gives ``(width, height)``); the
geometry helpers ``pointcloud2_to_xyz`` / ``pointcloud2_to_xyzi`` drop points whose x, y or z is
NaN (``drop_nan_xyz``, on by default) whatever ``is_dense`` says, so a wrong flag can never put
NaN into geometry, and keep a point whose only NaN is in another field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.lib import recfunctions

from spatial_ros.errors import ConfigError, DecodeError
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
UNNAMED_FIELD_PREFIX = "unnamed_field"


def fields_to_dtype(fields: Any, point_step: int | None, big_endian: bool = False) -> np.dtype:
    """The numpy structured dtype of a list of ``sensor_msgs/PointField`` (item size =
    ``point_step``, or packed when None; a field with ``count`` > 1 becomes ``name_0`` ..
    ``name_{count-1}``; an empty name becomes ``unnamed_field_<index>``).

    Raises:
        DecodeError: unknown datatype, ``count`` 0, duplicate names, or a field past
            ``point_step``.
    """
    order = ">" if big_endian else "<"
    names, formats, offsets = [], [], []
    for index, f in enumerate(fields):
        name, dtcode, off, count = str(f.name), int(f.datatype), int(f.offset), int(f.count)
        name = name or f"{UNNAMED_FIELD_PREFIX}_{index}"
        if dtcode not in _DATATYPES:
            raise DecodeError(
                f"PointField {name!r} has unknown datatype {dtcode}; expected 1..8 "
                "(INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64)"
            )
        if count < 1:
            raise DecodeError(f"PointField {name!r} has count {count}; a field holds at least "
                              "one value (sensor_msgs_py refuses count 0 too)")
        base = _DATATYPES[dtcode].newbyteorder(order)
        if off < 0 or (point_step is not None and off + base.itemsize * count > point_step):
            raise DecodeError(
                f"PointField {name!r} (offset {off}, {count} x {base.itemsize} B) does not fit in "
                f"point_step {point_step}; the cloud is malformed"
            )
        subnames = [name] if count == 1 else [f"{name}_{k}" for k in range(count)]
        for k, sub in enumerate(subnames):
            if sub in names:
                raise DecodeError(f"PointField names must be unique, {sub!r} appears twice "
                                  f"(fields so far: {names})")
            names.append(sub)
            formats.append(base)
            offsets.append(off + k * base.itemsize)
    spec: dict[str, Any] = {"names": names, "formats": formats, "offsets": offsets}
    if point_step is not None:
        spec["itemsize"] = int(point_step)
    return np.dtype(spec)


def _native(dt: np.dtype) -> np.dtype:
    return dt.newbyteorder("=")


def pointcloud2_to_array(
    msg: Any,
    skip_nans: bool = False,
    field_names: Sequence[str] | None = None,
    uvs: Iterable[int] | None = None,
    reshape_organized: bool = False,
) -> np.ndarray:
    """Structured array of a PointCloud2 (``read_points`` of sensor_msgs_py).

    Fields are accessed by name (``arr["x"]``) in native byte order. Without byte swapping, row
    padding or selection the result is a zero-copy (possibly read-only) view of ``msg.data``.

    Args:
        msg: rclpy or rosbags ``sensor_msgs/PointCloud2``.
        skip_nans: drop points where any selected field is NaN; skipped when ``msg.is_dense``.
        field_names: keep only these fields (in this order); None = all.
        uvs: keep only these point indices (into the flat cloud, after ``skip_nans``).
        reshape_organized: return an organised cloud (height > 1) as ``(height, width)``.

    Raises:
        DecodeError: malformed cloud (data length != height x row_step, row_step <
            width x point_step, point_step smaller than its fields, unknown datatype, count 0)
            or a requested field it does not have.
        ConfigError: ``reshape_organized`` with ``skip_nans`` or ``uvs`` (no grid is left).
    """
    h, w = int(msg.height), int(msg.width)
    if reshape_organized and h > 1 and (skip_nans or uvs is not None):
        raise ConfigError("reshape_organized cannot keep the (height, width) grid once points "
                          "are dropped; read the grid and mask NaN points instead")
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
    if field_names is not None:
        missing = [k for k in field_names if k not in (dt.names or ())]
        if missing:
            raise DecodeError(f"PointCloud2 has no field(s) {missing}; its fields: "
                              f"{list(dt.names or ())}")
        arr = arr[list(field_names)]
    if big:
        arr = arr.astype(_native(arr.dtype))
    if skip_nans and not bool(msg.is_dense):
        keep = nan_free_mask(arr)
        if not keep.all():
            arr = arr[keep]
    if uvs is not None:
        arr = arr[np.fromiter(uvs, dtype=np.intp) if not isinstance(uvs, np.ndarray) else uvs]
    if reshape_organized and h > 1:
        arr = arr.reshape(h, w)
    return arr


def pointcloud2_to_numpy(
    msg: Any,
    field_names: Sequence[str] | None = None,
    skip_nans: bool = False,
    reshape_organized: bool = False,
) -> np.ndarray:
    """Unstructured ``(N, k)`` (or ``(height, width, k)``) array of equally typed fields
    (``read_points_numpy`` of sensor_msgs_py).

    Raises:
        DecodeError: the selected fields have different datatypes (use
            ``pointcloud2_to_array``), or as ``pointcloud2_to_array``.
    """
    arr = pointcloud2_to_array(msg, skip_nans, field_names, reshape_organized=reshape_organized)
    kinds = {arr.dtype[k] for k in arr.dtype.names}
    if len(kinds) > 1:
        raise DecodeError(f"fields {list(arr.dtype.names)} have different datatypes "
                          f"({sorted(str(k) for k in kinds)}); read them with "
                          "pointcloud2_to_array")
    return recfunctions.structured_to_unstructured(arr)


def nan_free_mask(arr: np.ndarray) -> np.ndarray:
    """Boolean mask of points without a NaN in any field (sub-array fields included)."""
    mask = np.ones(arr.shape, dtype=bool)
    for k in arr.dtype.names or ():
        v = arr[k]
        if v.dtype.kind == "f":
            bad = np.isnan(v)
            mask &= ~(bad.reshape(*arr.shape, -1).any(-1) if bad.ndim > arr.ndim else bad)
    return mask


def finite_xyz_mask(arr: np.ndarray, nan_only: bool = False) -> np.ndarray:
    """Boolean mask of points whose x, y, z are all valid (not NaN; also not Inf unless
    ``nan_only``). Arrays without x/y/z fields are all valid; a sub-array (count > 1) x/y/z
    field is valid when all its values are."""
    mask = np.ones(arr.shape[0], dtype=bool)
    for k in ("x", "y", "z"):
        if arr.dtype.names and k in arr.dtype.names:
            v = arr[k]
            ok = ~np.isnan(v) if nan_only else np.isfinite(v)
            mask &= ok.reshape(arr.shape[0], -1).all(axis=1) if ok.ndim > 1 else ok
    return mask


def _columns(arr: np.ndarray, names: list[str | None]) -> np.ndarray:
    out = np.empty((arr.shape[0], len(names)), dtype=np.float32)
    for i, n in enumerate(names):
        out[:, i] = arr[n] if n is not None else 0.0
    return out


def _xyz_names(msg_or_arr_names: tuple[str, ...]) -> list[str]:
    missing = [k for k in ("x", "y", "z") if k not in msg_or_arr_names]
    if missing:
        hint = ""
        if any(n.startswith(("x_", "y_", "z_")) for n in msg_or_arr_names):
            hint = (" (a field with count > 1 reads as name_0, name_1, ...: store x, y and z "
                    "as three count-1 fields)")
        raise DecodeError(f"PointCloud2 has no field(s) {missing}; its fields: "
                          f"{list(msg_or_arr_names)}{hint}")
    return ["x", "y", "z"]


def _drop_nan_rows(out: np.ndarray) -> np.ndarray:
    bad = np.isnan(out[:, 0]) | np.isnan(out[:, 1]) | np.isnan(out[:, 2])
    return out[~bad] if bad.any() else out


def pointcloud2_to_xyz(msg: Any, drop_nan_xyz: bool = True, *,
                       skip_nans: bool | None = None) -> np.ndarray:
    """``(N, 3)`` float32 x, y, z (metres, ``header.frame_id``) of a PointCloud2.

    Args:
        drop_nan_xyz: drop points whose x, y or z is NaN, whatever ``is_dense`` says
            (deliberately unlike sensor_msgs_py's ``skip_nans``, see the module docstring).
        skip_nans: older name of ``drop_nan_xyz`` (same meaning here).

    Raises:
        DecodeError: malformed cloud or no x/y/z fields.
    """
    arr = pointcloud2_to_array(msg)
    out = _columns(arr, _xyz_names(arr.dtype.names or ()))
    drop = drop_nan_xyz if skip_nans is None else skip_nans
    return _drop_nan_rows(out) if drop else out


def pointcloud2_to_xyzi(msg: Any, drop_nan_xyz: bool = True, *,
                        skip_nans: bool | None = None) -> np.ndarray:
    """``(N, 4)`` float32 x, y, z, intensity of a PointCloud2 (intensity from the first of
    ``INTENSITY_NAMES`` present, 0 when absent; a NaN intensity is kept).

    Args:
        drop_nan_xyz, skip_nans: as ``pointcloud2_to_xyz``.

    Raises:
        DecodeError: malformed cloud or no x/y/z fields.
    """
    arr = pointcloud2_to_array(msg)
    names = arr.dtype.names or ()
    inten = next((n for n in INTENSITY_NAMES if n in names), None)
    out = _columns(arr, [*_xyz_names(names), inten])
    drop = drop_nan_xyz if skip_nans is None else skip_nans
    return _drop_nan_rows(out) if drop else out


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
    height: int | None = None,
    big_endian: bool = False,
    is_dense: bool = False,
) -> Any:
    """Build a PointCloud2 from a structured array or an ``(N, 3)``/``(N, 4)`` float array.

    Args:
        arr: structured (fields, offsets and item size are kept, padding bytes written as 0; a
            sub-array field becomes one PointField with that ``count``; a 2-D structured array
            is an organised ``(height, width)`` cloud), or ``(N, 3)`` / ``(N, 4)`` numbers ->
            float32 x, y, z[, intensity].
        stamp_ns: header stamp, integer nanoseconds.
        frame_id: header frame of the points.
        factory: builds rclpy or rosbags messages.
        height: rows of an organised cloud (N must be divisible by it); default 1, or the first
            dimension of a 2-D structured array.
        big_endian: write multi-byte fields big-endian and set ``is_bigendian``.
        is_dense: the caller vouches that no point is invalid (NaN); False (as sensor_msgs_py's
            ``create_cloud``) makes readers check.

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
    elif a.ndim == 2 and height is None:
        height = a.shape[0]
    elif a.ndim > 2:
        raise DecodeError(f"a structured point array has 1 or 2 dimensions, got {a.shape}")
    height = 1 if height is None else int(height)
    return _points_to_cloud(a.reshape(-1), dtype_to_fields(a.dtype, factory), stamp_ns,
                            frame_id, factory, height, big_endian, is_dense)


def create_cloud(
    stamp_ns: int,
    frame_id: str,
    fields: Sequence[Any],
    points: Any,
    factory: MessageFactory,
    point_step: int | None = None,
    is_dense: bool = False,
) -> Any:
    """PointCloud2 from ``sensor_msgs/PointField``s and points (``create_cloud`` of
    sensor_msgs_py): ``points`` is a list of per-point tuples (one value per field value, a
    count-3 field taking three), an unstructured ``(N, k)`` array (all fields of one
    datatype), or a structured array whose dtype is that of ``fields_to_dtype(fields,
    point_step)`` (``point_step`` defaults to its item size). A 2-D points array is an
    organised ``(height, width)`` cloud. The fields are written as given (``count`` kept);
    ``is_dense`` False unless the caller vouches.

    Raises:
        DecodeError: the points do not match the fields (datatypes, dtype, count), or bad
            fields (see ``fields_to_dtype``).
    """
    fields = list(fields)
    if point_step is None and isinstance(points, np.ndarray) and points.dtype.names:
        point_step = points.dtype.itemsize  # a padded structured array keeps its padding
    dt = fields_to_dtype(fields, point_step)
    if isinstance(points, np.ndarray) and points.dtype.names is None:
        if len({int(f.datatype) for f in fields}) > 1:
            raise DecodeError("an unstructured point array needs fields of one datatype; pass "
                              "a structured array for mixed datatypes")
        if points.shape[-1] != len(dt.names):
            raise DecodeError(f"points have {points.shape[-1]} values each but the fields hold "
                              f"{len(dt.names)} ({list(dt.names)})")
        a = recfunctions.unstructured_to_structured(np.ascontiguousarray(points), dtype=dt)
    elif isinstance(points, np.ndarray):
        if points.dtype != dt:
            raise DecodeError(f"point dtype {points.dtype} does not match the fields' dtype {dt} "
                              "(field order, names, types, point_step)")
        a = points
    else:
        try:
            a = np.array([tuple(p) for p in points], dtype=dt)
        except (TypeError, ValueError) as e:
            raise DecodeError(f"points do not match the fields {list(dt.names)}: {e}") from e
    if a.ndim > 2:
        raise DecodeError(f"points can be organised in at most 2 dimensions, got {a.shape}")
    height = a.shape[0] if a.ndim == 2 else 1
    return _points_to_cloud(a.reshape(-1), fields, stamp_ns, frame_id, factory, height,
                            False, is_dense)


def _points_to_cloud(a: np.ndarray, fields: list[Any], stamp_ns: int, frame_id: str,
                     factory: MessageFactory, height: int, big_endian: bool,
                     is_dense: bool) -> Any:
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
    return factory.new(
        "sensor_msgs/msg/PointCloud2",
        header=factory.header(stamp_ns, frame_id),
        height=height,
        width=width,
        fields=fields,
        is_bigendian=bool(big_endian),
        point_step=dt.itemsize,
        row_step=width * dt.itemsize,
        data=data,
        is_dense=bool(is_dense),
    )
