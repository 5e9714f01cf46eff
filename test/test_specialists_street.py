"""The street preset's parts against ray-cast scenes with exact truth: patchwise ground on a
slope and a raised sidewalk, touching objects split, classes from size, L-shape headings,
completion of cars cut by the field of view, walls that break into "poles"."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.geometry.iou import iou_bev_matrix
from spatial_ros.specialists import LidarSpecialist, LidarSpecialistConfig
from spatial_ros.specialists.batchfit import fit_groups
from spatial_ros.specialists.classify import (
    OPEN_FOV,
    OPEN_WINDOW,
    STREET_CLASSES,
    classify_extents,
)
from spatial_ros.specialists.ground import GroundConfig, segment_ground
from spatial_ros.specialists.scan_geometry import (
    contours,
    drop_pole_chains,
    drop_vehicle_parts,
    overlapping_vehicles,
)
from spatial_ros.specialists.splitting import best_cut
from spatial_ros.specialists.synthetic import _box_mesh, raycast_lidar
from spatial_ros.types import Box3D, Candidate

SLOPE = 0.08  # rise per metre of the road beyond x = 10 m
CURB = 0.15  # sidewalk height, for |y| > 6 m


def ground_z(x, y):
    """Height of the test road: flat to x = 10 m, then an 8 % ramp; sidewalks 15 cm up."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return np.maximum(x - 10.0, 0.0) * SLOPE + np.where(np.abs(y) > 6.0, CURB, 0.0)


def ground_meshes():
    flat = Box3D([-40.0, 0.0, -0.05], [100.0, 12.0, 0.1])
    tilt = np.arctan(SLOPE)
    R = np.array([[np.cos(tilt), 0, -np.sin(tilt)], [0, 1, 0], [np.sin(tilt), 0, np.cos(tilt)]])
    ramp_c = np.array([10.0, 0.0, 0.0]) + R @ np.array([30.0, 0.0, -0.05])
    ramp = Box3D(ramp_c, [60.0, 12.0, 0.1], R)
    walks = []
    for s in (-1, 1):  # sidewalks on the flat part only (the ramp has none)
        walks.append(Box3D([-15.0, s * 9.0, CURB / 2 - 0.05], [50.0, 6.0, CURB + 0.1]))
    return [_box_mesh(b) for b in (flat, ramp, *walks)]


def car_parts(box: Box3D):
    """Body, wheels block and a set-back cabin, as ``synthetic.street_scan`` builds cars."""
    (x, y, z), (L, W, H), yaw = box.center, box.size, box.yaw
    g = z - H / 2
    fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    return [Box3D.from_yaw([x, y, g + 0.6], [L, W, 0.9], yaw),
            Box3D.from_yaw([x, y, g + 0.075], [L - 0.6, W - 0.2, 0.15], yaw),
            Box3D.from_yaw(np.array([x, y, g + (1.05 + H) / 2]) - 0.1 * L * fwd,
                           [0.55 * L, W - 0.1, H - 1.05], yaw)]


def person_parts(box: Box3D):
    """Body to the shoulders (82 % of the height, full width) and a head (0.2 m wide) on it."""
    (x, y, z), (L, W, H), yaw = box.center, box.size, box.yaw
    g = z - H / 2
    return [Box3D.from_yaw([x, y, g + 0.41 * H], [L, W, 0.82 * H], yaw),
            Box3D.from_yaw([x, y, g + 0.91 * H], [min(L, 0.2), 0.2, 0.18 * H], yaw)]


def on_ground(x, y, size, yaw=0.0):
    return Box3D.from_yaw([x, y, float(ground_z(x, y)) + size[2] / 2], size, yaw, "base_link")


def scan(objects, *, azimuth_steps=2048, h_fov=(-180.0, 180.0), seed=0):
    meshes = ground_meshes()
    for label, b in objects:
        parts = {"car": car_parts, "pedestrian": person_parts}.get(label, lambda b: [b])(b)
        meshes += [_box_mesh(p) for p in parts]
    pts, _, T = raycast_lidar(meshes, origin=(0.0, 0.0, 1.73), azimuth_steps=azimuth_steps,
                              h_fov_deg=h_fov, noise_m=0.01, seed=seed)
    return pts, T


def propose(pts, T, **over):
    sp = LidarSpecialist(LidarSpecialistConfig.street(**over))
    return sp.propose(pts, T_base_from_lidar=T), sp


