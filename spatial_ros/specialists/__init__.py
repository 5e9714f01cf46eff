"""Geometric specialists: model-free 3D box proposals from LiDAR and depth, and an ONNX Runtime
adapter for learned detectors. Each returns ``list[spatial_ros.types.Candidate]`` sorted by
distance from the sensor, ids "<source>_<i>" — the candidates the VLM prompt builder lists
(Cube-LLM specialist box prompts) and that "specialists-only" mode publishes directly.

ROS-free; ``onnxruntime`` is imported only by ``spatial_ros.specialists.onnx_detector``.
"""

from spatial_ros.specialists.boxfit import fit_box
from spatial_ros.specialists.classify import STREET_CLASSES, SizePrior, complete_with_prior
from spatial_ros.specialists.clustering import grid_clusters
from spatial_ros.specialists.depth import DepthSpecialist, DepthSpecialistConfig
from spatial_ros.specialists.ground import GroundConfig, segment_ground
from spatial_ros.specialists.lidar import (
    LidarSpecialist,
    LidarSpecialistConfig,
    SpecialistStats,
    propose_lidar,
    voxel_downsample,
)
from spatial_ros.specialists.planes import Plane, fit_horizontal_planes, gravity_alignment
from spatial_ros.specialists.preset_choice import PresetChoice, choose_preset

__all__ = [
    "STREET_CLASSES",
    "DepthSpecialist",
    "DepthSpecialistConfig",
    "LidarSpecialist",
    "GroundConfig",
    "LidarSpecialistConfig",
    "Plane",
    "PresetChoice",
    "SizePrior",
    "SpecialistStats",
    "complete_with_prior",
    "choose_preset",
    "fit_box",
    "fit_horizontal_planes",
    "gravity_alignment",
    "grid_clusters",
    "propose_lidar",
    "segment_ground",
    "voxel_downsample",
]
