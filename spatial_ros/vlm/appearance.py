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


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """:func:`colour_name` of every row of an (N, 3) sRGB 0..255 array, vectorised: (N,) str."""
    c = np.asarray(rgb, dtype=np.float64).reshape(-1, 3) / 255.0
    r, g, b = c[:, 0], c[:, 1], c[:, 2]
    mx, mn = c.max(1), c.min(1)
    d = mx - mn
    s = np.where(mx > 0, d / np.where(mx > 0, mx, 1.0), 0.0)
    dd = np.where(d > 0, d, 1.0)
    h = np.where(mx == r, (60 * ((g - b) / dd)) % 360,
                 np.where(mx == g, 60 * ((b - r) / dd) + 120, 60 * ((r - g) / dd) + 240))
    names = np.empty(len(c), dtype=object)
    bounds = np.array([hi for hi, _ in _HUES])
    hue_names = np.array([n for _, n in _HUES], dtype=object)
    names[:] = hue_names[np.searchsorted(bounds, h, side="right")]
    names[(names == "orange") & (mx < 0.52)] = "brown"
    names[(names == "red") & (s < 0.6) & (mx > 0.75)] = "pink"
    grey = s < 0.22
    names[grey] = np.where(mx[grey] > 0.62, "white", "gray")
    names[mx < 0.22] = "black"
    return names


def sample_pixels(image: np.ndarray, uv: np.ndarray, max_samples: int = 400,
                  seed: int = 0) -> np.ndarray:
    """(M, 3) float sRGB 0..255: the 3x3 median around each pixel at ``uv`` ((N, 2) u, v px;
    NaN and off-image rows ignored) of an (H, W, 3) uint8 RGB image, at most ``max_samples``
    of them (a fixed random subset); (0, 3) when none falls on the image."""
    H, W = image.shape[:2]
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(uv).all(1)
    u = np.round(uv[ok, 0]).astype(np.int64)
    v = np.round(uv[ok, 1]).astype(np.int64)
    keep = (u >= 1) & (u < W - 1) & (v >= 1) & (v < H - 1)
    u, v = u[keep], v[keep]
    if not len(u):
        return np.zeros((0, 3))
    if len(u) > max_samples:
        pick = np.random.default_rng(seed).choice(len(u), max_samples, replace=False)
        u, v = u[pick], v[pick]
    du, dv = np.meshgrid(np.arange(-1, 2), np.arange(-1, 2))
    patch = image[(v[:, None] + dv.ravel()[None]), (u[:, None] + du.ravel()[None])]
    return np.median(patch.astype(np.float64), axis=1)


def pixel_colours(image: np.ndarray, uv: np.ndarray, max_samples: int = 400,
                  seed: int = 0) -> dict[str, float]:
    """Share of each basic colour term among the pixels at ``uv`` (``sample_pixels``): the
    colour of an object read where its own LiDAR or depth points land, not over its 2D box
    (which on a car is mostly windows, wheels, shadow and road). {} when no sample falls on
    the image."""
    return term_shares(sample_pixels(image, uv, max_samples, seed))


def term_shares(rgb: np.ndarray) -> dict[str, float]:
    """Share of each basic colour term among (M, 3) sRGB 0..255 samples ({} for none)."""
    if not len(rgb):
        return {}
    names = colour_names(rgb)
    terms, counts = np.unique(names.astype(str), return_counts=True)
    total = counts.sum()
    return {str(t): float(c / total) for t, c in zip(terms, counts, strict=True)}


def pixel_lightness(image: np.ndarray, uv: np.ndarray, min_pixels: int = 5) -> float | None:
    """Median value (max of R, G, B; 0..1) of the achromatic pixels at ``uv`` — the ones the
    reader calls white, gray or black — which tells white from silver from gray paint; None
    with fewer than ``min_pixels`` of them."""
    return achromatic_lightness(sample_pixels(image, uv), min_pixels)


