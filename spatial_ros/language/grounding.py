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

from spatial_ros.language.program import ObjectView
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
    views = []
    for v, col in zip(listed, colours, strict=True):
        P = candidate_points_optical(v)
        views.append(ObjectView(
            box=v.box_optical.transformed(T, name),
            center_optical=np.asarray(v.box_optical.center, dtype=np.float64),
            colours=dict(col),
            label=v.candidate.label or "",
            points=None if P is None else P @ T[:3, :3].T + T[:3, 3],
        ))
    return views, Viewpoint.from_camera_pose(T)


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
        if not np.all(np.isfinite(a)):
            return None
        return np.exp(a - a.max())

    return rel
