"""What the simulated worlds are made of: the colour palette and the object categories.

Each category has a builder ``(rng, rgb) -> list[Part]`` that draws a realistic size and returns
the coloured parts in the object's local z-up frame (x = the object's heading). Categories are
made to be told apart in a 112–224 px image by shape as well as colour: a mug has a handle and an
open top, a bowl is wide and low with a cavity, a can is a slim cylinder with a silver lid, a
bottle has a neck and cap, a book is flat with white page edges, a box is a cuboid, a cube has
equal sides.

Sizes are in metres. Street sizes follow KITTI's class means (car ≈ 3.9 x 1.6 x 1.5 m,
pedestrian ≈ 0.8 x 0.6 x 1.75 m, cyclist ≈ 1.76 x 0.6 x 1.74 m).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from spatial_ros.sim.meshes import Part, box, cylinder, lathe, sphere, torus

# Named palette (sRGB 0..255). Names are what captions and goals use.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (210, 35, 35),
    "green": (40, 165, 60),
    "blue": (35, 80, 215),
    "yellow": (240, 205, 30),
    "orange": (245, 125, 25),
    "purple": (135, 55, 175),
    "white": (238, 238, 238),
    "black": (30, 30, 32),
    "pink": (245, 120, 170),
    "cyan": (40, 200, 210),
    "brown": (120, 72, 35),
    "gray": (128, 128, 128),
}
# Colours that stay readable against the tabletop's wooden top (brown is too close to it).
TABLETOP_COLOURS = (
    "red",
    "green",
    "blue",
    "yellow",
    "orange",
    "purple",
    "white",
    "black",
    "pink",
    "cyan",
)
CAR_COLOURS = ("red", "blue", "white", "black", "gray", "yellow", "green", "silver")
CLOTHES_COLOURS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple")

_EXTRA_RGB = {"silver": (185, 188, 192)}
SILVER = (0.72, 0.74, 0.76)
DARK = (0.08, 0.08, 0.09)
GLASS = (0.16, 0.2, 0.25)
SKIN = (0.85, 0.66, 0.52)


def colour_rgb(name: str) -> tuple[int, int, int]:
    """sRGB 0..255 of a palette colour name."""
    return PALETTE.get(name) or _EXTRA_RGB[name]


def unit_rgb(name: str) -> tuple[float, float, float]:
    r, g, b = colour_rgb(name)
    return r / 255.0, g / 255.0, b / 255.0


Builder = Callable[[np.random.Generator, tuple[float, float, float]], list[Part]]


# ----------------------------------------------------------------------------------------------
# Tabletop objects (local frame: origin anywhere, merge() re-centres on the bounding box)
# ----------------------------------------------------------------------------------------------


def _mug(rng, rgb):
    r, h = rng.uniform(0.037, 0.045), rng.uniform(0.09, 0.11)
    wall, base = 0.006, 0.01
    body = lathe([(0, 0), (r, 0), (r, h), (r - wall, h), (r - wall, base), (0, base)], rgb)
    handle = torus(0.28 * h, 0.007, rgb, axis="y", center=(r + 0.2 * h, 0.0, 0.5 * h))
    return [body, handle]


def _bowl(rng, rgb):
    R, h = rng.uniform(0.07, 0.09), rng.uniform(0.05, 0.065)
    prof = [
        (0, 0),
        (0.5 * R, 0),
        (0.85 * R, 0.5 * h),
        (R, h),
        (0.92 * R, h),
        (0.78 * R, 0.5 * h),
        (0.45 * R, 0.18 * h),
        (0, 0.18 * h),
    ]
    return [lathe(prof, rgb, segments=40)]


def _can(rng, rgb):
    r, h = rng.uniform(0.031, 0.034), rng.uniform(0.115, 0.125)
    return [
        cylinder(r, 0.9 * h, rgb, center=(0, 0, 0.45 * h)),
        cylinder(0.93 * r, 0.1 * h, SILVER, center=(0, 0, 0.95 * h), reflectivity=0.9),
    ]


def _bottle(rng, rgb):
    r, h = rng.uniform(0.03, 0.037), rng.uniform(0.2, 0.25)
    neck = 0.35 * r
    prof = [
        (0, 0),
        (r, 0),
        (r, 0.62 * h),
        (0.8 * r, 0.72 * h),
        (neck, 0.82 * h),
        (neck, 0.93 * h),
        (0, 0.93 * h),
    ]
    cap = cylinder(neck * 1.15, 0.07 * h, (0.95, 0.95, 0.95), center=(0, 0, 0.965 * h))
    return [lathe(prof, rgb, segments=28), cap]


def _book(rng, rgb):
    sx, sy, sz = rng.uniform(0.2, 0.24), rng.uniform(0.14, 0.17), rng.uniform(0.025, 0.04)
    cover = 0.004
    return [
        box(sx, sy, cover, rgb, center=(0, 0, cover / 2)),
        box(sx, sy, cover, rgb, center=(0, 0, sz - cover / 2)),
        box(0.006, sy, sz, rgb, center=(-sx / 2 + 0.003, 0, sz / 2)),  # spine
        box(
            sx - 0.008, sy - 0.006, sz - 2 * cover, (0.96, 0.95, 0.9), center=(0.002, 0, sz / 2)
        ),  # pages
    ]


def _box(rng, rgb):
    s = np.sort(rng.uniform([0.09, 0.07, 0.07], [0.16, 0.12, 0.12]))[::-1]
    return [box(s[0], s[1], s[2], rgb, center=(0, 0, s[2] / 2))]


def _cube(rng, rgb):
    a = rng.uniform(0.05, 0.065)
    return [box(a, a, a, rgb, center=(0, 0, a / 2))]


def _ball(rng, rgb):
    r = rng.uniform(0.035, 0.05)
    return [sphere(r, rgb, center=(0, 0, r), resolution=18)]


def gripper_parts(opening: float) -> list[Part]:
    """A parallel gripper: wrist, palm and two fingers ``opening`` metres apart (inner faces).

    The local origin is at the fingertips' height, midway between the fingers; the fingers
    extend 0.06 m up to the palm, which is followed by a 0.06 m wrist.
    """
    grey, dark = (0.55, 0.56, 0.58), (0.2, 0.2, 0.22)
    fw = 0.012  # finger thickness
    y = opening / 2 + fw / 2
    palm_w = opening + 2 * fw
    return [
        box(0.03, fw, 0.06, dark, center=(0, y, 0.03)),
        box(0.03, fw, 0.06, dark, center=(0, -y, 0.03)),
        box(0.05, palm_w, 0.02, grey, center=(0, 0, 0.07)),
        cylinder(0.018, 0.06, grey, center=(0, 0, 0.11), segments=20),
    ]


# ----------------------------------------------------------------------------------------------
# Street objects (local origin on the ground under the object)
# ----------------------------------------------------------------------------------------------


def _car(rng, rgb):
    L, W, H = rng.normal(3.9, 0.25), rng.normal(1.62, 0.08), rng.normal(1.5, 0.07)
    L, W, H = (
        float(np.clip(L, 3.4, 4.6)),
        float(np.clip(W, 1.45, 1.8)),
        float(np.clip(H, 1.35, 1.7)),
    )
    wheel_r, clear = 0.32, 0.18
    body_h = 0.52 * H - clear
    body = box(L, W, body_h, rgb, center=(0, 0, clear + body_h / 2))
    cab_h = H - clear - body_h
    cab = box(
        0.52 * L,
        0.9 * W,
        cab_h - 0.04,
        GLASS,
        center=(-0.05 * L, 0, H - cab_h / 2 - 0.02),
        reflectivity=0.15,
    )
    roof = box(0.48 * L, 0.86 * W, 0.04, rgb, center=(-0.05 * L, 0, H - 0.02))
    parts = [body, cab, roof]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(
                torus(
                    wheel_r - 0.09,
                    0.09,
                    DARK,
                    axis="y",
                    center=(sx * 0.33 * L, sy * (W / 2 - 0.12), wheel_r),
                    reflectivity=0.05,
                )
            )
    return parts


def _pedestrian(rng, rgb):
    h = float(np.clip(rng.normal(1.75, 0.08), 1.55, 1.95))
    leg = 0.47 * h
    torso_h = 0.33 * h
    head_r = 0.11
    return [
        box(0.14, 0.13, leg, (0.15, 0.15, 0.25), center=(0, 0.09, leg / 2)),
        box(0.14, 0.13, leg, (0.15, 0.15, 0.25), center=(0, -0.09, leg / 2)),
        box(0.26, 0.44, torso_h, rgb, center=(0, 0, leg + torso_h / 2)),
        box(0.1, 0.09, 0.55 * h - 0.1, rgb, center=(0.02, 0.27, leg + torso_h - 0.3 * h)),
        box(0.1, 0.09, 0.55 * h - 0.1, rgb, center=(0.02, -0.27, leg + torso_h - 0.3 * h)),
        sphere(head_r, SKIN, center=(0, 0, h - head_r), resolution=10),
    ]


def _cyclist(rng, rgb):
    wheel_r = 0.34
    L = 1.76
    frame = box(1.0, 0.05, 0.05, DARK, center=(0, 0, wheel_r + 0.2))
    parts = [
        torus(wheel_r - 0.02, 0.025, DARK, axis="y", center=(dx, 0, wheel_r))
        for dx in (-(L / 2 - wheel_r), L / 2 - wheel_r)
    ]
    parts.append(frame)
    hip = wheel_r + 0.55
    parts += [
        box(0.4, 0.35, 0.6, rgb, center=(0.05, 0, hip + 0.32)),
        box(0.12, 0.12, 0.55, (0.15, 0.15, 0.25), center=(0.0, 0.1, hip - 0.25)),
        box(0.12, 0.12, 0.55, (0.15, 0.15, 0.25), center=(0.0, -0.1, hip - 0.25)),
        sphere(0.11, SKIN, center=(0.1, 0, hip + 0.75), resolution=10),
    ]
    return parts


def _pole(rng, rgb):
    r, h = rng.uniform(0.06, 0.12), rng.uniform(3.0, 6.0)
    return [cylinder(r, h, rgb, center=(0, 0, h / 2), segments=16, reflectivity=0.6)]


CategoryInfo = tuple[Builder, tuple[str, ...]]

TABLETOP_CATEGORIES: dict[str, Builder] = {
    "mug": _mug,
    "bowl": _bowl,
    "can": _can,
    "bottle": _bottle,
    "book": _book,
    "box": _box,
    "cube": _cube,
    "ball": _ball,
}
STREET_CATEGORIES: dict[str, Builder] = {
    "car": _car,
    "pedestrian": _pedestrian,
    "cyclist": _cyclist,
    "pole": _pole,
}
STREET_COLOURS: dict[str, tuple[str, ...]] = {
    "car": CAR_COLOURS,
    "pedestrian": CLOTHES_COLOURS,
    "cyclist": CLOTHES_COLOURS,
    "pole": ("gray",),
}
# Relative frequency of street categories.
STREET_WEIGHTS = {"car": 0.5, "pedestrian": 0.25, "cyclist": 0.12, "pole": 0.13}


def caption(category: str, colour: str) -> str:
    """The referring expression of an object, e.g. "the red mug", "the pedestrian in blue"."""
    if category in ("pedestrian", "cyclist"):
        return f"the {category} in {colour}"
    if category == "pole":
        return "the pole"
    if category == "gripper":
        return "the gripper"
    return f"the {colour} {category}"


def categories(scenario: str) -> dict[str, Builder]:
    return TABLETOP_CATEGORIES if scenario == "tabletop" else STREET_CATEGORIES
