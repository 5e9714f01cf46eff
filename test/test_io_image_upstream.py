"""cv_bridge's test cases, re-expressed against ``spatial_ros.io.image`` / ``image_convert``.

Spec: ros-perception/vision_opencv ``cv_bridge/test/conversions.py``, ``enumerants.py`` and
``python_bindings.py`` (same inputs and expected outputs). Mapping: ``cv2_to_imgmsg`` ->
``encode_image`` ("passthrough" by default upstream), ``imgmsg_to_cv2`` -> ``image_to_array``
(``decode_image`` for passthrough), ``cv2_to_compressed_imgmsg`` / ``compressed_imgmsg_to_cv2``
-> ``encode_compressed`` / ``decode_compressed``, ``cvtColorForDisplay`` -> ``image_to_rgb8``.
``CvBridgeError`` -> ``DecodeError``. Loops over image sizes are thinned (upstream: every w, h
in 100..700 step 100) where each size exercises the same code.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from spatial_ros.errors import DecodeError
from spatial_ros.io.image import (
    decode_compressed,
    decode_image,
    encode_compressed,
    encode_image,
    encoding_info,
    image_to_rgb8,
)
from spatial_ros.io.image_convert import convert_encoding, image_to_array
from spatial_ros.io.msgs import MessageFactory

F = MessageFactory.rosbags()


def _enc(array, encoding="passthrough"):
    return encode_image(array, encoding, 0, "cam", F)


def test_mono16_cv2():
    rng = np.random.default_rng(0)
    im = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
    with pytest.raises(DecodeError, match="not a colour format"):
        image_to_array(_enc(im), "mono16")  # 8UC3 has no colour meaning
    out = image_to_array(_enc(im, "rgb8"), "mono16")
    grey = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.uint16)
    assert out.dtype == np.uint16 and out.shape == (480, 640)
    np.testing.assert_array_equal(out, grey * 257)  # 8 -> 16 bit scales [0,255] to [0,65535]


@pytest.mark.parametrize("w", range(100, 800, 100))
@pytest.mark.parametrize("h", range(100, 800, 300))
def test_encode_decode_cv2(w, h):
    rng = np.random.default_rng(w * h)
    for channels in (None, 1, 2, 3, 4, 5):
        size = (h, w) if channels is None else (h, w, channels)
        original = rng.integers(0, 255, size=size, dtype=np.uint8)
        msg = _enc(original)
        new = decode_image(msg)
        assert original.dtype == new.dtype
        if channels == 1:  # a grey image comes back 2-D
            assert original.shape[:2] == new.shape
        else:
            assert original.shape == new.shape
        assert original.nbytes == new.nbytes
        np.testing.assert_array_equal(new.reshape(original.shape), original)


def test_encode_decode_cv2_every_depth():
    """Upstream's loop names the seven OpenCV depths (its arrays stay uint8); every depth."""
    rng = np.random.default_rng(1)
    for dt, name in ((np.uint8, "8U"), (np.int8, "8S"), (np.uint16, "16U"), (np.int16, "16S"),
                     (np.int32, "32S"), (np.float32, "32F"), (np.float64, "64F")):
        for channels in (None, 1, 3, 4):
            size = (30, 40) if channels is None else (30, 40, channels)
            original = (rng.integers(0, 120, size=size)).astype(dt)
            msg = _enc(original)
            assert msg.encoding == f"{name}C{channels or 1}"
            np.testing.assert_array_equal(decode_image(msg).reshape(size), original)


COMPRESSED_FORMATS = ["jpg", "jpeg", "jpe", "png", "bmp", "dib", "sr", "ras", "tif", "tiff"]
LOSSLESS = {"png", "bmp", "dib", "sr", "ras", "tif", "tiff"}


@pytest.mark.parametrize("fmt", COMPRESSED_FORMATS)
def test_encode_decode_cv2_compressed(fmt):
    rng = np.random.default_rng(2)
    for w in (100, 400, 700):
        for h in (100, 400, 700):
            for channels in (None, 1, 3):
                size = (h, w) if channels is None else (h, w, channels)
                original = rng.integers(0, 255, size=size, dtype=np.uint8)
                new = decode_compressed(encode_compressed(original, fmt, 0, "cam", F))
                assert original.dtype == new.dtype
                if channels == 1:
                    assert original.shape[:2] == new.shape
                else:
                    assert original.shape == new.shape
                assert original.nbytes == new.nbytes
                if fmt in LOSSLESS:
                    np.testing.assert_array_equal(new.reshape(size), original)


def test_endianness():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, size=(30, 40))
    msg = _enc(img.astype(np.dtype("int32").newbyteorder(">")))
    assert msg.is_bigendian and msg.encoding == "32SC1"
    assert (decode_image(msg) == img).all()
    assert (image_to_array(msg) == img).all()


