"""Frames with exact 3D truth for training data: simulated scenes and real RGB-D / LiDAR frames.

Every source yields :class:`TrainingFrame` objects: an image, its camera, the objects (caption +
3D box in the camera optical frame and in a gravity-aligned z-up frame) and, optionally, the
boxes a specialist proposed on the same frame (with their real errors).

- Simulated tabletop / street scenes (``spatial_ros.sim``): exact truth; a new scene and camera
  rig per seed. A share of frames also gets a LiDAR scan and the LiDAR specialist's boxes.
- KITTI-format frames: boxes from ``label_2`` (exact), gravity frame = the Velodyne frame.
- SUN RGB-D-format frames: SpatialVLM's lifting path — depth -> metric points -> horizontal
  surface (gravity alignment from the dominant horizontal plane) -> per-object clouds inside the
  labelled 2D boxes -> 3D boxes (``DepthSpecialist``); captions are the class names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spatial_ros.types import Box3D, CameraIntrinsics

log = logging.getLogger(__name__)

BASE = "base_link"


@dataclass(eq=False)
class TrainingObject:
    """One object of a training frame.

    Attributes:
        caption: referring caption ("the red mug").
        box_optical: 3D box in the camera optical frame (metres).
        box_base: the same box in the gravity-aligned z-up frame (metres).
        box_2d: (4,) x1, y1, x2, y2 pixels of the projected 3D box, clipped to the image.
        visible: visible fraction in [0, 1] (1 when unknown).
        points_optical: (N, 3) the object's own LiDAR / depth points in the optical frame
            (metres), or None (its colour is then read through the frame's depth image).
        id: the simulator's object id ("" for real frames).
    """

    caption: str
    box_optical: Box3D
    box_base: Box3D
    box_2d: np.ndarray
    visible: float = 1.0
    points_optical: np.ndarray | None = None
    id: str = ""


@dataclass(eq=False)
class TrainingFrame:
    """One image with its truth.

    Attributes:
        source: "sim-tabletop", "sim-street", "kitti" or "sunrgbd".
        key: unique, stable id of the frame (seed / file based).
        image: (H, W, 3) uint8 RGB.
        camera: intrinsics (optical frame).
        objects: objects that are in view.
        T_base_from_optical: 4x4, gravity-aligned z-up frame from the optical frame.
        specialist_boxes: boxes (optical frame) a specialist proposed on this frame, or None.
        specialist_points: each specialist box's cluster points (optical frame, metres), or
            None.
        depth: (H, W) metres aligned with the image (NaN = no return) as the camera publishes
            it, or None.
        truth: every object in view (``training.refqueries.TruthObject``: id, category,
            colour, z-up box; less visible ones included) for referring-expression queries,
            or None (real frames).
        right_axis: the camera's horizontal right axis in the z-up frame (with ``truth``).
    """

    source: str
    key: str
    image: np.ndarray
    camera: CameraIntrinsics
    objects: list[TrainingObject]
    T_base_from_optical: np.ndarray
    specialist_boxes: list[Box3D] | None = None
    specialist_points: list[np.ndarray | None] | None = None
    depth: np.ndarray | None = None
    truth: list | None = None
    right_axis: np.ndarray | None = None
    _colours: dict = field(default_factory=dict, repr=False)

    def colours(self, box: Box3D) -> dict[str, float]:
        """The colour distribution of a listed box's own pixels, read as the engine reads a
        candidate's (``vlm.appearance.object_colours``: its points, else the depth pixels
        inside the box, else the centre of its 2D box). ``box`` must be one of this frame's
        objects' ``box_optical`` or one of its ``specialist_boxes`` (its points are looked up
        by identity); cached per box."""
        from spatial_ros.vlm.appearance import object_colours
        from spatial_ros.vlm.lifting import project_box

        key = id(box)
        if key not in self._colours:
            self._colours[key] = object_colours(
                self.image, self.camera, box, project_box(box, self.camera),
                self._points_of(box), self.depth)
        return self._colours[key]

    def _points_of(self, box: Box3D) -> np.ndarray | None:
        for o in self.objects:
            if o.box_optical is box:
                return o.points_optical
        for b, P in zip(self.specialist_boxes or [], self.specialist_points or [],
                        strict=False):
            if b is box:
                return P
        return None


def sim_frame(
    seed: int, scenario: str = "tabletop", specialists: bool = False, min_visible: float = 0.3
) -> TrainingFrame:
    """Render one simulated frame of a fresh scene (new rig per seed) with its truth.

    Args:
        seed: scene seed (the same seed gives the same frame).
        scenario: "tabletop" or "street".
        specialists: also take a LiDAR scan and keep the LiDAR specialist's boxes.
        min_visible: objects less visible than this are not listed as objects (they still
            appear in the image and among the specialist's boxes).
    """
    from spatial_ros.sim import SimConfig
    from spatial_ros.sim.world import make_episode, render
    from spatial_ros.specialists import LidarSpecialist, LidarSpecialistConfig
    from training.refqueries import sim_truth_objects

    cfg = SimConfig(scenario=scenario, seed=int(seed), vary_rig=True)
    ep = make_episode(cfg, 0)
    f = render(ep.scene, seed=int(seed), lidar=specialists)
    sf = f.sensor_frame()
    T_opt_from_base = sf.transforms.lookup(sf.camera.frame_id, BASE)
    T_base_from_opt = np.linalg.inv(T_opt_from_base)
    objs = []
    for o in f.truth.objects:
        if o.box_2d is None or o.visible_fraction < min_visible:
            continue
        objs.append(
            TrainingObject(
                o.caption,
                o.box.transformed(T_opt_from_base, sf.camera.frame_id),
                o.box,
                np.asarray(o.box_2d, float),
                float(o.visible_fraction),
                id=o.id,
            )
        )
    spec = spec_points = None
    if specialists:
        lidar = LidarSpecialist(LidarSpecialistConfig.preset(scenario))
        cands = lidar.propose_frame(sf, BASE)
        spec, spec_points = [], []
        for c in cands:
            T = sf.transforms.lookup(sf.camera.frame_id, c.box.frame_id)
            spec.append(c.box.transformed(T, sf.camera.frame_id))
            spec_points.append(None if c.points is None or not len(c.points) else
                               np.asarray(c.points, float)[:, :3] @ T[:3, :3].T + T[:3, 3])
    truth, right = sim_truth_objects(f, T_opt_from_base)
    return TrainingFrame(f"sim-{scenario}", f"sim-{scenario}-{seed}", f.image, sf.camera, objs,
                         T_base_from_opt, spec, spec_points, sf.depth, truth, right)


def _clip_box(b2: np.ndarray | None, cam: CameraIntrinsics) -> np.ndarray | None:
    if b2 is None:
        return None
    b = np.asarray(b2, float).copy()
    b[[0, 2]] = np.clip(b[[0, 2]], 0, cam.width - 1)
    b[[1, 3]] = np.clip(b[[1, 3]], 0, cam.height - 1)
    return b if (b[2] - b[0]) >= 2 and (b[3] - b[1]) >= 2 else None


def kitti_frames(root: str | Path) -> Iterator[TrainingFrame]:
    """KITTI-format frames under ``root`` (labels required; DontCare skipped)."""
    from spatial_ros.datasets.kitti import iter_kitti_frames
    from spatial_ros.vlm.lifting import project_box

    for kf in iter_kitti_frames(root):
        if not kf.labels:
            continue
        sf = kf.sensor_frame()
        cam = sf.camera
        velo = sf.points_frame
        T_opt_from_velo = sf.transforms.lookup(cam.frame_id, velo)
        scan = None if sf.points is None else np.asarray(sf.points, float)[:, :3]
        objs = []
        for lab in kf.labels:
            if lab.is_dontcare or lab.box is None:
                continue
            box_velo = lab.box
            box_opt = box_velo.transformed(T_opt_from_velo, cam.frame_id)
            b2 = _clip_box(project_box(box_opt, cam), cam)
            if b2 is None or box_opt.center[2] <= 0:
                continue
            # the object's own LiDAR returns (its colour is read where they land, as the
            # engine reads a LiDAR candidate's)
            pts = None
            if scan is not None:
                inside = scan[box_velo.contains(scan)]
                if len(inside):
                    pts = inside @ T_opt_from_velo[:3, :3].T + T_opt_from_velo[:3, 3]
            objs.append(TrainingObject(f"the {lab.type.lower()}", box_opt, box_velo, b2,
                                       points_optical=pts))
        if objs:
            yield TrainingFrame("kitti", f"kitti-{kf.frame_id}", kf.image, cam, objs,
                                np.linalg.inv(T_opt_from_velo))


def sunrgbd_frames(root: str | Path) -> Iterator[TrainingFrame]:
    """SUN RGB-D-format frame folders under ``root``, lifted from depth (SpatialVLM path)."""
    from spatial_ros.datasets.sunrgbd import load_sunrgbd_frame, project_upright_points
    from spatial_ros.specialists import DepthSpecialist
    from spatial_ros.vlm.lifting import project_box

    root = Path(root)
    dirs = [root] if (root / "label.txt").exists() else sorted(
        p for p in root.iterdir() if (p / "label.txt").exists())
    for d in dirs:
        fr = load_sunrgbd_frame(d)
        cam = fr.intrinsics
        labels = list(fr.labels)
        if not labels:
            continue
        uv, _ = project_upright_points(fr.points, fr)
        # Gravity is NOT given: the specialist finds the horizontal surfaces, aligns the cloud
        # to them, cuts each labelled 2D region's cloud and fits its box (boxes stay in the
        # points' frame, which is then re-expressed in the camera and the gravity frame).
        cands = DepthSpecialist().propose_points(
            fr.points[:, :3], pixels=uv, camera=cam, T_cam_from_points=fr.T_cam_from_upright,
            boxes_2d=np.array([lab.box_2d for lab in labels]),
            labels=[lab.classname for lab in labels], frame_id="upright",
        )
        objs = []
        for c in cands:
            box_opt = c.box.transformed(fr.T_cam_from_upright, cam.frame_id)
            b2 = _clip_box(project_box(box_opt, cam), cam)
            if b2 is None or box_opt.center[2] <= 0:
                continue
            name = (c.label or "object").replace("_", " ")
            T = fr.T_cam_from_upright
            pts = None if c.points is None or not len(c.points) else \
                np.asarray(c.points, float)[:, :3] @ T[:3, :3].T + T[:3, 3]
            objs.append(TrainingObject(f"the {name}", box_opt, c.box, b2, points_optical=pts))
        if objs:
            yield TrainingFrame("sunrgbd", f"sunrgbd-{fr.frame_id}", fr.image, cam, objs,
                                np.linalg.inv(fr.T_cam_from_upright))
