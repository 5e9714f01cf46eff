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

from spatial_ros.language.bands import band_colours, ground_beside
from spatial_ros.language.categories import shape_score
from spatial_ros.language.surface import (
    MOVERS,
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
    depth = [float(np.linalg.norm(v.box_optical.center)) for v in listed]
    P_opt = [candidate_points_optical(v) for v in listed]
    P_up = [None if P is None else P @ T[:3, :3].T + T[:3, 3] for P in P_opt]
    boxes = [v.box_optical.transformed(T, name) for v in listed]
    kinds = [_cue_kind(v, b, P) for v, b, P in zip(listed, boxes, P_opt, strict=True)]
    roads = [road_clearance(Pz, scene, T[:3, 3]) if k == "vehicle" else None
             for k, Pz in zip(kinds, P_up, strict=True)]
    road_z = _road_heights(kinds, roads, P_up, boxes, scene)
    views = []
    for j, (v, col) in enumerate(zip(listed, colours, strict=True)):
        movers = _movers(listed, P_up, j) if kinds[j] == "standalone" else ()
        occluders = [] if road_z[j] is None else [  # nearer candidates hide the body
            w.box_2d for w, d in zip(listed, depth, strict=True)
            if w.box_2d is not None and d < depth[j] - 1.0]
        bands, light = band_colours(frame, P_opt[j], T, road_z[j], occluders)
        views.append(ObjectView(
            box=boxes[j],
            center_optical=np.asarray(v.box_optical.center, dtype=np.float64),
            colours=dict(col),
            label=v.candidate.label or "",
            points=P_up[j],
            in_view=in_view_share(v, frame.camera),
            score=float(v.candidate.score),
            colour_bands=bands,
            lightness=light,
            surface=surface_evidence(frame, kinds[j], P_opt[j], P_up[j], scene, T[:3, 3],
                                     roads[j], movers),
        ))
    return views, Viewpoint.from_camera_pose(T)


def _road_heights(kinds, roads, P_up, boxes, scene) -> list[float | None]:
    """The ground's height (z-up frame, metres) under each vehicle candidate: beside it
    (``bands.ground_beside``), else on its line of sight (``road_clearance``), else the median
    of the others' (a car 4 m away cut by the image border shows its sill as its lowest
    return), else the bottom of its box; None for other candidates."""
    by_x = None  # the scan sorted by x, once per frame and only when a vehicle needs it
    if scene is not None and "vehicle" in kinds:
        by_x = scene[np.argsort(scene[:, 0], kind="stable")]
    own = []
    for k, r, Pz, b in zip(kinds, roads, P_up, boxes, strict=True):
        z = ground_beside(b, by_x) if k == "vehicle" else None
        if z is None and r is not None and Pz is not None:
            z = float(Pz[:, 2].min()) - r[0]
        own.append(z)
    known = [z for z in own if z is not None]
    shared = float(np.median(known)) if known else None
    out: list[float | None] = []
    for k, z, b in zip(kinds, own, boxes, strict=True):
        if k != "vehicle":
            out.append(None)
        elif z is not None:
            out.append(z)
        else:
            out.append(shared if shared is not None else float(b.center[2] - b.size[2] / 2))
    return out


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


def _cue_kind(v: CandidateView, box_zup, P_opt) -> str | None:
    """Which cues a candidate gets: "vehicle" (labelled one, or unlabelled and sized like
    one), "standalone" (poles: crowding only) or None (others, and fewer than 5 points)."""
    if P_opt is None or len(P_opt) < 5:
        return None
    label = (v.candidate.label or "").lower()
    if label in STANDALONE or (not label and max(
            shape_score(c, box_zup) for c in STANDALONE) >= 0.5):
        return "standalone"
    if label and label not in VEHICLES:
        return None
    if not label and max(shape_score(c, box_zup) for c in VEHICLES) < 0.5:
        return None
    return "vehicle"


def _movers(listed: Sequence[CandidateView], P_up, j: int) -> list[np.ndarray]:
    """The z-up points of the candidates other than ``j`` labelled as people or vehicles."""
    return [P for k, (v, P) in enumerate(zip(listed, P_up, strict=True))
            if k != j and P is not None and (v.candidate.label or "").lower() in MOVERS]


def surface_evidence(frame: SensorFrame, kind: str | None, P_opt, P_zup, scene, origin,
                     road: tuple[float, float] | None,
                     movers: Sequence[np.ndarray] = ()) -> SurfaceEvidence | None:
    """The cues (``language.surface``) of a candidate of cue ``kind`` (``_cue_kind``); None
    for others. Points: ``P_opt`` in the optical frame, ``P_zup``, the whole ``scene`` and
    ``movers`` (other candidates' points that ``crowding`` does not count) in the z-up frame,
    where the camera is at ``origin``; ``road``: ``road_clearance``."""
    from spatial_ros.geometry.camera import project_points

    if kind == "standalone":
        return SurfaceEvidence(crowding=crowding(P_zup, scene, movers=movers))
    if kind != "vehicle":
        return None
    uv, front = project_points(P_opt, frame.camera)
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
