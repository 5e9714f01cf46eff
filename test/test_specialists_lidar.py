"""LiDAR specialist on ray-cast synthetic scenes with exact truth, frames, config, bad input."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from spatial_ros.errors import ConfigError
from spatial_ros.geometry.camera import project_box
from spatial_ros.geometry.iou import iou_2d, iou_3d_matrix
from spatial_ros.geometry.transforms import R_BODY_FROM_OPTICAL, TransformTree, invert
from spatial_ros.specialists import LidarSpecialist, LidarSpecialistConfig, propose_lidar
from spatial_ros.specialists.lidar import voxel_downsample
from spatial_ros.specialists.synthetic import street_scan, tabletop_cloud
from spatial_ros.types import CameraIntrinsics, SensorFrame


def recall(truth_boxes, counts, cands, min_points=30, thr=0.5):
    """(hits, total, false candidates) at 3D IoU >= thr for objects with >= min_points."""
    boxes = [c.box for c in cands]
    M = iou_3d_matrix(truth_boxes, boxes) if boxes else np.zeros((len(truth_boxes), 1))
    eligible = np.asarray(counts) >= min_points
    hits = int((M.max(axis=1)[eligible] >= thr).sum())
    false = int((M.max(axis=0) < 0.1).sum()) if boxes else 0
    return hits, int(eligible.sum()), false


@pytest.fixture(scope="module")
def street():
    return street_scan(11)


@pytest.fixture(scope="module")
def tabletop():
    return tabletop_cloud(12)


def test_street_recall_and_labels(street):
    sp = LidarSpecialist(LidarSpecialistConfig.street())
    cands = sp.propose(street.points, T_base_from_lidar=street.T_base_from_lidar)
    hits, total, false = recall(street.boxes, street.point_counts, cands)
    assert total >= 8 and hits >= 0.9 * total, (hits, total)
    assert false <= 6  # poles and wall pieces are real clutter, not errors of the fit
    assert all(c.box.frame_id == "base_link" and c.source == "lidar" for c in cands)
    assert [c.id for c in cands] == [f"lidar_{i}" for i in range(len(cands))]
    d = [np.linalg.norm(c.box.center - street.T_base_from_lidar[:3, 3]) for c in cands]
    assert d == sorted(d)
    # Cars are labelled by the size prior; each candidate carries its points.
    M = iou_3d_matrix(street.boxes, [c.box for c in cands])
    for i, lab in enumerate(street.labels):
        j = int(M[i].argmax())
        if lab == "car" and M[i, j] >= 0.5:
            assert cands[j].label == "car"
    for c in cands:
        assert c.num_points == len(c.points) >= sp.config.min_points
        assert np.all(c.box.contains(c.points, margin=0.05))
        assert 0 < c.score < 1


def test_street_in_the_lidar_frame_is_the_same_boxes(street):
    """Without T_base_from_lidar the boxes come in the (level) LiDAR frame: the same boxes."""
    sp = LidarSpecialist(LidarSpecialistConfig.street())
    in_base = sp.propose(street.points, T_base_from_lidar=street.T_base_from_lidar)
    in_lidar = sp.propose(street.points, frame_id="velodyne")
    assert len(in_lidar) == len(in_base) and in_lidar[0].box.frame_id == "velodyne"
    T = street.T_base_from_lidar
    for a, b in zip(in_base, in_lidar, strict=True):
        np.testing.assert_allclose(b.box.transformed(T).center, a.box.center, atol=1e-6)
        np.testing.assert_allclose(b.box.size, a.box.size, atol=1e-6)


@pytest.mark.parametrize("mode", ["base", "auto_level"])
def test_tabletop_recall_with_a_tilted_lidar(tabletop, mode):
    """The LiDAR is pitched 45 deg down: pass its extrinsic, or let the specialist level itself
    from the table/floor (boxes then stay in the LiDAR frame, as full rotations)."""
    sp = LidarSpecialist(LidarSpecialistConfig.tabletop())
    T = tabletop.T_base_from_lidar
    if mode == "base":
        cands = sp.propose(tabletop.points, T_base_from_lidar=T)
        boxes = [c.box for c in cands]
    else:
        cands = sp.propose(tabletop.points)
        assert sp.last_stats.leveled is True
        boxes = [c.box.transformed(T, "base_link") for c in cands]
        for c in cands:
            assert c.box.frame_id == "lidar"
    hits, total, false = recall(tabletop.boxes, tabletop.point_counts,
                                [dataclasses.replace(c, box=b) for c, b in zip(cands, boxes,
                                                                              strict=True)])
    assert total >= 5 and hits >= total - 1, (hits, total)
    assert false <= 1
    # Two planes (floor, table) found and removed; the table top at 0.75 m above the floor
    # (heights in base_link, or in the levelled LiDAR frame: the LiDAR is 1.45 m up).
    floor, table = sorted(sp.last_stats.planes)
    lidar_z = 0.0 if mode == "base" else T[2, 3]
    assert floor == pytest.approx(0.0 - lidar_z, abs=0.01)
    assert table == pytest.approx(0.75 - lidar_z, abs=0.01)


def test_projection_into_the_camera(street):
    """Boxes project into a camera looking along +x; the 2D box equals the projection of the
    3D box (the geometry helper), and candidates behind the camera get None."""
    cam = CameraIntrinsics.from_fov(640, 360, 90.0)
    T_lidar_cam = np.eye(4)
    T_lidar_cam[:3, :3] = R_BODY_FROM_OPTICAL
    T_cam_lidar = invert(T_lidar_cam)
    sp = LidarSpecialist(LidarSpecialistConfig.street())
    cands = sp.propose(street.points, camera=cam, T_cam_from_lidar=T_cam_lidar)
    ahead = [c for c in cands if c.box.center[0] > 2 * abs(c.box.center[1]) + 2]
    behind = [c for c in cands if c.box.center[0] < -3]
    assert ahead and behind
    for c in ahead:
        ref = project_box(c.box.transformed(T_cam_lidar, cam.frame_id), cam)
        assert c.box_2d is not None and iou_2d(c.box_2d, ref) > 0.999
    assert all(c.box_2d is None for c in behind)
    only_in_image = LidarSpecialist(LidarSpecialistConfig.street(require_in_image=True))
    n = len(only_in_image.propose(street.points, camera=cam, T_cam_from_lidar=T_cam_lidar))
    assert n == sum(c.box_2d is not None for c in cands)
    with pytest.raises(ConfigError, match="T_cam_from_lidar"):
        sp.propose(street.points, camera=cam)


def test_propose_frame_uses_the_transform_tree(tabletop):
    cam = CameraIntrinsics.from_fov(320, 240, 70.0)
    tree = TransformTree()
    tree.set("base_link", "lidar", tabletop.T_base_from_lidar)
    T_base_cam = tabletop.T_base_from_lidar.copy()
    T_base_cam[:3, :3] = T_base_cam[:3, :3] @ R_BODY_FROM_OPTICAL
    tree.set("base_link", cam.frame_id, T_base_cam)
    frame = SensorFrame(0, np.zeros((240, 320, 3), np.uint8), cam, points=tabletop.points,
                        points_frame="lidar", transforms=tree)
    sp = LidarSpecialist(LidarSpecialistConfig.tabletop())
    cands = sp.propose_frame(frame, base_frame="base_link")
    direct = sp.propose(tabletop.points, T_base_from_lidar=tabletop.T_base_from_lidar)
    assert len(cands) == len(direct) and cands[0].box.frame_id == "base_link"
    assert sum(c.box_2d is not None for c in cands) >= len(cands) - 1
    assert sp.propose_frame(SensorFrame(0, frame.image, cam, points=None)) == []
    assert sp.last_stats.reason == "frame has no points"


def test_deterministic(street):
    a = propose_lidar(street.points, LidarSpecialistConfig.street())
    b = propose_lidar(street.points.copy(), LidarSpecialistConfig.street())
    assert [c.id for c in a] == [c.id for c in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.box.center, y.box.center)


@pytest.mark.parametrize(
    "points, reason",
    [
        (np.zeros((0, 4), np.float32), "empty cloud"),
        (np.full((500, 4), np.nan, np.float32), "no finite points"),
        (np.array([[1.0, 2.0, 0.5, 0.1]], np.float32), "points left above"),
        (np.zeros((10, 2), np.float32), "(N, 3+)"),
        (np.full((100, 3), [200.0, 0.0, 0.0]), "no points within range"),
    ],
)
def test_bad_input_gives_empty_result_with_a_reason(points, reason):
    sp = LidarSpecialist(LidarSpecialistConfig.street())
    assert sp.propose(points) == []
    assert reason in sp.last_stats.reason


def test_huge_cloud_is_capped_in_bounded_time(street):
    """5 M points: subsampled (fixed seed) to ``max_input_points`` first; the result matches
    the plain scan's objects."""
    rng = np.random.default_rng(0)
    reps = int(np.ceil(5_000_000 / len(street.points)))
    big = np.repeat(street.points, reps, axis=0)[:5_000_000]
    big[:, :3] += rng.normal(0, 0.005, (len(big), 3)).astype(np.float32)
    sp = LidarSpecialist(LidarSpecialistConfig.street())
    t = time.perf_counter()
    cands = sp.propose(big, T_base_from_lidar=street.T_base_from_lidar)
    elapsed = time.perf_counter() - t
    assert sp.last_stats.subsampled and sp.last_stats.n_used < 450_000
    assert elapsed < 10.0  # ~1 s on one free core; generous for a busy CI machine
    hits, total, _ = recall(street.boxes, street.point_counts, cands)
    assert hits >= 0.9 * total


