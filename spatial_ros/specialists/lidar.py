"""LiDAR specialist: point cloud → candidate 3D boxes (model-free, CPU, sensor rate).

Pipeline (all vectorised; the only Python loop is over clusters):

1. Express the points in a z-up output frame (``T_out_from_points``, e.g. base_link from lidar),
   drop NaN/inf, cap the count (random subsample with a fixed seed, see ``max_input_points``),
   crop by horizontal range and an optional ROI box, optional voxel downsampling.
2. Horizontal planes (``planes.fit_horizontal_planes``; RANSAC with a normal prior and an
   optional ground-height prior): street → the ground; tabletop → the floor AND the table top.
   Their inliers are removed and only points between ``min_height`` and ``max_height`` above
   the *support* plane (lowest = ground, highest = table) are kept, optionally only over the
   support plane's footprint.
3. Grid clustering with a range-adaptive gap (``clustering.grid_clusters``).
4. Per cluster: point-count filter, yaw-only box (L-shape or min-area rectangle, bottom
   extended to the support plane), size-prior completion (cars seen from one side), size
   filters, and the 2D box in the camera image when a camera and extrinsic are given.

Candidates come sorted by the distance of their centre from the sensor origin (then x, y),
with ids ``"lidar_0"``, ``"lidar_1"``… ``LidarSpecialist.last_stats`` says what happened,
including why the list is empty (``reason``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields

import numpy as np

from spatial_ros.errors import ConfigError, DataError
from spatial_ros.geometry.transforms import apply, invert
from spatial_ros.specialists.boxfit import SizePrior, complete_with_prior, extend_away, fit_box
from spatial_ros.specialists.clustering import grid_clusters, group_indices
from spatial_ros.specialists.planes import Plane, fit_horizontal_planes, gravity_alignment
from spatial_ros.types import Box3D, CameraIntrinsics, Candidate, SensorFrame

log = logging.getLogger(__name__)

# KITTI mean sizes. Only cars are completed (grow_below): a pedestrian's or cyclist's depth
# varies too much to invent it; their priors only label the cluster and, above all, keep a
# cyclist seen from the side (1.8 m long, 1.7 m high) from being "completed" into a car.
STREET_PRIORS = (
    SizePrior("car", 3.9, 1.6, 1.5, tolerance=0.35, grow_below=0.95),
    SizePrior("pedestrian", 0.8, 0.6, 1.75, tolerance=0.3, grow_below=0.0),
    SizePrior("cyclist", 1.76, 0.6, 1.73, tolerance=0.2, grow_below=0.0),
)


@dataclass
class LidarSpecialistConfig:
    """Parameters of the LiDAR specialist. Metres, degrees, z-up output frame.

    Use ``LidarSpecialistConfig.street()`` / ``.tabletop()`` for the presets and override with
    ``dataclasses.replace``. Crop:

    Attributes:
        min_range, max_range: horizontal range window from the sensor origin, metres.
        roi_min, roi_max: optional (x, y, z) corners of an axis-aligned crop box in the output
            frame, metres (both or neither).
        max_input_points: larger clouds are randomly subsampled (fixed seed) to about this many
            points first, which bounds the time on e.g. 5 M-point clouds.
        voxel_size: voxel downsampling (centroid per voxel) before anything else; 0 = off.

    Planes:
        max_planes: horizontal planes to detect and remove (1: ground; 2: floor + table).
        plane_distance: inlier distance, metres.
        plane_max_tilt_deg: largest angle between a plane normal and +z.
        plane_min_area: smallest plane extent (m^2) — keeps box tops from being removed.
        plane_min_fraction: smallest share of the points a plane must hold.
        plane_connectivity: a plane is only its largest connected patch (gap tolerance in
            metres; 0 = off): object tops at table height elsewhere are not "the table".
        ground_height: prior z of the ground in the output frame (hypotheses are drawn only
            from points within ``ground_height_tolerance`` of it); None = no prior.
        support: "lowest" (ground) or "highest" (table top): heights are measured from it.
        min_height, max_height: kept height window above the support plane, metres.
        crop_to_support: keep only points above the support plane's footprint (tabletop).
        auto_level: when no ``T_base_from_lidar`` is given, estimate the up direction from the
            dominant horizontal plane below the sensor (a tilted LiDAR); prefer passing the
            real extrinsic.
        auto_level_max_tilt_deg: largest LiDAR tilt auto-levelling looks for, degrees.

    Clustering (see ``clustering.grid_clusters``):
        cell, cluster_tolerance, tolerance_per_m, max_tolerance, z_resolution, z_gap,
        z_gap_per_m.

    Boxes:
        min_points: smallest cluster kept.
        min_extent: a box's largest side must reach this, metres.
        max_size: (length, width, height) largest box kept after completion, metres.
        box_method: "lshape" (LiDAR sees 1-2 sides) or "min_area" (footprint seen from above).
        box_pad, box_pad_per_m: metres added to each side of fitted boxes, plus this much per
            metre of range (half the azimuth step: the outermost points of an object lie up to
            one step inside its edges).
        top_pad_rows: box tops are raised by this many beam pitches x range (the highest row
            hitting a vertical object lies below its top; 0.5 = the expected shortfall).
        sampling_pad: grow each box on its far side (seen from the sensor) by half the spacing
            of the LiDAR rows on its top surface there: the last row falls short of the far
            edge by that much on average. The row pitch is the smallest elevation step between
            the cluster's beams (spinning LiDAR: each point's elevation is its beam's).
        sampling_pad_max: cap of that growth, metres.
        extend_to_support: a box's bottom goes down to the highest detected plane below it
            when the gap is at most ``support_gap`` metres (hidden lower parts, e.g. wheels).
        support_gap: see ``extend_to_support``, metres.
        split_oversized: a cluster larger than ``max_size`` (but at most 2.5x as long, and no
            taller than the tallest size prior) is split once more with a one-cell gap (objects
            the range-grown gap merged, e.g. parked cars); pieces are kept when they fit, and
            with size priors only when one matches.
        size_priors: categories used to complete partially seen clusters (also their label).
        score_points: score = n / (n + score_points) for a cluster of n points.
        require_in_image: drop candidates whose box does not project into the image (only when
            a camera is given).
        seed: seed of every random choice (deterministic output).
    """

    min_range: float = 1.0
    max_range: float = 60.0
    roi_min: tuple[float, float, float] | None = None
    roi_max: tuple[float, float, float] | None = None
    max_input_points: int = 400_000
    voxel_size: float = 0.0
    max_planes: int = 1
    plane_distance: float = 0.15
    plane_max_tilt_deg: float = 10.0
    plane_min_area: float = 4.0
    plane_min_fraction: float = 0.05
    plane_connectivity: float = 0.0
    ground_height: float | None = None
    ground_height_tolerance: float = 0.6
    support: str = "lowest"
    min_height: float = 0.2
    max_height: float = 3.0
    crop_to_support: bool = False
    auto_level: bool = False
    auto_level_max_tilt_deg: float = 60.0
    cell: float = 0.2
    cluster_tolerance: float = 0.4
    tolerance_per_m: float = 0.015
    max_tolerance: float = 0.8
    z_resolution: float = 0.1
    z_gap: float = 0.6
    z_gap_per_m: float = 0.012
    min_points: int = 10
    min_extent: float = 0.2
    max_size: tuple[float, float, float] = (7.0, 3.0, 3.5)
    box_method: str = "lshape"
    box_pad: float = 0.0
    box_pad_per_m: float = 0.0
    top_pad_rows: float = 0.0
    sampling_pad: bool = False
    sampling_pad_max: float = 0.05
    extend_to_support: bool = True
    support_gap: float = 1.0
    split_oversized: bool = True
    size_priors: tuple[SizePrior, ...] = ()
    score_points: float = 30.0
    require_in_image: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        bad = []
        pos = ("max_range", "plane_distance", "cell", "cluster_tolerance", "max_tolerance",
               "z_resolution", "z_gap", "score_points")
        bad += [f"{k}={getattr(self, k)} (must be > 0)" for k in pos if not getattr(self, k) > 0]
        nonneg = ("min_range", "voxel_size", "tolerance_per_m", "z_gap_per_m", "min_height",
                  "plane_min_area", "plane_min_fraction", "box_pad", "min_extent",
                  "plane_connectivity", "support_gap", "sampling_pad_max", "box_pad_per_m",
                  "top_pad_rows",
                  "ground_height_tolerance")
        bad += [f"{k}={getattr(self, k)} (must be >= 0)" for k in nonneg
                if not getattr(self, k) >= 0]
        if not self.min_range < self.max_range:
            bad.append(f"min_range={self.min_range} >= max_range={self.max_range}")
        if not self.min_height < self.max_height:
            bad.append(f"min_height={self.min_height} >= max_height={self.max_height}")
        if self.cluster_tolerance < self.cell:
            bad.append(f"cluster_tolerance={self.cluster_tolerance} < cell={self.cell}")
        if self.max_tolerance < self.cluster_tolerance:
            bad.append(f"max_tolerance={self.max_tolerance} < "
                       f"cluster_tolerance={self.cluster_tolerance}")
        if (self.roi_min is None) != (self.roi_max is None):
            bad.append("roi_min and roi_max must be given together")
        elif self.roi_min is not None:
            lo, hi = np.asarray(self.roi_min, float), np.asarray(self.roi_max, float)
            if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
                bad.append(f"roi_min={self.roi_min} must be below roi_max={self.roi_max} "
                           "(3 values each)")
        if self.max_planes < 0:
            bad.append(f"max_planes={self.max_planes} (must be >= 0)")
        for k in ("plane_max_tilt_deg", "auto_level_max_tilt_deg"):
            if not 0 <= getattr(self, k) <= 90:
                bad.append(f"{k}={getattr(self, k)} (must be in [0, 90])")
        if self.support not in ("lowest", "highest"):
            bad.append(f"support={self.support!r} (must be 'lowest' or 'highest')")
        if self.box_method not in ("lshape", "min_area"):
            bad.append(f"box_method={self.box_method!r} (must be 'lshape' or 'min_area')")
        if self.min_points < 1:
            bad.append(f"min_points={self.min_points} (must be >= 1)")
        if self.max_input_points < 1000:
            bad.append(f"max_input_points={self.max_input_points} (must be >= 1000)")
        if len(tuple(self.max_size)) != 3 or min(self.max_size) <= 0:
            bad.append(f"max_size={self.max_size} (must be 3 positive values)")
        self.size_priors = tuple(
            p if isinstance(p, SizePrior) else SizePrior(**p) for p in self.size_priors
        )
        if bad:
            raise ConfigError("LidarSpecialistConfig: " + "; ".join(bad))

    @classmethod
    def street(cls, **overrides) -> LidarSpecialistConfig:
        """Preset for road scenes seen by a 32-128 beam spinning LiDAR (KITTI-like; cars,
        pedestrians, cyclists at 2-60 m). ``ground_height`` is the ground's z in the output
        frame: -1.73 for KITTI's velodyne frame, ~0 for base_link."""
        base = dict(size_priors=STREET_PRIORS, max_height=4.0, max_size=(7.0, 3.0, 4.5),
                    cell=0.15, cluster_tolerance=0.3, tolerance_per_m=0.03, max_tolerance=1.2,
                    box_pad_per_m=0.0017, top_pad_rows=0.5)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def tabletop(cls, **overrides) -> LidarSpecialistConfig:
        """Preset for objects on a table seen by a short-range dense LiDAR / depth cloud:
        removes the floor AND the table top, keeps points above the table only; levels a
        tilted sensor itself when no base transform is given (``auto_level``)."""
        base = dict(
            min_range=0.05, max_range=3.0, voxel_size=0.0, max_planes=2,
            plane_distance=0.01, plane_max_tilt_deg=10.0, plane_min_area=0.15,
            plane_min_fraction=0.02, support="highest", min_height=0.012, max_height=0.6,
            crop_to_support=True, auto_level=True, plane_connectivity=0.05, support_gap=0.05,
            cell=0.01, cluster_tolerance=0.02, tolerance_per_m=0.025, max_tolerance=0.05,
            z_resolution=0.01, z_gap=0.1, z_gap_per_m=0.0,
            min_points=10, min_extent=0.02, max_size=(0.6, 0.6, 0.6), box_method="min_area",
            box_pad=0.0, sampling_pad=True, extend_to_support=True, score_points=20.0,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def preset(cls, name: str, **overrides) -> LidarSpecialistConfig:
        """The named preset ("street" or "tabletop") with ``overrides`` applied."""
        if name not in ("street", "tabletop"):
            raise ConfigError(
                f"LidarSpecialistConfig: preset must be street|tabletop, got {name!r}"
            )
        return getattr(cls, name)(**overrides)

    @classmethod
    def from_dict(cls, d: dict) -> LidarSpecialistConfig:
        """Build from a mapping (YAML / ROS parameters); key ``preset`` picks street/tabletop."""
        d = dict(d)
        preset = d.pop("preset", None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"LidarSpecialistConfig: unknown keys {unknown}; known: {sorted(known)}"
            )
        for k in ("roi_min", "roi_max", "max_size"):
            if d.get(k) is not None:
                d[k] = tuple(float(v) for v in d[k])
        return cls(**d) if preset is None else cls.preset(preset, **d)


@dataclass
class SpecialistStats:
    """What the last ``propose`` call did (for diagnostics and to explain an empty result).

    Attributes:
        n_input: points given; n_valid: finite ones; n_used: after the subsample cap;
        n_cropped: after range/ROI crop (and voxels); n_object: above the support plane;
        planes: heights (m) of the removed horizontal planes, lowest first;
        n_clusters: clusters found; n_candidates: candidates returned;
        subsampled: the cap applied; leveled: auto-levelling found a plane (None: not tried);
        walls: room walls removed (depth specialist);
        reason: why the result is empty ('' when it is not);
        timings_ms: per stage.
    """

    n_input: int = 0
    n_valid: int = 0
    n_used: int = 0
    n_cropped: int = 0
    n_object: int = 0
    planes: list[float] = field(default_factory=list)
    n_clusters: int = 0
    n_candidates: int = 0
    subsampled: bool = False
    leveled: bool | None = None
    walls: int = 0
    reason: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)


