"""Evaluation: replay bags / KITTI frames through the perception pipeline, score the predictions
against truth (box files), and render a report.

- ``metrics``: grounding Acc@IoU, BEV detection AP/recall, distance errors, parse failures,
  latency percentiles, VOC (pure functions on ``spatial_ros.boxfile`` frames).
- ``replay``: bag -> ``frames_from_bag`` -> ``PerceptionPipeline.process`` -> box frames,
  per-frame records and report snapshots; predictions recorded from a live node.
- ``report``: report.html + PNGs (projected boxes, bird's-eye view, reward curves, table).
- ``runs``: ``EvalConfig`` and the runs behind ``spatial-ros eval`` and ``spatial-ros demo``.

Imports no rclpy (``spatial-ros play`` is the ROS side).
"""

from spatial_ros.evaluation.runs import (
    EvalConfig,
    EvalOutcome,
    run_bag_eval,
    run_eval,
    run_kitti_eval,
)

__all__ = ["EvalConfig", "EvalOutcome", "run_bag_eval", "run_eval", "run_kitti_eval"]
