"""Camera geometry (projection with distortion, depth -> points, box -> 2D box) and box IoU."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.errors import CalibrationError, ConfigError
from spatial_ros.geometry.camera import (
    depth_to_points,
    normalized_rays,
    points_to_image,
    project_box,
    project_points,
    unproject_pixels,
)
from spatial_ros.geometry.iou import (
    _polytope_intersection_volume,
    iou_2d,
    iou_2d_matrix,
    iou_3d,
    iou_3d_matrix,
    iou_bev,
    iou_bev_matrix,
)
from spatial_ros.geometry.transforms import R_BODY_FROM_OPTICAL, invert, make_transform
from spatial_ros.types import Box3D, CameraIntrinsics

K = np.array([[500.0, 0.0, 319.5], [0.0, 510.0, 239.5], [0.0, 0.0, 1.0]])
CAM = CameraIntrinsics(640, 480, K)
PLUMB = CameraIntrinsics(640, 480, K, [-0.28, 0.09, 0.0012, -0.0008, -0.012], "plumb_bob")
FISH = CameraIntrinsics(640, 480, K, [0.05, -0.01, 0.002, -0.0005], "equidistant")


def _plumb_bob(p, intr):
    """Independent plumb_bob model (Brown-Conrady), straight from the CameraInfo definition."""
    k1, k2, p1, p2, k3 = intr.D
    x, y = p[:, 0] / p[:, 2], p[:, 1] / p[:, 2]
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([intr.fx * xd + intr.cx, intr.fy * yd + intr.cy], 1)


def _points_in_view(n, rng, zmin=1.0, zmax=20.0, spread=0.45):
    z = rng.uniform(zmin, zmax, n)
    x = rng.uniform(-spread, spread, n) * z
    y = rng.uniform(-spread, spread, n) * z * 0.75
    return np.stack([x, y, z], 1)


# ----------------------------------------------------------------------------------------------
# projection
# ----------------------------------------------------------------------------------------------


def test_pinhole_projection_known_points():
    p = np.array([[0.0, 0.0, 5.0], [1.0, -0.5, 2.0], [0.0, 0.0, -1.0], [1.0, 1.0, 0.0]])
    uv, front = project_points(p, CAM)
    assert front.tolist() == [True, True, False, False]
    np.testing.assert_allclose(uv[0], [319.5, 239.5])
    np.testing.assert_allclose(uv[1], [319.5 + 500 * 0.5, 239.5 - 510 * 0.25])
    assert np.isnan(uv[2:]).all()


def test_plumb_bob_matches_definition_and_roundtrips():
    rng = np.random.default_rng(0)
    p = _points_in_view(300, rng)
    uv, front = project_points(p, PLUMB)
    assert front.all()
    np.testing.assert_allclose(uv, _plumb_bob(p, PLUMB), atol=1e-6)
    back = unproject_pixels(uv, p[:, 2], PLUMB)
    np.testing.assert_allclose(back, p, atol=1e-6 * p[:, 2:].max())


def test_fisheye_and_pinhole_roundtrip():
    rng = np.random.default_rng(1)
    p = _points_in_view(300, rng)
    for intr in (CAM, FISH):
        uv, _ = project_points(p, intr)
        np.testing.assert_allclose(unproject_pixels(uv, p[:, 2], intr), p, atol=1e-5)
    with pytest.raises(CalibrationError, match="not supported"):
        project_points(p, CameraIntrinsics(640, 480, K, [0.1], "kannala_foo"))


def test_depth_to_points_plane_and_roundtrip():
    depth = np.full((480, 640), 2.0, np.float32)
    depth[0, 0] = np.nan
    depth[1, 1] = 0.0
    depth[2, 2] = np.inf
    pts = depth_to_points(depth, CAM)
    assert pts.shape == (480 * 640 - 3, 3) and pts.dtype == np.float32
    assert np.all(pts[:, 2] == 2.0)
    # Pixel (u=639, v=479) is the last point: x = (639 - 319.5) / 500 * 2.
    np.testing.assert_allclose(pts[-1], [(639 - 319.5) / 500 * 2, (479 - 239.5) / 510 * 2, 2.0],
                               rtol=1e-6)
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[..., 0] = np.arange(640) % 256
    rgb[..., 1] = np.arange(480)[:, None] % 256
    pts4, col = depth_to_points(depth, CAM, stride=4, rgb=rgb)
    assert pts4.shape == (120 * 160 - 1, 3) and col.shape == (pts4.shape[0], 3)
    uv, _ = project_points(pts4, CAM)
    np.testing.assert_allclose(uv, np.round(uv), atol=1e-3)
    np.testing.assert_array_equal(np.round(uv).astype(int) % 256, col[:, :2])
    assert (np.round(uv).astype(int) % 4 == 0).all()  # only every 4th pixel
    # With distortion: points re-project onto their pixel grid.
    rng = np.random.default_rng(2)
    d = rng.uniform(0.5, 8.0, (480, 640)).astype(np.float32)
    pts = depth_to_points(d, PLUMB, stride=7)
    uv, _ = project_points(pts, PLUMB)
    np.testing.assert_allclose(uv, np.round(uv / 7) * 7, atol=1e-3)
    with pytest.raises(CalibrationError, match="640x480"):
        depth_to_points(np.ones((10, 10)), CAM)


def test_points_to_image_with_extrinsic():
    # LiDAR/body frame (x forward, y left, z up) co-located with the camera.
    T_cam_from_lidar = make_transform(R_BODY_FROM_OPTICAL.T)
    pts = np.array([[10.0, 0.0, 0.0, 0.3], [10.0, 1.0, 0.5, 0.1], [-5.0, 0.0, 0.0, 0.0],
                    [1.0, 5.0, 0.0, 0.0]])
    uv, depth, mask = points_to_image(pts, T_cam_from_lidar, CAM)
    np.testing.assert_allclose(uv[0], [319.5, 239.5])
    assert uv[1, 0] < 319.5 and uv[1, 1] < 239.5  # left and up in the image
    np.testing.assert_allclose(uv[1], [319.5 - 50.0, 239.5 - 25.5])
    np.testing.assert_allclose(depth, [10.0, 10.0, -5.0, 1.0])
    assert mask.tolist() == [True, True, False, False]


# ----------------------------------------------------------------------------------------------
# box projection
# ----------------------------------------------------------------------------------------------


def _surface_samples(box: Box3D, n: int = 40) -> np.ndarray:
    s = np.linspace(-0.5, 0.5, n)
    a, b = np.meshgrid(s, s)
    faces = []
    for ax in range(3):
        o = [k for k in range(3) if k != ax]
        for sign in (-0.5, 0.5):
            loc = np.zeros((n * n, 3))
            loc[:, ax] = sign
            loc[:, o[0]], loc[:, o[1]] = a.ravel(), b.ravel()
            faces.append(loc)
    local = np.vstack(faces) * box.size
    return local @ box.rotation.T + box.center


def _brute_force_box(box, intr, near=0.05):
    p = _surface_samples(box, 80)
    # The visible part's boundary also includes its cut by the near plane z = near.
    g = np.linspace(-10, 10, 801)
    gx, gy = np.meshgrid(g, g)
    cut = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, near)], 1)
    p = np.vstack([p[p[:, 2] >= near], cut[box.contains(cut, margin=1e-9)]])
    uv, _ = project_points(p, intr, min_depth=0.0)
    return np.r_[uv.min(0), uv.max(0)]


def test_project_box_in_front_matches_corners():
    box = Box3D([0.5, 0.2, 6.0], [1.6, 1.5, 3.9], np.array(
        [[np.cos(0.4), 0, np.sin(0.4)], [0, 1, 0], [-np.sin(0.4), 0, np.cos(0.4)]]))
    uv, _ = project_points(box.corners(), CAM)
    np.testing.assert_allclose(project_box(box, CAM), np.r_[uv.min(0), uv.max(0)])


def test_project_box_partly_behind_and_outside():
    # A long box from 3 m behind to 4 m in front of the camera, slightly to the right.
    box = Box3D([0.8, 0.0, 0.5], [1.0, 1.0, 7.0])
    got = project_box(box, CAM, clip=False)
    np.testing.assert_allclose(got, _brute_force_box(box, CAM), atol=1e-6)
    clipped = project_box(box, CAM)
    assert clipped[2] == 639 and clipped[0] > 319.5 and 0 <= clipped[1] < clipped[3] <= 479
    assert project_box(Box3D([0, 0, -3.0], [1, 1, 1]), CAM) is None  # behind
    assert project_box(Box3D([40.0, 0, 5.0], [1, 1, 1]), CAM) is None  # off to the side
    # Camera inside the box: the box fills the whole image.
    np.testing.assert_allclose(project_box(Box3D([0, 0, 0], [4, 4, 4]), CAM), [0, 0, 639, 479])


def test_project_box_with_distortion_matches_dense_sampling():
    box = Box3D([2.0, 1.0, 5.0], [1.5, 1.0, 2.0])
    got = project_box(box, PLUMB, edge_samples=32)
    np.testing.assert_allclose(got, _brute_force_box(box, PLUMB), atol=0.05)
    # Partly behind the camera: the distortion polynomial folds back far outside the field of
    # view; the result must still be the sensible clipped box, not a folded one.
    long_box = Box3D([0.8, 0.0, 0.5], [1.0, 1.0, 7.0])
    got = project_box(long_box, PLUMB)
    ref = project_box(long_box, CAM)
    assert got[2:].tolist() == [639.0, 479.0] and got[1] == 0.0
    assert abs(got[0] - ref[0]) < 5.0


# ----------------------------------------------------------------------------------------------
# IoU
# ----------------------------------------------------------------------------------------------


def test_iou_2d_known_values():
    assert iou_2d([0, 0, 2, 2], [1, 0, 3, 2]) == pytest.approx(1 / 3)
    assert iou_2d([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert iou_2d([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert iou_2d([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
    m = iou_2d_matrix([[0, 0, 2, 2], [0, 0, 1, 1]], [[1, 0, 3, 2], [0, 0, 2, 2], [5, 5, 6, 6]])
    np.testing.assert_allclose(m, [[1 / 3, 1, 0], [0, 0.25, 0]])


def test_iou_axis_aligned_known_values():
    a = Box3D.from_yaw([0, 0, 0], [2, 2, 2], 0.0)
    assert iou_3d(a, a) == pytest.approx(1.0) and iou_bev(a, a) == pytest.approx(1.0)
    b = Box3D.from_yaw([1, 0, 0], [2, 2, 2], 0.0)
    assert iou_bev(a, b) == pytest.approx(1 / 3) and iou_3d(a, b) == pytest.approx(1 / 3)
    c = Box3D.from_yaw([0, 0, 1], [2, 2, 2], 0.0)  # z shift only
    assert iou_bev(a, c) == pytest.approx(1.0) and iou_3d(a, c) == pytest.approx(1 / 3)
    far = Box3D.from_yaw([10, 0, 0], [2, 2, 2], 0.0)
    assert iou_3d(a, far) == 0.0 and iou_bev(a, far) == 0.0
    flipped = Box3D.from_yaw([0, 0, 0], [2, 2, 2], np.pi)
    assert iou_3d(a, flipped) == pytest.approx(1.0)


def test_iou_rotated_square_octagon():
    a = Box3D.from_yaw([0, 0, 0], [2, 2, 1], 0.0)
    b = Box3D.from_yaw([0, 0, 0], [2, 2, 1], np.pi / 4)
    inter = 8 * (np.sqrt(2) - 1)  # regular octagon inside both unit-half-size squares
    assert iou_bev(a, b) == pytest.approx(inter / (8 - inter))
    assert iou_3d(a, b) == pytest.approx(inter / (8 - inter))


def _random_boxes(rng, n):
    return [Box3D.from_yaw(rng.uniform(-1.5, 1.5, 3), rng.uniform(0.5, 3.0, 3),
                           rng.uniform(-np.pi, np.pi), "lidar") for _ in range(n)]


def test_iou_matrix_matches_independent_polytope_method():
    rng = np.random.default_rng(3)
    A, B = _random_boxes(rng, 7), _random_boxes(rng, 6)
    m3 = iou_3d_matrix(A, B)
    mb = iou_bev_matrix(A, B)
    assert m3.shape == (7, 6) and (m3 > 0).sum() > 10  # overlapping enough to be a real check
    for i, a in enumerate(A):
        for j, b in enumerate(B):
            inter = _polytope_intersection_volume(a, b)
            assert m3[i, j] == pytest.approx(inter / (a.volume + b.volume - inter), abs=1e-9)
            assert m3[i, j] == pytest.approx(iou_3d(b, a))
            assert mb[i, j] == pytest.approx(iou_bev(a, b))
            assert m3[i, j] <= mb[i, j] + 1e-12 or a.size[2] != b.size[2]


def test_iou_invariant_under_rigid_yaw_motion():
    rng = np.random.default_rng(4)
    A, B = _random_boxes(rng, 5), _random_boxes(rng, 5)
    T = make_transform(Box3D.from_yaw([0, 0, 0], [1, 1, 1], 0.7).rotation, [3.0, -2.0, 0.4])
    A2 = [b.transformed(T) for b in A]
    B2 = [b.transformed(T) for b in B]
    np.testing.assert_allclose(iou_3d_matrix(A2, B2), iou_3d_matrix(A, B), atol=1e-9)
    np.testing.assert_allclose(iou_bev_matrix(A2, B2), iou_bev_matrix(A, B), atol=1e-9)


def test_iou_general_orientation_monte_carlo():
    rng = np.random.default_rng(5)
    tilt = make_transform(np.array([[1, 0, 0], [0, np.cos(0.5), -np.sin(0.5)],
                                    [0, np.sin(0.5), np.cos(0.5)]]))
    a = Box3D.from_yaw([0, 0, 0], [2, 1.5, 1], 0.3).transformed(tilt)
    b = Box3D.from_yaw([0.4, 0.2, 0.1], [1.5, 1.5, 1.5], -0.4)
    pts = rng.uniform(-2, 2, (400_000, 3))
    inter_mc = (a.contains(pts) & b.contains(pts)).mean() * 64.0
    want = inter_mc / (a.volume + b.volume - inter_mc)
    assert iou_3d(a, b) == pytest.approx(want, abs=0.01)
    with pytest.raises(ConfigError, match="roll/pitch"):
        iou_bev(a, b)


def test_iou_frame_mismatch_raises():
    a = Box3D.from_yaw([0, 0, 0], [1, 1, 1], 0, "lidar")
    b = Box3D.from_yaw([0, 0, 0], [1, 1, 1], 0, "base_link")
    with pytest.raises(ConfigError, match="different frames"):
        iou_3d(a, b)
    assert iou_3d_matrix([], [b]).shape == (0, 1)


def test_box_in_lidar_frame_projects_like_its_points():
    """The canonical use: a box in the LiDAR frame -> camera optical frame -> 2D box, which
    must contain the projections of points sampled inside it."""
    T_cam_from_lidar = invert(make_transform(R_BODY_FROM_OPTICAL, [0.1, 0.0, -0.3]))
    box = Box3D.from_yaw([8.0, 1.5, -0.8], [3.9, 1.6, 1.5], 0.6, "lidar")
    rng = np.random.default_rng(6)
    local = rng.uniform(-0.5, 0.5, (2000, 3)) * box.size
    pts = local @ box.rotation.T + box.center
    uv, _, mask = points_to_image(pts, T_cam_from_lidar, CAM)
    b2 = project_box(box.transformed(T_cam_from_lidar, "cam"), CAM)
    assert mask.all()
    assert (uv[:, 0] >= b2[0]).all() and (uv[:, 0] <= b2[2]).all()
    assert (uv[:, 1] >= b2[1]).all() and (uv[:, 1] <= b2[3]).all()
    np.testing.assert_allclose(normalized_rays(uv, CAM)[:, 0], (uv[:, 0] - 319.5) / 500)