def best_bev(truth: Box3D, cands):
    if not cands:
        return 0.0, None
    B = iou_bev_matrix([truth], [c.box for c in cands])[0]
    return float(B.max()), cands[int(B.argmax())]


# -- ground ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slope_scene():
    # cars up the ramp, side by side across the road so that none hides another
    objs = [("car", on_ground(x, y, [4.2, 1.7, 1.5], 0.02))
            for x, y in ((18.0, -3.5), (30.0, 1.5), (38.0, 4.5))]
    objs += [("pedestrian", on_ground(-6.0, 8.0, [0.6, 0.5, 1.75])),
             ("pedestrian", on_ground(-12.0, -8.5, [0.6, 0.5, 1.7]))]
    pts, T = scan(objs)
    return objs, pts, T


def test_patchwise_ground_follows_the_slope_and_the_curb(slope_scene):
    objs, pts, T = slope_scene
    xyz = pts[:, :3] @ T[:3, :3].T + T[:3, 3]
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    xyz = xyz[(r > 1.0) & (r < 60.0)]
    h = segment_ground(xyz, GroundConfig(), (0.0, 0.0)).height
    true_h = xyz[:, 2] - ground_z(xyz[:, 0], xyz[:, 1])
    ground = true_h < 0.02
    on_objects = true_h > 0.4
    # the road, the ramp 2.6 m up at 42 m and the sidewalks are ground (h below 0.2 m)
    assert np.mean(h[ground] < 0.2) > 0.99
    ramp = ground & (xyz[:, 0] > 30)
    assert ramp.sum() > 200 and np.mean(np.abs(h[ramp]) < 0.15) > 0.95
    # objects stand on it: heights above the local ground within a few cm of the truth
    assert np.median(np.abs(h[on_objects] - true_h[on_objects])) < 0.06


def test_street_preset_finds_objects_on_a_slope_one_plane_does_not(slope_scene):
    objs, pts, T = slope_scene
    cands, _ = propose(pts, T)
    for label, b in objs:
        bev, c = best_bev(b, cands)
        assert bev >= 0.5, (label, b.center)
        assert c.label == label
        bottom = c.box.center[2] - c.box.size[2] / 2
        # on the local ground (the ramp is 2.6 m up at 42 m), within a third of a metre
        assert abs(bottom - (b.center[2] - b.size[2] / 2)) < 0.3
    # One RANSAC plane (the former ground) cannot be the ramp and the flat road at once.
    flat, _ = propose(pts, T, ground_method="planes", ground_height=0.0)
    far = [b for label, b in objs if label == "car" and b.center[0] > 25]
    assert sum(best_bev(b, flat)[0] >= 0.5 for b in far) < len(far)


# -- touching objects --------------------------------------------------------------------------


def test_touching_cars_and_people_are_separate():
    cars = [on_ground(-20.0 - 4.6 * k, 4.0, [4.2, 1.7, 1.5]) for k in range(2)]  # 0.4 m gap
    people = [on_ground(-9.0, -7.5 + 0.5 * k, [0.3, 0.48, 1.75]) for k in range(2)]  # 2 cm
    objs = [("car", b) for b in cars] + [("pedestrian", b) for b in people]
    pts, T = scan(objs)
    cands, _ = propose(pts, T)
    for label, b in objs:
        bev, c = best_bev(b, cands)
        assert bev >= 0.5 and c.label == label, (label, b.center, bev)
    matched = {id(best_bev(b, cands)[1]) for _, b in objs}
    assert len(matched) == len(objs)  # one candidate each, not one for the pair


