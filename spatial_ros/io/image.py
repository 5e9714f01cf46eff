"""sensor_msgs/Image and CompressedImage <-> numpy, for rclpy and rosbags messages alike.

Replaces ROS 2 ``cv_bridge`` (not installable off-robot, and unusable in bag replay) with the same
semantics: every encoding of ``sensor_msgs/image_encodings.hpp`` (rgb/bgr/rgba/bgra 8 and 16 bit,
mono8/mono16, ``{8U,8S,16U,16S,32S,32F,64F}C{n}``, ``bayer_*8/16``, ``yuv422``/``yuv422_yuy2``),
the ``is_bigendian`` flag, and row ``step`` padding. Colour conversion and demosaicing use OpenCV.

Arrays are indexed ``[v, u]`` (row, column): ``(H, W)`` for one channel, ``(H, W, C)`` otherwise.
Depth follows REP-118 and the encoding, never a magic divisor: 16UC1/mono16 = millimetres,
32FC1/64FC1 = metres; 0, NaN and +-Inf mean "no return".

cv_bridge's own tests are re-expressed in ``test/test_io_image_upstream.py``; conversion to a
chosen encoding (``desired_encoding``) is ``spatial_ros.io.image_convert.image_to_array``.
Deliberate differences: errors are ``DecodeError`` (a ``ValueError``) where cv_bridge raises
``CvBridgeError`` (a wrong Python type is ``TypeError`` in both); encoding names are matched
case-insensitively; float64 arrays are accepted for float32 encodings (converted);
``decode_compressed`` / ``image_to_rgb8`` give RGB where cv_bridge's passthrough gives OpenCV's
BGR order (the RGB pipeline needs RGB; ``image_to_array`` gives any order on request).
"""

from __future__ import annotations

import re
from typing import Any

import cv2
import numpy as np

from spatial_ros.errors import DecodeError
from spatial_ros.io.msgs import MessageFactory, buffer_u8

# encoding -> (numpy dtype, channels) for the named encodings.
_NAMED = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "rgb16": (np.uint16, 3),
    "bgr16": (np.uint16, 3),
    "rgba16": (np.uint16, 4),
    "bgra16": (np.uint16, 4),
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "bayer_rggb8": (np.uint8, 1),
    "bayer_bggr8": (np.uint8, 1),
    "bayer_gbrg8": (np.uint8, 1),
    "bayer_grbg8": (np.uint8, 1),
    "bayer_rggb16": (np.uint16, 1),
    "bayer_bggr16": (np.uint16, 1),
    "bayer_gbrg16": (np.uint16, 1),
    "bayer_grbg16": (np.uint16, 1),
    "yuv422": (np.uint8, 2),  # UYVY
    "uyvy": (np.uint8, 2),
    "yuv422_yuy2": (np.uint8, 2),  # YUYV
    "yuyv": (np.uint8, 2),
}
_GENERIC = re.compile(r"^(8U|8S|16U|16S|32S|32F|64F)(?:C(\d+))?$")  # bare depth = 1 channel
_GENERIC_DTYPES = {
    "8U": np.uint8,
    "8S": np.int8,
    "16U": np.uint16,
    "16S": np.int16,
    "32S": np.int32,
    "32F": np.float32,
    "64F": np.float64,
}
# ROS bayer pattern (first row starts with ...) -> (OpenCV 5 name, OpenCV <= 4 name). OpenCV 4
# named patterns after the 2nd row/column, hence the apparent swap.
_BAYER_CODES = {
    "rggb": ("COLOR_BayerRGGB2RGB", "COLOR_BayerBG2RGB"),
    "bggr": ("COLOR_BayerBGGR2RGB", "COLOR_BayerRG2RGB"),
    "gbrg": ("COLOR_BayerGBRG2RGB", "COLOR_BayerGR2RGB"),
    "grbg": ("COLOR_BayerGRBG2RGB", "COLOR_BayerGB2RGB"),
}
_YUV_CODES = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
SUPPORTED_ENCODINGS = tuple(_NAMED) + ("{8U,8S,16U,16S,32S,32F,64F}[C{1..}]",)


