"""Cube-LLM / LV3D answer codec: 2D/3D points and boxes <-> text, and text -> typed codes.

Formats (BRIEF §6, Cube-LLM):

- 2D point ``[x, y]``, 2D box ``[x1, y1, x2, y2]``: image coordinates normalised to integers
  ``0..coord_max`` (999): ``n = round((u + 0.5) / W * coord_max)`` (u, v in pixels, OpenCV
  convention: pixel centres at integers, so the image spans [-0.5, W - 0.5]); the same for every
  resolution of one field of view.
- depth ``[z]``: a log-scale integer token ``0..depth_bins`` over the *virtual* depth range
  ``[depth_min, depth_max]`` (metres).
- 3D point ``[x, y, z]``: (x, y) the point projected into the image (normalised as above),
  z its depth token.
- 3D box ``[x, y, z, w, h, l, r1, r2, r3]``: (x, y, z) the projected box centre and its depth
  token; ``l, w, h`` the full extents (metres) along the box's own x, y, z axes; ``r1, r2, r3``
  roll, pitch, yaw (intrinsic Z-Y-X Euler angles: R = Rz(yaw) Ry(pitch) Rx(roll)) of the box
  axes relative to the camera's z-up *body* axes (x forward, y left, z up — REP-103, so an
  upright box seen by a level camera has roll = pitch = 0). With ``rotation="yaw"`` the box is
  ``[x, y, z, w, h, l, yaw]`` (roll = pitch = 0 assumed).

Virtual camera (Omni3D / Cube R-CNN "virtual depth"): every image is re-expressed as seen by one
camera of focal length ``virtual_focal`` px and image height ``virtual_height`` px, so the depth
a model must predict depends only on what the (resized) image shows, not on the sensor:
``z_virtual = z * (virtual_focal / virtual_height) * (H / fy)``. Two cameras with the same
vertical field of view but different resolutions therefore give the same depth token for the same
box, and an object that *looks* the same in two images gets the same token.

Parsing never raises: every ``parse_*`` returns a :class:`ParseResult` (typed code + the span of
the answer in the text) or a :class:`ParseFailure` with a human-readable ``reason``. Model output
is never evaluated, only matched with regular expressions.

3D-LLM-style discrete location tokens (``<loc_123>``) are supported by :func:`to_loc_tokens` /
:func:`parse_loc_tokens`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
from scipy.spatial.transform import Rotation

from spatial_ros.config import param
from spatial_ros.errors import ConfigError, DataError
from spatial_ros.geometry.transforms import R_BODY_FROM_OPTICAL
from spatial_ros.types import Box3D, CameraIntrinsics

T = TypeVar("T")

# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodecConfig:
    """Number formats of the codec (keep identical between training and inference)."""

    coord_max: int = param(999, "largest normalised image coordinate (0..coord_max)")
    virtual_focal: float = param(512.0, "virtual camera focal length f_v, pixels")
    virtual_height: float = param(512.0, "virtual camera image height H_v, pixels")
    depth_min: float = param(0.1, "smallest encodable virtual depth, metres")
    depth_max: float = param(200.0, "largest encodable virtual depth, metres")
    depth_bins: int = param(999, "depth tokens are integers 0..depth_bins on a log scale")
    size_decimals: int = param(2, "decimals of box extents (metres)")
    angle_decimals: int = param(2, "decimals of angles")
    rotation: str = param("euler", "'euler' (roll, pitch, yaw) or 'yaw' (yaw only)")
    angle_unit: str = param("rad", "'rad' or 'deg'")
    coord_slack: int = param(
        20, "parsed image coordinates up to this far outside 0..coord_max are clipped, not failed"
    )
    max_size: float = param(100.0, "largest plausible box extent when parsing, metres")

    def __post_init__(self) -> None:
        bad = []
        if self.coord_max < 1:
            bad.append(f"coord_max={self.coord_max} (must be >= 1)")
        if not (self.virtual_focal > 0 and self.virtual_height > 0):
            bad.append(
                f"virtual_focal={self.virtual_focal}, virtual_height={self.virtual_height} "
                "(must be > 0)"
            )
        if not (0 < self.depth_min < self.depth_max):
            bad.append(
                f"depth_min={self.depth_min}, depth_max={self.depth_max} "
                "(need 0 < depth_min < depth_max)"
            )
        if self.depth_bins < 1:
            bad.append(f"depth_bins={self.depth_bins} (must be >= 1)")
        if not (0 <= self.size_decimals <= 6 and 0 <= self.angle_decimals <= 6):
            bad.append(
                f"size_decimals={self.size_decimals}, angle_decimals={self.angle_decimals} "
                "(must be 0..6)"
            )
        if self.rotation not in ("euler", "yaw"):
            bad.append(f"rotation={self.rotation!r} (must be 'euler' or 'yaw')")
        if self.angle_unit not in ("rad", "deg"):
            bad.append(f"angle_unit={self.angle_unit!r} (must be 'rad' or 'deg')")
        if self.coord_slack < 0:
            bad.append(f"coord_slack={self.coord_slack} (must be >= 0)")
        if self.max_size <= 0:
            bad.append(f"max_size={self.max_size} (must be > 0)")
        if bad:
            raise ConfigError("invalid CodecConfig: " + "; ".join(bad))

    @property
    def box3d_arity(self) -> int:
        return 9 if self.rotation == "euler" else 7


# ----------------------------------------------------------------------------------------------
# Typed codes (what a parse yields) and parse outcomes
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point2DCode:
    """A 2D point in normalised image coordinates (0..coord_max)."""

    x: float
    y: float


@dataclass(frozen=True)
class Box2DCode:
    """A 2D box in normalised image coordinates, x1 <= x2, y1 <= y2."""

    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class DepthCode:
    """A log-scale virtual depth token (0..depth_bins)."""

    token: int


@dataclass(frozen=True)
class Point3DCode:
    """Projected point (normalised image coordinates) + its depth token."""

    x: float
    y: float
    z_token: int


@dataclass(frozen=True)
class Box3DCode:
    """A 3D box answer: projected centre (x, y), depth token, extents along the box's own
    x (l), y (w), z (h) axes in metres, and (roll, pitch, yaw) in radians relative to the
    camera body axes (see the module docstring)."""

    x: float
    y: float
    z_token: int
    l: float  # noqa: E741 - the paper's name
    w: float
    h: float
    angles: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class ParseResult(Generic[T]):
    """A successful parse: ``value`` is the typed code, ``span`` its (start, end) in the text."""

    value: T
    span: tuple[int, int] = (0, 0)

    @property
    def ok(self) -> bool:
        return True


@dataclass(frozen=True)
class ParseFailure:
    """A failed parse; ``reason`` says what was wrong (for logs and failure statistics)."""

    reason: str
    text: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return False

    @property
    def kind(self) -> str:
        """Short category of the reason (the text before the first ':'), for counters."""
        return self.reason.split(":", 1)[0]


# ----------------------------------------------------------------------------------------------
# Text scanning
# ----------------------------------------------------------------------------------------------

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUM_FULL = re.compile(rf"^{_NUM}$")
_NUM_ANY = re.compile(_NUM)
_BRACKETED = re.compile(r"\[([^\[\]]*)\]")
_SEP_ONLY = re.compile(r"^\s*,\s*$")
_LOC = re.compile(r"<loc_(\d{1,6})>")
_MAX_TEXT = 20000  # longer outputs are truncated before scanning (bounded time)


@dataclass
class _Candidate:
    items: list[str]
    span: tuple[int, int]
    snippet: str


def _split_items(inner: str) -> list[str]:
    if "," in inner:
        items = [s.strip() for s in inner.split(",")]
    else:
        items = inner.split()
    while items and items[-1] == "":
        items.pop()  # tolerate a trailing comma
    return items


def _snip(s: str, n: int = 60) -> str:
    s = s.replace("\n", " ")
    return s if len(s) <= n else s[: n - 3] + "..."


def _candidates(text: str) -> list[_Candidate]:
    """Number lists in ``text``, in order: ``[...]`` groups, an unclosed ``[`` running to the end
    of its line, and bare comma-separated number runs when the text has no brackets at all."""
    out: list[_Candidate] = []
    closed_end = 0
    for m in _BRACKETED.finditer(text):
        out.append(_Candidate(_split_items(m.group(1)), m.span(), m.group(0)))
        closed_end = max(closed_end, m.end())
    # An opening bracket after the last closed group that never closes (truncated output).
    tail_open = text.find("[", closed_end)
    if tail_open >= 0 and "]" not in text[tail_open:]:
        line_end = text.find("\n", tail_open)
        line_end = len(text) if line_end < 0 else line_end
        inner = text[tail_open + 1 : line_end]
        snippet = text[tail_open:line_end]
        out.append(_Candidate(_split_items(inner), (tail_open, line_end), snippet))
    if not out:
        # Bare runs "12, 34, 56" (missing brackets): numbers separated only by commas.
        run: list[re.Match] = []
        for m in _NUM_ANY.finditer(text):
            if run and _SEP_ONLY.match(text[run[-1].end() : m.start()]):
                run.append(m)
                continue
            if len(run) >= 2:
                out.append(_run_candidate(text, run))
            run = [m]
        if len(run) >= 2:
            out.append(_run_candidate(text, run))
        elif not out and len(run) == 1:
            out.append(_run_candidate(text, run))
    return out


def _run_candidate(text: str, run: list[re.Match]) -> _Candidate:
    span = (run[0].start(), run[-1].end())
    return _Candidate([m.group(0) for m in run], span, text[span[0] : span[1]])


def _to_floats(c: _Candidate) -> list[float] | str:
    vals = []
    for it in c.items:
        if not _NUM_FULL.match(it):
            return f"non-numeric value: {_snip(it, 20)!r} in {_snip(c.snippet)!r}"
        v = float(it)
        if not math.isfinite(v):
            return f"non-finite value: {it!r} in {_snip(c.snippet)!r}"
        vals.append(v)
    return vals


def _scan(text: object, arities: tuple[int, ...], validate) -> ParseResult | ParseFailure:
    """Find the first list with one of ``arities`` values that ``validate`` accepts."""
    if not isinstance(text, str):
        return ParseFailure(f"not text: got {type(text).__name__}", "")
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT]
    if not text.strip():
        return ParseFailure("empty answer", text)
    cands = _candidates(text)
    if not cands:
        return ParseFailure(f"no number list found: {_snip(text)!r}", text)
    first_reason = None
    for c in cands:
        if len(c.items) not in arities:
            continue
        vals = _to_floats(c)
        if isinstance(vals, str):
            first_reason = first_reason or vals
            continue
        res = validate(vals)
        if isinstance(res, str):
            first_reason = first_reason or f"{res} in {_snip(c.snippet)!r}"
            continue
        return ParseResult(res, c.span)
    if first_reason:
        return ParseFailure(first_reason, text)
    want = " or ".join(str(a) for a in arities)
    got = ", ".join(str(len(c.items)) for c in cands[:5])
    return ParseFailure(
        f"wrong number of values: expected {want}, found list(s) of {got}: {_snip(text)!r}", text
    )


# ----------------------------------------------------------------------------------------------
# The codec
# ----------------------------------------------------------------------------------------------

_FLIPS = (
    np.eye(3),
    np.diag([-1.0, -1.0, 1.0]),  # pi about the box z axis
    np.diag([-1.0, 1.0, -1.0]),  # pi about y
    np.diag([1.0, -1.0, -1.0]),  # pi about x
)


class BoxCodec:
    """Serialise and parse Cube-LLM answers with one :class:`CodecConfig`.

    ``encode_*`` take metric values (pixels, metres, camera optical frame) and return text;
    ``parse_*`` take model text and return typed codes; the ``*_to_*`` helpers convert between
    codes and metric values for one camera (the lifting module builds boxes from them).
    """

    def __init__(self, config: CodecConfig | None = None) -> None:
        self.config = config or CodecConfig()
        c = self.config
        self._log_min = math.log(c.depth_min)
        self._log_span = math.log(c.depth_max) - math.log(c.depth_min)

    # -- numbers ---------------------------------------------------------------------------

    @staticmethod
    def _fmt(v: float, decimals: int) -> str:
        s = f"{v:.{decimals}f}"
        if s.startswith("-") and float(s) == 0.0:
            s = s[1:]  # no "-0.00"
        return s

    def _list(self, parts: list[str]) -> str:
        return "[" + ", ".join(parts) + "]"

    # -- image coordinates -----------------------------------------------------------------

    def pixels_to_norm(self, uv: np.ndarray, width: int, height: int) -> np.ndarray:
        """(..., 2) pixel coordinates -> integer normalised coordinates (clipped to 0..max).
        The image spans [-0.5, W - 0.5] x [-0.5, H - 0.5] (pixel centres at integers), so the
        mapping is the same for every resolution of one field of view."""
        uv = np.asarray(uv, dtype=np.float64)
        scale = np.array([max(width, 1), max(height, 1)], dtype=np.float64)
        n = np.rint((uv + 0.5) / scale * self.config.coord_max)
        return np.clip(n, 0, self.config.coord_max).astype(np.int64)

    def norm_to_pixels(self, n: np.ndarray, width: int, height: int) -> np.ndarray:
        """(..., 2) normalised coordinates -> pixel coordinates."""
        n = np.asarray(n, dtype=np.float64)
        scale = np.array([max(width, 1), max(height, 1)], dtype=np.float64)
        return n / self.config.coord_max * scale - 0.5

    # -- depth ----------------------------------------------------------------------------

    def virtual_scale(self, camera: CameraIntrinsics) -> float:
        """z_virtual / z for ``camera`` (dimensionless)."""
        c = self.config
        return (c.virtual_focal / c.virtual_height) * (camera.height / camera.fy)

    def depth_in_range(self, z: float, camera: CameraIntrinsics) -> bool:
        """True when metric depth ``z`` (m) maps inside [depth_min, depth_max] virtually
        (annotations outside are dropped from training data)."""
        zv = z * self.virtual_scale(camera)
        return bool(self.config.depth_min <= zv <= self.config.depth_max)

    def depth_to_token(self, z: float | np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
        """Metric depth(s) along the optical axis (m) -> integer token(s), clamped to range."""
        zv = np.asarray(z, dtype=np.float64) * self.virtual_scale(camera)
        zv = np.clip(zv, self.config.depth_min, self.config.depth_max)
        t = (np.log(zv) - self._log_min) / self._log_span
        return np.rint(t * self.config.depth_bins).astype(np.int64)

    def token_to_depth(self, token: float | np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
        """Depth token(s) -> metric depth(s) along the optical axis (m) for ``camera``."""
        t = np.asarray(token, dtype=np.float64) / self.config.depth_bins
        zv = np.exp(self._log_min + t * self._log_span)
        return zv / self.virtual_scale(camera)

    # -- rotations ------------------------------------------------------------------------

    def angles_from_rotation(self, R_optical: np.ndarray) -> tuple[float, float, float]:
        """Box axes in the optical frame -> canonical (roll, pitch, yaw) rad, relative to the
        camera body axes. Of the four equivalent rotations of a box (turns by pi about its own
        axes leave it unchanged), the one with the smallest |roll| + |pitch| + |yaw| is used so
        that one box always has one answer."""
        R_body = R_BODY_FROM_OPTICAL @ np.asarray(R_optical, dtype=np.float64)
        if self.config.rotation == "yaw":
            yaw = math.atan2(R_body[1, 0], R_body[0, 0])
            yaw = (yaw + math.pi / 2) % math.pi - math.pi / 2  # box symmetric under pi
            return (0.0, 0.0, yaw)
        best, best_cost = (0.0, 0.0, 0.0), math.inf
        for F in _FLIPS:
            yaw, pitch, roll = Rotation.from_matrix(R_body @ F).as_euler("ZYX")
            cost = abs(roll) + abs(pitch) + abs(yaw)
            if cost < best_cost - 1e-9:
                best, best_cost = (float(roll), float(pitch), float(yaw)), cost
        return best

    def rotation_from_angles(self, angles: tuple[float, float, float]) -> np.ndarray:
        """(roll, pitch, yaw) rad relative to the camera body axes -> box axes in the optical
        frame (3x3)."""
        roll, pitch, yaw = angles
        R_body = Rotation.from_euler("ZYX", [yaw, pitch, roll]).as_matrix()
        return R_BODY_FROM_OPTICAL.T @ R_body

    def _angle_out(self, a: float) -> str:
        if self.config.angle_unit == "deg":
            a = math.degrees(a)
        return self._fmt(a, self.config.angle_decimals)

    def _angle_in(self, a: float) -> float:
        return math.radians(a) if self.config.angle_unit == "deg" else a

    # -- encoding (metric -> text) ----------------------------------------------------------

    def encode_point2d(self, uv: np.ndarray, width: int, height: int) -> str:
        """Pixel (u, v) -> ``[x, y]``."""
        n = self.pixels_to_norm(np.asarray(uv, dtype=np.float64).reshape(2), width, height)
        return self._list([str(int(v)) for v in n])

    def encode_box2d(self, box_px: np.ndarray, width: int, height: int) -> str:
        """Pixel box (x1, y1, x2, y2) -> ``[x1, y1, x2, y2]``."""
        b = np.asarray(box_px, dtype=np.float64).reshape(2, 2)
        n = self.pixels_to_norm(b, width, height).reshape(4)
        return self._list([str(int(v)) for v in n])

    def encode_depth(self, z: float, camera: CameraIntrinsics) -> str:
        """Metric depth along the optical axis (m) -> ``[z]``."""
        return self._list([str(int(self.depth_to_token(z, camera)))])

    def encode_point3d(self, xyz_optical: np.ndarray, camera: CameraIntrinsics) -> str:
        """Point in the camera optical frame (m, z > 0) -> ``[x, y, z]``."""
        p = np.asarray(xyz_optical, dtype=np.float64).reshape(3)
        uv = _pinhole(p, camera)
        n = self.pixels_to_norm(uv, camera.width, camera.height)
        tok = int(self.depth_to_token(p[2], camera))
        return self._list([str(int(n[0])), str(int(n[1])), str(tok)])

    def box3d_code(self, box_optical: Box3D, camera: CameraIntrinsics) -> Box3DCode:
        """Box in the camera optical frame (centre z > 0) -> its (unformatted) code."""
        uv = _pinhole(box_optical.center, camera)
        n = self.pixels_to_norm(uv, camera.width, camera.height)
        tok = int(self.depth_to_token(box_optical.center[2], camera))
        angles = self.angles_from_rotation(box_optical.rotation)
        l, w, h = (float(v) for v in box_optical.size)  # noqa: E741
        return Box3DCode(float(n[0]), float(n[1]), tok, l, w, h, angles)

    def format_box3d(self, code: Box3DCode) -> str:
        """Box3DCode -> ``[x, y, z, w, h, l, r1, r2, r3]`` (or ``[..., l, yaw]``)."""
        d = self.config.size_decimals
        parts = [str(int(round(code.x))), str(int(round(code.y))), str(int(code.z_token))]
        parts += [self._fmt(code.w, d), self._fmt(code.h, d), self._fmt(code.l, d)]
        if self.config.rotation == "euler":
            parts += [self._angle_out(a) for a in code.angles]
        else:
            parts.append(self._angle_out(code.angles[2]))
        return self._list(parts)

    def encode_box3d(self, box_optical: Box3D, camera: CameraIntrinsics) -> str:
        """Box in the camera optical frame -> Cube-LLM 3D box text (depth clamped to the
        codec's range; check ``depth_in_range`` to drop such annotations instead).

        Raises:
            DataError: the box centre is behind the camera (z <= 0).
        """
        return self.format_box3d(self.box3d_code(box_optical, camera))

    # -- parsing (text -> typed code, never raises) -----------------------------------------

    def _coord(self, v: float, name: str) -> float | str:
        m, s = self.config.coord_max, self.config.coord_slack
        if v < -s or v > m + s:
            return f"out of range: {name}={v:g} outside 0..{m}"
        return min(max(v, 0.0), float(m))

    def _token(self, v: float) -> int | str:
        if v != int(v):
            return f"bad depth token: z={v:g} is not an integer"
        if not 0 <= v <= self.config.depth_bins:
            return f"out of range: depth token {v:g} outside 0..{self.config.depth_bins}"
        return int(v)

    def _size(self, v: float, name: str) -> float | str:
        if not 0 < v <= self.config.max_size:
            return f"bad size: {name}={v:g} not in (0, {self.config.max_size:g}] m"
        return v

    def parse_point2d(self, text: str) -> ParseResult[Point2DCode] | ParseFailure:
        def val(v):
            x, y = self._coord(v[0], "x"), self._coord(v[1], "y")
            for r in (x, y):
                if isinstance(r, str):
                    return r
            return Point2DCode(x, y)

        return _scan(text, (2,), val)

    def parse_box2d(self, text: str) -> ParseResult[Box2DCode] | ParseFailure:
        def val(v):
            cs = [self._coord(a, n) for a, n in zip(v, ("x1", "y1", "x2", "y2"), strict=True)]
            for r in cs:
                if isinstance(r, str):
                    return r
            x1, x2 = sorted((cs[0], cs[2]))
            y1, y2 = sorted((cs[1], cs[3]))
            if x2 - x1 <= 0 or y2 - y1 <= 0:
                return f"degenerate box: zero width or height {[int(a) for a in cs]}"
            return Box2DCode(x1, y1, x2, y2)

        return _scan(text, (4,), val)

    def parse_depth(self, text: str) -> ParseResult[DepthCode] | ParseFailure:
        def val(v):
            t = self._token(v[0])
            return t if isinstance(t, str) else DepthCode(t)

        return _scan(text, (1,), val)

    def parse_point3d(self, text: str) -> ParseResult[Point3DCode] | ParseFailure:
        def val(v):
            x, y, t = self._coord(v[0], "x"), self._coord(v[1], "y"), self._token(v[2])
            for r in (x, y, t):
                if isinstance(r, str):
                    return r
            return Point3DCode(x, y, t)

        return _scan(text, (3,), val)

    def parse_box3d(self, text: str) -> ParseResult[Box3DCode] | ParseFailure:
        """Parse ``[x, y, z, w, h, l, r1, r2, r3]`` (9 values) or ``[..., l, yaw]`` (7 values);
        both arities are accepted whatever ``config.rotation`` is."""

        def val(v):
            x, y, t = self._coord(v[0], "x"), self._coord(v[1], "y"), self._token(v[2])
            w, h, l = self._size(v[3], "w"), self._size(v[4], "h"), self._size(v[5], "l")  # noqa: E741
            for r in (x, y, t, w, h, l):
                if isinstance(r, str):
                    return r
            if len(v) == 9:
                angles = tuple(self._angle_in(a) for a in v[6:9])
            else:
                angles = (0.0, 0.0, self._angle_in(v[6]))
            lim = 2 * math.pi + 1e-6
            if any(abs(a) > lim for a in angles):
                unit = self.config.angle_unit
                return f"out of range: angle(s) {list(v[6:])} beyond one turn ({unit})"
            return Box3DCode(x, y, t, l, w, h, angles)

        return _scan(text, (9, 7), val)

    def parse_any(self, text: str) -> ParseResult | ParseFailure:
        """Parse whichever answer kind the text holds (3D box, 2D box, 3D point, 2D point,
        depth — tried in that order of arity)."""
        for fn in (self.parse_box3d, self.parse_box2d, self.parse_point3d, self.parse_point2d):
            r = fn(text)
            if r.ok:
                return r
        return self.parse_depth(text)


# ----------------------------------------------------------------------------------------------
# 3D-LLM-style location tokens
# ----------------------------------------------------------------------------------------------


def loc_vocabulary(n: int = 1000) -> list[str]:
    """The location tokens ``<loc_0> .. <loc_{n-1}>`` (to add to a tokenizer's vocabulary)."""
    return [f"<loc_{i}>" for i in range(n)]


def to_loc_tokens(values) -> str:
    """Integers -> ``<loc_a><loc_b>...``."""
    return "".join(f"<loc_{int(v)}>" for v in values)


def parse_loc_tokens(
    text: str, count: int, n: int = 1000
) -> ParseResult[tuple[int, ...]] | ParseFailure:
    """The first ``count`` location tokens of ``text``. Never raises."""
    if not isinstance(text, str):
        return ParseFailure(f"not text: got {type(text).__name__}", "")
    ms = list(_LOC.finditer(text[:_MAX_TEXT]))
    if len(ms) < count:
        return ParseFailure(f"too few location tokens: expected {count}, found {len(ms)}", text)
    vals = tuple(int(m.group(1)) for m in ms[:count])
    if any(v >= n for v in vals):
        return ParseFailure(f"out of range: location token(s) {vals} outside 0..{n - 1}", text)
    return ParseResult(vals, (ms[0].start(), ms[count - 1].end()))


def _pinhole(p: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """(3,) optical-frame point -> (2,) pixel, with distortion when the camera has any.
    Raises DataError for points behind the camera (they have no image answer)."""
    from spatial_ros.geometry.camera import project_points

    p = np.asarray(p, dtype=np.float64).reshape(1, 3)
    if not p[0, 2] > 0:
        raise DataError(f"cannot encode a point behind the camera (z = {p[0, 2]:.3f} m)")
    return project_points(p, camera)[0][0]
