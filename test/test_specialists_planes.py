"""Planes, gravity alignment, clustering and box fitting against exact synthetic geometry."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.errors import ConfigError, DataError
from spatial_ros.geometry.transforms import R_BODY_FROM_OPTICAL, apply
from spatial_ros.specialists.boxfit import extend_away, fit_box
from spatial_ros.specialists.classify import SizePrior, complete_with_prior
from spatial_ros.specialists.clustering import grid_clusters, group_indices
from spatial_ros.specialists.planes import (
    OPTICAL_UP,
    fit_horizontal_planes,
    fit_walls,
    gravity_alignment,
    ransac_plane,
)
from spatial_ros.types import Box3D


def _grid(x0, x1, y0, y1, z, step, rng=None, noise=0.0):
    xs, ys = np.meshgrid(np.arange(x0, x1, step), np.arange(y0, y1, step))
    p = np.column_stack([xs.ravel(), ys.ravel(), np.full(xs.size, z)])
    if rng is not None and noise:
        p[:, 2] += rng.normal(0, noise, len(p))
    return p


def _room(rng):
    """Floor z=0 (4x4 m), table top z=0.75 (1.2x0.8 m), a wall x=3 (4x2.5 m, MORE points than
    the floor), three small box tops at z=0.80 spread over the table, 2 % outliers."""
    floor = _grid(-1, 3, -2, 2, 0.0, 0.05, rng, 0.003)
    floor = floor[~((np.abs(floor[:, 0] - 1) < 0.6) & (np.abs(floor[:, 1]) < 0.4))]
    table = _grid(0.4, 1.6, -0.4, 0.4, 0.75, 0.02, rng, 0.003)
    wy, wz = np.meshgrid(np.arange(-2, 2, 0.025), np.arange(0, 2.5, 0.025))
    wall = np.column_stack([np.full(wy.size, 3.0), wy.ravel(), wz.ravel()])
    tops = np.concatenate([_grid(x, x + 0.1, y, y + 0.1, 0.80, 0.01)
                           for x, y in ((0.5, -0.3), (1.4, 0.25), (0.9, 0.2))])
    out = rng.uniform([-1, -2, 0], [3, 2, 2.5], (600, 3))
    return floor, table, wall, tops, out


def test_ransac_finds_the_plane_and_respects_the_normal_prior():
    rng = np.random.default_rng(0)
    floor, table, wall, tops, out = _room(rng)
    pts = np.concatenate([wall, floor, out])
    free = ransac_plane(pts, distance=0.02)  # unconstrained: the wall has the most points
    assert abs(free.normal[0]) > 0.999
    level = ransac_plane(pts, distance=0.02, up=(0, 0, 1), max_tilt_deg=10)
    assert level.normal @ [0, 0, 1] > 0.9999 and abs(level.height) < 0.002
    assert len(level.inliers) >= 0.97 * len(floor)
    vertical = ransac_plane(pts, distance=0.02, up=(0, 0, 1), max_tilt_deg=90, min_tilt_deg=80)
    assert abs(vertical.normal[0]) > 0.999 and abs(abs(vertical.offset) - 3.0) < 0.002


def test_horizontal_planes_floor_and_table_but_not_scattered_box_tops():
    rng = np.random.default_rng(1)
    floor, table, wall, tops, out = _room(rng)
    pts = np.concatenate([floor, table, wall, tops, out])
    planes = fit_horizontal_planes(pts, distance=0.015, min_inliers=100, min_area=0.2,
                                   max_planes=3, connectivity=0.06)
    assert [round(q.height, 2) for q in planes] == [0.0, 0.75]  # lowest first; no 0.80 "plane"
    assert planes[1].area == pytest.approx(1.2 * 0.8, rel=0.05)
    # Without the connectivity check, the three 10 cm box tops at one height pass as a plane.
    loose = fit_horizontal_planes(np.concatenate([tops, table]), distance=0.015,
                                  min_inliers=100, min_area=0.2, max_planes=2)
    assert any(abs(q.height - 0.80) < 0.01 for q in loose)
    with pytest.raises(ConfigError, match="distance"):
        fit_horizontal_planes(pts, distance=0.0)


def test_walls_bound_the_room_only():
    rng = np.random.default_rng(2)
    floor, table, wall, tops, out = _room(rng)
    # A 'wardrobe front' at x=2 (2.4 x 1 m, big enough) with the wall behind it is no wall.
    dy, dz = np.meshgrid(np.arange(-1.8, 0.6, 0.02), np.arange(0, 1.0, 0.02))
    front = np.column_stack([np.full(dy.size, 2.0), dy.ravel(), dz.ravel()])
    pts = np.concatenate([floor, wall, front]) - [0, 0, 1.5]  # sensor at the origin, 1.5 m up
    walls = fit_walls(pts, min_area=2.0, max_planes=3)
    assert len(walls) == 1 and abs(walls[0].normal[0]) > 0.999
    assert walls[0].normal[0] < 0 and walls[0].offset > 0  # normal towards the sensor
    assert abs(walls[0].offset - 3.0) < 0.01
    assert len(fit_walls(pts, min_area=2.0, max_beyond=1.0, max_planes=3)) == 2


@pytest.mark.parametrize("pitch_deg", [0.0, 35.0, 50.0])
def test_gravity_alignment_recovers_up_in_a_camera_frame(pitch_deg):
    rng = np.random.default_rng(3)
    floor, table, wall, tops, out = _room(rng)
    base = np.concatenate([floor, table, wall, out])
    # Camera 1.5 m up at x=-1 looking along +x, pitched down; optical frame.
    p = np.radians(pitch_deg)
    R_pitch = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    T_base_cam = np.eye(4)
    T_base_cam[:3, :3] = R_pitch @ R_BODY_FROM_OPTICAL
    T_base_cam[:3, 3] = [-1.0, 0.0, 1.5]
    cam_pts = apply(np.linalg.inv(T_base_cam), base)
    cam_pts = cam_pts[cam_pts[:, 2] > 0.1]  # in front of the camera
    T = gravity_alignment(cam_pts, OPTICAL_UP)
    up_true = np.linalg.inv(T_base_cam)[:3, :3] @ [0, 0, 1]
    assert np.degrees(np.arccos(np.clip(T[2, :3] @ up_true, -1, 1))) < 0.5
    fwd_true = np.linalg.inv(T_base_cam)[:3, :3] @ [1, 0, 0]  # base x seen from the camera
    assert T[0, :3] @ fwd_true > 0.9999
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)


def test_gravity_alignment_without_a_floor_says_so():
    wy, wz = np.meshgrid(np.arange(-2, 2, 0.02), np.arange(-1, 1, 0.02))
    wall_only = np.column_stack([wy.ravel(), wz.ravel(), np.full(wy.size, 3.0)])  # optical
    with pytest.raises(DataError, match="no horizontal plane"):
        gravity_alignment(wall_only)


def test_grid_clusters_gap_rule_and_range_adaptive_tolerance():
    a = _grid(0, 1, 0, 1, 0.5, 0.05)
    b = a + [1.5, 0, 0]  # 0.55 m gap
    labels, n = grid_clusters(np.concatenate([a, b]), cell=0.1, tolerance=0.3)
    assert n == 2 and len(set(labels[: len(a)])) == 1 and labels[0] != labels[-1]
    labels, n = grid_clusters(np.concatenate([a, b]), cell=0.1, tolerance=0.6)
    assert n == 1
    # The same 0.55 m gap 50 m away merges when the tolerance grows 1.5 cm per metre.
    far = np.concatenate([a, b]) + [50, 0, 0]
    _, n_far = grid_clusters(far, cell=0.1, tolerance=0.3, tolerance_per_m=0.015,
                             max_tolerance=0.8)
    _, n_near = grid_clusters(np.concatenate([a, b]), cell=0.1, tolerance=0.3,
                              tolerance_per_m=0.015, max_tolerance=0.8)
    assert (n_near, n_far) == (2, 1)
    # A vertical gap splits a BEV column (object under an overhang).
    low, high = a.copy(), a + [0, 0, 1.0]
    labels, n = grid_clusters(np.concatenate([low, high]), cell=0.1, tolerance=0.3, z_gap=0.5)
    assert n == 2
    groups = group_indices(labels, n)
    assert sorted(len(g) for g in groups) == [len(a), len(a)]
    assert grid_clusters(np.zeros((0, 3)), cell=0.1, tolerance=0.2) [1] == 0
    with pytest.raises(ConfigError, match="tolerance >= cell"):
        grid_clusters(a, cell=0.5, tolerance=0.2)


@pytest.mark.parametrize("method", ["min_area", "lshape"])
@pytest.mark.parametrize("yaw", [0.0, 0.4, -1.2])
def test_fit_box_recovers_a_sampled_box(method, yaw):
    truth = Box3D.from_yaw([3.0, -2.0, 0.75], [4.0, 1.6, 1.5], yaw)
    rng = np.random.default_rng(4)
    local = rng.uniform(-0.5, 0.5, (3000, 3)) * truth.size
    # Points on the four vertical faces + top (a full outline).
    face = rng.integers(0, 5, len(local))
    for k, (ax, s) in enumerate([(0, 1), (0, -1), (1, 1), (1, -1), (2, 1)]):
        local[face == k, ax] = s * truth.size[ax] / 2
    pts = local @ truth.rotation.T + truth.center
    b = fit_box(pts, method=method)
    np.testing.assert_allclose(b.size, truth.size, atol=0.03)
    np.testing.assert_allclose(b.center, truth.center, atol=0.02)
    d = (b.yaw - yaw + np.pi / 2) % np.pi - np.pi / 2  # heading is defined modulo pi
    assert abs(d) < np.radians(1.5)


def test_lshape_from_two_visible_sides_and_prior_completion():
    """A car (4 x 1.6 m) seen from its rear-left corner: only an L of points is visible.
    The L-shape gets the heading and the visible extents; the car prior completes the box away
    from the sensor, giving the true box."""
    truth = Box3D.from_yaw([10.0, 5.0, 0.75], [4.0, 1.6, 1.5], 0.3)
    ax, ay = np.linspace(-2, 2, 200), np.linspace(-0.8, 0.8, 80)
    # Sensor at the origin sees the faces at local x=-2 (rear) and local y=-0.8 (right side).
    side = np.column_stack([ax, np.full_like(ax, -0.8)])
    rear = np.column_stack([np.full_like(ay, -2.0), ay])
    xy = np.concatenate([side, rear])
    zz = np.repeat([0.3, 0.8, 1.3], len(xy))
    local = np.column_stack([np.tile(xy, (3, 1)), zz - 0.75])
    pts = local @ truth.rotation.T + truth.center
    vis = fit_box(pts, method="lshape", z_min=0.0)
    assert abs((vis.yaw - 0.3 + np.pi / 2) % np.pi - np.pi / 2) < np.radians(1.5)
    # Only part of the side: drop the front half and complete with the prior.
    half = pts[(pts - truth.center) @ truth.rotation[:, 0] < 0.0]
    part = fit_box(half, method="lshape", z_min=0.0)
    assert part.size[0] < 2.2
    done, label = complete_with_prior(part, [SizePrior("car", 4.0, 1.6, 1.5)], (0.0, 0.0))
    assert label == "car"
    np.testing.assert_allclose(done.size[:2], [4.0, 1.6], atol=0.02)
    np.testing.assert_allclose(done.center[:2], truth.center[:2], atol=0.05)
    # A 0.3 m box matches no car prior: unchanged.
    small = Box3D.from_yaw([5, 0, 0.15], [0.3, 0.2, 0.3], 0.0)
    assert complete_with_prior(small, [SizePrior("car", 4.0, 1.6, 1.5)])[1] == ""


def test_extend_away_moves_only_the_far_face():
    b = Box3D.from_yaw([2.0, 0.0, 0.5], [0.2, 0.1, 1.0], 0.0)
    e = extend_away(b, [1.0, 0.0], 0.04)  # sensor at the origin looks along +x
    np.testing.assert_allclose(e.size, [0.24, 0.1, 1.0])
    np.testing.assert_allclose(e.center, [2.02, 0.0, 0.5])
    assert extend_away(b, [1.0, 0.0], 0.0) is b
