"""Image / CompressedImage codecs: every encoding round-trips, rclpy == rosbags, known colours."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from spatial_ros.errors import DecodeError
from spatial_ros.io.image import (
    decode_compressed,
    decode_image,
    depth_to_metres,
    encode_compressed,
    encode_image,
    image_to_rgb8,
)
from spatial_ros.io.msgs import MessageFactory, default_typestore, ns_to_stamp, stamp_to_ns

H, W = 6, 10




def _random(encoding: str, rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    from spatial_ros.io.image import encoding_info

    dt, ch = encoding_info(encoding)
    shape = (h, w) if ch == 1 else (h, w, ch)
    if dt.kind == "f":
        return rng.normal(size=shape).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)


ENCODINGS = [
    "rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16", "mono8", "mono16",
    "8UC1", "8UC3", "8UC4", "8SC1", "16UC1", "16SC1", "32SC1", "32FC1", "32FC3", "64FC1",
    "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8", "bayer_rggb16", "yuv422",
    "yuv422_yuy2",
]


def test_stamp_helpers():
    assert ns_to_stamp(1_500_000_001) == (1, 500_000_001)
    assert ns_to_stamp(-1) == (-1, 999_999_999)
    f = MessageFactory.rosbags()
    assert stamp_to_ns(f.header(-1, "a")) == -1
    assert stamp_to_ns(f.time(7_000_000_123)) == 7_000_000_123


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_encode_decode_roundtrip(encoding, big_endian, factory):
    rng = np.random.default_rng(zlib.crc32(encoding.encode()))
    a = _random(encoding, rng)
    msg = encode_image(a, encoding, 5, "cam", factory, big_endian=big_endian)
    assert msg.height == H and msg.width == W and msg.encoding == encoding
    assert stamp_to_ns(msg.header) == 5 and msg.header.frame_id == "cam"
    out = decode_image(msg)
    assert out.dtype == a.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, a)


def test_big_endian_bytes_are_honoured(factory):
    # 0x0102 = 258 stored big-endian is bytes 01 02; little-endian it would read 513.
    data = bytes([1, 2, 0, 7])
    for flag, want in ((1, [258, 7]), (0, [513, 1792])):
        msg = factory.new("sensor_msgs/msg/Image", height=1, width=2, encoding="16UC1",
                          is_bigendian=flag, step=4, data=data)
        assert decode_image(msg).tolist() == [want]
    be = np.array([[1.5, -2.0]], dtype=">f4").tobytes()
    msg = factory.new("sensor_msgs/msg/Image", height=1, width=2, encoding="32FC1",
                      is_bigendian=1, step=8, data=be)
    assert decode_image(msg).tolist() == [[1.5, -2.0]]


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "32FC1", "bgra8"])
def test_row_step_padding(encoding, factory):
    rng = np.random.default_rng(3)
    a = _random(encoding, rng)
    row = np.ascontiguousarray(a).reshape(H, -1).view(np.uint8)
    pad = rng.integers(0, 255, size=(H, 13), dtype=np.uint8)  # garbage padding bytes
    data = np.hstack([row, pad]).tobytes()
    msg = factory.new("sensor_msgs/msg/Image", height=H, width=W, encoding=encoding,
                      step=row.shape[1] + 13, data=data)
    np.testing.assert_array_equal(decode_image(msg), a)


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "mono16", "16UC1", "32FC1", "bayer_gbrg8"])
def test_rclpy_and_rosbags_messages_decode_identically(encoding):
    pytest.importorskip("sensor_msgs.msg")
    rclpy_serialization = pytest.importorskip("rclpy.serialization")
    from sensor_msgs.msg import Image

    a = _random(encoding, np.random.default_rng(11))
    m_rc = encode_image(a, encoding, 42, "cam", MessageFactory.rclpy())
    m_rb = encode_image(a, encoding, 42, "cam", MessageFactory.rosbags())
    # Through the wire formats too: rclpy CDR and rosbags CDR (what bags store).
    m_rc2 = rclpy_serialization.deserialize_message(
        rclpy_serialization.serialize_message(m_rc), Image)
    ts = default_typestore()
    m_rb2 = ts.deserialize_cdr(ts.serialize_cdr(m_rb, m_rb.__msgtype__), m_rb.__msgtype__)
    # rosbags can also read the bytes rclpy wrote: the two message kinds are the same wire type.
    m_x = ts.deserialize_cdr(bytes(rclpy_serialization.serialize_message(m_rc)),
                             "sensor_msgs/msg/Image")
    ref = decode_image(m_rc)
    for m in (m_rb, m_rc2, m_rb2, m_x):
        np.testing.assert_array_equal(decode_image(m), ref)
        np.testing.assert_array_equal(image_to_rgb8(m), image_to_rgb8(m_rc))
    np.testing.assert_array_equal(ref, a)


def test_to_rgb8_known_colours(factory):
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    alpha = np.full((H, W, 1), 77, np.uint8)

    def conv(arr, enc):
        return image_to_rgb8(encode_image(arr, enc, 0, "c", factory))

    np.testing.assert_array_equal(conv(rgb, "rgb8"), rgb)
    np.testing.assert_array_equal(conv(rgb[..., ::-1].copy(), "bgr8"), rgb)
    np.testing.assert_array_equal(conv(np.concatenate([rgb, alpha], 2), "rgba8"), rgb)
    np.testing.assert_array_equal(conv(np.concatenate([rgb[..., ::-1], alpha], 2), "bgra8"), rgb)
    np.testing.assert_array_equal(conv(rgb[..., ::-1].copy(), "8UC3"), rgb)  # cv_bridge: BGR
    np.testing.assert_array_equal(conv(rgb.astype(np.uint16) * 257, "rgb16"), rgb)
    np.testing.assert_array_equal(conv((rgb[..., ::-1].astype(np.uint16) * 257), "bgr16"), rgb)
    grey = rgb[..., 0].copy()
    np.testing.assert_array_equal(conv(grey, "mono8"), np.repeat(grey[..., None], 3, 2))
    np.testing.assert_array_equal(conv(grey.astype(np.uint16) * 257, "mono16"),
                                  np.repeat(grey[..., None], 3, 2))
    out = conv(np.array([[0.0, 0.5, 1.0, np.nan]], np.float32), "32FC1")
    assert out[0, :, 0].tolist() == [0, 128, 255, 0]


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_demosaic_recovers_colour(pattern, bits, factory):
    h, w = 16, 20
    scale = 257 if bits == 16 else 1
    colour = np.array([200, 100, 50])
    # A smooth scene: constant colour plus a gentle horizontal ramp in green.
    rgb = np.tile(colour, (h, w, 1)).astype(np.float64)
    rgb[..., 1] += np.arange(w)[None, :] * 2.0
    idx = {"r": 0, "g": 1, "b": 2}
    mosaic = np.zeros((h, w), np.uint16 if bits == 16 else np.uint8)
    for k, ch in enumerate(pattern):
        dy, dx = divmod(k, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, idx[ch]] * scale
    out = image_to_rgb8(encode_image(mosaic, f"bayer_{pattern}{bits}", 0, "c", factory))
    inner = (slice(2, -2), slice(2, -2))
    assert np.abs(out[inner].astype(int) - rgb[inner]).max() <= 1


def test_yuv422_byte_orders(factory):
    # UYVY: U Y0 V Y1 ; YUY2: Y0 U Y1 V. BT.601 limited range (what OpenCV implements).
    y0, y1, u, v = 100, 180, 90, 200

    def bt601(y):
        c, d, e = 1.164 * (y - 16), u - 128, v - 128
        return np.array([c + 1.596 * e, c - 0.391 * d - 0.813 * e, c + 2.018 * d])

    want = np.clip(np.stack([bt601(y0), bt601(y1)]), 0, 255)
    for enc, quad in (("yuv422", [u, y0, v, y1]), ("yuv422_yuy2", [y0, u, y1, v])):
        msg = factory.new("sensor_msgs/msg/Image", height=1, width=2, encoding=enc, step=4,
                          data=bytes(quad))
        out = image_to_rgb8(msg)[0].astype(float)
        assert np.abs(out - want).max() <= 2.0, (enc, out, want)


def test_depth_to_metres(factory):
    mm = np.array([[0, 1500, 65535]], np.uint16)
    for be in (False, True):
        d = depth_to_metres(encode_image(mm, "16UC1", 0, "c", factory, big_endian=be))
        assert d.dtype == np.float32
        assert np.isnan(d[0, 0]) and d[0, 1] == pytest.approx(1.5) and d[0, 2] == pytest.approx(
            65.535)
    m = np.array([[0.0, np.nan, np.inf, 2.25]], np.float32)
    d = depth_to_metres(encode_image(m, "32FC1", 0, "c", factory))
    assert np.isnan(d[0, :3]).all() and d[0, 3] == 2.25
    d = depth_to_metres(encode_image(m.astype(np.float64), "64FC1", 0, "c", factory))
    assert d.dtype == np.float32 and d[0, 3] == 2.25
    with pytest.raises(DecodeError, match="not depth"):
        depth_to_metres(encode_image(np.zeros((2, 2, 3), np.uint8), "rgb8", 0, "c", factory))


def test_errors_name_the_problem(factory):
    msg = factory.new("sensor_msgs/msg/Image", height=1, width=1, encoding="fancy42", step=1,
                      data=b"\x00")
    with pytest.raises(DecodeError, match=r"fancy42.*rgb8.*16UC1|fancy42.*supported"):
        decode_image(msg)
    short = factory.new("sensor_msgs/msg/Image", height=2, width=2, encoding="rgb8", step=6,
                        data=bytes(11))
    with pytest.raises(DecodeError, match="expected height 2 x step 6"):
        decode_image(short)
    bad_step = factory.new("sensor_msgs/msg/Image", height=2, width=2, encoding="rgb8", step=5,
                           data=bytes(10))
    with pytest.raises(DecodeError, match="step 5"):
        decode_image(bad_step)
    with pytest.raises(DecodeError, match="does not fit"):
        encode_image(np.zeros((2, 2), np.uint8), "rgb8", 0, "c", factory)
    with pytest.raises(DecodeError, match="dtype"):
        encode_image(np.zeros((2, 2), np.int32), "16UC1", 0, "c", factory)


def test_compressed_png_exact_jpeg_close(factory):
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2).astype(np.uint8)
    png = encode_compressed(rgb, "png", 9, "cam", factory)
    assert "png" in png.format and stamp_to_ns(png.header) == 9
    np.testing.assert_array_equal(decode_compressed(png), rgb)
    np.testing.assert_array_equal(image_to_rgb8(png), rgb)
    jpg = encode_compressed(rgb, "jpeg", 9, "cam", factory, quality=95)
    err = np.abs(image_to_rgb8(jpg).astype(int) - rgb).mean()
    assert err < 3.0
    grey = rgb[..., 0].copy()
    gm = encode_compressed(grey, "png", 0, "cam", factory)
    np.testing.assert_array_equal(decode_compressed(gm), grey)
    np.testing.assert_array_equal(image_to_rgb8(gm), np.repeat(grey[..., None], 3, 2))
    bad = factory.new("sensor_msgs/msg/CompressedImage", format="jpeg", data=b"not an image")
    with pytest.raises(DecodeError, match="could not decode"):
        image_to_rgb8(bad)


def test_compressed_depth(factory):
    mm = np.array([[0, 1000], [2500, 40000]], np.uint16)
    ok, png = cv2.imencode(".png", mm)
    header = struct.pack("<iff", 0, 0.0, 0.0)
    msg = factory.new("sensor_msgs/msg/CompressedImage", format="16UC1; compressedDepth png",
                      data=header + png.tobytes())
    d = depth_to_metres(msg)
    assert np.isnan(d[0, 0]) and np.allclose(d[[0, 1, 1], [1, 0, 1]], [1.0, 2.5, 40.0])
    # 32FC1: inverse-depth quantisation depth = A / (v - B), v = 0 means no return.
    A, B = 100.0, -10.0
    v = np.array([[0, 40], [90, 190]], np.uint16)
    ok, png = cv2.imencode(".png", v)
    msg = factory.new("sensor_msgs/msg/CompressedImage", format="32FC1; compressedDepth png",
                      data=struct.pack("<iff", 0, A, B) + png.tobytes())
    d = depth_to_metres(msg)
    assert np.isnan(d[0, 0]) and np.allclose(d[[0, 1, 1], [1, 0, 1]], [2.0, 1.0, 0.5])


def test_codecs_import_without_rclpy():
    code = (
        "import sys; sys.modules['rclpy'] = None\n"
        "import spatial_ros.io.image, spatial_ros.io.pointcloud, spatial_ros.io.camera_info\n"
        "import spatial_ros.geometry.camera, spatial_ros.geometry.iou, spatial_ros.sync\n"
        "from spatial_ros.io.msgs import MessageFactory; MessageFactory.rosbags()\n"
        "assert sys.modules['rclpy'] is None\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_bench_io_runs_small(tmp_path, capsys):
    import argparse

    from spatial_ros.bench import io as bench_io

    p = argparse.ArgumentParser()
    bench_io.add_arguments(p)
    out = tmp_path / "io.json"
    args = p.parse_args(["--points", "3000", "--width", "64", "--height", "32", "--repeat", "1",
                         "--naive-points", "300", "--naive-rows", "2", "--json", str(out)])
    assert bench_io.run(args) == 0
    import json

    res = json.loads(out.read_text())
    assert res["naive_matches"] is True
    assert res["results"]["pointcloud2_xyzi"]["points"] == 3000
    assert "EXTRAPOLATED" in capsys.readouterr().out


def test_rgb8_result_is_writable_and_owned(factory):
    rgb = np.arange(H * W * 3, dtype=np.uint8).reshape(H, W, 3)
    msg = encode_image(rgb, "rgb8", 0, "c", factory)
    if factory.kind == "rosbags":  # as read from a bag: a read-only view of the raw bytes
        ts = default_typestore()
        msg = ts.deserialize_cdr(ts.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    out = image_to_rgb8(msg)
    out[0, 0] = 7  # drawing on the decoded image must be possible...
    assert decode_image(msg)[0, 0].tolist() == rgb[0, 0].tolist()  # ...and not alter the message


def test_factory_defaults_and_nested_dicts(factory):
    m = factory.new("sensor_msgs/msg/PointCloud2", header={"frame_id": "lidar"},
                    fields=[{"name": "x", "offset": 0, "datatype": 7, "count": 1}])
    assert m.header.frame_id == "lidar" and m.fields[0].name == "x" and m.width == 0
    pose = factory.new("geometry_msgs/msg/Pose")
    assert pose.orientation.w == 1.0  # the .msg default, also for rosbags
    g = factory.new("spatial_ros/msg/GroundedObject3DArray", objects=[{"id": "q0"}])
    assert g.objects[0].id == "q0" and list(g.objects[0].box_2d) == [0.0] * 4
    from spatial_ros.errors import ConfigError

    with pytest.raises(ConfigError, match="no field"):
        factory.new("sensor_msgs/msg/Image", colour="red")
    with pytest.raises(ConfigError, match="not"):
        factory.new("no_such_pkg/msg/Thing")