def achromatic_lightness(rgb: np.ndarray, min_pixels: int = 5) -> float | None:
    """Median value (0..1) of the achromatic ones among (M, 3) sRGB 0..255 samples, None with
    fewer than ``min_pixels`` of them (``pixel_lightness``)."""
    rgb = np.asarray(rgb, dtype=np.float64) / 255.0
    if not len(rgb):
        return None
    mx, mn = rgb.max(1), rgb.min(1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-9), 0.0)
    ach = (sat < 0.22) | (mx < 0.22)
    if ach.sum() < min_pixels:
        return None
    return float(np.median(mx[ach]))


def region_colours(image: np.ndarray, box_2d, fraction: float = 0.4) -> dict[str, float]:
    """Share of each basic term over the central ``fraction`` of a 2D box (x1, y1, x2, y2 px):
    the fallback of :func:`pixel_colours` for an object without points."""
    if box_2d is None:
        return {}
    x1, y1, x2, y2 = (float(v) for v in box_2d)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw, hh = max(1.0, (x2 - x1) * fraction / 2), max(1.0, (y2 - y1) * fraction / 2)
    us, vs = np.meshgrid(np.linspace(cx - hw, cx + hw, 12), np.linspace(cy - hh, cy + hh, 12))
    return pixel_colours(image, np.stack([us.ravel(), vs.ravel()], 1))


def object_colours(image: np.ndarray, camera, box_optical: Box3D, box_2d=None,
                   points_optical: np.ndarray | None = None,
                   depth: np.ndarray | None = None, margin: float = 0.01) -> dict[str, float]:
    """The colour distribution of one object's own pixels (term -> share):

    - with ``points_optical`` ((N, 3+) the object's LiDAR/depth points in the camera optical
      frame, metres): the pixels they project to;
    - else with ``depth`` ((H, W) metres, aligned with the image): the pixels of the projected
      box whose depth point lies inside the 3D box grown by ``margin`` metres;
    - else the centre of ``box_2d``.

    The same function reads candidates at run time and boxes in training data, so tags say
    the same colour in both."""
    from spatial_ros.geometry.camera import project_points, unproject_pixels

    if points_optical is not None and len(points_optical):
        uv, front = project_points(np.asarray(points_optical, float)[:, :3], camera)
        got = pixel_colours(image, uv[front])
        if got:
            return got
    if depth is not None and box_2d is not None:
        H, W = depth.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in box_2d)
        us, vs = np.meshgrid(np.linspace(max(x1, 0), min(x2, W - 1), 24),
                             np.linspace(max(y1, 0), min(y2, H - 1), 24))
        uv = np.stack([us.ravel(), vs.ravel()], 1)
        iu, iv = np.round(uv[:, 0]).astype(int), np.round(uv[:, 1]).astype(int)
        z = np.asarray(depth, dtype=np.float64)[iv, iu]
        ok = np.isfinite(z) & (z > 0)
        if ok.any():
            P = unproject_pixels(uv[ok], z[ok], camera)
            local = (P - box_optical.center) @ box_optical.rotation
            inside = np.all(np.abs(local) <= box_optical.size / 2 + margin, axis=1)
            got = pixel_colours(image, uv[ok][inside])
            if got:
                return got
    return region_colours(image, box_2d)


def dominant(colours: dict[str, float]) -> str | None:
    """The most frequent term of a distribution (ties: the first in ``COLOUR_TERMS``)."""
    if not colours:
        return None
    return max(COLOUR_TERMS, key=lambda t: (colours.get(t, 0.0), -COLOUR_TERMS.index(t)))


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
                        sizes: bool, colour_dist: dict[str, float] | None = None) -> str | None:
    """The words a listed candidate is tagged with: "<size> <colour>", either one alone, or
    None (``box_2d``: its projection in the image, px). ``colour_dist``: the object's own
    pixels (``object_colours``); without it, the centre of its 2D box."""
    colour = None
    if colours:
        colour = dominant(colour_dist) if colour_dist else region_colour(image, box_2d)
    words = [size_word(box_optical) if sizes else None, colour]
    return " ".join(w for w in words if w) or None
