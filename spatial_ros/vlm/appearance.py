"""Appearance attributes of candidate boxes: a basic colour name from the image, a size word
from the box.

A LiDAR/depth specialist knows where an object is but not what it looks like. When
``EngineConfig.candidate_colours`` is on, each listed candidate box gets the basic colour term
of the pixels at the centre of its projection ("[512, 300, 411, ...] red"), so a small model
can tie a caption to a candidate without having to localise the caption in the image first.
Training data uses the same function, so the words match between training and inference.

The colour terms are Berlin & Kay's basic colours (minus none): red, orange, yellow, green, cyan,
blue, purple, pink, brown, white, gray, black — decided in HSV so that shading (a darker or
lighter version of the same surface) keeps its name.

With ``EngineConfig.candidate_sizes`` each candidate also gets a coarse *size word* from its
box's extents (``size_word``: flat, tall, wide, small, slim, large), so that objects of one colour
are told apart by a word a caption's noun predicts ("the red bottle" -> tall, "the red cube" ->
small) rather than by reading box dimensions digit by digit. The thresholds are in metres at
tabletop scale (household objects); street-scale objects are all "tall" or "large".
"""

from __future__ import annotations

import numpy as np

from spatial_ros.types import Box3D

COLOUR_TERMS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "brown",
                "white", "gray", "black")

# Hue bins in degrees (OpenCV-free so it works on any RGB array): upper bound -> name.
_HUES = ((15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (200, "cyan"),
         (255, "blue"), (290, "purple"), (345, "pink"), (361, "red"))


def colour_name(rgb) -> str:
    """The basic colour term of one sRGB colour (0..255)."""
    r, g, b = (float(c) / 255.0 for c in rgb)
    mx, mn = max(r, g, b), min(r, g, b)
    v, s = mx, (mx - mn) / mx if mx > 0 else 0.0
    if v < 0.22:
        return "black"
    if s < 0.22:
        return "white" if v > 0.62 else "gray"
    d = mx - mn
    if mx == r:
        h = (60 * ((g - b) / d)) % 360
    elif mx == g:
        h = 60 * ((b - r) / d) + 120
    else:
        h = 60 * ((r - g) / d) + 240
    name = next(n for hi, n in _HUES if h < hi)
    if name == "orange" and v < 0.52:
        return "brown"
    if name == "red" and s < 0.6 and v > 0.75:
        return "pink"
    return name


def region_colour(image: np.ndarray, box_2d, fraction: float = 0.4) -> str | None:
    """Colour term of the median pixel of the central ``fraction`` of a 2D box (x1, y1, x2, y2
    px) in an (H, W, 3) uint8 RGB image; None when the region is empty."""
    if box_2d is None:
        return None
    H, W = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box_2d)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw, hh = max(1.0, (x2 - x1) * fraction / 2), max(1.0, (y2 - y1) * fraction / 2)
    u0, u1 = int(np.clip(cx - hw, 0, W - 1)), int(np.clip(cx + hw, 0, W - 1)) + 1
    v0, v1 = int(np.clip(cy - hh, 0, H - 1)), int(np.clip(cy + hh, 0, H - 1)) + 1
    patch = image[v0:v1, u0:u1].reshape(-1, 3)
    if not len(patch):
        return None
    return colour_name(np.median(patch, axis=0))


SIZE_TERMS = ("flat", "tall", "wide", "small", "slim", "large")


def size_word(box: Box3D) -> str:
    """A coarse size word of a gravity-aligned box (its own z axis up, extents in metres):
    flat (height < 5 cm: a book), tall (>= 18 cm: a bottle), wide (footprint >= 14.5 cm and
    height < 7.5 cm: a bowl), small (everything < 10 cm: a cube, a ball), slim (height >= 11.5 cm
    on a footprint < 10 cm: a can), otherwise large (a mug, a box)."""
    h = float(box.size[2])
    foot = float(max(box.size[0], box.size[1]))
    if h < 0.05:
        return "flat"
    if h >= 0.18:
        return "tall"
    if foot >= 0.145 and h < 0.075:
        return "wide"
    if max(h, foot) < 0.1:
        return "small"
    if h >= 0.115 and foot < 0.1:
        return "slim"
    return "large"


def candidate_attribute(image: np.ndarray, box_optical: Box3D, box_2d, colours: bool,
                        sizes: bool) -> str | None:
    """The words a listed candidate is tagged with: "<size> <colour>", either one alone, or
    None (``box_2d``: its projection in the image, px)."""
    words = [size_word(box_optical) if sizes else None,
             region_colour(image, box_2d) if colours else None]
    return " ".join(w for w in words if w) or None
