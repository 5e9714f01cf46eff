"""Conversion between sensor_msgs image encodings (cv_bridge's ``desired_encoding``).

Stand-in for ``cv_bridge.CvBridge.imgmsg_to_cv2(msg, desired_encoding)`` and ``cvtColor2``
(cv_bridge cannot be installed off-robot). Rules, as cv_bridge's ``getConversionCode``:

* same encoding (or "passthrough"): the pixels as they are;
* colour encodings (mono, rgb, bgr, rgba, bgra at 8/16 bit, bayer_*, yuv422 / yuv422_yuy2)
  convert among each other with OpenCV (``cv2.cvtColor``; bayer and YUV only as a source);
* a generic encoding (``8UC3``, ``32FC1``, ...) carries no colour meaning: it converts only to
  another generic encoding with the same number of channels, and a colour encoding converts to a
  generic one only with the same number of channels (a bit-depth change);
* a bit-depth change between 8 and 16 bit scales [0, 255] <-> [0, 65535] (x 257 / 257,
  rounded); others convert values as they are (rounded and saturated to integer types).

Arrays are ``[v, u]``: ``(H, W)`` for one channel, ``(H, W, C)`` otherwise.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from spatial_ros.errors import DecodeError
from spatial_ros.io.image import decode_image, encoding_info

PASSTHROUGH = "passthrough"

# colour "format" of an encoding (cv_bridge's Encoding enum) and the format's channel order.
_FORMATS = {"mono": "GRAY", "rgb": "RGB", "bgr": "BGR", "rgba": "RGBA", "bgra": "BGRA"}
_SOURCE_ONLY = {
    "bayer_rggb": "RGGB", "bayer_bggr": "BGGR", "bayer_gbrg": "GBRG", "bayer_grbg": "GRBG",
    "yuv422": "UYVY", "uyvy": "UYVY", "yuv422_yuy2": "YUY2", "yuyv": "YUY2",
}
_PLAIN = ("GRAY", "RGB", "BGR", "RGBA", "BGRA")
# ROS bayer pattern (first row starts with ...) -> OpenCV 5 / OpenCV <= 4 code suffix.
_BAYER = {"RGGB": ("RGGB", "BG"), "BGGR": ("BGGR", "RG"), "GBRG": ("GBRG", "GR"),
          "GRBG": ("GRBG", "GB")}


def colour_format(encoding: str) -> str | None:
    """cv_bridge's colour format of an encoding ("GRAY", "RGB", ..., "RGGB" for bayer, "UYVY"
    / "YUY2" for YUV 4:2:2), or None for a generic encoding (``8UC3``, ``32FC1``, ...)."""
    key = str(encoding).strip().lower()
    for prefix, fmt in _SOURCE_ONLY.items():
        if key == prefix or (prefix.startswith("bayer") and key in (prefix + "8", prefix + "16")):
            return fmt
    for prefix in ("rgba", "bgra", "rgb", "bgr", "mono"):
        if key in (prefix + "8", prefix + "16"):
            return _FORMATS[prefix]
    return None


def _cv_code(src: str, dst: str) -> int | None:
    """OpenCV conversion code from colour format ``src`` to ``dst`` (None: same format)."""
    if src == dst:
        return None
    if src in _BAYER:
        if dst not in ("GRAY", "RGB", "BGR"):
            raise DecodeError(f"bayer images convert to mono, rgb or bgr, not {dst}")
        new, old = _BAYER[src]
        name5, name4 = f"COLOR_Bayer{new}2{dst}", f"COLOR_Bayer{old}2{dst}"
        return getattr(cv2, name5) if hasattr(cv2, name5) else getattr(cv2, name4)
    if src in ("UYVY", "YUY2"):
        if dst not in _PLAIN:
            raise DecodeError(f"YUV 4:2:2 images convert to mono/rgb/bgr/rgba/bgra, not {dst}")
        return getattr(cv2, f"COLOR_YUV2{dst}_{src}")
    if dst not in _PLAIN:
        raise DecodeError(f"conversion to {dst} images is not supported (only from them)")
    return getattr(cv2, f"COLOR_{src}2{dst}")


def _depth_convert(arr: np.ndarray, src_dtype: np.dtype, dst_dtype: np.dtype) -> np.ndarray:
    if arr.dtype == dst_dtype:
        return arr
    bits = (src_dtype.itemsize * 8, dst_dtype.itemsize * 8)
    a = arr.astype(np.float64)
    if src_dtype.kind in "ui" and dst_dtype.kind in "ui" and bits == (8, 16):
        a = a * (65535.0 / 255.0)
    elif src_dtype.kind in "ui" and dst_dtype.kind in "ui" and bits == (16, 8):
        a = a * (255.0 / 65535.0)
    if dst_dtype.kind in "ui":
        info = np.iinfo(dst_dtype)
        a = np.clip(np.rint(a), info.min, info.max)
    return a.astype(dst_dtype)


def convert_encoding(array: np.ndarray, src_encoding: str, dst_encoding: str) -> np.ndarray:
    """Pixels of ``array`` (in ``src_encoding``) expressed in ``dst_encoding`` (cv_bridge's
    ``cvtColor2``; see the module docstring for the rules).

    Raises:
        DecodeError: unknown encoding, or a conversion cv_bridge refuses (e.g. ``8UC3`` to
            ``mono16``: generic data has no colour meaning).
    """
    if dst_encoding in ("", PASSTHROUGH) or dst_encoding == src_encoding:
        return array
    src_dtype, src_ch = encoding_info(src_encoding)
    dst_dtype, dst_ch = encoding_info(dst_encoding)
    src_fmt, dst_fmt = colour_format(src_encoding), colour_format(dst_encoding)
    if src_fmt is None and dst_fmt is not None:
        raise DecodeError(f"[{src_encoding}] is not a colour format but [{dst_encoding}] is: "
                          "the conversion does not make sense (say which channels are which by "
                          "publishing e.g. bgr8 instead of 8UC3)")
    if src_fmt is None or dst_fmt is None:
        if src_ch != dst_ch:
            raise DecodeError(f"[{src_encoding}] and [{dst_encoding}] do not have the same "
                              "number of channels")
        return _depth_convert(np.asarray(array), src_dtype, dst_dtype)
    code = _cv_code(src_fmt, dst_fmt)
    out = np.ascontiguousarray(array)
    if code is not None:
        out = cv2.cvtColor(out, code)
    return _depth_convert(out, src_dtype, dst_dtype)


def image_to_array(msg: Any, desired_encoding: str = PASSTHROUGH) -> np.ndarray:
    """Pixels of a ``sensor_msgs/Image`` in ``desired_encoding`` (cv_bridge's
    ``imgmsg_to_cv2``): "passthrough" gives the native layout (as ``decode_image``), e.g.
    "mono16", "bgr8", "rgb8", "mono8" convert. The result owns its memory.

    Raises:
        DecodeError: unknown encoding, malformed message, or a refused conversion.
    """
    arr = decode_image(msg, copy=True)
    return convert_encoding(arr, str(msg.encoding).strip(), desired_encoding)
