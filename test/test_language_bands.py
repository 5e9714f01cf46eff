"""Where a vehicle's colour is read: at door height under its points, not on the windows the
LiDAR hit, and never on a nearer object in front (``language.bands``)."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.language.bands import BODY_HEIGHTS, band_colours, body_samples
from spatial_ros.types import CameraIntrinsics, SensorFrame

# z-up frame -> optical: x forward -> z, y left -> -x, z up -> -y (camera at the origin, 1 m up)
R_OPT_FROM_ZUP = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
CAM_HEIGHT = 1.0


def _T_zup_from_opt() -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R_OPT_FROM_ZUP.T
    T[:3, 3] = [0.0, 0.0, CAM_HEIGHT]
    return T


def _pixel_row(cam: CameraIntrinsics, z_up: float, x: float) -> float:
    """Image row of a point ``z_up`` metres above the road ``x`` metres ahead."""
    return cam.K[1, 2] + cam.K[1, 1] * (CAM_HEIGHT - z_up) / x


def _scene(window_top: float = 1.5):
    """A car's rear 20 m ahead: red paint from 0.2 to 0.8 m above the road, black windows
    from 0.8 m to ``window_top``; grey road below and sky above. Its LiDAR points lie on the
    windows only (the rows below were blocked)."""
    cam = CameraIntrinsics.from_fov(320, 240, 60.0)
    img = np.full((240, 320, 3), 170, np.uint8)  # sky / background
    x = 20.0
    r_paint_top, r_paint_bottom = _pixel_row(cam, 0.8, x), _pixel_row(cam, 0.2, x)
    r_win_top = _pixel_row(cam, window_top, x)
    c0 = int(cam.K[0, 2] - cam.K[0, 0] * 0.8 / x)
    c1 = int(cam.K[0, 2] + cam.K[0, 0] * 0.8 / x)
    img[int(r_paint_bottom):, :] = 90  # road
    img[int(r_win_top):int(r_paint_top), c0:c1 + 1] = (15, 15, 18)  # windows
    img[int(r_paint_top):int(r_paint_bottom) + 1, c0:c1 + 1] = (200, 20, 25)  # red paint
    ys, zs = np.meshgrid(np.linspace(-0.7, 0.7, 15), np.linspace(0.9, window_top - 0.05, 4))
    P_zup = np.column_stack([np.full(ys.size, x), ys.ravel(), zs.ravel()])
    T = _T_zup_from_opt()
    P_opt = (P_zup - T[:3, 3]) @ T[:3, :3]  # inverse of T (rotation part is orthonormal)
    frame = SensorFrame(stamp_ns=0, image=img, camera=cam)
    return frame, P_opt, T, (c0, c1, r_paint_top, r_paint_bottom)


def test_points_on_the_windows_read_black_without_the_road():
    frame, P, T, _ = _scene()
    bands, _ = band_colours(frame, P, T)
    assert max(bands["body"], key=bands["body"].get) == "black"


def test_the_body_under_the_points_reads_the_paint():
    frame, P, T, _ = _scene()
    bands, light = band_colours(frame, P, T, road_z=0.0)
    assert max(bands["body"], key=bands["body"].get) == "red"
    assert bands["body"]["red"] > 0.8
    # the samples are at door height, inside the painted rows
    cam = frame.camera
    uv = body_samples(P @ T[:3, :3].T + T[:3, 3], 0.0, np.linalg.inv(T), cam)
    assert len(uv) == 3 * len(P)  # a column under every point, one sample per height
    rows = sorted({round(float(v), 6) for v in uv[:, 1]})
    assert rows == pytest.approx([_pixel_row(cam, h, 20.0) for h in reversed(BODY_HEIGHTS)])


def test_a_nearer_object_in_front_hides_the_body_samples():
    frame, P, T, (c0, c1, top, bottom) = _scene()
    P_zup = P @ T[:3, :3].T + T[:3, 3]
    occluder = np.array([c0 - 5, top - 2, c1 + 5, bottom + 2])
    assert len(body_samples(P_zup, 0.0, np.linalg.inv(T), frame.camera, [occluder])) == 0
    # a box beside the car hides nothing
    beside = np.array([c1 + 10, top, c1 + 40, bottom])
    assert len(body_samples(P_zup, 0.0, np.linalg.inv(T), frame.camera, [beside])) == 3 * len(P)
    # hidden body: the band is read from the points that lie at door height (none here)
    bands, _ = band_colours(frame, P, T, road_z=0.0, occluders=[occluder])
    assert "body" not in bands


def test_the_ground_beside_a_car_is_its_road_not_its_sill():
    """A car 4 m away whose lowest return is its sill 0.7 m up (the scan's lowest beam
    passes over the road in front of it): the returns around its footprint put the road at
    -1.73 m (KITTI's sensor height); the car's own points and a wall behind do not count."""
    from spatial_ros.language.bands import ground_beside
    from spatial_ros.types import Box3D

    rng = np.random.default_rng(0)
    car = Box3D.from_yaw([4.0, 2.5, -1.73 + 0.75], [3.9, 1.6, 1.5], 0.3)
    road = np.column_stack([rng.uniform(-2, 12, 4000), rng.uniform(-3, 8, 4000),
                            rng.normal(-1.73, 0.02, 4000)])
    road = road[~car.contains(road, margin=0.1)]
    body = car.center + (rng.uniform(-0.5, 0.5, (800, 3)) * car.size) @ car.rotation.T
    body = body[body[:, 2] > -1.03]  # the sill and up
    wall = np.column_stack([rng.uniform(-2, 12, 500), np.full(500, 6.0),
                            rng.uniform(-1.7, 1.0, 500)])
    scene = np.concatenate([road, body, wall])
    scene = scene[np.argsort(scene[:, 0])]
    assert ground_beside(car, scene) == pytest.approx(-1.73, abs=0.05)
    only_car = body[np.argsort(body[:, 0])]
    assert ground_beside(car, only_car) is None  # no road seen: none invented
    assert ground_beside(car, None) is None
