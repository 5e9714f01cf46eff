"""The simulated world: procedural scenes, raycast camera/depth/LiDAR, trajectories, exact truth.

Quick use::

    from spatial_ros.sim import SimConfig, make_scene, render, iter_frames, simulate

    scene = make_scene("tabletop", seed=3)            # objects + rig, boxes in base_link
    frame = render(scene)                              # rgb, depth, points (N,4), truth
    for f in iter_frames(SimConfig("street", seed=1, frames=5)):
        f.sensor_frame(), f.truth                      # SensorFrame + FrameTruth, no bag
    simulate(SimConfig(frames=30, trajectory="success"), "runs/sim")  # bag + truth files

``spatial-ros sim`` is the command-line front end. See the submodules for the definitions of
frames (scene), ray casting (raycast), goals/progress (trajectory) and truth (truth).
"""

from spatial_ros.sim.config import CameraConfig, LidarConfig, SimConfig
from spatial_ros.sim.raycast import RayWorld
from spatial_ros.sim.scene import GRIPPER_TCP_FRAME, Rig, Scene, SimObject, make_scene
from spatial_ros.sim.trajectory import (
    Goal,
    Trajectory,
    TrajectoryState,
    parse_goal,
    plan_trajectory,
)
from spatial_ros.sim.truth import FrameTruth, ObjectTruth
from spatial_ros.sim.world import (
    TOPICS,
    Episode,
    SimFrame,
    SimResult,
    iter_frames,
    render,
    simulate,
)

__all__ = [
    "GRIPPER_TCP_FRAME",
    "TOPICS",
    "CameraConfig",
    "Episode",
    "FrameTruth",
    "Goal",
    "LidarConfig",
    "ObjectTruth",
    "RayWorld",
    "Rig",
    "Scene",
    "SimConfig",
    "SimFrame",
    "SimObject",
    "SimResult",
    "Trajectory",
    "TrajectoryState",
    "iter_frames",
    "make_scene",
    "parse_goal",
    "plan_trajectory",
    "render",
    "simulate",
]
