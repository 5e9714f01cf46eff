"""Depth specialist: depth image (+ optional 2D boxes or masks) → gravity-aligned 3D boxes.

With 2D boxes/masks (from any detector, an ONNX model, the VLM's 2D answer…), each region is
lifted on its own: pixels of the (slightly shrunk) box or the mask → points → support-plane
points (floor/table) dropped → the foreground cluster (the connected part nearest the box
centre's mass) → statistical outlier removal → yaw-only box in a gravity-aligned frame.
Without boxes, the whole cloud is clustered like a LiDAR scan (``LidarSpecialist`` on the depth
points, ``config.clustering``).

Gravity: from ``T_base_from_camera`` when given (boxes are then in the base frame), else from
the dominant horizontal plane below the camera (``planes.gravity_alignment``; boxes are then
returned in the camera's optical frame, with the rotation that makes them yaw-only in the
upright frame).
"""

from __future__ import annotations

import logging
import time

import numpy as np
from scipy.spatial import cKDTree

from spatial_ros.errors import ConfigError, DataError
from spatial_ros.geometry.transforms import R_BODY_FROM_OPTICAL, apply, invert
from spatial_ros.specialists.boxfit import fit_box
from spatial_ros.specialists.clustering import grid_clusters
from spatial_ros.specialists.depth_config import DepthSpecialistConfig
from spatial_ros.specialists.depth_edges import edge_segments
from spatial_ros.specialists.lidar import (
    LidarSpecialist,
    SpecialistStats,
    box_to_image,
    finalize_candidates,
    support_below,
)
from spatial_ros.specialists.planes import (
    OPTICAL_UP,
    Plane,
    fit_horizontal_planes,
    fit_walls,
    gravity_alignment,
)
from spatial_ros.specialists.room import (
    complete_depth,
    extend_to_wall,
    snap_yaw,
    walls_in_frame,
)
from spatial_ros.types import CameraIntrinsics, Candidate

log = logging.getLogger(__name__)


def statistical_outliers(points: np.ndarray, k: int, std_ratio: float) -> np.ndarray:
    """(N,) bool inlier mask: mean distance to the ``k`` nearest neighbours ≤ mean + ratio·std
    over the cloud (the PCL/open3d rule, on scipy's cKDTree), but never below twice the mean:
    on a regular depth grid the spread is ~0 and the plain rule would shave off every edge."""
    n = len(points)
    if k <= 0 or n <= k + 1:
        return np.ones(n, dtype=bool)
    d, _ = cKDTree(points).query(points, k=k + 1)
    md = d[:, 1:].mean(axis=1)
    return md <= max(md.mean() + std_ratio * md.std(), 2.0 * md.mean())


