"""Configuration of the depth specialist (``DepthSpecialistConfig``). Metres unless stated."""

from __future__ import annotations

from dataclasses import dataclass, field

from spatial_ros.errors import ConfigError
from spatial_ros.specialists.lidar_config import LidarSpecialistConfig


def _default_clustering() -> LidarSpecialistConfig:
    return LidarSpecialistConfig.tabletop(
        auto_level=False, max_range=8.0, cell=0.02, cluster_tolerance=0.04, max_tolerance=0.04,
        z_resolution=0.02, z_gap=0.06, plane_distance=0.015, min_points=50, crop_to_support=False,
        max_planes=3, support="lowest", min_height=0.02, max_height=2.5, max_size=(3.0, 3.0, 2.5),
        support_gap=0.08,
    )


@dataclass
class DepthSpecialistConfig:
    """Parameters of the depth specialist. Metres unless stated.

    Attributes:
        stride: use every ``stride``-th pixel row and column of the depth image.
        min_depth, max_depth: depth window (metres along the optical axis).
        min_points: smallest object cloud kept.
        max_object_points: larger object clouds are strided down to this many points.
        max_points_total: the points inside all regions are strided down to this many first.
        cluster_cell, cluster_tolerance: grid clustering that separates objects from each
            other and from the background inside the regions (near the camera).
        pixel_gap, max_cluster_tolerance: the gap tolerance grows with range to ``pixel_gap``
            pixel footprints (depth * stride / f), up to ``max_cluster_tolerance`` metres.
        min_fill: smallest 2D IoU between a region and its cluster's pixel box to accept it.
        outlier_neighbors, outlier_std_ratio: statistical outlier removal (points whose mean
            distance to their k neighbours exceeds mean + ratio * std are dropped); 0 = off.
        remove_support: detect horizontal planes (floor, table) on the whole cloud and drop
            their points from the objects.
        plane_distance, plane_max_tilt_deg, plane_min_area, plane_connectivity, max_planes:
            plane detection (see ``planes.fit_horizontal_planes``).
        max_walls: room walls to detect and drop (``planes.fit_walls``; vertical planes of at
            least ``wall_min_area`` m^2 with almost nothing behind them); 0 = off. Walls also
            square and complete lifted boxes (``room``):
        wall_snap_deg: a box heading within this many degrees of a wall's turns to it.
        wall_max_gap, wall_thin: a box thinner than ``wall_thin`` along the line of sight
            (only its front seen) reaches back to a wall at most ``wall_max_gap`` behind it.
        edge_split, edge_depth_tol, edge_depth_rel, edge_colour_tol, edge_keep_fill: a
            region's cluster is cut at depth and colour edges on the pixel grid
            (``depth_edges``; colours from the points' columns 3-5), and the part that fills
            the region best is kept when its 2D fill is at least ``edge_keep_fill`` x the
            whole's: touching objects separate.
        complete_depth: a lifted box whose label is a known indoor class and that is thin
            along the line of sight grows to the class's typical depth (``room``).
        support_gap: an object whose lowest point is within this height of a plane below it
            rests on it: its box bottom goes down to the plane.
        gravity_max_tilt_deg: largest camera tilt looked for when estimating gravity.
        clustering: LiDAR-style clustering used when no boxes/masks are given.
        seed: random seed (deterministic output).
    """

    stride: int = 2
    min_depth: float = 0.1
    max_depth: float = 10.0
    min_points: int = 30
    max_object_points: int = 20000
    max_points_total: int = 200_000
    min_fill: float = 0.1
    cluster_cell: float = 0.01
    cluster_tolerance: float = 0.03
    pixel_gap: float = 3.0
    max_cluster_tolerance: float = 0.15
    outlier_neighbors: int = 16
    outlier_std_ratio: float = 2.0
    remove_support: bool = True
    plane_distance: float = 0.02
    plane_max_tilt_deg: float = 10.0
    plane_min_area: float = 0.15
    plane_connectivity: float = 0.05
    max_planes: int = 3
    max_walls: int = 0
    wall_min_area: float = 2.0
    wall_snap_deg: float = 20.0
    wall_max_gap: float = 1.2
    wall_thin: float = 0.4
    edge_split: bool = True
    edge_depth_tol: float = 0.02
    edge_depth_rel: float = 0.01
    edge_colour_tol: float = 0.15
    edge_keep_fill: float = 0.9
    complete_depth: bool = True
    support_gap: float = 0.08
    gravity_max_tilt_deg: float = 60.0
    clustering: LidarSpecialistConfig = field(default_factory=_default_clustering)
    seed: int = 0

    def __post_init__(self) -> None:
        bad = []
        if self.stride < 1:
            bad.append(f"stride={self.stride} (must be >= 1)")
        if not 0 <= self.min_depth < self.max_depth:
            bad.append(f"min_depth={self.min_depth}, max_depth={self.max_depth} "
                       "(need 0 <= min_depth < max_depth)")
        if self.min_points < 3 or self.max_object_points < self.min_points:
            bad.append(f"min_points={self.min_points}, max_object_points="
                       f"{self.max_object_points} (need 3 <= min_points <= max_object_points)")
        if not 0 < self.cluster_cell <= self.cluster_tolerance:
            bad.append(f"cluster_cell={self.cluster_cell}, cluster_tolerance="
                       f"{self.cluster_tolerance} (need 0 < cell <= tolerance)")
        if self.pixel_gap < 0 or self.max_cluster_tolerance < self.cluster_tolerance:
            bad.append(f"pixel_gap={self.pixel_gap} (>= 0), max_cluster_tolerance="
                       f"{self.max_cluster_tolerance} (>= cluster_tolerance)")
        if self.outlier_neighbors < 0 or self.outlier_std_ratio <= 0:
            bad.append(f"outlier_neighbors={self.outlier_neighbors} (>= 0), outlier_std_ratio="
                       f"{self.outlier_std_ratio} (> 0)")
        if self.plane_connectivity < 0:
            bad.append(f"plane_connectivity={self.plane_connectivity} (must be >= 0)")
        if self.plane_distance <= 0 or self.max_planes < 0 or self.plane_min_area < 0:
            bad.append(f"plane_distance={self.plane_distance} (> 0), max_planes="
                       f"{self.max_planes} (>= 0), plane_min_area={self.plane_min_area} (>= 0)")
        for k in ("plane_max_tilt_deg", "gravity_max_tilt_deg"):
            if not 0 <= getattr(self, k) <= 90:
                bad.append(f"{k}={getattr(self, k)} (must be in [0, 90])")
        if self.max_walls < 0 or self.wall_min_area <= 0:
            bad.append(f"max_walls={self.max_walls} (>= 0), wall_min_area={self.wall_min_area}"
                       " (> 0)")
        if self.support_gap < 0:
            bad.append(f"support_gap={self.support_gap} (must be >= 0)")
        if isinstance(self.clustering, dict):
            self.clustering = LidarSpecialistConfig.from_dict(self.clustering)
        if bad:
            raise ConfigError("DepthSpecialistConfig: " + "; ".join(bad))
