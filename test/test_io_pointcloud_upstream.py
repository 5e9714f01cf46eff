"""sensor_msgs_py's point_cloud2 test cases, re-expressed against ``spatial_ros.io.pointcloud``.

Spec: ros2/common_interfaces ``sensor_msgs_py/test/test_point_cloud2.py`` (same inputs and
expected outputs; our functions: ``read_points`` -> ``pointcloud2_to_array``,
``read_points_numpy`` -> ``pointcloud2_to_numpy``, ``create_cloud`` -> ``create_cloud``,
``create_cloud_xyz32`` -> ``array_to_pointcloud2`` of an (N, 3) array). Deliberate differences
(module docstring of spatial_ros/io/pointcloud.py) are tested as such: ``DecodeError`` instead
of ``AssertionError``; organised clouds are ``(height, width)``; no namedtuple list reader.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib import recfunctions

from spatial_ros.errors import ConfigError, DecodeError
from spatial_ros.io.pointcloud import (
    FLOAT32,
    FLOAT64,
    UINT8,
    array_to_pointcloud2,
    create_cloud,
    fields_to_dtype,
    nan_free_mask,
    pointcloud2_to_array,
    pointcloud2_to_numpy,
    pointcloud2_to_xyz,
    pointcloud2_to_xyzi,
)

PYLIST = [(0.0, 0.1, 0.2), (1.0, 1.1, 1.2), (2.0, 2.1, 2.2), (3.0, 3.1, 3.2),
          (4.0, np.nan, 4.2), (5.0, 5.1, 5.2)]
POINTS = np.array(PYLIST, dtype=np.float32)
STRUCT = np.array(list(map(tuple, POINTS)), dtype=[("a", np.float32), ("b", np.float64),
                                                   ("c", np.uint8)])
STRUCT6 = np.array(list(map(tuple, POINTS)), dtype=[("a", np.float32), ("b", np.float32),
                                                    ("c", np.uint8)])


def _fields(factory, spec):
    return [factory.new("sensor_msgs/msg/PointField", name=n, offset=o, datatype=d, count=c)
            for n, o, d, c in spec]


XYZ = [("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 1), ("z", 8, FLOAT32, 1)]
YZ = [("y", 0, FLOAT32, 1), ("z", 4, FLOAT32, 1)]
ABC = [("a", 0, FLOAT32, 1), ("b", 4, FLOAT64, 1), ("c", 12, UINT8, 1)]
ABC6 = [("a", 0, FLOAT32, 1), ("b", 4, FLOAT32, 1), ("c", 8, UINT8, 1)]
X3 = [("x", 0, FLOAT32, 3)]


def _cloud(factory, spec, data, width, point_step, height=1, frame="frame", is_dense=False):
    return factory.new("sensor_msgs/msg/PointCloud2", header=factory.header(0, frame),
                       height=height, width=width, is_dense=is_dense, is_bigendian=False,
                       fields=_fields(factory, spec), point_step=point_step,
                       row_step=point_step * width, data=bytes(data))


def _pcd(factory, **kw):
    return _cloud(factory, XYZ, POINTS.tobytes(), 6, 12, **kw)


def _pcd3(factory):  # upstream's organised cloud: points (2, 3) called height 3, width 2
    return _cloud(factory, XYZ, POINTS.reshape(2, 3, 3).tobytes(), 2, 12, height=3)


def _pcd4(factory):
    return _cloud(factory, ABC, STRUCT.tobytes(), 6, STRUCT.itemsize)


def _pcd5(factory):
    return _cloud(factory, X3, POINTS.tobytes(), 6, 12)


def _pcd6(factory):
    return _cloud(factory, ABC6, STRUCT6.tobytes(), 6, STRUCT6.itemsize)


def _same_cloud(a, b) -> bool:
    def key(m):
        return (m.header.frame_id, m.header.stamp.sec, m.header.stamp.nanosec, int(m.height),
                int(m.width), bool(m.is_dense), bool(m.is_bigendian), int(m.point_step),
                int(m.row_step), bytes(np.asarray(m.data, np.uint8)),
                [(f.name, int(f.offset), int(f.datatype), int(f.count)) for f in m.fields])
    return key(a) == key(b)


def _unstructured(arr):
    return recfunctions.structured_to_unstructured(arr)


def test_read_points(factory):
    got = pointcloud2_to_array(_pcd(factory))
    assert np.allclose(_unstructured(got), PYLIST, equal_nan=True)


def test_read_points_field(factory):
    got = _unstructured(pointcloud2_to_array(_pcd(factory), field_names=["x", "z"]))
    assert got.shape == (6, 2) and np.allclose(got, POINTS[:, [0, 2]], equal_nan=True)
    picked = pointcloud2_to_array(_pcd(factory), uvs=[5, 0])  # upstream's uvs: point indices
    assert np.allclose(_unstructured(picked), POINTS[[5, 0]])


def test_read_points_skip_nan(factory):
    got = _unstructured(pointcloud2_to_array(_pcd(factory), skip_nans=True))
    expected = POINTS[~np.isnan(POINTS).any(axis=1)]
    assert got.shape == expected.shape == (5, 3) and np.allclose(got, expected)
    # ... and the check is skipped for a cloud that says it is dense (upstream: is_dense).
    assert pointcloud2_to_array(_pcd(factory, is_dense=True), skip_nans=True).shape == (6,)


def test_read_points_list(factory):
    """No namedtuple list reader (deliberate): ``.tolist()`` of the array gives the tuples."""
    got = pointcloud2_to_array(_pcd(factory)).tolist()
    assert np.allclose(np.array(got), POINTS, equal_nan=True)


def test_read_points_organized(factory):
    pcd3 = _pcd3(factory)
    assert np.allclose(_unstructured(pointcloud2_to_array(pcd3)), PYLIST, equal_nan=True)
    # Deliberate difference: upstream reshapes to (width, height) = (2, 3); we keep the
    # row-major layout sensor_msgs defines, (height, width) = (3, 2), rows of `width` points.
    grid = pointcloud2_to_array(pcd3, reshape_organized=True)
    assert grid.shape == (3, 2)
    assert np.allclose(_unstructured(grid), POINTS.reshape(3, 2, 3), equal_nan=True)
    with pytest.raises(ConfigError, match="grid"):
        pointcloud2_to_array(pcd3, skip_nans=True, reshape_organized=True)


def test_read_points_numpy(factory):
    assert np.allclose(pointcloud2_to_numpy(_pcd(factory)), POINTS, equal_nan=True)


def test_read_points_numpy_same_types(factory):
    with pytest.raises(DecodeError, match="different datatypes"):
        pointcloud2_to_numpy(_pcd4(factory))


def test_read_points_numpy_specific_fields(factory):
    assert pointcloud2_to_numpy(_pcd6(factory), field_names=("a", "b")).shape == (6, 2)


def test_read_points_different_types(factory):
    got = pointcloud2_to_array(_pcd4(factory))
    for name in STRUCT.dtype.names:
        assert np.allclose(got[name], STRUCT[name], equal_nan=True)
    assert got.dtype == STRUCT.dtype


def test_read_points_non_one_count(factory):
    assert np.allclose(pointcloud2_to_numpy(_pcd5(factory)), POINTS, equal_nan=True)


def test_read_points_non_one_count_structured(factory):
    got = pointcloud2_to_array(_pcd5(factory))
    assert got.dtype.names == ("x_0", "x_1", "x_2")
    assert np.allclose(_unstructured(got), POINTS, equal_nan=True)


def test_create_cloud(factory):
    fields = _fields(factory, XYZ)
    assert _same_cloud(create_cloud(0, "frame", fields, PYLIST, factory), _pcd(factory))
    assert not _same_cloud(create_cloud(0, "frame2", fields, PYLIST, factory), _pcd(factory))
    yz = create_cloud(0, "frame", _fields(factory, YZ), POINTS[:, 1:].tolist(), factory)
    assert not _same_cloud(yz, _pcd(factory))
    assert not create_cloud(0, "frame", fields, PYLIST, factory).is_dense


def test_create_cloud_itemsize(factory):
    fields = _fields(factory, XYZ)
    padded_dt = np.dtype({"names": ["x", "y", "z"], "formats": ["f4"] * 3,
                          "offsets": [0, 4, 8], "itemsize": 20})
    padded = np.array(PYLIST, dtype=padded_dt)
    with pytest.raises(DecodeError, match="does not match"):
        create_cloud(0, "frame", fields, padded, factory, fields_to_dtype(fields, None).itemsize)
    assert create_cloud(0, "frame", fields, padded, factory).point_step == 20
    assert create_cloud(0, "frame", fields, padded, factory, 20).point_step == 20


def test_create_cloud_different_types(factory):
    got = create_cloud(0, "frame", _fields(factory, ABC), STRUCT, factory)
    assert _same_cloud(got, _pcd4(factory))


def test_create_cloud_xyz32(factory):
    assert _same_cloud(array_to_pointcloud2(np.array(PYLIST), 0, "frame", factory),
                       _pcd(factory))


def test_create_cloud_xyz32_organized(factory):
    """Deliberate difference: a (2, 3) grid of points is height 2, width 3 here (upstream
    calls it height 3, width 2). Same bytes; reading it back gives the same grid."""
    points3 = POINTS.reshape(2, 3, 3)
    got = create_cloud(0, "frame", _fields(factory, XYZ), points3, factory)
    ref = _pcd3(factory)
    assert (got.height, got.width, got.row_step) == (2, 3, 36)
    assert bytes(np.asarray(got.data, np.uint8)) == bytes(np.asarray(ref.data, np.uint8))
    back = pointcloud2_to_array(got, reshape_organized=True)
    assert np.allclose(_unstructured(back), points3, equal_nan=True)


def test_create_cloud_non_one_count(factory):
    got = create_cloud(0, "frame", _fields(factory, X3), POINTS, factory)
    assert _same_cloud(got, _pcd5(factory))


def test_read_cloud_with_non_standard_point_step(factory):
    wide = np.zeros(6, np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3,
                                 "offsets": [0, 4, 8], "itemsize": 123}))
    for k, name in enumerate("xyz"):
        wide[name] = POINTS[:, k]
    pc = _cloud(factory, XYZ, wide.tobytes(), 6, 123)
    assert np.allclose(pointcloud2_to_numpy(pc), POINTS, equal_nan=True)


# ---- the cases around the upstream semantics ----------------------------------------

def test_count_zero_field_is_refused(factory):
    pc = _cloud(factory, [("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 0), ("z", 8, FLOAT32, 1)],
                POINTS.tobytes(), 6, 12)
    with pytest.raises(DecodeError, match="count 0"):
        pointcloud2_to_array(pc)
    with pytest.raises(DecodeError, match="count 0"):
        pointcloud2_to_xyz(pc)


def test_empty_field_name_reads_as_unnamed(factory):
    pc = _cloud(factory, [("x", 0, FLOAT32, 1), ("", 4, FLOAT32, 1), ("z", 8, FLOAT32, 1)],
                POINTS.tobytes(), 6, 12)
    got = pointcloud2_to_array(pc)
    assert got.dtype.names == ("x", "unnamed_field_1", "z")
    assert np.allclose(got["unnamed_field_1"], POINTS[:, 1], equal_nan=True)


def test_count3_x_field_round_trip_and_clear_errors(factory):
    arr = np.zeros(4, [("x", "<f4", (3,)), ("intensity", "<f4")])
    arr["x"] = np.arange(12, dtype=np.float32).reshape(4, 3)
    arr["x"][2, 1] = np.nan
    msg = array_to_pointcloud2(arr, 0, "f", factory)  # one PointField x with count 3
    assert [(f.name, int(f.count)) for f in msg.fields] == [("x", 3), ("intensity", 1)]
    got = pointcloud2_to_array(msg, skip_nans=True)
    assert got.dtype.names == ("x_0", "x_1", "x_2", "intensity") and got.shape == (3,)
    assert nan_free_mask(arr).tolist() == [True, True, False, True]  # sub-array aware
    with pytest.raises(DecodeError, match=r"no field\(s\).*count > 1"):
        pointcloud2_to_xyz(msg)


def test_skip_nans_drops_on_any_field_but_xyz_helpers_only_on_xyz(factory):
    pts = np.array([[0, 0, 1, 5], [1, 1, 1, np.nan], [np.nan, 0, 0, 1]], np.float32)
    msg = array_to_pointcloud2(pts, 0, "f", factory)
    assert pointcloud2_to_array(msg, skip_nans=True).shape == (1,)  # upstream: any field
    kept = pointcloud2_to_xyzi(msg)  # geometry helper: only x/y/z decide
    assert kept.shape == (2, 4) and np.isnan(kept[1, 3])
    lying = array_to_pointcloud2(pts, 0, "f", factory, is_dense=True)
    assert pointcloud2_to_array(lying, skip_nans=True).shape == (3,)  # is_dense trusted
    assert pointcloud2_to_xyz(lying).shape == (2, 3)  # geometry never gets the NaN
    assert pointcloud2_to_xyz(lying, drop_nan_xyz=False).shape == (3, 3)
