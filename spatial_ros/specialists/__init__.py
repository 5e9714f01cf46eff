"""Geometric specialists: model-free 3D box proposals from LiDAR and depth, and an ONNX Runtime
adapter for learned detectors. Each returns ``list[spatial_ros.types.Candidate]`` sorted by
distance from the sensor, ids "<source>_<i>" — the candidates the VLM prompt builder lists
(Cube-LLM specialist box prompts) and that "specialists-only" mode publishes directly.

ROS-free; ``onnxruntime`` is imported only by ``spatial_ros.specialists.onnx_detector``.
"""

from spatial_ros.specialists.boxfit import SizePrior, complete_with_prior, fit_box
from spatial_ros.specialists.clustering import grid_clusters
from spatial_ros.specialists.depth import DepthSpecialist, DepthSpecialistConfig
from spatial_ros.specialists.lidar import (
    LidarSpecialist,
    LidarSpecialistConfig,
    SpecialistStats,
    propose_lidar,
    voxel_downsample,
)
from spatial_ros.specialists.planes import Plane, fit_horizontal_planes, gravity_alignment

__all__ = [
    "DepthSpecialist",
    "DepthSpecialistConfig",
    "LidarSpecialist",
    "LidarSpecialistConfig",
    "Plane",
    "SizePrior",
    "SpecialistStats",
    "complete_with_prior",
    "fit_box",
    "fit_horizontal_planes",
    "gravity_alignment",
    "grid_clusters",
    "propose_lidar",
    "voxel_downsample",
]
