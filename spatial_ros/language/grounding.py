"""The bridge between the engine's listed candidates and the referring-expression program.

Builds one :class:`~spatial_ros.language.program.ObjectView` per listed candidate (its box in
a gravity-aligned z-up frame, its centre in the camera optical frame, the colours of its own
pixels, its specialist label and points), the camera :class:`Viewpoint` in that frame, and a
name scorer that asks the VLM to score every listed tag as the answer to a canonical phrase
(once per distinct phrase and frame).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from spatial_ros.language.categories import shape_score
from spatial_ros.language.surface import (
    STANDALONE,
    VEHICLES,
    SurfaceEvidence,
    crowding,
    flat_wall,
    road_clearance,
    surface_scatter,
    vegetation_share,
)
from spatial_ros.language.views import ObjectView
from spatial_ros.spatial.predicates import Viewpoint
from spatial_ros.types import SensorFrame
from spatial_ros.vlm.appearance import object_colours
from spatial_ros.vlm.lifting import CandidateView

log = logging.getLogger(__name__)


def candidate_points_optical(v: CandidateView) -> np.ndarray | None:
    """The candidate's points in the camera optical frame (metres), or None."""
    c = v.candidate
    if c.points is None or not len(c.points):
        return None
    P = np.asarray(c.points, dtype=np.float64)[:, :3]
    return P @ v.T_cam_from_cand[:3, :3].T + v.T_cam_from_cand[:3, 3]


def view_colours(frame: SensorFrame, listed: Sequence[CandidateView]) -> list[dict[str, float]]:
    """The colour distribution of each listed candidate's own pixels (``object_colours``)."""
    return [object_colours(frame.image, frame.camera, v.box_optical, v.box_2d,
                           candidate_points_optical(v), frame.depth) for v in listed]


# Height bands (fractions of the box height, from its bottom) where a category's colour is seen:
# a car's paint is below the windows, a person's clothes colour ("the pedestrian in blue") is
# the torso. Others: the whole object.
BANDS = {"body": (0.1, 0.5), "torso": (0.45, 0.85)}
BAND_OF = {"car": "body", "van": "body", "truck": "body", "pedestrian": "torso",
           "cyclist": "torso"}


def band_colours(frame: SensorFrame, v: CandidateView, T_zup_from_opt: np.ndarray,
                 ) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """What the candidate's points see in each height band of ``BANDS``: (band -> term ->
    share of the colour terms, band -> lightness of the achromatic pixels); bands with too few
    points are left out. The lightness of all its points is under "all"."""
    from spatial_ros.geometry.camera import project_points
    from spatial_ros.vlm.appearance import achromatic_lightness, sample_pixels, term_shares

    P = candidate_points_optical(v)
    if P is None or len(P) < 8:
        return {}, {}
    uv, front = project_points(P, frame.camera)
    light = {}
    whole = achromatic_lightness(sample_pixels(frame.image, uv[front]))
    if whole is not None:
        light["all"] = whole
    z = P @ T_zup_from_opt[2, :3] + T_zup_from_opt[2, 3]
    lo, hi = float(z.min()), float(z.max())
    out = {}
    for name, (a, b) in BANDS.items():
        sel = front & (z >= lo + a * (hi - lo)) & (z <= lo + b * (hi - lo))
        if sel.sum() >= 5:
            rgb = sample_pixels(frame.image, uv[sel])  # once for the terms and the lightness
            got = term_shares(rgb)
            if got:
                out[name] = got
            lit = achromatic_lightness(rgb)
            if lit is not None:
                light[name] = lit
    return out, light


def zup_frame(frame: SensorFrame, listed: Sequence[CandidateView]) -> tuple[str, np.ndarray]:
    """A gravity-aligned frame to evaluate relations in — the candidates' own (specialists
    output z-up boxes) — and T_zup_from_optical (4x4)."""
    cam = frame.camera.frame_id
    name = listed[0].candidate.box.frame_id if listed else ""
    if name and name != cam:
        return name, np.linalg.inv(listed[0].T_cam_from_cand)
    if frame.transforms is not None:
        for cand in ("base_link", frame.points_frame or ""):
            if cand:
                try:
                    return cand, frame.transforms.lookup(cand, cam)
                except Exception:  # noqa: BLE001 - frame not connected: try the next
                    continue
    # no z-up frame known: the optical frame rotated so that -y (image up) is z
    R = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    T = np.eye(4)
    T[:3, :3] = R
    return "camera_level", T


