"""Raycast sensors and ground truth agree with the geometry (analytic scenes and random ones)."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest

from spatial_ros.geometry.camera import project_box, unproject_pixels
from spatial_ros.geometry.transforms import apply, invert
from spatial_ros.sim import CameraConfig, LidarConfig, SimConfig, make_scene, render
from spatial_ros.sim.meshes import box, merge
from spatial_ros.sim.scene import OPTICAL_FRAME, Scene, SimObject, street_rig


def _box_object(oid: str, center, size, rgb=(0.8, 0.2, 0.2)) -> SimObject:
    mesh = merge([box(*size, rgb)])
    return SimObject(oid, "box", "red", (204, 51, 51), f"the red box {oid}", mesh, center, 0.0)


def _analytic_scene(objects, *, lidar=None, camera=None) -> Scene:
    """Street rig (camera at (0.27, 0, 1.65) looking along +x, LiDAR at (0, 0, 1.73), both
    level), no background: only the given objects."""
    cfg = SimConfig(
        scenario="street",
        camera=camera or CameraConfig(width=200, height=120, hfov_deg=60.0, image_noise_std=0),
        lidar=lidar
        or LidarConfig(
            beams=32,
            elevation_min_deg=-10,
            elevation_max_deg=10,
            azimuth_res_deg=0.2,
            azimuth_fov_deg=60,
            range_noise_std=0.0,
            dropout=0.0,
            max_range=100,
        ),
    )
    return Scene("street", 0, list(objects), [], street_rig(cfg))


def test_depth_of_a_fronto_parallel_face_is_exact():
    # 1 m cube centred 10 m ahead of the camera at its height: front face at x = 9.77 -> the
    # optical z-depth of every pixel on it is 9.5 m.
    scene = _analytic_scene([_box_object("a", [10.27, 0.0, 1.65], [1.0, 1.0, 1.0])])
    fr = render(scene, lidar=False)
    on = fr.instance == 0
    assert on.sum() > 50
    assert np.allclose(fr.depth_exact[on], 9.5, atol=2e-5)
    assert np.isnan(fr.depth_exact[~on]).all()  # nothing else to hit
    # pixel count matches the analytic projected area (f / z)^2 within the border pixels
    f = scene.rig.intrinsics.fx
    side = f * 1.0 / 9.5
    assert abs(on.sum() - side**2) <= 4 * side + 4
    # the truth's 2D boxes: projected 3D box and visible-pixel box
    t = fr.truth.objects[0]
    assert t.visible_fraction == pytest.approx(1.0)
    assert t.truncation == 0.0
    assert np.all(t.box_2d_visible[:2] >= t.box_2d[:2] - 1e-9)
    assert np.all(t.box_2d_visible[2:] <= t.box_2d[2:] + 1e-9)


def test_lidar_range_noise_and_dropout_statistics():
    lid = dict(
        beams=32,
        elevation_min_deg=-10,
        elevation_max_deg=10,
        azimuth_res_deg=0.1,
        azimuth_fov_deg=30,
        max_range=100,
    )
    wall = [_box_object("w", [20.0, 0.0, 1.7], [1.0, 40.0, 20.0])]  # fills the scan
    exact = render(
        _analytic_scene(wall, lidar=LidarConfig(range_noise_std=0, dropout=0, **lid)), seed=1
    )
    noisy = render(
        _analytic_scene(wall, lidar=LidarConfig(range_noise_std=0.05, dropout=0.2, **lid)), seed=1
    )
    n_rays = 32 * 300
    assert len(exact.points) == n_rays  # every beam hits the wall
    # noise-free: every return lies on the wall's front plane x = 19.5 (lidar frame x = base x)
    assert np.allclose(exact.points[:, 0], 19.5, atol=1e-4)
    kept = len(noisy.points) / n_rays
    assert kept == pytest.approx(0.8, abs=0.03)
    # range residual along each beam has the configured sigma
    r = np.linalg.norm(noisy.points[:, :3], axis=1)
    d = noisy.points[:, :3] / r[:, None]
    r_exact = 19.5 / d[:, 0]
    assert np.std(r - r_exact) == pytest.approx(0.05, rel=0.1)
    assert abs(np.mean(r - r_exact)) < 0.005
    assert (noisy.points[:, 3] >= 0).all() and (noisy.points[:, 3] <= 1).all()


def test_occlusion_fraction_of_a_half_hidden_box():
    # Back box centred on the optical axis; a tall front box covers every ray with y > 0
    # (the left half of the back box as seen from the camera).
    back = _box_object("back", [20.27, 0.0, 1.65], [1.0, 2.0, 2.0])
    front = _box_object("front", [10.27, 1.5, 1.65], [0.5, 3.0, 6.0])
    fr = render(_analytic_scene([back, front]), lidar=False)
    t = fr.truth.get("back")
    assert t.visible_fraction == pytest.approx(0.5, abs=0.04)
    assert t.footprint_pixels > 2 * t.visible_pixels - 40
    assert fr.truth.get("front").visible_fraction == pytest.approx(1.0)


def test_supersampling_keeps_depth_exact_and_antialiases_colour():
    obj = [_box_object("a", [10.27, 0.3, 1.9], [1.0, 1.3, 0.7])]
    cam = dict(width=96, height=64, hfov_deg=60.0, image_noise_std=0)
    f1 = render(_analytic_scene(obj, camera=CameraConfig(**cam)), lidar=False)
    f3 = render(_analytic_scene(obj, camera=CameraConfig(supersample=3, **cam)), lidar=False)
    assert np.array_equal(f1.depth_exact, f3.depth_exact, equal_nan=True)
    assert np.array_equal(f1.instance, f3.instance)
    step = f1.instance != np.roll(f1.instance, 1, axis=1)
    edge = step | np.roll(step, -1, axis=1)  # the pixels on both sides of a vertical edge
    diff = np.abs(f1.image.astype(int) - f3.image.astype(int)).max(axis=2)
    # anti-aliased edge pixels take intermediate colours; interior pixels agree
    assert diff[edge].max() > 20
    inner = (f1.instance == 0) & ~edge
    inner &= ~(inner != np.roll(inner, 1, axis=0)) & ~(inner != np.roll(inner, -1, axis=0))
    assert inner.sum() > 20 and diff[inner].max() <= 2


def _mesh_distance(obj: SimObject, points_base: np.ndarray) -> np.ndarray:
    rc = o3d.t.geometry.RaycastingScene()
    v = obj.mesh.posed_vertices(obj.center, obj.yaw).astype(np.float32)
    rc.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(obj.mesh.triangles.astype(np.uint32)))
    return rc.compute_distance(o3d.core.Tensor(points_base.astype(np.float32))).numpy()


@pytest.mark.parametrize(
    "scenario,seed,camera",
    [
        ("tabletop", 3, CameraConfig(width=160, height=120, hfov_deg=50.0)),
        (
            "tabletop",
            8,
            CameraConfig(
                width=160, height=120, hfov_deg=55.0, distortion=(-0.2, 0.05, 0.001, -0.001, 0.0)
            ),
        ),
        ("street", 4, CameraConfig(width=320, height=96, hfov_deg=81.0)),
    ],
)
def test_truth_is_consistent_with_the_sensors(scenario, seed, camera):
    scene = make_scene(scenario, seed, camera=camera)
    fr = render(scene, seed=seed)
    rig = scene.rig
    sigma = rig.lidar.range_noise_std
    pts_base = apply(rig.T_base_from_lidar, fr.points[:, :3])
    T_opt = invert(rig.T_base_from_optical)
    checked_lidar = checked_depth = 0
    for i, (obj, t) in enumerate(zip(scene.objects, fr.truth.objects, strict=True)):
        assert t.id == obj.id
        assert np.allclose(t.box.center, obj.center) and np.allclose(t.box.size, obj.mesh.size)
        # (1) >= 95 % of the LiDAR returns on the object lie in its box (margin: 3 sigma noise)
        mine = fr.point_object == i
        assert t.lidar_points == int(mine.sum())
        if mine.sum() >= 5:
            inside = t.box.contains(pts_base[mine], margin=3 * sigma + 1e-4).mean()
            assert inside >= 0.95, (obj.id, inside)
            checked_lidar += 1
        # (2) the 2D box is the projection of the 3D box (independent computation)
        expect = project_box(obj.box.transformed(T_opt, OPTICAL_FRAME), rig.intrinsics)
        if expect is None:
            assert t.box_2d is None
        else:
            assert np.allclose(t.box_2d, expect, atol=1e-3)
        if t.visible_pixels:
            assert t.box_2d is not None
            assert np.all(t.box_2d_visible[:2] >= np.floor(t.box_2d[:2]) - 1)
            assert np.all(t.box_2d_visible[2:] <= np.ceil(t.box_2d[2:]) + 1)
        # (3) depth at the object's pixels lies on its surface: unproject with the camera model
        vv, uu = np.nonzero(fr.instance == i)
        if len(vv) >= 5:
            uv = np.stack([uu, vv], 1).astype(float)
            p_opt = unproject_pixels(uv, fr.depth[vv, uu], rig.intrinsics)
            dist = _mesh_distance(obj, apply(rig.T_base_from_optical, p_opt))
            tol = 2e-4 * max(1.0, float(np.nanmax(fr.depth[vv, uu])))
            assert np.quantile(dist, 0.99) < tol, (obj.id, float(dist.max()))
            checked_depth += 1
    assert checked_lidar >= 3 and checked_depth >= 3


def test_depth_noise_has_the_configured_sigma():
    cam = CameraConfig(width=120, height=90, hfov_deg=50.0, depth_noise_std=0.01)
    fr = render(make_scene("tabletop", 2, camera=cam), lidar=False)
    ok = np.isfinite(fr.depth)
    assert np.std(fr.depth[ok] - fr.depth_exact[ok]) == pytest.approx(0.01, rel=0.05)


def test_tabletop_objects_get_enough_lidar_points():
    counts = []
    for seed in range(4):
        fr = render(make_scene("tabletop", seed, camera=CameraConfig(width=96, height=72)))
        counts += [o.lidar_points for o in fr.truth.objects if o.visible_fraction > 0.5]
    assert np.median(counts) >= 60
    assert np.quantile(counts, 0.1) >= 30


def test_sensor_frame_view():
    fr = render(make_scene("tabletop", 1, camera=CameraConfig(width=64, height=48)))
    sf = fr.sensor_frame()
    assert sf.stamp_ns == fr.stamp_ns and sf.image.shape == (48, 64, 3)
    assert sf.points.dtype == np.float32 and sf.points.shape[1] == 4
    T = sf.transforms.lookup("camera_optical_frame", "lidar")
    assert np.allclose(T, fr.scene.rig.T_optical_from_lidar)