def voxel_downsample(points: np.ndarray, voxel: float) -> np.ndarray:
    """Centroid (all columns averaged) of the points in each occupied ``voxel``-metre cube."""
    p = np.asarray(points)
    if voxel <= 0 or len(p) == 0:
        return p
    key = np.floor(p[:, :3] / voxel).astype(np.int64)
    key -= key.min(axis=0)
    span = key.max(axis=0) + 1
    flat = (key[:, 0] * span[1] + key[:, 1]) * span[2] + key[:, 2]
    _, inv, counts = np.unique(flat, return_inverse=True, return_counts=True)
    out = np.empty((len(counts), p.shape[1]), dtype=p.dtype)
    for c in range(p.shape[1]):  # loop over columns (3-4), not points
        out[:, c] = np.bincount(inv, weights=p[:, c], minlength=len(counts)) / counts
    return out


def _inside_convex_hull(xy: np.ndarray, hull_xy: np.ndarray, margin: float) -> np.ndarray:
    """(N,) bool: points inside a convex polygon (vertices CCW) grown by ``margin`` metres."""
    v = hull_xy
    e = np.roll(v, -1, axis=0) - v
    n = np.stack([e[:, 1], -e[:, 0]], axis=1)  # outward normals for a CCW polygon
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    off = np.einsum("ij,ij->i", n, v)
    return np.all(xy @ n.T - off <= margin, axis=1)


