"""Specialist fusion on the simulated world: a model whose 3D answers are right about WHICH
object but noisy about WHERE (15 % depth error, +-8 px, 20 % size, yaw noise) is fused with the
LiDAR specialist's candidates; the fused boxes must be far more accurate than the answers."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from spatial_ros.geometry.iou import iou_3d
from spatial_ros.types import Box3D
from spatial_ros.vlm.backend import ScriptedBackend
from spatial_ros.vlm.codec import BoxCodec
from spatial_ros.vlm.engine import EngineConfig, SpatialEngine


def _noisy_model(frame, objects, rng):
    codec = BoxCodec()
    T = frame.transforms.lookup(frame.camera.frame_id, "base_link")
    cam = frame.camera

    def answer(conv, image):
        o = objects[conv[-1].text.rsplit(": ", 1)[-1]]
        b = o.box.transformed(T, cam.frame_id)
        c = b.center * rng.uniform(0.85, 1.15)
        c[:2] += rng.uniform(-8, 8, 2) * c[2] / cam.fx
        R = b.rotation @ Box3D.from_yaw([0, 0, 0], [1, 1, 1], rng.normal(0, 0.3)).rotation
        return codec.encode_box3d(Box3D(c, b.size * rng.uniform(0.8, 1.2, 3), R), cam)

    return ScriptedBackend(answer)


@pytest.mark.parametrize(
    "scenario, seeds", [("tabletop", (100, 101, 102)), ("street", (100, 101, 102, 103, 104))]
)
def test_fusion_recovers_specialist_accuracy_from_noisy_answers(scenario, seeds, caplog):
    from spatial_ros.sim import SimConfig, iter_frames
    from spatial_ros.specialists import LidarSpecialist, LidarSpecialistConfig

    caplog.set_level(logging.ERROR)
    rng = np.random.default_rng(0)
    spec = LidarSpecialist(LidarSpecialistConfig.preset(scenario))
    ious = {False: [], True: []}
    for seed in seeds:
        sim = next(iter(iter_frames(SimConfig(scenario=scenario, seed=seed, frames=1))))
        frame, truth = sim.sensor_frame(), sim.truth
        cands = spec.propose_frame(frame, "base_link")
        objs = {o.caption: o for o in truth.objects
                if not o.ambiguous_with and o.box_2d is not None and (o.lidar_points or 0) >= 30
                and o.category != "gripper"}
        for fuse in (False, True):
            engine = SpatialEngine(_noisy_model(frame, objs, rng),
                                   EngineConfig(fuse=fuse, referring="model"))
            for g in engine.ground(frame, list(objs), cands, "base_link"):
                assert g.source == ("vlm+lidar" if fuse else "vlm")
                upright = Box3D.from_yaw(g.box.center, g.box.size, g.box.yaw, "base_link")
                ious[fuse].append(iou_3d(upright, objs[g.query].box))
    raw, fused = np.array(ious[False]), np.array(ious[True])
    assert len(fused) == len(raw) >= 8
    # measured: tabletop 0.17 -> 0.70 mean 3D IoU, street 0.19 -> 0.81 (6 seeds each)
    assert raw.mean() < 0.35
    assert fused.mean() > 0.6 and np.mean(fused >= 0.25) >= 0.85