def object_views(frame: SensorFrame, listed: Sequence[CandidateView],
                 colours: Sequence[dict[str, float]]) -> tuple[list[ObjectView], Viewpoint]:
    """ObjectViews of the listed candidates and the camera viewpoint, both in the z-up frame."""
    name, T = zup_frame(frame, listed)
    scene = _scene_points(frame, name, T)
    views = []
    for v, col in zip(listed, colours, strict=True):
        P = candidate_points_optical(v)
        P_zup = None if P is None else P @ T[:3, :3].T + T[:3, 3]
        box = v.box_optical.transformed(T, name)
        bands, light = band_colours(frame, v, T)
        views.append(ObjectView(
            box=box,
            center_optical=np.asarray(v.box_optical.center, dtype=np.float64),
            colours=dict(col),
            label=v.candidate.label or "",
            points=P_zup,
            in_view=in_view_share(v, frame.camera),
            score=float(v.candidate.score),
            colour_bands=bands,
            lightness=light,
            surface=surface_evidence(frame, v, box, P, P_zup, scene, T[:3, 3]),
        ))
    return views, Viewpoint.from_camera_pose(T)


def _scene_points(frame: SensorFrame, zup: str, T_zup_from_opt: np.ndarray,
                  behind_m: float = 2.0) -> np.ndarray | None:
    """The frame's scan in the z-up frame ``zup`` ((N, 3) metres), without the points more
    than ``behind_m`` behind the camera (a 360-degree scan is two thirds behind it; the cues
    only look at the road and surroundings of objects in view); None without a scan."""
    if frame.points is None or not len(frame.points):
        return None
    P = np.asarray(frame.points[:, :3], dtype=np.float64)
    src = frame.points_frame or ""
    if src != zup:
        try:
            T = frame.transforms.lookup(zup, src)
        except Exception:  # noqa: BLE001 - frames not connected: no road cue
            return None
        P = P @ T[:3, :3].T + T[:3, 3]
    forward = (P - T_zup_from_opt[:3, 3]) @ T_zup_from_opt[:3, 2]  # optical z in the z-up frame
    return P[forward > -behind_m]


def surface_evidence(frame: SensorFrame, v: CandidateView, box_zup, P_opt, P_zup, scene,
                     origin) -> SurfaceEvidence | None:
    """The cues (``language.surface``) of a candidate the specialist labelled a vehicle (or a
    pole: crowding only) or whose z-up box (``box_zup``) is sized like one; None for others
    and for candidates without points. Points: ``P_opt`` in the optical frame, ``P_zup`` and
    the whole ``scene`` in the z-up frame, where the camera is at ``origin``."""
    from spatial_ros.geometry.camera import project_points

    if P_opt is None or len(P_opt) < 5:
        return None
    label = (v.candidate.label or "").lower()
    if label in STANDALONE or (not label and max(
            shape_score(c, box_zup) for c in STANDALONE) >= 0.5):
        return SurfaceEvidence(crowding=crowding(P_zup, scene))
    if label and label not in VEHICLES:
        return None
    if not label and max(shape_score(c, box_zup) for c in VEHICLES) < 0.5:
        return None
    uv, front = project_points(P_opt, frame.camera)
    road = road_clearance(P_zup, scene, origin)
    return SurfaceEvidence(vegetation=vegetation_share(frame.image, uv[front]),
                           scatter=surface_scatter(P_zup),
                           clearance=None if road is None else road[0],
                           top=None if road is None else road[1],
                           wall=flat_wall(P_zup, origin))


def in_view_share(v: CandidateView, camera) -> float:
    """Share of the candidate's projected 2D box (not clipped) inside the image, [0, 1]."""
    from spatial_ros.geometry.camera import project_box

    b = project_box(v.box_optical, camera, clip=False)
    if b is None:
        return 0.0
    area = max((b[2] - b[0]) * (b[3] - b[1]), 1e-9)
    w = max(0.0, min(b[2], camera.width - 1) - max(b[0], 0.0))
    h = max(0.0, min(b[3], camera.height - 1) - max(b[1], 0.0))
    return float(min(1.0, w * h / area))


def tag_scorer(score: Callable[[str], list[float] | None]) -> Callable[[str], np.ndarray | None]:
    """Wraps ``score(phrase) -> log-probabilities of each listed tag`` into relative scores
    in (0, 1] (p / max p), None when the backend cannot score."""

    def rel(phrase: str) -> np.ndarray | None:
        try:
            lp = score(phrase)
        except NotImplementedError:
            return None
        if lp is None or not len(lp):
            return None
        a = np.asarray(lp, dtype=np.float64)
        if np.isnan(a).any() or not np.isfinite(a).any():
            return None
        return np.exp(a - a[np.isfinite(a)].max())  # -inf (not scorable) -> 0

    return rel
