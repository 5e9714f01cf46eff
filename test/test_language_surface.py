"""Vehicle cues of LiDAR candidates (foliage colour, surface scatter, height above the road, one
flat wall) and the pole cue (crowding) on hand-built points and pixels with known answers, and
their effect on the program: a hedge with a car-sized box is not "the car on the left"."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.language.parser import parse_refexpr
from spatial_ros.language.program import ObjectView, Program
from spatial_ros.language.surface import (
    SurfaceEvidence,
    crowding,
    flat_wall,
    road_clearance,
    standalone_likelihood,
    surface_scatter,
    vegetation_share,
    vehicle_likelihood,
)
from spatial_ros.spatial.predicates import Viewpoint
from spatial_ros.types import Box3D

RNG = np.random.default_rng(7)


def _image(rgb) -> tuple[np.ndarray, np.ndarray]:
    img = np.zeros((40, 60, 3), np.uint8)
    img[:] = rgb
    uv = np.stack(np.meshgrid(np.arange(5, 55, 5), np.arange(5, 35, 5)), -1).reshape(-1, 2)
    return img, uv.astype(float)


def test_vegetation_share_counts_dull_green_not_paint():
    assert vegetation_share(*_image((60, 95, 40))) == 1.0  # leaves: ExG 0.41, g > r
    assert vegetation_share(*_image((30, 170, 30))) == 0.0  # green paint: ExG 1.0
    assert vegetation_share(*_image((220, 200, 40))) == 0.0  # yellow paint: g < r
    assert vegetation_share(*_image((128, 128, 128))) == 0.0
    img, uv = _image((128, 128, 128))
    img[:, 30:] = (60, 95, 40)
    assert 0.3 < vegetation_share(img, uv) < 0.7
    assert vegetation_share(img, np.array([[-5.0, 3.0], [np.nan, 1.0]])) is None


def test_scatter_is_low_on_a_panel_and_high_in_foliage():
    n = 3000
    panel = np.column_stack([RNG.uniform(0, 4, n), np.full(n, 2.0), RNG.uniform(-1.5, 0, n)])
    panel[:, 1] += RNG.normal(0, 0.02, n)  # 2 cm range noise
    bush = RNG.uniform([0, 2, -1.5], [4, 3.5, 0.5], (n, 3))
    assert surface_scatter(panel) < 0.09 < 0.15 < surface_scatter(bush)
    assert vehicle_likelihood(SurfaceEvidence(scatter=surface_scatter(panel))) == 1.0
    assert vehicle_likelihood(SurfaceEvidence(scatter=surface_scatter(bush))) == pytest.approx(0.1)
    assert surface_scatter(panel[:10]) is None
    assert surface_scatter(None) is None


def _road(x0, x1, z=-1.7, n=4000):
    return np.column_stack([RNG.uniform(x0, x1, n), RNG.uniform(-3, 3, n), np.full(n, z)])


def test_clearance_and_top_are_measured_from_the_road_in_front():
    car = np.column_stack([RNG.uniform(10, 14, 500), RNG.uniform(-0.9, 0.9, 500),
                           RNG.uniform(-1.4, -0.2, 500)])
    scene = np.vstack([_road(1, 20), car])
    clr, top = road_clearance(car, scene, np.zeros(3))
    assert abs(clr - 0.3) < 0.02 and abs(top - 1.5) < 0.02
    # on a 5 % slope the road in front of the object counts, not the road under the sensor
    slope = _road(1, 20)
    slope[:, 2] += 0.05 * slope[:, 0]
    car_up = car + [0, 0, 0.05 * 10]
    clr, _ = road_clearance(car_up, np.vstack([slope, car_up]), np.zeros(3))
    assert abs(clr - 0.3) < 0.05
    # the low body of something parked in the corridor is not the road
    body = np.column_stack([RNG.uniform(6, 8, 400), RNG.uniform(-1, 1, 400),
                            RNG.uniform(-1.45, -1.42, 400)])
    clr, _ = road_clearance(car, np.vstack([_road(1, 20), body, car]), np.zeros(3))
    assert abs(clr - 0.3) < 0.02
    # a hedge seen over a fence: starts 1.1 m up and reaches 2.7 m
    hedge = car + [0, 0, 0.8]
    clr, top = road_clearance(hedge, np.vstack([_road(1, 20), hedge]), np.zeros(3))
    assert abs(clr - 1.1) < 0.02 and abs(top - 2.3) < 0.02
    assert road_clearance(car, car, np.zeros(3)) is None  # no road seen


def test_vehicle_likelihood():
    car = SurfaceEvidence(vegetation=0.02, scatter=0.03, clearance=0.3, top=1.5)
    assert vehicle_likelihood(car) == 1.0
    hedge = SurfaceEvidence(vegetation=0.5, scatter=0.15, clearance=1.1, top=2.6)
    assert vehicle_likelihood(hedge) == 0.05
    green_car = SurfaceEvidence(vegetation=0.6, scatter=0.03, clearance=0.3, top=1.5)
    assert vehicle_likelihood(green_car) <= 0.1
    assert vehicle_likelihood(green_car, ("car",), green_named=True) == 1.0
    tall = SurfaceEvidence(vegetation=0.0, scatter=0.03, clearance=0.3, top=2.6)
    assert vehicle_likelihood(tall, ("car",)) < 0.3  # no car is 2.6 m tall ...
    assert vehicle_likelihood(tall, ("van",)) == 1.0  # ... a van may be
    assert vehicle_likelihood(tall, ("truck",)) == 1.0
    assert vehicle_likelihood(SurfaceEvidence()) == 1.0  # nothing measured: no opinion


def _car_view(x, y, surface) -> ObjectView:
    box = Box3D.from_yaw([x, y, -0.9], [4.0, 1.7, 1.5], 0.0, "velodyne")
    c = np.array([-y, 0.9, x])  # optical: x right, y down, z forward
    return ObjectView(box, c, {"gray": 1.0}, label="car", surface=surface)


def test_a_hedge_with_a_car_sized_box_is_not_the_car_on_the_left():
    T = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0],
                  [0.0, 0.0, 0.0, 1.0]])
    vp = Viewpoint.from_camera_pose(T)
    car = SurfaceEvidence(vegetation=0.02, scatter=0.03, clearance=0.3, top=1.5)
    hedge = SurfaceEvidence(vegetation=0.4, scatter=0.16, clearance=1.1, top=2.4)
    views = [_car_view(10, 6, hedge), _car_view(8, 2, car), _car_view(12, -3, car)]
    prog = Program(views, vp)
    assert prog.resolve(parse_refexpr("the car on the left")).index == 1
    assert prog.resolve(parse_refexpr("the second car from the left")).index == 2
    assert prog.resolve(parse_refexpr("the closest car")).index == 1
    # without the cues the hedge is the leftmost "car"
    for v in views:
        v.surface = None
    assert Program(views, vp).resolve(parse_refexpr("the car on the left")).index == 0


def test_crowding_tells_a_free_pole_from_a_facade_sliver():
    z = np.linspace(-1.5, 2.0, 40)
    pole = np.column_stack([np.full(40, 20.0), np.full(40, 7.0), z])
    ground = _road(1, 40)
    assert crowding(pole, np.vstack([ground, pole])) == 0
    assert standalone_likelihood(SurfaceEvidence(crowding=0)) == 1.0
    # the same sliver as part of a wall running along the street
    wall = np.column_stack([RNG.uniform(15, 25, 3000), np.full(3000, 7.0),
                            RNG.uniform(-1.5, 2.0, 3000)])
    n = crowding(pole, np.vstack([ground, wall, pole]))
    assert n > 100
    assert standalone_likelihood(SurfaceEvidence(crowding=n)) == pytest.approx(0.1)
    assert crowding(None, wall) is None


def test_people_and_cars_beside_a_pole_do_not_crowd_it():
    """A walker 0.8 m from a pole and a car parked 0.9 m from it are movers: their points do
    not count (the pole still stands free); the same points unowned (a wall) do."""
    z = np.linspace(0.0, 3.5, 30)
    pole = np.column_stack([np.full(30, 20.0), np.full(30, 7.0), z])
    walker = np.column_stack([np.full(12, 20.8), np.full(12, 7.0), np.linspace(0.3, 1.7, 12)])
    car_side = np.column_stack([RNG.uniform(19.0, 23.0, 200), np.full(200, 6.1),
                                RNG.uniform(0.3, 1.4, 200)])
    scene = np.vstack([_road(1, 40), pole, walker, car_side])
    assert crowding(pole, scene) > 20
    assert crowding(pole, scene, movers=[walker, car_side]) == 0
    assert crowding(pole, scene, movers=[walker]) > 10  # the "car" unowned: a wall
    assert standalone_likelihood(SurfaceEvidence(crowding=1)) == 1.0
    assert standalone_likelihood(SurfaceEvidence(crowding=4)) == pytest.approx(0.1)


def test_the_farthest_pole_is_not_a_piece_of_a_distant_facade():
    T = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0],
                  [0.0, 0.0, 0.0, 1.0]])
    vp = Viewpoint.from_camera_pose(T)

    def pole(x, y, crowd):
        box = Box3D.from_yaw([x, y, 0.0], [0.2, 0.2, 3.5], 0.0, "velodyne")
        return ObjectView(box, np.array([-y, 0.0, x]), {"gray": 1.0}, label="pole",
                          surface=SurfaceEvidence(crowding=crowd))

    views = [pole(10, 7, 0), pole(40, -7, 0), pole(55, 15, 12)]
    prog = Program(views, vp)
    assert prog.resolve(parse_refexpr("the pole farthest from the camera")).index == 1
    assert prog.resolve(parse_refexpr("the second closest pole")).index == 1


def _car_shell(x, y, yaw, n=1500) -> np.ndarray:
    """Points on the sides and ends of a 4.0 x 1.7 x 1.5 m box at (x, y) (bottom at
    z = -1.7), rotated by ``yaw``, seen from the origin: only the faces turned towards it."""
    L, W = 4.0, 1.7
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, -s], [s, c]])
    faces = []
    for axis, sign in ((0, 1), (0, -1), (1, 1), (1, -1)):
        normal = R @ (np.eye(2)[axis] * sign)
        centre = np.array([x, y]) + normal * (L if axis == 0 else W) / 2
        if normal @ centre >= 0:  # turned away from the sensor
            continue
        u = RNG.uniform(-0.5, 0.5, n) * (W if axis == 0 else L)
        along = R @ np.eye(2)[1 - axis]
        xy = centre + np.outer(u, along)
        faces.append(np.column_stack([xy, RNG.uniform(-1.7, -0.2, n)]))
    return np.vstack(faces)


def test_a_flat_wall_seen_obliquely_is_not_a_car():
    origin = np.zeros(3)
    # a garden wall along the street, 15-21 m ahead and 7 m to the left: one plane at a
    # grazing angle (its normal is ~70 degrees off the line of sight)
    wall = np.column_stack([RNG.uniform(15, 21, 400), 7.0 + RNG.normal(0, 0.01, 400),
                            RNG.uniform(-1.5, -0.3, 400)])
    assert flat_wall(wall, origin) is True
    ev = SurfaceEvidence(vegetation=0.05, scatter=0.01, clearance=0.3, top=1.4, wall=True)
    assert vehicle_likelihood(ev) == pytest.approx(0.15)
    # a car parked along the street at the same place shows its rear and its side (an L)
    assert flat_wall(_car_shell(18.0, 7.0, 0.0), origin) is False
    # a box-shaped car straight ahead shows one flat face, turned towards the sensor
    rear = _car_shell(15.0, 0.0, 0.0)
    assert np.ptp(rear[:, 0]) < 1e-9  # only the rear face is visible: a single plane
    assert flat_wall(rear, origin) is False
    # a facade across the line of sight is flat and vertical but faces the sensor
    facade = np.column_stack([np.full(300, 30.0), RNG.uniform(-3, 3, 300),
                              RNG.uniform(-1.5, 3.0, 300)])
    assert flat_wall(facade, origin) is False
    # a flat roof-like patch is not vertical
    patch = np.column_stack([RNG.uniform(10, 14, 300), RNG.uniform(5, 9, 300),
                             np.full(300, -1.7)])
    assert flat_wall(patch, origin) is False
    assert flat_wall(wall[:10], origin) is None  # too few points to say
