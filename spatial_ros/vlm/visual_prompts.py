"""ViP-LLaVA-style visual prompts: marks drawn on the image to refer to a region.

Kinds: rectangle, ellipse (1-1.5x the box), triangle, point, arrow (head inside the object),
mask contour, scribble (a Bezier curve through points inside the mask). Marks are alpha-blended
ONLY under the mark (every other pixel is untouched); the line width scales with the image size.
Each mark comes with the phrase that refers to it ("within the red rectangle", "pointed to by the
red arrow"), used in the query text. Drawing uses opencv on a binary mark mask (8-connected lines,
no anti-aliasing, so "under the mark" is exact).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from spatial_ros.errors import ConfigError

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "orange": (255, 165, 0),
    "purple": (160, 32, 240),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}

PHRASES: dict[str, str] = {
    "rectangle": "within the {color} rectangle",
    "ellipse": "within the {color} ellipse",
    "triangle": "marked by the {color} triangle",
    "point": "marked by the {color} point",
    "arrow": "pointed to by the {color} arrow",
    "mask_contour": "within the {color} mask contour",
    "scribble": "marked by the {color} scribble",
}
KINDS = tuple(PHRASES)


@dataclass(eq=False)
class VisualPrompt:
    """A rendered visual prompt.

    Attributes:
        image: (H, W, 3) uint8 RGB with the mark blended in (a new array).
        kind: the mark kind.
        phrase: how the text refers to it ("within the red rectangle").
        mark: (H, W) bool, the pixels the mark covers.
        color: colour name.
        thickness: line width used, pixels.
        info: kind-specific geometry (ellipse "scale"; arrow "head"/"tail" (u, v) px; point/
            triangle "center"; scribble "controls").
    """

    image: np.ndarray
    kind: str
    phrase: str
    mark: np.ndarray
    color: str
    thickness: int
    info: dict = field(default_factory=dict)

    def query(self, noun: str = "the object") -> str:
        """A query text referring to the mark: "the object within the red rectangle"."""
        return f"{noun} {self.phrase}"


def line_width(width: int, height: int, factor: float = 0.006) -> int:
    """Mark line width (px) for an image: ``factor x sqrt(W x H)``, at least 1
    (112x112 -> 1 px, 640x480 -> 3 px, 1242x375 -> 4 px)."""
    return max(1, int(round(factor * float(np.sqrt(width * height)))))


def phrase_for(kind: str, color: str = "red") -> str:
    if kind not in PHRASES:
        raise ConfigError(f"unknown visual prompt kind {kind!r}; known: {', '.join(KINDS)}")
    return PHRASES[kind].format(color=color)


def _inside_points(
    box: np.ndarray, mask: np.ndarray | None, n: int, rng: np.random.Generator | None
) -> np.ndarray:
    """(n, 2) (u, v) points inside the object: mask pixels when a mask is given, else the
    central 50 % of the box. Deterministic (centre first) without ``rng``."""
    if mask is not None and mask.any():
        vu = np.argwhere(mask)
        if rng is None:
            c = vu.mean(0)
            idx = np.argsort(((vu - c) ** 2).sum(1))[: max(n, 1)]
            pick = vu[idx[np.linspace(0, len(idx) - 1, n).astype(int)]]
        else:
            pick = vu[rng.integers(0, len(vu), n)]
        return pick[:, ::-1].astype(np.float64)
    x1, y1, x2, y2 = box
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 4, (y2 - y1) / 4
    if rng is None:
        t = np.linspace(-1, 1, n) if n > 1 else np.zeros(1)
        return np.stack([cx + hw * t, cy + hh * t * 0.5], 1)
    return np.stack([rng.uniform(cx - hw, cx + hw, n), rng.uniform(cy - hh, cy + hh, n)], 1)


def _bezier(ctrl: np.ndarray, samples: int = 64) -> np.ndarray:
    """Points of the Bezier curve with control points ``ctrl`` (k, 2) (Bernstein form)."""
    from math import comb

    k = len(ctrl) - 1
    t = np.linspace(0.0, 1.0, samples)[:, None]
    basis = np.hstack([comb(k, i) * t**i * (1 - t) ** (k - i) for i in range(k + 1)])
    return basis @ ctrl


def draw_visual_prompt(
    image: np.ndarray,
    kind: str,
    box_2d: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    *,
    color: str = "red",
    alpha: float = 1.0,
    thickness: int | None = None,
    rng: np.random.Generator | None = None,
) -> VisualPrompt:
    """Draw a visual prompt referring to the object with 2D box ``box_2d`` (x1, y1, x2, y2 px)
    and/or boolean ``mask`` (H, W) on a copy of ``image`` (H, W, 3) uint8 RGB.

    Args:
        kind: one of KINDS.
        color: a COLORS name (also used in the phrase).
        alpha: opacity in [0, 1] of the mark (blended only under the mark).
        thickness: line width in px (default: :func:`line_width` of the image).
        rng: randomises ellipse scale (1-1.5x), arrow direction, points; None = deterministic.

    Raises:
        ConfigError: unknown kind/colour, alpha outside [0, 1], or neither box nor mask.
    """
    if kind not in PHRASES:
        raise ConfigError(f"unknown visual prompt kind {kind!r}; known: {', '.join(KINDS)}")
    if color not in COLORS:
        raise ConfigError(f"unknown colour {color!r}; known: {', '.join(COLORS)}")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha={alpha} must be in [0, 1]")
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ConfigError(f"image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    H, W = img.shape[:2]
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (H, W):
            raise ConfigError(f"mask shape {mask.shape} does not match the image {(H, W)}")
    if box_2d is None:
        if mask is None or not mask.any():
            raise ConfigError("a visual prompt needs a 2D box or a non-empty mask")
        vs, us = np.nonzero(mask)
        box_2d = np.array([us.min(), vs.min(), us.max(), vs.max()], dtype=np.float64)
    box = np.asarray(box_2d, dtype=np.float64).reshape(4)
    t = int(thickness) if thickness else line_width(W, H)
    m = np.zeros((H, W), np.uint8)
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    info: dict = {}
    ip = lambda p: (int(round(p[0])), int(round(p[1])))  # noqa: E731

    if kind == "rectangle":
        cv2.rectangle(m, ip((x1, y1)), ip((x2, y2)), 255, t, cv2.LINE_8)
    elif kind == "ellipse":
        s = float(rng.uniform(1.0, 1.5)) if rng is not None else 1.25
        info["scale"] = s
        axes = (int(round(bw / 2 * s)), int(round(bh / 2 * s)))
        cv2.ellipse(m, ip((cx, cy)), axes, 0.0, 0.0, 360.0, 255, t, cv2.LINE_8)
    elif kind == "point":
        c = _inside_points(box, mask, 1, rng)[0]
        info["center"] = c
        r = max(2 * t, int(round(0.04 * min(bw, bh))), 2)
        cv2.circle(m, ip(c), r, 255, -1, cv2.LINE_8)
    elif kind == "triangle":
        c = _inside_points(box, mask, 1, rng)[0]
        info["center"] = c
        r = max(3 * t, 0.2 * min(bw, bh))
        ang = np.radians([-90.0, 30.0, 150.0])
        pts = np.stack([c[0] + r * np.cos(ang), c[1] + r * np.sin(ang)], 1)
        cv2.polylines(m, [np.rint(pts).astype(np.int32)], True, 255, t, cv2.LINE_8)
    elif kind == "arrow":
        head = _inside_points(box, mask, 1, rng)[0]
        theta = float(rng.uniform(0, 2 * np.pi)) if rng is not None else np.radians(-135.0)
        d = np.array([np.cos(theta), np.sin(theta)])
        # Length: leave the box (half diagonal) plus half a box size more, within the image.
        length = 0.5 * np.hypot(bw, bh) + 0.5 * max(bw, bh)
        tail = np.clip(head + d * length, 0, [W - 1, H - 1])
        info["head"], info["tail"] = head, tail
        tip = min(0.5, max(0.15, 4.0 * t / max(np.linalg.norm(tail - head), 1.0)))
        cv2.arrowedLine(m, ip(tail), ip(head), 255, t, cv2.LINE_8, 0, tip)
    elif kind == "mask_contour":
        src = mask if mask is not None else None
        if src is None:
            src = np.zeros((H, W), bool)
            src[int(y1) : int(y2) + 1, int(x1) : int(x2) + 1] = True
        contours, _ = cv2.findContours(src.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(m, contours, -1, 255, t, cv2.LINE_8)
    elif kind == "scribble":
        k = int(rng.integers(3, 5)) if rng is not None else 4
        ctrl = _inside_points(box, mask, k, rng)
        ctrl = ctrl[np.argsort(ctrl[:, 0], kind="stable")]
        info["controls"] = ctrl
        curve = np.rint(_bezier(ctrl)).astype(np.int32)
        cv2.polylines(m, [curve], False, 255, t, cv2.LINE_8)

    sel = m > 0
    out = img.copy()
    if alpha > 0 and sel.any():
        col = np.array(COLORS[color], dtype=np.float64)
        blended = (1.0 - alpha) * img[sel].astype(np.float64) + alpha * col
        out[sel] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return VisualPrompt(out, kind, phrase_for(kind, color), sel, color, t, info)


def draw_marks(
    image: np.ndarray,
    boxes_2d: list[np.ndarray],
    labels: list[str] | None = None,
    *,
    color: str = "red",
    thickness: int | None = None,
) -> np.ndarray:
    """Set-of-marks: a rectangle around each box (x1, y1, x2, y2 px) and its label (default
    "1".."n") in a filled tag at the box's top-left corner, on a copy of ``image`` (H, W, 3)
    uint8 RGB. Text colour black or white, whichever contrasts with ``color``."""
    if color not in COLORS:
        raise ConfigError(f"unknown colour {color!r}; known: {', '.join(COLORS)}")
    out = np.asarray(image).copy()
    H, W = out.shape[:2]
    t = int(thickness) if thickness else line_width(W, H)
    col = COLORS[color]
    ink = (0, 0, 0) if sum(col) > 380 else (255, 255, 255)
    scale = max(0.3, 0.0012 * float(np.sqrt(W * H)))
    labels = labels if labels is not None else [str(k + 1) for k in range(len(boxes_2d))]
    for b, lab in zip(boxes_2d, labels, strict=True):
        x1, y1, x2, y2 = (int(round(v)) for v in np.asarray(b, float).reshape(4))
        cv2.rectangle(out, (x1, y1), (x2, y2), col, t, cv2.LINE_8)
        (tw, th), base = cv2.getTextSize(lab, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, t // 2))
        tx = int(np.clip(x1, 0, max(W - tw - 2, 0)))
        ty = int(np.clip(y1, th + base + 2, H - 1))
        cv2.rectangle(out, (tx, ty - th - base - 2), (tx + tw + 2, ty), col, -1)
        cv2.putText(out, lab, (tx + 1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, ink,
                    max(1, t // 2), cv2.LINE_AA)
    return out