def test_best_cut_two_heads_not_one_cyclist():
    rng = np.random.default_rng(0)

    def column(x0, width, top, n=400):
        x = rng.uniform(x0, x0 + width, n)
        return np.column_stack([x, rng.normal(0, 0.05, n)]), rng.uniform(0.2, top, n)

    # two people shoulder to shoulder: heads (1.75 m) over shoulders (1.45 m)
    parts = [column(0.0, 0.45, 1.45), column(0.15, 0.15, 1.75),
             column(0.45, 0.45, 1.45), column(0.6, 0.15, 1.72)]
    xy = np.concatenate([p[0] for p in parts])
    h = np.concatenate([p[1] for p in parts])
    cut = best_cut(xy, h, min_peak_ratio=0.75)
    assert cut is not None
    a, b = sorted((xy[cut.left, 0], xy[cut.right, 0]), key=np.mean)  # the axis sign is free
    assert 0.3 < a.max() < 0.6 and 0.3 < b.min() < 0.6
    # a cyclist: handlebar (1.1 m) and the rider (1.75 m): no second head
    parts = [column(0.0, 0.5, 0.7), column(0.35, 0.2, 1.1), column(0.55, 0.4, 1.3),
             column(0.95, 0.3, 1.75), column(1.25, 0.5, 0.7)]
    xy = np.concatenate([p[0] for p in parts])
    h = np.concatenate([p[1] for p in parts])
    assert best_cut(xy, h, min_peak_ratio=0.75) is None


# -- classes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("extents, label", [
    ((3.9, 1.6, 1.5), "car"),
    ((1.6, 0.4, 1.0), "car"),  # seen from behind at range: windows return nothing
    ((5.1, 1.9, 2.2), "van"),
    ((9.5, 2.5, 3.4), "truck"),
    ((0.7, 0.5, 1.75), "pedestrian"),
    ((1.7, 0.5, 1.7), "cyclist"),
    ((0.3, 0.25, 3.5), "pole"),
    ((2.0, 2.0, 0.5), None),  # a low box: none of those
    ((8.0, 0.4, 1.5), None),  # a stretch of hedge, longer than any van
])
def test_classes_from_size(extents, label):
    pr, _ = classify_extents(*extents, STREET_CLASSES)
    assert (pr.label if pr else None) == label


def test_open_top_and_rough_contours_keep_vehicles_out():
    # a car-sized cluster that reaches the top of the height window is no car; a pole is
    assert classify_extents(3.9, 1.6, 1.5, STREET_CLASSES, open_top=OPEN_WINDOW)[0] is None
    assert classify_extents(0.3, 0.3, 2.5, STREET_CLASSES,
                            open_top=OPEN_WINDOW)[0].label == "pole"
    # reaching the sensor's highest beam (a car up a hill) leaves cars possible, not vans
    assert classify_extents(3.9, 1.6, 1.5, STREET_CLASSES, open_top=OPEN_FOV)[0].label == "car"
    assert classify_extents(5.0, 1.9, 2.2, STREET_CLASSES, open_top=OPEN_FOV)[0] is None
    # foliage: the contour scatters 0.2 m about the sides
    assert classify_extents(3.9, 1.6, 1.5, STREET_CLASSES, roughness=0.2)[0] is None
    assert classify_extents(0.7, 0.5, 1.75, STREET_CLASSES, roughness=0.2)[0].label == \
        "pedestrian"


# -- boxes -------------------------------------------------------------------------------------


def test_batched_l_shape_headings_and_extents():
    """Cars seen at a corner (an L of returns with a cabin set back): heading within 1.5
    degrees and footprint within 5 cm, all clusters in one ``fit_groups`` call."""
    yaws = [0.3, -0.7, 1.2, 0.05]
    objs = [("car", on_ground(-15.0 * np.cos(a), 15.0 * np.sin(a), [4.2, 1.8, 1.5], y))
            for a, y in zip((0.0, 0.8, 1.6, 2.4), yaws, strict=True)]
    pts, T = scan(objs)
    xyz = pts[:, :3] @ T[:3, :3].T + T[:3, 3]
    groups = [np.flatnonzero(b.contains(xyz, 0.05) & (xyz[:, 2] > ground_z(xyz[:, 0],
                                                                          xyz[:, 1]) + 0.2))
              for _, b in objs]
    order = np.concatenate(groups)
    lab = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    starts = np.concatenate([[0], np.cumsum([len(g) for g in groups])])
    con = contours(xyz[order], lab, len(groups), T[:3, 3])
    gb = fit_groups(xyz[order], starts, origin=T[:3, 3], contour=con)
    for k, (_, b) in enumerate(objs):
        d = (np.degrees(gb.yaw[k] - b.yaw) + 90) % 180 - 90
        assert abs(d) < 1.5, (k, d)
        assert np.all(gb.size[k, :2] <= b.size[:2] + 0.05)
        assert gb.size[k, 0] > 0.6 * b.size[0]  # the visible L spans most of the car