def _hull_ccw(xy: np.ndarray) -> np.ndarray:
    import cv2

    h = cv2.convexHull(xy.astype(np.float32), clockwise=False).reshape(-1, 2).astype(np.float64)
    # OpenCV's orientation flag refers to image axes (y down); make it CCW in x-right/y-up.
    area2 = np.sum(h[:, 0] * np.roll(h[:, 1], -1) - np.roll(h[:, 0], -1) * h[:, 1])
    return h if area2 > 0 else h[::-1]


def box_to_image(box: Box3D, camera: CameraIntrinsics, T_cam_from_box_frame: np.ndarray):
    """(4,) x1, y1, x2, y2 pixels of the box's projection (clipped), or None when not visible."""
    from spatial_ros.geometry.camera import project_box

    return project_box(box.transformed(T_cam_from_box_frame, camera.frame_id), camera)


def finalize_candidates(
    cands: list[Candidate], sensor_origin: np.ndarray, prefix: str
) -> list[Candidate]:
    """Sort by distance of the box centre from ``sensor_origin`` (then x, y) and assign ids."""
    keyed = sorted(
        cands,
        key=lambda c: (
            round(float(np.linalg.norm(c.box.center - sensor_origin)), 6),
            round(float(c.box.center[0]), 6),
            round(float(c.box.center[1]), 6),
        ),
    )
    for i, c in enumerate(keyed):
        c.id = f"{prefix}_{i}"
    return keyed


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
        # Sum of the coordinates is non-finite iff one is NaN/inf (one pass instead of three).
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
        r = np.hypot(xyz[:, 0] - origin[0], xyz[:, 1] - origin[1])
        keep = (r >= cfg.min_range) & (r <= cfg.max_range)
        if cfg.roi_min is not None:
            keep &= np.all((xyz >= cfg.roi_min) & (xyz <= cfg.roi_max), axis=1)
        xyz = xyz[keep]
        if cfg.voxel_size > 0:
            xyz = voxel_downsample(xyz, cfg.voxel_size)
        st.n_cropped = len(xyz)
        st.timings_ms["crop"] = (time.perf_counter() - t) * 1e3
        if len(xyz) == 0:
            st.reason = f"no points within range [{cfg.min_range}, {cfg.max_range}] m / ROI"
            return []

        t = time.perf_counter()
        obj_mask, planes = self._remove_planes(xyz, st)
        obj = xyz[obj_mask]
        st.n_object = len(obj)
        st.timings_ms["planes"] = (time.perf_counter() - t) * 1e3
        if len(obj) < cfg.min_points:
            st.reason = st.reason or (
                f"only {len(obj)} points left above the support plane (min_points="
                f"{cfg.min_points}); nothing stands out of the ground/table"
            )
            return []

        t = time.perf_counter()
        labels, n = grid_clusters(
            obj, cell=cfg.cell, tolerance=cfg.cluster_tolerance,
            tolerance_per_m=cfg.tolerance_per_m, max_tolerance=cfg.max_tolerance,
            z_resolution=cfg.z_resolution, z_gap=cfg.z_gap, z_gap_per_m=cfg.z_gap_per_m,
            origin=origin[:2],
        )
        counts = np.bincount(labels, minlength=n)
        st.n_clusters = int(n)
        st.timings_ms["cluster"] = (time.perf_counter() - t) * 1e3

        t = time.perf_counter()
        cands = []
        big = np.flatnonzero(counts >= cfg.min_points)
        if len(big):
            remap = np.full(n, -1, dtype=np.int64)
            remap[big] = np.arange(len(big))
            lab = remap[labels]
            sub_idx = np.flatnonzero(lab >= 0)
            max_size = np.asarray(cfg.max_size, float)
            # Tallest thing worth splitting: merged parked cars are car-high, buildings not.
            split_h = max([p.height * (1 + p.tolerance) for p in cfg.size_priors],
                          default=max_size[2])
            for g in group_indices(lab[sub_idx], len(big)):
                cp = obj[sub_idx[g]]
                lo, hi = cp.min(axis=0), cp.max(axis=0)
                ext = hi - lo
                # Cheap bounds first: an oriented box is at least AABB/sqrt(2) long.
                long_side = max(ext[0], ext[1]) / np.sqrt(2.0)
                too_big = long_side > max_size[0] or ext[2] > max_size[2]
                if not too_big:
                    c = self._box_for_cluster(cp, planes, T_w)
                    too_big = bool(np.any(c.box.size > max_size))
                    if not too_big:
                        if self._fits(c):
                            cands.append(c)
                        continue
                if cfg.split_oversized and long_side <= 2.5 * max_size[0] \
                        and ext[2] <= split_h:
                    # Objects closer than the range-grown gap (parked cars) merged: split
                    # once with the tightest gap (one cell) and keep what fits.
                    cands += self._split(cp, planes, T_w)
        st.timings_ms["boxes"] = (time.perf_counter() - t) * 1e3
        return cands

    def _fits(self, c: Candidate) -> bool:
        size = c.box.size  # (length >= width, height)
        return bool(size.max() >= self.config.min_extent
                    and np.all(size <= np.asarray(self.config.max_size, float)))

    def _split(self, cp: np.ndarray, planes: list[Plane], T_w: np.ndarray) -> list[Candidate]:
        cfg = self.config
        labels, n = grid_clusters(cp, cell=cfg.cell, tolerance=cfg.cell,
                                  z_resolution=cfg.z_resolution, z_gap=cfg.z_gap,
                                  origin=T_w[:2, 3])
        out = []
        counts = np.bincount(labels, minlength=n)
        groups = group_indices(labels, n)
        for j in np.flatnonzero(counts >= cfg.min_points):
            c = self._box_for_cluster(cp[groups[j]], planes, T_w)
            # With size priors, only pieces that look like a known category (a wall's debris
            # does not); without, every piece that fits.
            if self._fits(c) and (c.label or not cfg.size_priors):
                out.append(c)
        return out

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
            hull = _hull_ccw(xyz[sup, :2])
            idx = np.flatnonzero(keep)
            keep[idx] = _inside_convex_hull(xyz[idx, :2], hull, margin=cfg.cluster_tolerance)
        return keep, planes

    def _box_for_cluster(self, cp: np.ndarray, planes: list[Plane], T_w: np.ndarray) -> Candidate:
        cfg = self.config
        origin = T_w[:3, 3]
        z_min = support_below(cp, planes, cfg.support_gap, cfg.plane_distance) \
            if cfg.extend_to_support else None
        pitch = _beam_pitch(cp, T_w) if (cfg.sampling_pad or cfg.top_pad_rows) else 0.0
        c = cp.mean(axis=0) - origin
        pad = cfg.box_pad + cfg.box_pad_per_m * float(np.hypot(c[0], c[1]))
        pad_top = pad + cfg.top_pad_rows * pitch * float(np.linalg.norm(c))
        box = fit_box(cp, method=cfg.box_method, z_min=z_min, pad=pad, pad_top=pad_top)
        if cfg.sampling_pad and pitch > 0:
            box = extend_away(box, box.center[:2] - origin[:2], _far_row_gap(cp, T_w, pitch, cfg))
        label = ""
        if cfg.size_priors:
            box, label = complete_with_prior(box, cfg.size_priors, origin[:2])
        n_pts = len(cp)
        return Candidate(
            box=box, score=float(n_pts / (n_pts + cfg.score_points)), source=self.source,
            num_points=n_pts, label=label, points=cp.astype(np.float32),
        )


