"""LiDAR specialist: point cloud → candidate 3D boxes (model-free, CPU, sensor rate).

Pipeline (all vectorised; the only Python loop is over the clusters that pass cheap checks):

1. Express the points in a z-up working frame (``T_base_from_lidar``, e.g. base_link from
   lidar, or auto-levelled), drop NaN/inf, cap the count (random subsample with a fixed seed,
   see ``max_input_points``), crop by horizontal range and an optional ROI box, optional voxel
   downsampling.
2. Ground, by one of two methods (``ground_method``):
   - "patchwise" (street): a local ground plane per patch of a polar grid
     (``ground.segment_ground``), so slopes, crowned roads, curbs and sidewalks stay ground;
     points between ``min_height`` and ``max_height`` above their local ground are objects,
     and clusters are formed on (x, y, height above ground);
   - "planes" (tabletop): horizontal RANSAC planes (``planes.fit_horizontal_planes``): the
     floor AND the table top; points between ``min_height`` and ``max_height`` above the
     *support* plane (lowest = ground, highest = table) are kept, optionally only over its
     footprint.
3. Grid clustering with a range-adaptive gap (``clustering.grid_clusters``).
4. Per cluster, cheap vectorised checks first: a minimum of points that falls with range
   (``min_points``, ``min_visible_area``), a top high enough to be an object (``min_top``),
   a bounding box not far beyond ``max_size``. Then a yaw-only box (L-shape on the visible
   contour, or min-area rectangle; bottom on the ground/support), a class from the size
   priors (``classify``), completion of partly seen cars, the split of two touching objects
   (``splitting``, when both pieces get a class of their own), size filters, and the 2D box in
   the camera image when a camera and extrinsic are given.

Candidates come sorted by the distance of their centre from the sensor origin (then x, y),
with ids ``"lidar_0"``, ``"lidar_1"``… and ``label`` the class (street preset: "car", "van",
"truck", "pedestrian", "cyclist", "pole" or "misc"; "" for presets without classes).
``LidarSpecialist.last_stats`` says what happened, including why the list is empty
(``reason``) and when the preset looks wrong for the cloud (``warning``).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from spatial_ros.errors import ConfigError, DataError
from spatial_ros.geometry.transforms import apply, invert
from spatial_ros.specialists.classify import OPEN_FOV, OPEN_WINDOW
from spatial_ros.specialists.clustering import grid_clusters, group_indices
from spatial_ros.specialists.common import (  # noqa: F401 - re-exported (depth, onnx, tests)
    box_to_image,
    finalize_candidates,
    hull_ccw,
    inside_convex_hull,
    support_below,
    voxel_downsample,
)
from spatial_ros.specialists.ground import segment_ground
from spatial_ros.specialists.lidar_boxes import BoxResolver, ClusterPoints
from spatial_ros.specialists.lidar_config import (  # noqa: F401 - re-exported
    LidarSpecialistConfig,
    SpecialistStats,
)
from spatial_ros.specialists.planes import Plane, fit_horizontal_planes, gravity_alignment
from spatial_ros.specialists.preset_choice import preset_warning
from spatial_ros.specialists.scan_geometry import contours, scan_coverage
from spatial_ros.types import CameraIntrinsics, Candidate, SensorFrame

log = logging.getLogger(__name__)


class LidarSpecialist:
    """Model-free 3D box proposals from a LiDAR (or any) point cloud. See the module docstring.

    Attributes:
        config: the parameters.
        last_stats: ``SpecialistStats`` of the last ``propose`` call.
    """

    source = "lidar"

    def __init__(self, config: LidarSpecialistConfig | None = None) -> None:
        self.config = config if config is not None else LidarSpecialistConfig.street()
        self.last_stats = SpecialistStats()
        self._warned_at = -np.inf  # monotonic time of the last logged preset warning

    # -- public API ---------------------------------------------------------------------------

    def propose(
        self,
        points: np.ndarray,
        *,
        frame_id: str = "lidar",
        camera: CameraIntrinsics | None = None,
        T_cam_from_lidar: np.ndarray | None = None,
        T_base_from_lidar: np.ndarray | None = None,
        base_frame: str = "base_link",
    ) -> list[Candidate]:
        """Candidate boxes for one cloud.

        Boxes are fitted in a gravity-aligned (z-up) working frame: ``base_frame`` when
        ``T_base_from_lidar`` is given; otherwise the LiDAR frame itself, levelled first when
        ``config.auto_level`` is set (a tilted LiDAR, e.g. on a tabletop rig). ``roi_min/max``
        and ``ground_height`` are coordinates in that working frame.

        Args:
            points: (N, 3) or (N, 4+) x, y, z[, intensity…] in the LiDAR frame, metres.
            frame_id: name of the LiDAR frame.
            camera: intrinsics of the image to project boxes into (optional).
            T_cam_from_lidar: 4x4 camera optical frame from the LiDAR frame (with ``camera``).
            T_base_from_lidar: 4x4 z-up body frame (REP-105 base_link) from the LiDAR frame.
            base_frame: name of that body frame.

        Returns:
            Candidates in ``base_frame`` when ``T_base_from_lidar`` is given, else in
            ``frame_id`` (yaw-only boxes there unless auto-levelling tilted them); sorted by the
            distance of the box centre from the LiDAR origin; ids "lidar_0", …. ``[]`` with
            ``last_stats.reason`` set when nothing was found or the input was unusable.

        Raises:
            ConfigError: ``camera`` without ``T_cam_from_lidar``.
        """
        cfg = self.config
        st = self.last_stats = SpecialistStats()
        t0 = time.perf_counter()
        if camera is not None and T_cam_from_lidar is None:
            st.reason = "camera given without T_cam_from_lidar"
            raise ConfigError("LidarSpecialist.propose: pass T_cam_from_lidar with camera")
        p = np.asarray(points) if points is not None else np.zeros((0, 3))
        if p.ndim != 2 or p.shape[1] < 3:
            st.reason = f"points must be (N, 3+) but have shape {p.shape}"
            return []
        st.n_input = len(p)
        if len(p) == 0:
            st.reason = "empty cloud"
            return []
        xyz = p[:, :3]
        # A sum is non-finite iff one of its terms is NaN/inf (one pass instead of three).
        if np.isfinite(xyz.sum()):  # one scalar check: the usual case, no NaN/inf at all
            valid = np.ones(len(xyz), dtype=bool)
        else:
            valid = np.isfinite(xyz.sum(axis=1))
        st.n_valid = int(np.count_nonzero(valid))
        if st.n_valid == 0:
            st.reason = "no finite points (all NaN/inf)"
            return []
        if st.n_valid > cfg.max_input_points:
            # Bounded time on huge clouds: keep a fixed-seed random subset of ~max_input_points.
            keep = np.random.default_rng(cfg.seed).random(len(p))
            valid &= keep < cfg.max_input_points / st.n_valid
            st.subsampled = True
        all_used = st.n_valid == len(p) and not st.subsampled
        xyz = xyz.astype(np.float64) if all_used else xyz[valid].astype(np.float64)
        st.n_used = len(xyz)

        # Working frame W (z-up) and output frame O.
        if T_base_from_lidar is not None:
            T_w = np.asarray(T_base_from_lidar, dtype=np.float64)
            out_frame, T_out_from_w = base_frame, np.eye(4)
        else:
            T_w = np.eye(4)
            if cfg.auto_level:
                T_w = self._level(xyz, st)
            out_frame, T_out_from_w = frame_id, invert(T_w)
        if not np.array_equal(T_w, np.eye(4)):
            xyz = xyz @ T_w[:3, :3].T + T_w[:3, 3]
        origin_w = T_w[:3, 3].copy()
        st.timings_ms["prepare"] = (time.perf_counter() - t0) * 1e3

        cands = self._propose_upright(xyz, T_w, st)
        t1 = time.perf_counter()
        identity_out = np.array_equal(T_out_from_w, np.eye(4))
        for c in cands:
            if not identity_out:
                c.box = c.box.transformed(T_out_from_w)
                c.points = apply(T_out_from_w, c.points).astype(np.float32)
            c.box.frame_id = out_frame
        if camera is not None:
            T_cam_from_out = np.asarray(T_cam_from_lidar, float) @ invert(T_w) @ invert(
                T_out_from_w
            )
            kept = []
            for c in cands:
                c.box_2d = box_to_image(c.box, camera, T_cam_from_out)
                if c.box_2d is not None or not cfg.require_in_image:
                    kept.append(c)
            cands = kept
        origin_out = (T_out_from_w @ np.append(origin_w, 1.0))[:3]
        out = finalize_candidates(cands, origin_out, self.source)
        st.n_candidates = len(out)
        st.warning = preset_warning(cfg.preset_name, p, len(out), st.n_cropped, st.n_valid)
        if st.warning and time.monotonic() - self._warned_at > 30.0:
            log.warning("%s", st.warning)  # at most every 30 s: not once per frame
            self._warned_at = time.monotonic()
        if not out and not st.reason:
            st.reason = (
                f"no cluster passed the filters ({st.n_clusters} clusters; min_points="
                f"{cfg.min_points}, max_size={cfg.max_size})"
            )
        st.timings_ms["project"] = (time.perf_counter() - t1) * 1e3
        st.timings_ms["total"] = (time.perf_counter() - t0) * 1e3
        return out

    def propose_frame(self, frame: SensorFrame, base_frame: str | None = "base_link"):
        """``propose`` for a ``SensorFrame``, with transforms from ``frame.transforms``.

        Boxes come in ``base_frame`` when the tree connects it to the LiDAR (pass None to keep
        the LiDAR frame); boxes are projected into ``frame.camera`` when connected.
        """
        if frame.points is None:
            self.last_stats = SpecialistStats(reason="frame has no points")
            return []
        tree = frame.transforms
        lidar = frame.points_frame
        T_base = T_cam = None
        if tree is not None:
            if base_frame and tree.can_transform(base_frame, lidar):
                T_base = tree.lookup(base_frame, lidar)
            if tree.can_transform(frame.camera.frame_id, lidar):
                T_cam = tree.lookup(frame.camera.frame_id, lidar)
        return self.propose(
            frame.points, frame_id=lidar, camera=frame.camera if T_cam is not None else None,
            T_cam_from_lidar=T_cam, T_base_from_lidar=T_base, base_frame=base_frame or "",
        )

    def _level(self, xyz: np.ndarray, st: SpecialistStats) -> np.ndarray:
        """T_level_from_sensor from the dominant plane below the sensor (identity if none)."""
        cfg = self.config
        try:
            T = gravity_alignment(
                xyz, (0.0, 0.0, 1.0), (1.0, 0.0, 0.0), max_tilt_deg=cfg.auto_level_max_tilt_deg,
                distance=cfg.plane_distance, min_inliers=max(cfg.min_points, 50),
                min_area=cfg.plane_min_area, seed=cfg.seed,
            )
        except DataError as e:
            log.debug("auto_level: %s", e)
            st.leveled = False
            return np.eye(4)
        st.leveled = True
        return T

    # -- pipeline -----------------------------------------------------------------------------

    def _propose_upright(
        self, xyz: np.ndarray, T_w: np.ndarray, st: SpecialistStats
    ) -> list[Candidate]:
        """Steps 1-4 on finite points already in the z-up working frame W (``T_w`` = W from
        the sensor: the sensor's pose in W)."""
        cfg = self.config
        origin = T_w[:3, 3]
        t = time.perf_counter()
        dx, dy = xyz[:, 0] - origin[0], xyz[:, 1] - origin[1]
        r = np.sqrt(dx * dx + dy * dy)  # np.hypot: 3x slower on a 120 k-point scan
        keep = (r >= cfg.min_range) & (r <= cfg.max_range)
        if cfg.roi_min is not None:
            keep &= np.all((xyz >= cfg.roi_min) & (xyz <= cfg.roi_max), axis=1)
        xyz = xyz[keep]
        r = r[keep]
        if cfg.voxel_size > 0:
            xyz = voxel_downsample(xyz, cfg.voxel_size)
            r = None
        st.n_cropped = len(xyz)
        covered = top_el = None
        if (cfg.min_visible_area > 0 or cfg.size_priors) and len(xyz):
            st.density, covered, top_el = scan_coverage(xyz, T_w)
        st.timings_ms["crop"] = (time.perf_counter() - t) * 1e3
        if len(xyz) == 0:
            st.reason = f"no points within range [{cfg.min_range}, {cfg.max_range}] m / ROI"
            return []

        t = time.perf_counter()
        if cfg.ground_method == "patchwise":
            g = segment_ground(xyz, cfg.ground_config(), origin[:2], ranges=r)
            obj_mask = (g.height >= cfg.min_height) & (g.height <= cfg.max_height)
            heights = g.height[obj_mask]
            planes: list[Plane] = []
        else:
            obj_mask, planes = self._remove_planes(xyz, st)
            heights = None
        obj = xyz[obj_mask]
        st.n_object = len(obj)
        st.timings_ms["ground" if heights is not None else "planes"] = \
            (time.perf_counter() - t) * 1e3
        if len(obj) < cfg.min_points:
            st.reason = st.reason or (
                f"only {len(obj)} points left above the support plane (min_points="
                f"{cfg.min_points}); nothing stands out of the ground/table"
            )
            return []

        t = time.perf_counter()
        # Patchwise: cluster on height above the local ground (a sloped street is flat there).
        pts = obj if heights is None else np.column_stack([obj[:, :2], heights])
        labels, n = grid_clusters(
            pts, cell=cfg.cell, tolerance=cfg.cluster_tolerance,
            tolerance_per_m=cfg.tolerance_per_m, max_tolerance=cfg.max_tolerance,
            z_resolution=cfg.z_resolution, z_gap=cfg.z_gap, z_gap_per_m=cfg.z_gap_per_m,
            origin=origin[:2],
        )
        st.n_clusters = int(n)
        st.timings_ms["cluster"] = (time.perf_counter() - t) * 1e3

        t = time.perf_counter()
        big = self._plausible_clusters(obj, heights, labels, n, origin, st)
        cands = self._candidates(obj, heights, pts, labels, n, big, planes, T_w,
                                 (covered, top_el), st) if len(big) else []
        st.timings_ms["boxes"] = (time.perf_counter() - t) * 1e3
        return cands

    def _candidates(self, obj, heights, pts, labels, n, big, planes, T_w, coverage, st):
        """Step 4 on the plausible clusters ``big`` (see ``lidar_boxes``); ``coverage``:
        (azimuth coverage, highest beam elevation) from ``scan_coverage``."""
        covered, top_el = coverage
        cfg = self.config
        origin = T_w[:3, 3]
        remap = np.full(n, -1, dtype=np.int64)
        remap[big] = np.arange(len(big))
        lab = remap[labels]
        sub_idx = np.flatnonzero(lab >= 0)
        lab = lab[sub_idx]
        cl = ClusterPoints(obj[sub_idx], None if heights is None else heights[sub_idx])
        if cfg.contour_heading:
            cl.contour = contours(cl.xyz, lab, len(big), origin, cl.heights)
        if cfg.size_priors:
            cl.ceiling = self._at_ceiling(cl, T_w, top_el)
        refine = None
        if cfg.fine_tolerance_per_m > 0:
            fine_cell = cfg.fine_cell or cfg.cell
            sub_pts = pts[sub_idx]

            def refine(idx: np.ndarray) -> np.ndarray:
                """Labels of the finer clusters among the points ``idx`` of ``cl``."""
                return grid_clusters(
                    sub_pts[idx], cell=fine_cell,
                    tolerance=max(cfg.cluster_tolerance, fine_cell),
                    tolerance_per_m=cfg.fine_tolerance_per_m,
                    max_tolerance=max(cfg.fine_max_tolerance, cfg.cluster_tolerance, fine_cell),
                    z_resolution=cfg.z_resolution, z_gap=cfg.z_gap,
                    z_gap_per_m=cfg.z_gap_per_m, origin=origin[:2],
                )[0]
        resolver = BoxResolver(cfg, planes, T_w, st.density, covered, self.source)
        return resolver.candidates(cl, group_indices(lab, len(big)), refine)

    def _plausible_clusters(self, obj, heights, labels, n, origin, st) -> np.ndarray:
        """Ids of the clusters worth a box: enough points for their range (distance-aware
        minimum) and, with ``min_top``, a top high enough above the ground."""
        cfg = self.config
        counts = np.bincount(labels, minlength=n)
        need = np.full(n, float(cfg.min_points))
        if cfg.min_visible_area > 0:
            inv = 1.0 / np.maximum(counts, 1)
            cx = np.bincount(labels, obj[:, 0], n) * inv - origin[0]
            cy = np.bincount(labels, obj[:, 1], n) * inv - origin[1]
            r2 = np.maximum(cx * cx + cy * cy, 1e-2)
            need = np.maximum(need, cfg.min_visible_area * st.density / r2)
        ok = counts >= need
        if cfg.min_top > 0:
            top = np.full(n, -np.inf)
            h = heights if heights is not None else obj[:, 2] - obj[:, 2].min()
            np.maximum.at(top, labels, h)
            ok &= top >= cfg.min_top
        return np.flatnonzero(ok)

    def _at_ceiling(self, cl: ClusterPoints, T_w: np.ndarray,
                    top_el: float | None) -> np.ndarray:
        """(M,) int8: the point lies at the top of what the sensor can see there, on its
        highest beam (within 0.3 degrees of ``top_el``: ``classify.OPEN_FOV``) or at the top
        of the height window (``OPEN_WINDOW``), else 0: the object may go on above it (a
        wall, a tree, a truck next to the sensor, a car up a hill)."""
        cfg = self.config
        top = np.zeros(len(cl.xyz), dtype=np.int8)
        if top_el is not None:
            d = (cl.xyz - T_w[:3, 3]) @ T_w[:3, :3]  # in the sensor frame
            flat = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
            t = d[:, 2] / np.maximum(flat, 1e-6)  # tan(elevation)
            top[t >= np.tan(top_el - np.radians(0.3))] = OPEN_FOV
        if cl.heights is not None:
            top[cl.heights >= cfg.max_height - cfg.z_resolution] = OPEN_WINDOW
        return top

    def _remove_planes(
        self, xyz: np.ndarray, st: SpecialistStats
    ) -> tuple[np.ndarray, list[Plane]]:
        """Mask of object points (in the height window above the support plane, on no plane)
        and the detected planes (lowest first; the prior ground when none was found)."""
        cfg = self.config
        keep = np.ones(len(xyz), dtype=bool)
        if cfg.max_planes == 0:
            return keep, []
        cmask = None
        if cfg.ground_height is not None:
            cmask = np.abs(xyz[:, 2] - cfg.ground_height) <= cfg.ground_height_tolerance
        planes = fit_horizontal_planes(
            xyz, (0.0, 0.0, 1.0), max_tilt_deg=cfg.plane_max_tilt_deg,
            distance=cfg.plane_distance, min_inliers=cfg.min_points,
            min_inlier_fraction=cfg.plane_min_fraction, min_area=cfg.plane_min_area,
            max_planes=cfg.max_planes, seed=cfg.seed, candidate_mask=cmask,
            connectivity=cfg.plane_connectivity,
        )
        st.planes = [q.height for q in planes]
        if not planes:
            if cfg.ground_height is None:
                log.debug("no horizontal plane found; clustering all %d points", len(xyz))
                return keep, []
            # Fall back to the prior ground height as a level plane.
            planes = [Plane(np.array([0.0, 0.0, 1.0]), -float(cfg.ground_height),
                            np.zeros(0, dtype=np.int64))]
        support = planes[0] if cfg.support == "lowest" else planes[-1]
        for q in planes:
            keep[q.inliers] = False
        h = support.signed_distance(xyz)
        keep &= (h >= cfg.min_height) & (h <= cfg.max_height)
        if cfg.crop_to_support and len(support.inliers) >= 3:
            sup = support.inliers[:: len(support.inliers) // 4096 + 1]  # hull of a subset
            hull = hull_ccw(xyz[sup, :2])
            idx = np.flatnonzero(keep)
            keep[idx] = inside_convex_hull(xyz[idx, :2], hull, margin=cfg.cluster_tolerance)
        return keep, planes


def propose_lidar(points: np.ndarray, config: LidarSpecialistConfig | None = None, **kwargs):
    """One-shot ``LidarSpecialist(config).propose(points, **kwargs)``."""
    return LidarSpecialist(config).propose(points, **kwargs)