def test_car_cut_by_the_field_of_view_grows_past_the_cut():
    """A camera-view cloud (90 degrees) cuts a parked car at its near end: the box is completed
    past the cut (towards the sensor's side), not away from the sensor."""
    car = on_ground(4.6, 6.6, [4.2, 1.7, 1.5], 0.0)  # x from 2.5 to 6.7; the cut is at 45 deg
    pts, T = scan([("car", car)], azimuth_steps=1024, h_fov=(-45.0, 45.0))
    xyz = pts[:, :3] @ T[:3, :3].T + T[:3, 3]
    seen = xyz[car.contains(xyz, 0.05)]
    assert 50 < len(seen) and seen[:, 0].min() > car.center[0] - 1.0  # only its far part
    cands, _ = propose(pts, T)
    bev, c = best_bev(car, cands)
    assert c is not None and c.label == "car"
    assert bev >= 0.5, bev
    assert c.box.center[0] < seen[:, 0].mean()  # grown towards the cut


def test_wall_columns_are_no_poles():
    poles = [Candidate(Box3D.from_yaw([50.0 + 0.7 * k, 14.0, 2.0], [0.2, 0.2, 3.5], 0.0),
                       label="pole") for k in range(5)]
    alone = Candidate(Box3D.from_yaw([20.0, -7.0, 2.0], [0.25, 0.25, 4.0], 0.0), label="pole")
    car = Candidate(Box3D.from_yaw([50.0, 12.0, 0.75], [4.0, 1.7, 1.5], 0.0), label="car")
    kept = drop_pole_chains([*poles, alone, car], gap=1.5)
    assert kept == [alone, car]


def test_a_pole_whose_top_is_above_the_top_beam_gets_a_street_pole_height():
    """A 5.5 m pole 14 m away: the top beam (+2 degrees from 1.73 m) passes 2.2 m up, so the
    scan sees less than half of it; its box takes the hidden-top height (4.5 m) with its
    bottom on the ground, and a round footprint (the unseen depth = the seen breadth)."""
    pole = on_ground(-14.0, 3.0, [0.2, 0.2, 5.5])  # on the flat part, behind the sensor
    short = on_ground(-5.0, -3.0, [0.2, 0.2, 1.9])  # a post whose top the scan sees
    # 10 m facades along both sides of the street: the top beam hits them all around, so the
    # scan's highest elevation is the sensor's top beam (in an open field it is not)
    facades = [("wall", Box3D([0.0, s * 14.0, 5.0], [120.0, 0.5, 10.0])) for s in (-1, 1)]
    pts, T = scan([("pole", pole), ("post", short), *facades], azimuth_steps=4096)
    cands, _ = propose(pts, T)
    _, c = best_bev(pole, cands)
    assert c is not None and c.label == "pole", [(x.label, x.box.size) for x in cands]
    assert c.box.size[2] == pytest.approx(4.5, abs=0.05)
    assert c.box.center[2] - c.box.size[2] / 2 == pytest.approx(0.0, abs=0.1)  # on the road
    assert c.box.size[0] == pytest.approx(c.box.size[1])  # round
    from spatial_ros.geometry.iou import iou_3d
    assert iou_3d(c.box, pole) > 0.25  # with the seen 2.2 m it was below 0.25
    # a post whose top is seen keeps its height (too short for a pole: not one)
    _, s = best_bev(short, cands)
    assert s is None or s.label != "pole" or s.box.size[2] < 2.2


def test_hidden_top_height_applies_only_when_the_top_is_hidden():
    from spatial_ros.specialists.classify import SizePrior, complete_with_prior

    prior = SizePrior("pole", 0.3, 0.3, 3.0, min_height=2.1, max_height=1e9, max_length=0.7,
                      max_width=0.7, min_length=0.02, grow_below=0.0,
                      hidden_top_height=4.5, round=True)
    # seen from (0, 0): 0.2 m across the line of sight (y), 0.1 m of depth (x)
    seen = Box3D.from_yaw([10.0, 0.0, 1.2], [0.2, 0.1, 2.4], np.pi / 2)
    grown, label = complete_with_prior(seen, [prior], open_top=1)
    assert label == "pole" and grown.size[2] == pytest.approx(4.5)
    assert grown.center[2] - 2.25 == pytest.approx(0.0)  # the bottom stays
    assert grown.size[0] == grown.size[1] == pytest.approx(0.2)
    assert grown.center[0] == pytest.approx(10.05)  # the unseen depth lies away from (0, 0)
    kept, _ = complete_with_prior(seen, [prior], open_top=0)
    assert kept.size[2] == pytest.approx(2.4)
    tall, _ = complete_with_prior(Box3D.from_yaw([10.0, 0.0, 3.0], [0.2, 0.2, 6.0], 0.0),
                                  [prior], open_top=1)
    assert tall.size[2] == pytest.approx(6.0)  # never lowered