def encoding_info(encoding: str) -> tuple[np.dtype, int]:
    """(element dtype, channels) of a sensor_msgs encoding.

    Raises:
        DecodeError: unknown encoding (the message lists the supported ones).
    """
    enc = str(encoding).strip()
    key = enc.lower()
    if key in _NAMED:
        dt, ch = _NAMED[key]
        return np.dtype(dt), ch
    m = _GENERIC.match(enc.upper())
    if m and int(m.group(2) or 1) >= 1:
        return np.dtype(_GENERIC_DTYPES[m.group(1)]), int(m.group(2) or 1)
    raise DecodeError(
        f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
    )


def _is_compressed(msg: Any) -> bool:
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


# ----------------------------------------------------------------------------------------------
# Raw images
# ----------------------------------------------------------------------------------------------


def decode_image(msg: Any, copy: bool = False) -> np.ndarray:
    """Pixel array of a ``sensor_msgs/Image`` in its native layout and dtype.

    Row padding (``step`` larger than a row) is removed and big-endian data is converted to the
    native byte order. Bayer images come back as the raw ``(H, W)`` mosaic, YUV 4:2:2 as
    ``(H, W, 2)``; use ``image_to_rgb8`` for colour.

    Args:
        msg: rclpy or rosbags ``sensor_msgs/Image``.
        copy: return an array that owns its memory. By default the result may be a (possibly
            read-only) view of ``msg.data``.

    Returns:
        ``(H, W)`` for one channel, else ``(H, W, C)``; dtype from the encoding.

    Raises:
        DecodeError: unknown encoding, ``step`` shorter than a row, or too little data.
    """
    dtype, ch = encoding_info(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * ch * dtype.itemsize
    if step < row_bytes:
        raise DecodeError(
            f"image step {step} B < width {w} x {ch} channel(s) x {dtype.itemsize} B = "
            f"{row_bytes} B for encoding {msg.encoding!r}; the message is malformed"
        )
    buf = buffer_u8(msg.data)
    if buf.size < h * step:
        raise DecodeError(
            f"image data has {buf.size} B, expected height {h} x step {step} = {h * step} B"
        )
    big = bool(msg.is_bigendian) and dtype.itemsize > 1
    wire = dtype.newbyteorder(">" if big else "<")
    if step == row_bytes:
        arr = buf[: h * step].view(wire)
    else:  # padded rows: drop the padding (one vectorised copy)
        arr = np.ascontiguousarray(buf[: h * step].reshape(h, step)[:, :row_bytes]).view(wire)
    if wire != dtype.newbyteorder("="):
        arr = arr.astype(dtype)  # to native byte order (copies)
    elif copy and not arr.flags.owndata:
        arr = arr.copy()
    shape = (h, w) if ch == 1 else (h, w, ch)
    return arr.reshape(shape)


def _to_u8(a: np.ndarray) -> np.ndarray:
    """Scale an integer/float colour array to uint8 (16 bit: /257 maps 65535 -> 255 exactly)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if a.dtype == np.int8:
        return (a.astype(np.int16) + 128).astype(np.uint8)
    # Other integer / float data has no colour scale: normalise the finite range for display.
    f = a.astype(np.float64)
    finite = np.isfinite(f)
    if not finite.any():
        return np.zeros(a.shape, np.uint8)
    lo, hi = f[finite].min(), f[finite].max()
    scaled = np.where(finite, (f - lo) / (hi - lo) * 255.0 if hi > lo else 0.0, 0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


_TO_RGB = {
    (3, False): None,
    (4, False): cv2.COLOR_RGBA2RGB,
    (3, True): cv2.COLOR_BGR2RGB,
    (4, True): cv2.COLOR_BGRA2RGB,
}


def _colour_to_rgb(arr: np.ndarray, bgr: bool) -> np.ndarray:
    """(H, W, 3|4) colour of any depth -> (H, W, 3) uint8 RGB (OpenCV's SIMD channel swap)."""
    u8 = np.ascontiguousarray(_to_u8(arr))
    code = _TO_RGB[(u8.shape[2], bgr)]
    if code is None:  # rgb8: never hand out a (possibly read-only) view of the message buffer
        return u8.copy() if u8.base is not None or not u8.flags.writeable else u8
    return cv2.cvtColor(u8, code)


def _bayer_code(pattern: str) -> int:
    new, old = _BAYER_CODES[pattern]
    return getattr(cv2, new) if hasattr(cv2, new) else getattr(cv2, old)


def image_to_rgb8(msg: Any) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of any colour, mono, bayer or YUV Image, or a CompressedImage.

    The result is always a new, writable array (never a view of ``msg.data``).
    Semantics follow cv_bridge: 16-bit colour/mono is scaled by 255/65535; generic
    ``8UC3``/``8UC4`` are taken as BGR/BGRA; 1-channel data is replicated to grey. Depth-like
    data (32FC1, 16SC1, ...) has no colour scale and is min-max normalised for display.

    Raises:
        DecodeError: unknown encoding, malformed message, or an undecodable compressed payload.
    """
    if _is_compressed(msg):
        img = decode_compressed(msg)
        if img.ndim == 2:
            img = np.repeat(_to_u8(img)[:, :, None], 3, axis=2)
        return img
    enc = str(msg.encoding).strip().lower()
    arr = decode_image(msg)
    if enc.startswith("bayer_"):
        rgb = cv2.cvtColor(arr, _bayer_code(enc[6:10]))
        return _to_u8(rgb)
    if enc in _YUV_CODES:
        return cv2.cvtColor(np.ascontiguousarray(arr), _YUV_CODES[enc])
    if enc.startswith("rgb"):
        return _colour_to_rgb(arr, bgr=False)
    if enc.startswith("bgr"):
        return _colour_to_rgb(arr, bgr=True)
    if arr.ndim == 2:
        return np.repeat(_to_u8(arr)[:, :, None], 3, axis=2)
    ch = arr.shape[2]
    if ch in (3, 4):  # generic nC3/nC4: BGR(A), as cv_bridge assumes
        return _colour_to_rgb(arr, bgr=True)
    if ch == 2:  # e.g. 8UC2 without a colour meaning: show the first channel
        return np.repeat(_to_u8(arr[..., 0])[:, :, None], 3, axis=2)
    raise DecodeError(f"encoding {msg.encoding!r} with {ch} channels has no RGB meaning")


def depth_to_metres(msg: Any) -> np.ndarray:
    """``(H, W)`` float32 depth in metres from a depth Image (or a ``compressedDepth`` image).

    16UC1/mono16 are millimetres, 32FC1/64FC1 metres (REP-118). Pixels without a return
    (0, NaN, +-Inf) become NaN.

    Raises:
        DecodeError: not a single-channel depth encoding, or a malformed message.
    """
    if _is_compressed(msg):
        raw = decode_compressed(msg)
    else:
        enc = str(msg.encoding).strip()
        if enc.upper() not in ("16UC1", "32FC1", "64FC1") and enc.lower() != "mono16":
            raise DecodeError(
                f"image encoding {msg.encoding!r} is not depth; expected 16UC1/mono16 (mm) or "
                "32FC1/64FC1 (m)"
            )
        raw = decode_image(msg)
    if raw.dtype == np.uint16:
        d = raw.astype(np.float32) * np.float32(0.001)
        d[raw == 0] = np.nan
        return d
    if raw.dtype.kind != "f" or raw.ndim != 2:
        raise DecodeError(f"compressed depth decoded to {raw.dtype} {raw.shape}; not a depth map")
    d = raw.astype(np.float32, copy=True)
    d[~np.isfinite(d) | (d == 0)] = np.nan
    return d


_PASSTHROUGH_DEPTH = {np.dtype(t): name for name, t in _GENERIC_DTYPES.items()}


def passthrough_encoding(array: np.ndarray) -> str:
    """The generic encoding of an array (cv_bridge's "passthrough"): e.g. uint8 (H, W, 3) ->
    "8UC3", float32 (H, W) -> "32FC1".

    Raises:
        DecodeError: a dtype sensor_msgs cannot carry (e.g. int64, complex, bool).
    """
    a = np.asarray(array)
    depth = _PASSTHROUGH_DEPTH.get(a.dtype.newbyteorder("="))
    if depth is None or a.ndim not in (2, 3):
        raise DecodeError(f"no sensor_msgs encoding for a {a.dtype} array of shape {a.shape}; "
                          f"use (H, W[, C]) of {sorted(str(k) for k in _PASSTHROUGH_DEPTH)}")
    return f"{depth}C{a.shape[2] if a.ndim == 3 else 1}"


def encode_image(
    array: np.ndarray,
    encoding: str,
    stamp_ns: int,
    frame_id: str,
    factory: MessageFactory,
    big_endian: bool | None = None,
) -> Any:
    """Build a ``sensor_msgs/Image`` from an array (the inverse of ``decode_image``; cv_bridge's
    ``cv2_to_imgmsg``).

    Args:
        array: numpy ``(H, W)`` or ``(H, W, C)`` with the channels and dtype the encoding needs
            (``(H, W, 1)`` is taken as ``(H, W)``; float64 input is accepted for float32
            encodings and converted), in either byte order.
        encoding: a sensor_msgs encoding, e.g. "rgb8", "16UC1", "32FC1", or "passthrough"
            (the array's generic encoding, e.g. "8UC3").
        stamp_ns: header stamp, integer nanoseconds.
        frame_id: header frame (the camera optical frame for camera images).
        factory: builds rclpy or rosbags messages.
        big_endian: write multi-byte elements big-endian and set ``is_bigendian``; None (the
            default) keeps the array's byte order, as cv_bridge does.

    Raises:
        TypeError: ``array`` is not a numpy array (cv_bridge raises TypeError too).
        DecodeError: the array's shape or dtype does not fit the encoding.
    """
    if not isinstance(array, (np.ndarray, np.generic)):
        raise TypeError(f"encode_image needs a numpy array, got {type(array).__name__}")
    a = np.asarray(array)
    if encoding == "passthrough":
        encoding = passthrough_encoding(a)
    dtype, ch = encoding_info(encoding)
    if big_endian is None:
        big_endian = a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and
                                                  not np.little_endian)
    if a.ndim == 3 and a.shape[2] == 1 and ch == 1:
        a = a[:, :, 0]
    if (ch == 1 and a.ndim != 2) or (ch > 1 and (a.ndim != 3 or a.shape[2] != ch)):
        raise DecodeError(
            f"array shape {a.shape} does not fit encoding {encoding!r} ({ch} channel(s)); "
            "pass (H, W) for 1 channel or (H, W, C)"
        )
    native = a.dtype.newbyteorder("=")
    if native != dtype:
        if not (dtype.kind == "f" and a.dtype.kind == "f"):
            raise DecodeError(f"array dtype {a.dtype} does not fit encoding {encoding!r} "
                              f"(needs {dtype}); convert it first")
    wire = dtype.newbyteorder(">" if big_endian else "<")
    data = np.ascontiguousarray(a, dtype=wire).tobytes()
    h, w = a.shape[:2]
    return factory.new(
        "sensor_msgs/msg/Image",
        header=factory.header(stamp_ns, frame_id),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=int(bool(big_endian) and dtype.itemsize > 1),
        step=w * ch * dtype.itemsize,
        data=data,
    )


# ----------------------------------------------------------------------------------------------
# Compressed images (image_transport "compressed" and "compressedDepth")
# ----------------------------------------------------------------------------------------------

# format name (as cv_bridge accepts it) -> (OpenCV file extension, canonical name)
_EXT = {
    "jpeg": (".jpg", "jpeg"), "jpg": (".jpg", "jpeg"), "jpe": (".jpg", "jpeg"),
    "png": (".png", "png"), "bmp": (".bmp", "bmp"), "dib": (".bmp", "bmp"),
    "sr": (".sr", "sr"), "ras": (".ras", "ras"), "tif": (".tif", "tiff"),
    "tiff": (".tif", "tiff"), "webp": (".webp", "webp"),
}
_LOSSLESS_16 = (".png", ".tif")  # formats that store 16-bit grey
_SUN_RASTER_MAGIC = bytes([0x59, 0xA6, 0x6A, 0x95])


def encode_compressed(
    rgb: np.ndarray,
    fmt: str,
    stamp_ns: int,
    frame_id: str,
    factory: MessageFactory,
    quality: int = 90,
) -> Any:
    """Build a ``sensor_msgs/CompressedImage`` (image_transport "compressed" convention for
    jpeg/png; cv_bridge's ``cv2_to_compressed_imgmsg`` formats otherwise).

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB, or ``(H, W)`` / ``(H, W, 1)`` grey (uint8; uint16 for
            png/tiff).
        fmt: "jpeg" / "jpg" / "jpe", "png", "bmp" / "dib", "sr" / "ras", "tif" / "tiff", "webp".
        stamp_ns, frame_id: header values.
        factory: builds rclpy or rosbags messages.
        quality: JPEG quality 1..100 (ignored by the other formats).

    Raises:
        TypeError: ``rgb`` is not a numpy array.
        DecodeError: unknown format or an array that is not RGB/grey of a storable depth.
    """
    if not isinstance(rgb, (np.ndarray, np.generic)):
        raise TypeError(f"encode_compressed needs a numpy array, got {type(rgb).__name__}")
    key = str(fmt).lower().lstrip(".")
    if key not in _EXT:
        raise DecodeError(f"compressed format {fmt!r} unsupported; use one of {sorted(_EXT)}")
    ext, name = _EXT[key]
    a = np.asarray(rgb)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    grey16 = a.dtype == np.uint16 and a.ndim == 2 and ext in _LOSSLESS_16
    if not grey16 and (a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and
                                                                     a.shape[2] == 3))):
        raise DecodeError(f"encode_compressed needs uint8 (H, W, 3) RGB or (H, W[, 1]) grey "
                          f"(uint16 grey for png/tiff), got {a.dtype} {rgb.shape}")
    src = cv2.cvtColor(a, cv2.COLOR_RGB2BGR) if a.ndim == 3 else np.ascontiguousarray(a)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, src, params)
    if not ok:
        raise DecodeError(f"OpenCV could not encode a {a.shape} image as {fmt}")
    grey = "mono16" if grey16 else "mono8"
    fmt_str = (f"rgb8; {name} compressed bgr8" if a.ndim == 3
               else f"{grey}; {name} compressed {grey}")
    return factory.new(
        "sensor_msgs/msg/CompressedImage",
        header=factory.header(stamp_ns, frame_id),
        format=fmt_str,
        data=buf.reshape(-1),
    )


def decode_compressed(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage``.

    Returns:
        Colour payloads: ``(H, W, 3)`` uint8 RGB. Grey payloads: ``(H, W)`` as stored (uint8 or
        uint16). ``compressedDepth``: ``(H, W)`` uint16 millimetres (16UC1) or float32 metres
        (32FC1, NaN where no return).

    Raises:
        DecodeError: the payload is not an image OpenCV can decode (JPEG, PNG, BMP, Sun
            raster, TIFF, WebP).
    """
    fmt = str(msg.format)
    buf = buffer_u8(msg.data)
    if "compresseddepth" in fmt.lower():
        return _decode_compressed_depth(fmt, buf)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is not None and bytes(buf[:4]) == _SUN_RASTER_MAGIC and int.from_bytes(
            bytes(buf[12:16]), "big") == 8:
        # OpenCV 5.0 misreads 8-bit grey Sun raster files unless asked for colour (checked:
        # IMREAD_UNCHANGED/GRAYSCALE return wrong pixels); decode as colour, keep one channel.
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, 0].copy()
    if img is None:
        raise DecodeError(f"could not decode CompressedImage (format {fmt!r}, {buf.size} B); "
                          "expected a JPEG, PNG, BMP, Sun raster, TIFF or WebP payload")
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
        img = _to_u8(cv2.cvtColor(img, code))
    return img


def _decode_compressed_depth(fmt: str, buf: np.ndarray) -> np.ndarray:
    # compressed_depth_image_transport: a 12-byte ConfigHeader (int32 format, float32
    # depthQuantA, float32 depthQuantB) then a PNG (or RVL, unsupported here).
    if buf.size <= 12:
        raise DecodeError(f"compressedDepth payload too short ({buf.size} B)")
    quant = buf[4:12].view("<f4")
    img = cv2.imdecode(buf[12:], cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DecodeError(f"could not decode compressedDepth payload (format {fmt!r}); only "
                          "PNG is supported")
    if fmt.lower().startswith("32fc1"):
        inv = img.astype(np.float32)
        with np.errstate(divide="ignore"):
            depth = quant[0] / (inv - quant[1])
        depth[img == 0] = np.nan
        return depth.astype(np.float32)
    return img
