"""Exact per-frame ground truth of the simulated world.

For every object of a camera frame: its 3D box in base_link (exact: the mesh's own bounding box
at its pose), the 2D box of that 3D box's projection (``geometry.camera.project_box``, clipped to
the image), the tight 2D box of its visible pixels, visibility (visible pixels / pixels it would
cover if nothing occluded it), truncation by the image border, LiDAR returns, distance from the
camera. Written as the shared box-file format (``truth.jsonl``) plus ``truth_detail.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from spatial_ros.boxfile import BoxFrame, BoxRecord
from spatial_ros.geometry.camera import project_box
from spatial_ros.geometry.transforms import invert
from spatial_ros.sim.raycast import CameraImage, LidarScan, RayWorld, footprint_pixels
from spatial_ros.sim.scene import BASE_FRAME, OPTICAL_FRAME, Scene
from spatial_ros.sim.trajectory import TrajectoryState
from spatial_ros.types import Box3D


def _r(x: float, nd: int = 6) -> float:
    return round(float(x), nd)


def _box2(b: np.ndarray | None) -> list[float] | None:
    return None if b is None else [_r(v, 3) for v in b]


@dataclass(eq=False)
class ObjectTruth:
    """Ground truth of one object in one camera frame.

    Attributes:
        id, category, colour, caption: identity ("mug_0", "mug", "red", "the red mug").
        rgb: colour as sRGB 0..255.
        box: 3D box in base_link (metres, yaw about +z).
        box_2d: (4,) x1, y1, x2, y2 pixels of the 3D box's projection clipped to the image, or
            None when it is entirely outside the image or behind the camera.
        box_2d_visible: (4,) tight box of the object's visible pixels (pixel centres), or None.
        visible_pixels: pixels showing the object.
        footprint_pixels: pixels it would cover in this image with nothing in front of it.
        visible_fraction: visible_pixels / footprint_pixels (0 when out of view).
        truncation: 1 - area(clipped box_2d) / area(unclipped projection), in [0, 1].
        lidar_points: returns on the object in the frame's scan, or None (no scan at this frame).
        distance: camera optical centre to box centre (metres).
        ambiguous_with: ids of other objects with the same caption.
    """

    id: str
    category: str
    colour: str
    rgb: tuple[int, int, int]
    caption: str
    box: Box3D
    box_2d: np.ndarray | None
    box_2d_visible: np.ndarray | None
    visible_pixels: int
    footprint_pixels: int
    visible_fraction: float
    truncation: float
    lidar_points: int | None
    distance: float
    ambiguous_with: list[str]

    @property
    def occlusion(self) -> float:
        """1 - visible_fraction (occluded share of the in-image footprint)."""
        return 1.0 - self.visible_fraction if self.footprint_pixels else 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "colour": self.colour,
            "rgb": list(self.rgb),
            "caption": self.caption,
            "box": {
                "frame_id": self.box.frame_id,
                "center": [_r(v) for v in self.box.center],
                "size": [_r(v) for v in self.box.size],
                "yaw": _r(self.box.yaw),
            },
            "box_2d": _box2(self.box_2d),
            "box_2d_visible": _box2(self.box_2d_visible),
            "visible_pixels": int(self.visible_pixels),
            "footprint_pixels": int(self.footprint_pixels),
            "visible_fraction": _r(self.visible_fraction, 4),
            "occlusion": _r(self.occlusion, 4),
            "truncation": _r(self.truncation, 4),
            "lidar_points": None if self.lidar_points is None else int(self.lidar_points),
            "distance": _r(self.distance),
            "ambiguous_with": list(self.ambiguous_with),
        }


@dataclass(eq=False)
class FrameTruth:
    """Ground truth of one camera frame (boxes in base_link)."""

    index: int
    stamp_ns: int
    episode: int
    scene_seed: int
    objects: list[ObjectTruth]
    lidar_stamp_ns: int | None = None
    trajectory: TrajectoryState | None = None

    def box_frame(self) -> BoxFrame:
        """This frame in the shared box-file format (every object, with visibility extras)."""
        recs = [
            BoxRecord(
                o.id,
                o.category,
                o.box,
                o.caption,
                1.0,
                {
                    "colour": o.colour,
                    "visible_fraction": _r(o.visible_fraction, 4),
                    "visible_pixels": int(o.visible_pixels),
                    "box_2d": _box2(o.box_2d),
                },
            )
            for o in self.objects
        ]
        return BoxFrame(
            self.stamp_ns, BASE_FRAME, recs, {"frame_index": self.index, "episode": self.episode}
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "stamp_ns": int(self.stamp_ns),
            "episode": self.episode,
            "scene_seed": self.scene_seed,
            "frame_id": BASE_FRAME,
            "lidar_stamp_ns": self.lidar_stamp_ns,
            "objects": [o.to_json() for o in self.objects],
            "trajectory": None if self.trajectory is None else self.trajectory.to_json(),
        }

    def get(self, object_id: str) -> ObjectTruth:
        return next(o for o in self.objects if o.id == object_id)


def compute_truth(
    scene: Scene,
    world: RayWorld,
    cam: CameraImage,
    scan: LidarScan | None,
    *,
    index: int,
    stamp_ns: int,
    episode: int = 0,
    lidar_stamp_ns: int | None = None,
    trajectory: TrajectoryState | None = None,
) -> FrameTruth:
    """Ground truth of a rendered frame (``scene`` = the state that was rendered)."""
    rig = scene.rig
    intr = rig.intrinsics
    T_opt_from_base = invert(rig.T_base_from_optical)
    cam_origin = rig.T_base_from_optical[:3, 3]
    n = len(scene.objects)
    boxes_2d, trunc = [], []
    for o in scene.objects:
        b_opt = o.box.transformed(T_opt_from_base, OPTICAL_FRAME)
        clipped = project_box(b_opt, intr)
        full = project_box(b_opt, intr, clip=False) if clipped is not None else None
        boxes_2d.append(clipped)
        if clipped is None:
            trunc.append(1.0)
        else:
            a_full = max((full[2] - full[0]) * (full[3] - full[1]), 1e-12)
            a_clip = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1])
            trunc.append(float(np.clip(1.0 - a_clip / a_full, 0.0, 1.0)))
    inst = cam.instance
    vis = np.bincount(inst.ravel() + 1, minlength=n + 1)[1:]
    # list_intersections and cast_rays may disagree on a grazing ray; never report vis > foot
    foot = np.maximum(footprint_pixels(world, inst, boxes_2d), vis)
    # tight box of visible pixels per object (vectorised: min/max of row/col per label)
    vis_boxes: list[np.ndarray | None] = [None] * n
    if vis.any():
        vv, uu = np.nonzero(inst >= 0)
        lab = inst[vv, uu]
        big = np.iinfo(np.int64).max
        x1 = np.full(n, big)
        y1 = np.full(n, big)
        x2 = np.full(n, -1)
        y2 = np.full(n, -1)
        np.minimum.at(x1, lab, uu)
        np.minimum.at(y1, lab, vv)
        np.maximum.at(x2, lab, uu)
        np.maximum.at(y2, lab, vv)
        for i in np.flatnonzero(vis):
            vis_boxes[i] = np.array([x1[i], y1[i], x2[i], y2[i]], float)
    pts = None
    if scan is not None:
        pts = np.bincount(scan.object_index + 1, minlength=n + 1)[1:]
    caps = [o.caption for o in scene.objects]
    objects = []
    for i, o in enumerate(scene.objects):
        objects.append(
            ObjectTruth(
                id=o.id,
                category=o.category,
                colour=o.colour,
                rgb=tuple(int(c) for c in o.rgb),
                caption=o.caption,
                box=o.box,
                box_2d=boxes_2d[i],
                box_2d_visible=vis_boxes[i],
                visible_pixels=int(vis[i]),
                footprint_pixels=int(foot[i]),
                visible_fraction=float(vis[i] / foot[i]) if foot[i] else 0.0,
                truncation=trunc[i],
                lidar_points=None if pts is None else int(pts[i]),
                distance=float(np.linalg.norm(o.center - cam_origin)),
                ambiguous_with=[
                    p.id for j, p in enumerate(scene.objects) if j != i and caps[j] == o.caption
                ],
            )
        )
    return FrameTruth(
        index, int(stamp_ns), episode, scene.seed, objects, lidar_stamp_ns, trajectory
    )