def _beam_pitch(cp: np.ndarray, T_w: np.ndarray) -> float:
    """Smallest elevation step (radians) between the cluster's LiDAR rows, 0 with one row.
    A spinning LiDAR's points keep their beam's elevation whatever the range noise."""
    d = (cp - T_w[:3, 3]) @ T_w[:3, :3]  # points in the sensor frame
    el = np.sort(np.arctan2(d[:, 2], np.hypot(d[:, 0], d[:, 1])))
    steps = np.diff(el)
    steps = steps[steps > 1e-4]  # distinct beams
    return float(steps.min()) if len(steps) else 0.0


def _far_row_gap(cp: np.ndarray, T_w: np.ndarray, pitch: float,
                 cfg: LidarSpecialistConfig) -> float:
    """Half the spacing (metres) of LiDAR rows on a horizontal top surface at the cluster's
    far edge: ``0.5 · Δ · R² / h`` for beam pitch Δ (radians), range R and drop h from the
    sensor to the top. 0 when the sensor is not above the top."""
    origin = T_w[:3, 3]
    h = float(origin[2] - cp[:, 2].max())
    if h <= 0:
        return 0.0
    r_far = float(np.hypot(cp[:, 0] - origin[0], cp[:, 1] - origin[1]).max())
    return float(min(0.5 * pitch * (r_far**2 + h**2) / h, cfg.sampling_pad_max))


def support_below(points: np.ndarray, planes: list[Plane], max_gap: float, tol: float):
    """z (at the points' centroid) of the highest plane at most ``max_gap`` metres below the
    lowest point (``tol`` metres of overlap allowed), or None: what the object rests on."""
    zlo = float(points[:, 2].min())
    cxy = points[:, :2].mean(axis=0)
    best = None
    for q in planes:
        n, d = q.normal, q.offset
        if abs(n[2]) < 1e-6:
            continue
        zq = float(-(d + n[0] * cxy[0] + n[1] * cxy[1]) / n[2])
        if zq <= zlo + tol and zlo - zq <= max_gap:
            best = zq if best is None else max(best, zq)
    return best


def propose_lidar(points: np.ndarray, config: LidarSpecialistConfig | None = None, **kwargs):
    """One-shot ``LidarSpecialist(config).propose(points, **kwargs)``."""
    return LidarSpecialist(config).propose(points, **kwargs)