def test_nan_rows_are_dropped_not_fatal(street):
    pts = street.points.copy()
    pts[::7, 1] = np.nan
    pts[::11, 2] = np.inf
    sp = LidarSpecialist(LidarSpecialistConfig.street())
    cands = sp.propose(pts, T_base_from_lidar=street.T_base_from_lidar)
    assert sp.last_stats.n_valid == len(pts) - len(set(range(0, len(pts), 7))
                                                    | set(range(0, len(pts), 11)))
    hits, total, _ = recall(street.boxes, street.point_counts, cands)
    assert hits >= 0.9 * total


def test_config_validation_names_the_bad_values():
    with pytest.raises(ConfigError, match="min_range=5.0 >= max_range=2.0"):
        LidarSpecialistConfig(min_range=5.0, max_range=2.0)
    with pytest.raises(ConfigError, match="cluster_tolerance=0.1 < cell=0.2"):
        LidarSpecialistConfig(cluster_tolerance=0.1)
    with pytest.raises(ConfigError, match="support="):
        LidarSpecialistConfig(support="middle")
    with pytest.raises(ConfigError, match="roi_min"):
        LidarSpecialistConfig(roi_min=(0, 0, 0))
    with pytest.raises(ConfigError, match="preset"):
        LidarSpecialistConfig.preset("forest")
    with pytest.raises(ConfigError, match="unknown keys"):
        LidarSpecialistConfig.from_dict({"preset": "street", "cel": 0.3})
    cfg = LidarSpecialistConfig.from_dict({"preset": "tabletop", "max_range": 2.5,
                                           "roi_min": [0, -1, 0], "roi_max": [2, 1, 2]})
    assert cfg.max_range == 2.5 and cfg.max_planes == 2 and cfg.roi_max == (2.0, 1.0, 2.0)
    assert LidarSpecialistConfig.preset("street").size_priors[0].label == "car"


def test_roi_crop(street):
    sp = LidarSpecialist(LidarSpecialistConfig.street(roi_min=(0.0, -50.0, -1.0),
                                                      roi_max=(50.0, 50.0, 4.0)))
    cands = sp.propose(street.points, T_base_from_lidar=street.T_base_from_lidar)
    assert cands and all(c.box.center[0] > -0.5 for c in cands)


def test_voxel_downsample_centroids():
    p = np.array([[0.01, 0.01, 0.01, 1.0], [0.03, 0.03, 0.03, 3.0], [0.51, 0.0, 0.0, 5.0]])
    out = voxel_downsample(p, 0.1)
    out = out[np.argsort(out[:, 0])]
    np.testing.assert_allclose(out, [[0.02, 0.02, 0.02, 2.0], [0.51, 0.0, 0.0, 5.0]])
