"""PointCloud2 codec: any layout (padding, big-endian, organised, count > 1), rclpy == rosbags."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.errors import DecodeError
from spatial_ros.io.msgs import MessageFactory, default_typestore, stamp_to_ns
from spatial_ros.io.pointcloud import (
    FLOAT32,
    UINT16,
    array_to_pointcloud2,
    pointcloud2_to_array,
    pointcloud2_to_xyz,
    pointcloud2_to_xyzi,
)

# An Ouster/Velodyne-like layout: gaps between fields and a point_step beyond the last field.
PADDED = np.dtype({
    "names": ["x", "y", "z", "intensity", "ring", "t", "normal"],
    "formats": ["<f4", "<f4", "<f4", "<u2", "u1", "<f8", ("<f4", (3,))],
    "offsets": [0, 4, 8, 16, 18, 24, 32],
    "itemsize": 56,
})


def _padded_points(n: int, rng: np.random.Generator) -> np.ndarray:
    a = np.zeros(n, PADDED)
    a["x"], a["y"], a["z"] = rng.normal(size=(3, n)).astype(np.float32) * 10
    a["intensity"] = rng.integers(0, 65535, n)
    a["ring"] = rng.integers(0, 64, n)
    a["t"] = rng.random(n)
    a["normal"] = rng.normal(size=(n, 3))
    return a


def _flat(a: np.ndarray) -> dict[str, np.ndarray]:
    """Columns of ``a`` named as a decoded cloud names them: a sub-array (count > 1) field
    ``n`` becomes ``n_0``, ``n_1``, ... (sensor_msgs_py's naming)."""
    out = {}
    for k in a.dtype.names:
        v = a[k]
        if v.ndim > 1:
            for j in range(v.shape[1]):
                out[f"{k}_{j}"] = v[:, j]
        else:
            out[k] = v
    return out


def _assert_same(a: np.ndarray, b: np.ndarray) -> None:
    fa, fb = _flat(a), _flat(b)
    assert list(fa) == list(fb)
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k])


def test_xyzi_roundtrip(factory):
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(500, 4)).astype(np.float32)
    msg = array_to_pointcloud2(pts, 7_000_000_001, "lidar", factory)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 500, 16, 8000)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "intensity"]
    assert all(f.datatype == FLOAT32 and f.count == 1 for f in msg.fields)
    assert stamp_to_ns(msg.header) == 7_000_000_001 and msg.header.frame_id == "lidar"
    assert not msg.is_dense  # as sensor_msgs_py's create_cloud, unless the caller vouches
    assert array_to_pointcloud2(pts, 0, "lidar", factory, is_dense=True).is_dense
    np.testing.assert_array_equal(pointcloud2_to_xyzi(msg), pts)
    np.testing.assert_array_equal(pointcloud2_to_xyz(msg), pts[:, :3])
    xyz_only = array_to_pointcloud2(pts[:, :3].astype(np.float64), 0, "lidar", factory)
    out = pointcloud2_to_xyzi(xyz_only)
    np.testing.assert_array_equal(out[:, :3], pts[:, :3])
    assert (out[:, 3] == 0).all()  # intensity absent -> 0


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_padded_layout_roundtrip(big_endian, factory):
    a = _padded_points(300, np.random.default_rng(1))
    msg = array_to_pointcloud2(a, 0, "os_sensor", factory, big_endian=big_endian)
    assert msg.point_step == 56 and bool(msg.is_bigendian) == big_endian
    assert {f.name: (f.offset, f.datatype, f.count) for f in msg.fields}["normal"] == (32, 7, 3)
    assert {f.name: (f.offset, f.datatype) for f in msg.fields}["intensity"] == (16, UINT16)
    # Padding bytes are written as zeros (byte-identical bags for a seed).
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(300, 56)
    assert not raw[:, 12:16].any() and not raw[:, 19:24].any() and not raw[:, 44:].any()
    out = pointcloud2_to_array(msg)
    assert out.dtype.isnative or all(out.dtype[k].isnative for k in out.dtype.names)
    _assert_same(out, a)
    inten = pointcloud2_to_xyzi(msg)[:, 3]
    np.testing.assert_array_equal(inten, a["intensity"].astype(np.float32))


def test_hand_built_big_endian_and_odd_field_order(factory):
    # Fields in the order intensity, z, y, x with a 2-byte gap, written big-endian by hand.
    pts = np.array([[1.0, 2.0, 3.0, 9.0], [-4.0, 5.5, 0.25, 1.0]], np.float32)
    fields = [factory.new("sensor_msgs/msg/PointField", name=n, offset=o, datatype=FLOAT32,
                          count=1)
              for n, o in (("intensity", 0), ("z", 4), ("y", 8), ("x", 14))]
    rows = []
    for x, y, z, i in pts:
        rows.append(np.array([i, z, y], ">f4").tobytes() + b"\xab\xcd" + np.array([x], ">f4")
                    .tobytes())
    msg = factory.new("sensor_msgs/msg/PointCloud2", height=1, width=2, fields=fields,
                      is_bigendian=True, point_step=18, row_step=36, data=b"".join(rows))
    np.testing.assert_array_equal(pointcloud2_to_xyzi(msg), pts)


def test_organised_cloud_and_nan_skipping(factory):
    h, w = 4, 5
    rng = np.random.default_rng(2)
    pts = rng.normal(size=(h * w, 4)).astype(np.float32)
    pts[[3, 7, 8], 0] = np.nan  # no return
    pts[11, 2] = np.nan
    msg = array_to_pointcloud2(pts, 0, "cam", factory, height=h)
    assert (msg.height, msg.width, msg.row_step) == (h, w, w * 16) and not msg.is_dense
    full = pointcloud2_to_xyzi(msg, skip_nans=False)
    np.testing.assert_array_equal(full, pts)  # NaN == NaN for assert_array_equal
    kept = pointcloud2_to_xyzi(msg, skip_nans=True)
    assert kept.shape == (h * w - 4, 4)
    np.testing.assert_array_equal(kept, pts[np.isfinite(pts).all(1)])
    assert pointcloud2_to_array(msg, skip_nans=True).shape == (16,)
    with pytest.raises(DecodeError, match="height 3"):
        array_to_pointcloud2(pts, 0, "cam", factory, height=3)