def test_enumerants_cv2():
    msg = F.new("sensor_msgs/msg/Image", width=640, height=480, encoding="rgba8", step=640 * 4,
                data=np.frombuffer(b"1234" * (640 * 480), np.uint8))
    cvim = image_to_array(msg, "rgb8")
    assert cvim.shape == (480, 640, 3) and (cvim == [ord("1"), ord("2"), ord("3")]).all()
    assert cvim.flags.owndata or cvim.base is not None and cvim.flags.writeable
    with pytest.raises(DecodeError, match="does not fit encoding 'rgba8'"):
        _enc(cvim, "rgba8")  # a 3-channel image cannot be sent as rgba8 ...
    _enc(cvim, "rgb8")  # ... but as rgb8 and bgr8
    _enc(cvim, "bgr8")


def test_numpy_types():
    with pytest.raises(TypeError, match="numpy array"):
        encode_image(1, "rgba8", 0, "cam", F)
    with pytest.raises(TypeError, match="numpy array"):
        encode_compressed([[1, 2]], "png", 0, "cam", F)


def test_cvt_color_for_display():
    label = np.zeros((480, 640), dtype=np.int32)
    value = 0
    for row in range(3):
        for col in range(4):
            label[row * 160:(row + 1) * 160, col * 160:(col + 1) * 160] = value
            value += 1
    viz = image_to_rgb8(_enc(label, "32SC1"))
    assert viz.dtype == np.uint8 and viz.min() == 0 and viz.max() == 255
    mono = (np.random.default_rng(4).random((100, 100)) * 255).astype(np.uint8)
    assert image_to_array(_enc(mono, "mono8"), desired_encoding="mono8").shape == (100, 100)


# ---- the cases ----------------------------------------------------------------------

@pytest.mark.parametrize("name, dtype, channels", [
    ("8U", np.uint8, 1), ("8S", np.int8, 1), ("16U", np.uint16, 1), ("16S", np.int16, 1),
    ("32S", np.int32, 1), ("32F", np.float32, 1), ("64F", np.float64, 1), ("8UC3", np.uint8, 3),
    ("16UC1", np.uint16, 1), ("32FC4", np.float32, 4)])
def test_bare_and_generic_depth_names(name, dtype, channels):
    assert encoding_info(name) == (np.dtype(dtype), channels)
    arr = np.arange(12 * channels).astype(dtype).reshape((3, 4) if channels == 1 else (3, 4,
                                                                                      channels))
    np.testing.assert_array_equal(decode_image(_enc(arr, name)), arr)


def test_single_channel_3d_array_compresses():
    grey = np.random.default_rng(5).integers(0, 255, (20, 30, 1), dtype=np.uint8)
    for fmt in ("jpg", "png"):
        msg = encode_compressed(grey, fmt, 0, "cam", F)
        assert msg.format.startswith("mono8")
        out = decode_compressed(msg)
        assert out.shape == (20, 30)
        if fmt == "png":
            np.testing.assert_array_equal(out, grey[:, :, 0])


@pytest.mark.parametrize("src, dst, expected", [
    ("rgb8", "bgr8", lambda a: a[..., ::-1]),
    ("bgr8", "rgb8", lambda a: a[..., ::-1]),
    ("rgb8", "mono8", lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)),
    ("mono8", "rgb8", lambda a: np.repeat(a[..., :1], 3, axis=2)),
    ("mono8", "mono16", lambda a: a.astype(np.uint16) * 257),
    ("rgb8", "rgb16", lambda a: a.astype(np.uint16) * 257),
    ("8UC3", "16UC3", lambda a: a.astype(np.uint16) * 257),  # 8 -> 16 bit scales, any kind
    ("8UC3", "32FC3", lambda a: a.astype(np.float32)),  # other depths: values kept
    ("rgb8", "8UC3", lambda a: a),  # colour -> generic with the same channels
])
def test_desired_encoding_conversions(src, dst, expected):
    rng = np.random.default_rng(6)
    ch = encoding_info(src)[1]
    arr = rng.integers(0, 255, (6, 7, ch) if ch > 1 else (6, 7), dtype=np.uint8)
    out = image_to_array(_enc(arr, src), dst)
    ref = expected(arr if arr.ndim == 3 or dst != "rgb8" else arr[..., None])
    assert out.dtype == encoding_info(dst)[0]
    np.testing.assert_array_equal(out, ref)


def test_desired_encoding_16_to_8_bit_rounds_like_opencv():
    mono16 = np.array([[0, 128, 129, 257, 385, 386, 65535]], np.uint16)
    out = image_to_array(_enc(mono16, "mono16"), "mono8")
    np.testing.assert_array_equal(out, [[0, 0, 1, 1, 1, 2, 255]])  # round(x * 255 / 65535)


def test_refused_conversions():
    rgb = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(DecodeError, match="same number of channels"):
        convert_encoding(rgb, "rgb8", "8UC1")
    with pytest.raises(DecodeError, match="same number of channels"):
        convert_encoding(np.zeros((2, 2), np.float32), "32FC1", "32FC3")
    with pytest.raises(DecodeError, match="only from them"):
        convert_encoding(rgb, "rgb8", "bayer_rggb8")
    bayer = np.zeros((4, 4), np.uint8)
    assert convert_encoding(bayer, "bayer_rggb8", "bgr8").shape == (4, 4, 3)
    with pytest.raises(DecodeError, match="unsupported image encoding"):
        image_to_array(_enc(rgb, "rgb8"), "rgb9")