def test_slivers_of_a_car_side_are_no_pedestrians():
    """A car 30 m ahead-left (its near side at y = 5.2 m) and, from a cloud of 40,000 returns
    per steradian (a 0.3 m^2 sliver there returns 13 points): person-sized pieces of 5 points
    just inside its near side are dropped; a pedestrian of 28 points at the same place, a
    sliver deep inside the completed (unseen) far half and one beside the car are kept."""
    car = Candidate(Box3D.from_yaw([30.0, 6.0, 0.8], [3.9, 1.6, 1.5], 0.0), label="car",
                    num_points=45)

    def ped(x, y, n):
        return Candidate(Box3D.from_yaw([x, y, 0.8], [0.35, 0.2, 1.6], 0.0), label="pedestrian",
                         num_points=n)

    slivers = [ped(29.3, 5.35, 5), ped(30.6, 5.3, 6)]
    person = ped(30.0, 5.35, 28)
    deep = ped(30.0, 6.6, 5)  # 1.4 m behind the seen side: the box's grown part
    beside = ped(30.0, 4.6, 5)  # outside the box
    pole = Candidate(Box3D.from_yaw([31.0, 5.3, 2.2], [0.2, 0.2, 4.5], 0.0), label="pole",
                     num_points=4)
    cands = [car, *slivers, person, deep, beside, pole]
    kept = drop_vehicle_parts(cands, ("car", "van", "truck"), (0.0, 0.0), density=40_000.0)
    assert kept == [car, person, deep, beside]
    assert drop_vehicle_parts(cands, ("van",), (0.0, 0.0), density=40_000.0) == cands


def test_overlapping_vehicle_boxes_are_grouped_as_one_object():
    """Two solid objects cannot share space: boxes that overlap a vehicle's are one group;
    touching or apart ones, and overlaps without a vehicle, are not."""
    def cand(x, y, size, label, yaw=0.0):
        return Candidate(Box3D.from_yaw([x, y, size[2] / 2], size, yaw), label=label)

    car = [3.9, 1.6, 1.5]
    a, b = cand(30.0, 5.0, car, "car"), cand(31.5, 5.2, car, "car", 0.2)  # one car, two boxes
    piece = cand(29.0, 5.0, [1.5, 0.6, 1.6], "cyclist")  # a bike-long piece of car a
    touching = cand(35.6, 5.0, car, "car")  # 0.1 m behind b's box
    apart = cand(20.0, -4.0, car, "car")
    people = [cand(10.0, 2.0, [0.6, 0.5, 1.8], "pedestrian"),
              cand(10.2, 2.1, [0.6, 0.5, 1.8], "pedestrian")]
    groups = overlapping_vehicles([a, b, piece, touching, apart, *people], ("car",))
    assert [sorted(g) for g in groups] == [[0, 1, 2]]
    assert overlapping_vehicles([a, b], ("van",)) == []


def test_a_car_split_by_a_pole_in_front_is_one_car_not_a_car_and_a_pedestrian():
    """A pole 10 m ahead casts a shadow across a car's side 30 m away: the scan returns two
    pieces, one person-sized. Each piece's box alone overlaps the other (a car completed
    from its prior around the larger one); together they are one car."""
    from spatial_ros.geometry.iou import iou_3d

    car = on_ground(30.0, -4.0, [4.2, 1.7, 1.5], 0.0)
    pole = on_ground(10.0, -1.3, [0.3, 0.3, 3.0])
    pts, T = scan([("car", car), ("pole", pole)], azimuth_steps=4096)
    cands, _ = propose(pts, T)
    on_car = [c for c in cands if iou_3d(c.box, car) > 0.02]
    assert [c.label for c in on_car] == ["car"], [(c.label, c.num_points) for c in on_car]
    assert iou_3d(on_car[0].box, car) > 0.7
    _, p = best_bev(pole, cands)
    assert p is not None and p.label == "pole"