def test_row_step_padding(factory):
    h, w = 3, 4
    pts = np.arange(h * w * 3, dtype=np.float32).reshape(h * w, 3)
    rows = pts.reshape(h, w * 3).view(np.uint8)
    data = np.hstack([rows, np.full((h, 8), 0xEE, np.uint8)]).tobytes()
    fields = [factory.new("sensor_msgs/msg/PointField", name=n, offset=4 * i, datatype=FLOAT32,
                          count=1) for i, n in enumerate("xyz")]
    msg = factory.new("sensor_msgs/msg/PointCloud2", height=h, width=w, fields=fields,
                      point_step=12, row_step=w * 12 + 8, data=data)
    np.testing.assert_array_equal(pointcloud2_to_xyz(msg), pts)


def test_random_layouts_roundtrip(factory):
    """Random field sets, types, counts, gaps and byte orders all survive the round trip."""
    rng = np.random.default_rng(4)
    kinds = ["i1", "u1", "<i2", "<u2", "<i4", "<u4", "<f4", "<f8"]
    for trial in range(25):
        names, formats, offsets, off = [], [], [], 0
        for k in range(rng.integers(1, 6)):
            fmt = kinds[rng.integers(len(kinds))]
            cnt = int(rng.choice([1, 1, 1, 2, 4]))
            off += int(rng.integers(0, 4))
            names.append(f"f{k}")
            formats.append(fmt if cnt == 1 else (fmt, (cnt,)))
            offsets.append(off)
            off += np.dtype(fmt).itemsize * cnt
        dt = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                       "itemsize": off + int(rng.integers(0, 9))})
        n = int(rng.integers(1, 40))
        a = np.zeros(n, dt)
        a.view(np.uint8)[:] = rng.integers(0, 255, a.nbytes, dtype=np.uint8)
        for k in names:  # NaN payloads compare unequal; keep floats finite
            if a[k].dtype.kind == "f":
                a[k] = rng.normal(size=a[k].shape)
        msg = array_to_pointcloud2(a, 0, "f", factory, big_endian=bool(trial % 2))
        _assert_same(pointcloud2_to_array(msg), a)


def test_rclpy_and_rosbags_clouds_decode_identically():
    pytest.importorskip("sensor_msgs.msg")
    ser = pytest.importorskip("rclpy.serialization")
    from sensor_msgs.msg import PointCloud2

    a = _padded_points(200, np.random.default_rng(5))
    m_rc = array_to_pointcloud2(a, 3, "lidar", MessageFactory.rclpy(), big_endian=True)
    m_rb = array_to_pointcloud2(a, 3, "lidar", MessageFactory.rosbags(), big_endian=True)
    ts = default_typestore()
    wire = bytes(ser.serialize_message(m_rc))
    variants = [
        m_rb,
        ser.deserialize_message(wire, PointCloud2),
        ts.deserialize_cdr(ts.serialize_cdr(m_rb, m_rb.__msgtype__), m_rb.__msgtype__),
        ts.deserialize_cdr(wire, "sensor_msgs/msg/PointCloud2"),  # rclpy bytes, rosbags reader
    ]
    # Same CDR size (alignment padding bytes themselves may differ between serializers).
    assert len(ts.serialize_cdr(m_rb, m_rb.__msgtype__)) == len(wire)
    ref = pointcloud2_to_array(m_rc)
    for m in variants:
        _assert_same(pointcloud2_to_array(m), ref)
        np.testing.assert_array_equal(pointcloud2_to_xyzi(m), pointcloud2_to_xyzi(m_rc))
    _assert_same(ref, a)


def test_malformed_clouds_raise(factory):
    def cloud(fields, point_step=12, n=2, data_len=None, height=1):
        fl = [factory.new("sensor_msgs/msg/PointField", name=nm, offset=o, datatype=d, count=1)
              for nm, o, d in fields]
        row = n * point_step
        return factory.new("sensor_msgs/msg/PointCloud2", height=height, width=n, fields=fl,
                           point_step=point_step, row_step=row,
                           data=bytes(row * height if data_len is None else data_len))

    xyz = [("x", 0, 7), ("y", 4, 7), ("z", 8, 7)]
    with pytest.raises(DecodeError, match="data has 20 B"):
        pointcloud2_to_xyz(cloud(xyz, data_len=20))
    with pytest.raises(DecodeError, match="does not fit in point_step 10"):
        pointcloud2_to_xyz(cloud(xyz, point_step=10))
    with pytest.raises(DecodeError, match="unknown datatype 9"):
        pointcloud2_to_xyz(cloud([("x", 0, 9)]))
    with pytest.raises(DecodeError, match=r"no field\(s\) \['z'\]"):
        pointcloud2_to_xyz(cloud(xyz[:2]))
    with pytest.raises(DecodeError, match="unique"):
        pointcloud2_to_xyz(cloud([("x", 0, 7), ("x", 4, 7)]))
    with pytest.raises(DecodeError, match=r"\(N, 3\)"):
        array_to_pointcloud2(np.zeros((4, 5), np.float32), 0, "f", factory)
    with pytest.raises(DecodeError, match="cannot be stored"):
        array_to_pointcloud2(np.zeros(3, [("x", "<i8")]), 0, "f", factory)