class DepthSpecialist:
    """Model-free 3D boxes from depth (see the module docstring).

    Attributes:
        config: the parameters.
        last_stats: ``SpecialistStats`` of the last call (``reason`` explains an empty result).
    """

    source = "depth"

    def __init__(self, config: DepthSpecialistConfig | None = None) -> None:
        self.config = config if config is not None else DepthSpecialistConfig()
        self.last_stats = SpecialistStats()

    # -- public API ---------------------------------------------------------------------------

    def propose(
        self,
        depth_m: np.ndarray,
        camera: CameraIntrinsics,
        *,
        boxes_2d=None,
        masks=None,
        labels=None,
        scores=None,
        T_base_from_camera: np.ndarray | None = None,
        base_frame: str = "base_link",
    ) -> list[Candidate]:
        """Candidates from a depth image aligned with ``camera``.

        Args:
            depth_m: (H, W) depth in metres along the optical axis (NaN/0 = no return).
            camera: intrinsics of the depth image (optical frame ``camera.frame_id``).
            boxes_2d: optional (K, 4) x1, y1, x2, y2 pixel boxes of objects to lift.
            masks: optional (K, H, W) bool instance masks (instead of boxes).
            labels, scores: optional per-box/mask label strings and scores in [0, 1].
            T_base_from_camera: 4x4 z-up base frame from the optical frame; when None gravity
                is estimated from the depth and boxes are returned in the optical frame.
            base_frame: name of the base frame.

        Returns:
            Candidates sorted by distance from the camera, ids "depth_0", …, each with its 2D
            box (the given box, the mask's bounding box, or the 3D box's projection).
        """
        d = np.asarray(depth_m, dtype=np.float32)
        if d.ndim != 2 or d.shape != (camera.height, camera.width):
            raise ConfigError(
                f"DepthSpecialist.propose: depth image is {d.shape} but the camera is "
                f"{camera.height}x{camera.width}; use the depth camera's CameraInfo"
            )
        from spatial_ros.geometry.camera import unproject_pixels

        s = self.config.stride
        sub = d[::s, ::s]
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(sub) & (sub >= self.config.min_depth) & (sub <= self.config.max_depth)
        vv, uu = np.nonzero(ok)
        uv = np.stack([uu * s, vv * s], axis=1).astype(np.float64)
        pts = unproject_pixels(uv, sub[vv, uu].astype(np.float64), camera)
        return self.propose_points(
            pts, pixels=uv, camera=camera, T_cam_from_points=np.eye(4),
            boxes_2d=boxes_2d, masks=masks, labels=labels, scores=scores,
            T_base_from_points=T_base_from_camera, base_frame=base_frame,
            frame_id=camera.frame_id, pixel_stride=s, n_input=int(d.size),
        )

    def propose_points(
        self,
        points: np.ndarray,
        *,
        pixels: np.ndarray | None = None,
        camera: CameraIntrinsics | None = None,
        T_cam_from_points: np.ndarray | None = None,
        boxes_2d=None,
        masks=None,
        labels=None,
        scores=None,
        T_base_from_points: np.ndarray | None = None,
        base_frame: str = "base_link",
        frame_id: str = "camera_optical_frame",
        up_hint=OPTICAL_UP,
        pixel_stride: int = 1,
        n_input: int | None = None,
    ) -> list[Candidate]:
        """Candidates from a camera-derived cloud (e.g. SUN RGB-D's upright points).

        Args:
            points: (N, 3+) points in frame ``frame_id``, metres; columns 3-5, when present,
                are their colours (0..1 or 0..255), used to split touching objects at colour
                edges.
            pixels: (N, 2) u, v pixel of each point (needed with ``boxes_2d``/``masks``;
                computed from ``camera`` and ``T_cam_from_points`` when None).
            camera, T_cam_from_points: the image the pixels/boxes refer to.
            boxes_2d, masks, labels, scores: as in ``propose``.
            T_base_from_points: 4x4 z-up frame from the points' frame; None = estimate gravity
                (``up_hint`` is the rough up direction in the points' frame; boxes then stay
                in ``frame_id``). Pass the identity for clouds that are already upright.
            base_frame: name of the z-up frame when ``T_base_from_points`` is given.
            frame_id: name of the points' frame.
            pixel_stride: pixels between neighbouring points (sets the range-adaptive gap
                with the camera's focal length).
            n_input: for ``last_stats`` (pixels of the depth image).
        """
        cfg = self.config
        st = self.last_stats = SpecialistStats()
        t0 = time.perf_counter()
        p = np.asarray(points, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] < 3:
            raise ConfigError(f"DepthSpecialist: points must be (N, 3+), got {p.shape}")
        rgb = p[:, 3:6] if p.shape[1] >= 6 else None
        p = p[:, :3]
        st.n_input = len(p) if n_input is None else n_input
        valid = np.isfinite(p.sum(axis=1))
        p = p[valid]
        if rgb is not None:
            rgb = rgb[valid]
            rgb = rgb / 255.0 if np.nanmax(rgb, initial=0.0) > 1.5 else rgb
        st.n_valid = st.n_used = len(p)
        if pixels is not None:
            pixels = np.asarray(pixels, dtype=np.float64)[valid]
        if len(p) < cfg.min_points:
            st.reason = f"only {len(p)} valid depth points (min_points={cfg.min_points})"
            return []
        n_regions = self._count_regions(boxes_2d, masks)

        # Working (upright, z-up) frame.
        if T_base_from_points is not None:
            T_w = np.asarray(T_base_from_points, dtype=np.float64)
            out_frame, T_out_from_w = base_frame, np.eye(4)
        else:
            T_w = self._gravity(p, up_hint, st)
            out_frame, T_out_from_w = frame_id, invert(T_w)
        pw = apply(T_w, p)
        sensor = T_w[:3, 3].copy()
        # Angle between neighbouring points (radians): stride / focal length in pixels.
        pixel_angle = 0.0 if camera is None else pixel_stride / min(camera.fx, camera.fy)
        st.timings_ms["prepare"] = (time.perf_counter() - t0) * 1e3

        T_cam_from_out = None
        if camera is not None:
            T_cp = np.eye(4) if T_cam_from_points is None else np.asarray(T_cam_from_points, float)
            T_cam_from_out = T_cp @ invert(T_w) @ invert(T_out_from_w)

        if n_regions == 0:
            cands = self._cluster_all(pw, st)
        else:
            if pixels is None:
                if camera is None:
                    raise ConfigError("DepthSpecialist: boxes_2d/masks need pixels or a camera")
                from spatial_ros.geometry.camera import points_to_image

                T_cp = np.eye(4) if T_cam_from_points is None else T_cam_from_points
                pixels, _, _ = points_to_image(p, T_cp, camera)
            cands = self._lift_regions(pw, pixels, boxes_2d, masks, labels, scores, st,
                                       sensor, pixel_angle, rgb, pixel_stride)

        t = time.perf_counter()
        identity_out = np.array_equal(T_out_from_w, np.eye(4))
        for c in cands:
            if not identity_out:
                c.box = c.box.transformed(T_out_from_w)
                c.points = apply(T_out_from_w, c.points).astype(np.float32)
            c.box.frame_id = out_frame
            if c.box_2d is None and camera is not None:
                c.box_2d = box_to_image(c.box, camera, T_cam_from_out)
        origin = (T_out_from_w @ T_w)[:3, 3]
        out = finalize_candidates(cands, origin, self.source)
        st.n_candidates = len(out)
        if not out and not st.reason:
            st.reason = f"no object cloud passed the filters (min_points={cfg.min_points})"
        st.timings_ms["finish"] = (time.perf_counter() - t) * 1e3
        st.timings_ms["total"] = (time.perf_counter() - t0) * 1e3
        return out

    # -- steps --------------------------------------------------------------------------------

    @staticmethod
    def _count_regions(boxes_2d, masks) -> int:
        if boxes_2d is not None and masks is not None:
            raise ConfigError("DepthSpecialist: give boxes_2d or masks, not both")
        if boxes_2d is not None:
            b = np.asarray(boxes_2d, dtype=np.float64).reshape(-1, 4)
            if np.any(~np.isfinite(b)) or np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1]):
                raise ConfigError(f"DepthSpecialist: boxes_2d must be finite x1<=x2, y1<=y2: {b}")
            return len(b)
        if masks is not None:
            return len(np.asarray(masks).reshape(-1, *np.shape(masks)[-2:]))
        return 0

    def _gravity(self, p: np.ndarray, up_hint, st: SpecialistStats) -> np.ndarray:
        cfg = self.config
        try:
            T = gravity_alignment(
                p, up_hint, max_tilt_deg=cfg.gravity_max_tilt_deg, distance=cfg.plane_distance,
                min_inliers=max(cfg.min_points, 100), min_area=cfg.plane_min_area, seed=cfg.seed,
            )
            st.leveled = True
            return T
        except DataError as e:
            # No floor/table in view: assume a level camera (optical y down = -up) and say so.
            log.debug("gravity unknown, assuming a level camera: %s", e)
            st.leveled = False
            T = np.eye(4)
            T[:3, :3] = R_BODY_FROM_OPTICAL if np.allclose(up_hint, OPTICAL_UP) else np.eye(3)
            return T

    def _cluster_all(self, pw: np.ndarray, st: SpecialistStats) -> list[Candidate]:
        inner = LidarSpecialist(self.config.clustering)
        inner.source = self.source
        cands = inner.propose(pw, frame_id="upright")
        inner_st = inner.last_stats
        st.n_cropped, st.n_object = inner_st.n_cropped, inner_st.n_object
        st.planes, st.n_clusters = inner_st.planes, inner_st.n_clusters
        st.reason = inner_st.reason
        st.timings_ms.update({f"cluster_{k}": v for k, v in inner_st.timings_ms.items()})
        return cands

    def _lift_regions(
        self, pw, pixels, boxes_2d, masks, labels, scores, st, sensor, pixel_angle,
        rgb=None, pixel_stride: int = 1,
    ) -> list[Candidate]:
        """Lift each 2D region to the connected cluster that fills it best.

        The points of all regions (minus support-plane points) are clustered once. Each
        (region, cluster) pair is scored by the 2D IoU between the region's box and the box of
        the cluster's pixels inside it — an object fills its own box, while an occluder in
        front or background behind fills it only partly. Pairs are taken greedily, best first;
        the points a region takes are no longer available to the others (an occluder assigned
        to its own box stops competing in the box behind it). The object is the cluster's
        unclaimed points inside the region, cut at depth and colour edges where that leaves a
        part filling the region nearly as well (``_edge_split``: touching objects), and
        statistical outliers removed.
        """
        cfg = self.config
        t = time.perf_counter()
        planes: list[Plane] = []
        if cfg.remove_support and cfg.max_planes > 0:
            planes = fit_horizontal_planes(
                pw, (0.0, 0.0, 1.0), max_tilt_deg=cfg.plane_max_tilt_deg,
                distance=cfg.plane_distance, min_inliers=max(cfg.min_points, 100),
                min_inlier_fraction=0.02, min_area=cfg.plane_min_area,
                max_planes=cfg.max_planes, seed=cfg.seed, connectivity=cfg.plane_connectivity,
            )
        st.planes = [q.height for q in planes]
        on_plane = np.zeros(len(pw), dtype=bool)
        for q in planes:
            on_plane[q.inliers] = True
        walls: list[Plane] = []
        if cfg.max_walls > 0:
            walls = fit_walls(pw - sensor, (0.0, 0.0, 1.0), distance=cfg.plane_distance * 1.5,
                              min_area=cfg.wall_min_area, max_planes=cfg.max_walls,
                              seed=cfg.seed, exclude=on_plane)
            for q in walls:
                on_plane[q.inliers] = True
            st.walls = len(walls)
            walls = walls_in_frame(walls, sensor)
        st.timings_ms["planes"] = (time.perf_counter() - t) * 1e3

        t = time.perf_counter()
        u, v = pixels[:, 0], pixels[:, 1]
        if boxes_2d is not None:
            regions = np.asarray(boxes_2d, dtype=np.float64).reshape(-1, 4)
            member = [(u >= x1) & (u <= x2) & (v >= y1) & (v <= y2) for x1, y1, x2, y2 in regions]
        else:
            mk = np.asarray(masks, dtype=bool)
            mk = mk.reshape(-1, *mk.shape[-2:])
            ui = np.clip(np.round(u).astype(np.int64), 0, mk.shape[2] - 1)
            vi = np.clip(np.round(v).astype(np.int64), 0, mk.shape[1] - 1)
            member = [m[vi, ui] for m in mk]
            regions = np.array([_mask_box(m) for m in mk])
        n_regions = len(member)
        st.n_clusters = n_regions
        union = np.flatnonzero(np.any(member, axis=0) & ~on_plane)
        if len(union) > cfg.max_points_total:
            union = union[:: len(union) // cfg.max_points_total + 1]
        if len(union) < cfg.min_points:
            st.reason = f"only {len(union)} depth points inside the regions, off the planes"
            return []
        # Neighbouring depth pixels lie ``depth * stride / f`` apart: the gap tolerance grows
        # with range (``pixel_gap`` pixels), the cell with it so the search stays small.
        r = np.hypot(pw[union, 0] - sensor[0], pw[union, 1] - sensor[1])
        per_m = cfg.pixel_gap * pixel_angle
        max_tol = float(np.clip(per_m * np.percentile(r, 95), cfg.cluster_tolerance,
                                cfg.max_cluster_tolerance))
        cell = max(cfg.cluster_cell, max_tol / 4.0)
        lab, n_lab = grid_clusters(pw[union], cell=cell,
                                   tolerance=max(cfg.cluster_tolerance, cell),
                                   tolerance_per_m=per_m, max_tolerance=max_tol,
                                   z_gap=np.inf, origin=sensor[:2])
        claimed = np.zeros(len(union), dtype=bool)
        left = [i for i in range(n_regions) if np.all(np.isfinite(regions[i]))]
        cands = []
        while left:  # greedy, best (region, cluster) pair first; few regions
            best = (cfg.min_fill, -1, None)
            for i in left:
                inside = member[i][union] & ~claimed
                sc_i, sel_i = _best_cluster(lab[inside], n_lab, u[union][inside],
                                            v[union][inside], regions[i], cfg.min_points)
                if sc_i > best[0]:
                    best = (sc_i, i, np.flatnonzero(inside)[sel_i])
            fill, i, local = best
            if i < 0:
                break
            left.remove(i)
            if cfg.edge_split:
                local = self._edge_split(local, union, pixels, pw, rgb, sensor, regions[i],
                                         fill, pixel_stride)
            claimed[local] = True  # an occluder's points cannot serve another region
            idx = union[local]
            if len(idx) > cfg.max_object_points:
                idx = idx[:: len(idx) // cfg.max_object_points + 1]
            if cfg.outlier_neighbors > 0:
                idx = idx[statistical_outliers(pw[idx], cfg.outlier_neighbors,
                                               cfg.outlier_std_ratio)]
            if len(idx) < cfg.min_points:
                continue
            obj = pw[idx]
            lab_i = "" if labels is None else str(labels[i])
            box = self._box(obj, planes, walls, sensor, lab_i)
            sc = 1.0 if scores is None else float(scores[i])
            box2d = regions[i].copy()
            cands.append(Candidate(box=box, box_2d=box2d, score=sc, source=self.source,
                                   num_points=len(obj), label=lab_i,
                                   points=obj.astype(np.float32)))
        st.timings_ms["lift"] = (time.perf_counter() - t) * 1e3
        return cands


    def _edge_split(self, local, union, pixels, pw, rgb, sensor, region, fill, stride):
        """The part of a region's cluster cut off at depth and colour edges
        (``depth_edges``) that fills the region best, when it fills it at least
        ``edge_keep_fill`` as well as the whole: an object pushed against another one keeps
        its own points, the other's stay free for their own region."""
        cfg = self.config
        idx = union[local]
        rng = np.linalg.norm(pw[idx] - sensor, axis=1)
        seg, n = edge_segments(pixels[idx], rng, None if rgb is None else rgb[idx],
                               stride=stride, depth_tol=cfg.edge_depth_tol,
                               depth_rel=cfg.edge_depth_rel, colour_tol=cfg.edge_colour_tol)
        if n < 2:
            return local
        u, v = pixels[idx, 0], pixels[idx, 1]
        sc, sel = _best_cluster(seg, n, u, v, region, cfg.min_points)
        if sel is None or sc < cfg.edge_keep_fill * fill:
            return local
        return local[sel]

    def _box(self, obj: np.ndarray, planes: list[Plane], walls: list[Plane],
             sensor: np.ndarray, label: str = ""):
        """Gravity-aligned (yaw-only) box of an object cloud: bottom on the support plane
        below; squared to a wall and reaching back to it, or to its class's typical depth,
        when only its front is seen (``room``)."""
        cfg = self.config
        z_min = support_below(obj, planes, cfg.support_gap, cfg.plane_distance)
        box = fit_box(obj, method="min_area", z_min=z_min)
        if walls:
            yaw = snap_yaw(box.yaw, walls, cfg.wall_snap_deg) if cfg.wall_snap_deg > 0 else None
            if yaw is not None:
                box = fit_box(obj, method="min_area", z_min=z_min, yaw=yaw)
            if cfg.wall_max_gap > 0:
                walled = extend_to_wall(box, walls, sensor, thin=cfg.wall_thin,
                                        max_gap=cfg.wall_max_gap)
                if walled is not box:
                    return walled
        if cfg.complete_depth and label:
            box = complete_depth(box, label, sensor)
        return box


def _best_cluster(labels, n_labels, u, v, region, min_points):
    """(score, selection) of the cluster whose pixels' box best fills ``region`` (2D IoU)."""
    counts = np.bincount(labels, minlength=n_labels)
    best, sel = 0.0, None
    for j in np.flatnonzero(counts >= min_points):  # clusters in the region (few)
        m = labels == j
        cb = np.array([u[m].min(), v[m].min(), u[m].max(), v[m].max()])
        sc = _iou2d(cb, region)
        if sc > best:
            best, sel = sc, m
    return best, sel


def _mask_box(m: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return np.full(4, np.nan)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)


def _iou2d(a: np.ndarray, b: np.ndarray) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
