"""Depth specialist on ray-cast depth images with exact truth (boxes, masks, none, gravity)."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.errors import ConfigError
from spatial_ros.geometry.iou import iou_2d, iou_3d_matrix
from spatial_ros.specialists import DepthSpecialist, DepthSpecialistConfig
from spatial_ros.specialists.depth import statistical_outliers
from spatial_ros.specialists.synthetic import tabletop_depth
from spatial_ros.types import CameraIntrinsics


@pytest.fixture(scope="module")
def scene():
    return tabletop_depth(21)


def _recall(scene, boxes, thr=0.5):
    vis = ~np.isnan(scene.boxes_2d[:, 0])
    M = iou_3d_matrix(scene.boxes, boxes)
    return int((M.max(axis=1)[vis] >= thr).sum()), int(vis.sum()), M


@pytest.mark.parametrize("mode", ["boxes", "masks", "none"])
def test_lifting_with_known_extrinsic(scene, mode):
    vis = np.flatnonzero(~np.isnan(scene.boxes_2d[:, 0]))
    kw = {}
    if mode == "boxes":
        kw = {"boxes_2d": scene.boxes_2d[vis], "labels": [scene.labels[i] for i in vis],
              "scores": np.linspace(0.9, 0.5, len(vis))}
    elif mode == "masks":
        kw = {"masks": np.stack([scene.instance == i for i in vis])}
    ds = DepthSpecialist()
    cands = ds.propose(scene.depth, scene.camera, T_base_from_camera=scene.T_base_from_camera,
                       **kw)
    hits, total, M = _recall(scene, [c.box for c in cands])
    assert total >= 5 and hits >= total - 1, (hits, total, ds.last_stats)
    assert all(c.source == "depth" and c.box.frame_id == "base_link" for c in cands)
    assert [c.id for c in cands] == [f"depth_{i}" for i in range(len(cands))]
    if mode == "boxes":
        # Each candidate keeps the label, score and 2D box of the region it lifted.
        for c in cands:
            k = [scene.labels[i] for i in vis].index(c.label) if c.label else -1
            assert k >= 0 and c.box_2d is not None
        assert {c.label for c in cands} <= set(scene.labels)
    else:
        assert all(c.box_2d is not None for c in cands)
    # Found objects rest on the table (0.75 m), as the support plane says. (Without regions,
    # the table's 4 cm front edge is a candidate too: a real surface, not in the truth.)
    for j in np.flatnonzero(M.max(axis=0) >= 0.5):
        b = cands[j].box
        assert b.center[2] - b.size[2] / 2 == pytest.approx(0.75, abs=0.02)
    assert int((M.max(axis=0) < 0.1).sum()) <= 1


def test_gravity_estimated_from_the_table_when_no_extrinsic(scene):
    vis = np.flatnonzero(~np.isnan(scene.boxes_2d[:, 0]))
    ds = DepthSpecialist()
    cands = ds.propose(scene.depth, scene.camera, boxes_2d=scene.boxes_2d[vis])
    assert ds.last_stats.leveled is True
    assert all(c.box.frame_id == scene.camera.frame_id for c in cands)
    boxes = [c.box.transformed(scene.T_base_from_camera, "base_link") for c in cands]
    hits, total, _ = _recall(scene, boxes)
    assert hits >= total - 1
    # In the base frame the boxes are yaw-only again (gravity was found exactly enough).
    for b in boxes:
        assert abs(b.rotation[2, 2]) > 0.999


def test_2d_box_of_projection_matches_the_truth_projection(scene):
    """Without 2D input, candidates' 2D boxes are their 3D boxes' projections."""
    ds = DepthSpecialist()
    cands = ds.propose(scene.depth, scene.camera, T_base_from_camera=scene.T_base_from_camera)
    from spatial_ros.geometry.camera import project_box
    from spatial_ros.geometry.transforms import invert

    T = invert(scene.T_base_from_camera)
    for c in cands:
        ref = project_box(c.box.transformed(T, scene.camera.frame_id), scene.camera)
        assert iou_2d(c.box_2d, ref) > 0.999


def test_overlapping_boxes_go_to_the_object_that_fills_them():
    """A near box partly in front of a far, larger one: both 2D boxes overlap; each region gets
    its own object (the occluder's points are taken by its own, tighter box first)."""
    cam = CameraIntrinsics.from_fov(200, 150, 60.0)
    depth = np.full((150, 200), 6.0, np.float32)  # background wall
    depth[20:110, 40:160] = 4.0  # far object
    depth[70:140, 60:120] = 2.0  # near object in front of its lower-left part
    T = np.eye(4)
    from spatial_ros.geometry.transforms import R_BODY_FROM_OPTICAL

    T[:3, :3] = R_BODY_FROM_OPTICAL
    ds = DepthSpecialist(DepthSpecialistConfig(remove_support=False))
    cands = ds.propose(depth, cam, boxes_2d=[[40, 20, 159, 109], [60, 70, 119, 139]],
                       labels=["far", "near"], T_base_from_camera=T)
    by = {c.label: c for c in cands}
    assert set(by) == {"far", "near"}
    assert by["near"].box.center[0] == pytest.approx(2.0, abs=0.01)
    assert by["far"].box.center[0] == pytest.approx(4.0, abs=0.01)
    # The far object's width comes from its visible pixels: 120 px at 4 m.
    assert by["far"].box.size[0] == pytest.approx(119 * 4.0 / cam.fx, abs=0.08)


def test_bad_input():
    cam = CameraIntrinsics.from_fov(64, 48, 60.0)
    ds = DepthSpecialist()
    with pytest.raises(ConfigError, match="depth image is"):
        ds.propose(np.ones((10, 10), np.float32), cam)
    assert ds.propose(np.full((48, 64), np.nan, np.float32), cam) == []
    assert "valid depth points" in ds.last_stats.reason
    with pytest.raises(ConfigError, match="x1<=x2"):
        ds.propose(np.ones((48, 64), np.float32), cam, boxes_2d=[[10, 10, 5, 20]])
    with pytest.raises(ConfigError, match="not both"):
        ds.propose(np.ones((48, 64), np.float32), cam, boxes_2d=[[0, 0, 5, 5]],
                   masks=np.zeros((1, 48, 64), bool))
    with pytest.raises(ConfigError, match="stride"):
        DepthSpecialistConfig(stride=0)
    with pytest.raises(ConfigError, match="min_depth"):
        DepthSpecialistConfig(min_depth=5.0, max_depth=1.0)
    cfg = DepthSpecialistConfig(clustering={"preset": "tabletop", "max_range": 2.0})
    assert cfg.clustering.max_range == 2.0


def test_statistical_outliers_drop_flying_points_but_keep_grid_edges():
    g = np.stack(np.meshgrid(np.arange(30), np.arange(30)), -1).reshape(-1, 2) * 0.01
    grid = np.column_stack([g, np.zeros(len(g))])
    fly = np.array([[0.15, 0.15, 0.5], [0.0, 0.3, -0.4]])
    keep = statistical_outliers(np.concatenate([grid, fly]), 16, 2.0)
    assert keep[: len(grid)].all() and not keep[len(grid):].any()
