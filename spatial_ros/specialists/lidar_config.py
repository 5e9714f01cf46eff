"""Configuration of the LiDAR specialist (``LidarSpecialistConfig``, presets street/tabletop)
and what one ``propose`` call did (``SpecialistStats``). Metres, degrees, z-up working frame.

Preset "street" (KITTI-like roof LiDAR, 32-128 beams): patchwise ground (``ground.py``), classes
from shape and size (``classify.STREET_CLASSES``: car, van, truck, pedestrian, cyclist, pole,
else "misc"), L-shape headings from the visible contour, touching objects split, a minimum of
points that falls with range. Preset "tabletop": RANSAC floor + table top, no classes (labels
""), min-area rectangles.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.specialists.classify import STREET_CLASSES, SizePrior
from spatial_ros.specialists.ground import GroundConfig

PRESETS = ("street", "tabletop")


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

    Ground / planes:
        ground_method: "planes" (RANSAC horizontal planes below) or "patchwise" (local ground
            planes on a polar grid, ``ground.segment_ground``: slopes, curbs, sidewalks).
        ground: parameters of the patchwise ground (``GroundConfig`` or a mapping; None =
            defaults, with ``ground_height`` as its fallback height).
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
        fine_tolerance_per_m, fine_max_tolerance, fine_cell: a second, finer clustering
            (same base gap, slower growth with range, its own cell size, 0 = ``cell``;
            ``fine_tolerance_per_m`` 0 = off): a cluster that gets no class, or is too
            big for any, is taken apart into the finer clusters it holds. The coarse gap
            keeps sparse thin parts together (a bicycle's wheels with its rider 20 m away),
            the fine one separates neighbours the coarse gap merged (parked cars 35 m away).

    Boxes:
        min_points: smallest cluster kept (at any range).
        min_visible_area: distance-aware minimum (m^2; 0 = off): a cluster whose centre is
            r metres away needs ``max(min_points, min_visible_area · density / r^2)`` points,
            the returns of that much visible surface: an object's returns fall with the
            square of its range. ``density`` (points per steradian) is measured on each cloud
            (returns over the solid angle they cover: a 64-beam scan ~40 k/sr, a 16-beam one
            ~8 k/sr; ``SpecialistStats.density``), so the rule follows the sensor.
        min_top: a cluster whose highest point is less than this above its ground is not an
            object (curb stones, low vegetation); 0 = off.
        contour_heading: fit L-shape headings on the visible contour (``boxfit``).
        split_touching: split clusters that are two objects side by side (``splitting``).
        people_classes: classes that stand shoulder to shoulder: a cluster of that class may
            split into two of them, at valleys down to ``split_valley_ratio`` (shoulders
            stand at ~0.82 of a person's height); a cluster of any other class splits only at
            ``split_known_ratio`` (a gap or bumper-deep valley: a car's own profile dips where
            its windows return nothing).
        split_valley_ratio, split_known_ratio: see ``people_classes`` (valley height over the
            lower peak, ``splitting.best_cut``); unclassified clusters use the first.
        max_split_rounds: how many times a piece may be split again (three people in a row
            take two rounds).
        contour_min_extent: clusters whose BEV extent reaches this (metres) are headed by the
            L-shape of their visible contour (vehicles); smaller ones (people) by all points.
        drop_open_top_unknown: drop clusters that reach the top of what the sensor sees
            (the height window or its highest beam) and get no class: walls, trees,
            buildings, whose height is unknown.
        pole_chain_gap: "poles" in a row of three or more, each within this many metres of
            the next, are a wall seen at a grazing angle and are dropped; 0 = off.
        vehicle_labels: classes whose boxes swallow smaller candidates: candidates whose
            boxes overlap one of theirs are one object and are merged
            (``lidar_boxes.BoxResolver.merge_overlapping``), and a candidate of another class
            centred inside one of their boxes is a sliver of the vehicle and is dropped
            (``scan_geometry.drop_vehicle_parts``); () = off.
        unknown_label: label of clusters no size prior admits ("misc" on the street; "" when
            the preset has no classes).
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
        size_priors: categories (``classify.SizePrior``): a cluster's label, and the size a
            partially seen cluster is completed to.
        score_points: score = n / (n + score_points) for a cluster of n points.
        require_in_image: drop candidates whose box does not project into the image (only when
            a camera is given).
        seed: seed of every random choice (deterministic output).
        preset_name: the preset these values came from ("street", "tabletop"; "" = custom):
            ``LidarSpecialist`` warns when the cloud plainly belongs to the other one.
    """

    min_range: float = 1.0
    max_range: float = 60.0
    roi_min: tuple[float, float, float] | None = None
    roi_max: tuple[float, float, float] | None = None
    max_input_points: int = 400_000
    voxel_size: float = 0.0
    ground_method: str = "planes"
    ground: GroundConfig | None = None
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
    fine_tolerance_per_m: float = 0.0
    fine_max_tolerance: float = 0.0
    fine_cell: float = 0.0
    min_points: int = 10
    min_visible_area: float = 0.0
    min_top: float = 0.0
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
    contour_heading: bool = False
    split_touching: bool = False
    people_classes: tuple[str, ...] = ("pedestrian", "cyclist")
    split_valley_ratio: float = 0.85
    split_known_ratio: float = 0.4
    max_split_rounds: int = 3
    contour_min_extent: float = 1.5
    size_priors: tuple[SizePrior, ...] = ()
    drop_open_top_unknown: bool = False
    pole_chain_gap: float = 0.0
    vehicle_labels: tuple[str, ...] = ()
    unknown_label: str = ""
    score_points: float = 30.0
    require_in_image: bool = False
    seed: int = 0
    preset_name: str = ""

    def __post_init__(self) -> None:
        bad = []
        pos = ("max_range", "plane_distance", "cell", "cluster_tolerance", "max_tolerance",
               "z_resolution", "z_gap", "score_points")
        bad += [f"{k}={getattr(self, k)} (must be > 0)" for k in pos if not getattr(self, k) > 0]
        nonneg = ("min_range", "voxel_size", "tolerance_per_m", "z_gap_per_m", "min_height",
                  "min_visible_area", "min_top", "pole_chain_gap",
                  "fine_tolerance_per_m", "fine_max_tolerance", "fine_cell",
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
        if self.ground_method not in ("planes", "patchwise"):
            bad.append(f"ground_method={self.ground_method!r} (must be 'planes' or "
                       "'patchwise')")
        if isinstance(self.ground, dict):
            try:
                self.ground = GroundConfig(**self.ground)
            except TypeError as e:
                bad.append(f"ground: {e}")
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
        vans, trucks, pedestrians, cyclists, poles at 2-80 m). ``ground_height`` (optional)
        is the ground's z in the output frame, used only where no ground is seen: -1.73 for
        KITTI's velodyne frame, ~0 for base_link."""
        base = dict(size_priors=STREET_CLASSES, unknown_label="misc", max_height=4.0,
                    max_size=(7.0, 3.0, 4.5), ground_method="patchwise",
                    cell=0.25, cluster_tolerance=0.3, tolerance_per_m=0.03, max_tolerance=1.0,
                    fine_cell=0.15, fine_tolerance_per_m=0.01, fine_max_tolerance=0.6,
                    min_points=5, min_visible_area=0.1, min_top=0.5,
                    contour_heading=True, split_touching=True, split_oversized=False,
                    drop_open_top_unknown=True,
                    pole_chain_gap=1.5, vehicle_labels=("car", "van", "truck"),
                    box_pad_per_m=0.0017, top_pad_rows=0.5, preset_name="street")
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
            preset_name="tabletop",
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def preset(cls, name: str, **overrides) -> LidarSpecialistConfig:
        """The named preset ("street" or "tabletop") with ``overrides`` applied."""
        if name not in PRESETS:
            raise ConfigError(
                f"LidarSpecialistConfig: preset must be street|tabletop, got {name!r}"
            )
        return getattr(cls, name)(**overrides)

    def ground_config(self) -> GroundConfig:
        """The patchwise ground's parameters: ``ground`` (or defaults) over this crop, with
        ``ground_height`` as the fallback where no ground is seen."""
        g = self.ground if self.ground is not None else GroundConfig()
        over = dict(min_range=self.min_range, max_range=self.max_range)
        if g.fallback_height is None and self.ground_height is not None:
            over["fallback_height"] = float(self.ground_height)
        return replace(g, **over)

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
        for k in ("people_classes", "vehicle_labels"):
            if isinstance(d.get(k), (list, tuple)):
                d[k] = tuple(str(v) for v in d[k])
        if isinstance(d.get("size_priors"), (list, tuple)):
            d["size_priors"] = tuple(d["size_priors"])
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
        density: returns per steradian of the cloud (with ``min_visible_area``; 0 = not
            measured);
        subsampled: the cap applied; leveled: auto-levelling found a plane (None: not tried);
        walls: room walls removed (depth specialist);
        reason: why the result is empty ('' when it is not);
        warning: the cloud holds far more than the preset found (e.g. a street scan under
            the tabletop preset), with what to do ('' when nothing looks wrong);
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
    density: float = 0.0
    subsampled: bool = False
    leveled: bool | None = None
    walls: int = 0
    reason: str = ""
    warning: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)


