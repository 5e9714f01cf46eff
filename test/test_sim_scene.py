"""Procedural scenes: placement rules, exact boxes, determinism, config validation."""

from __future__ import annotations

import itertools

import numpy as np
import open3d as o3d
import pytest

from spatial_ros.errors import ConfigError
from spatial_ros.sim import CameraConfig, SimConfig, catalog, make_scene
from spatial_ros.sim.meshes import lathe
from spatial_ros.sim.scene import box_in_image

SMALL = CameraConfig(width=128, height=96, hfov_deg=50.0)


def _local(obj, pts):
    c, s = np.cos(obj.yaw), np.sin(obj.yaw)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    return (pts - obj.center) @ R


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_tabletop_layout(seed):
    scene = make_scene("tabletop", seed, camera=SMALL)
    objs = [o for o in scene.objects if o.category != "gripper"]
    assert 3 <= len(objs) <= 10
    assert scene.objects[-1].category == "gripper"
    x0, x1, y0, y1 = scene.table_bounds
    for o in objs:
        assert o.category in catalog.TABLETOP_CATEGORIES
        assert o.colour in catalog.TABLETOP_COLOURS
        assert o.caption == f"the {o.colour} {o.category}"
        assert o.rgb == catalog.colour_rgb(o.colour)
        assert o.bottom_z == pytest.approx(scene.table_top_z, abs=1e-9)  # resting on the table
        c = o.box.corners()
        assert (c[:, 0] > x0).all() and (c[:, 0] < x1).all()
        assert (c[:, 1] > y0).all() and (c[:, 1] < y1).all()
        assert box_in_image(o.box, scene.rig, margin_px=2.0)
        # the GT box is the mesh's own tight box: every vertex inside, every face touched
        loc = _local(o, o.mesh.posed_vertices(o.center, o.yaw))
        assert np.allclose(loc.min(0), -o.size / 2, atol=1e-9)
        assert np.allclose(loc.max(0), o.size / 2, atol=1e-9)
        # realistic tabletop sizes
        assert 0.02 < o.size.max() < 0.3
    for a, b in itertools.combinations(objs, 2):
        assert a.footprint().distance(b.footprint()) >= 0.02, (a.id, b.id)
    assert len({o.id for o in scene.objects}) == len(scene.objects)


def test_tabletop_rig_matches_the_brief():
    for seed in range(5):
        s = make_scene("tabletop", seed, camera=SMALL)
        T = s.rig.T_base_from_camera_link
        height = T[2, 3] - s.table_top_z
        pitch = np.degrees(np.arctan2(-T[2, 0], T[0, 0]))
        assert 0.6 <= height <= 0.9 and 35 <= pitch <= 50
        lid = s.rig.T_base_from_lidar[:3, 3]
        assert np.linalg.norm(lid - T[:3, 3]) == pytest.approx(0.08)  # beside the camera
    s = make_scene("tabletop", 0, camera=SMALL, camera_height=0.7, camera_pitch_deg=40.0)
    T = s.rig.T_base_from_camera_link
    assert T[2, 3] - s.table_top_z == pytest.approx(0.7)
    assert np.degrees(np.arctan2(-T[2, 0], T[0, 0])) == pytest.approx(40.0)


def test_ambiguous_pairs_on_request():
    dup_seen = 0
    for seed in range(6):
        s = make_scene("tabletop", seed, camera=SMALL, ambiguous_prob=1.0, num_objects=(4, 6))
        caps = [o.caption for o in s.objects]
        dup_seen += len(caps) != len(set(caps))
        s0 = make_scene("tabletop", seed, camera=SMALL, ambiguous_prob=0.0, num_objects=(4, 6))
        caps0 = [o.caption for o in s0.objects]
        assert len(caps0) == len(set(caps0))
    assert dup_seen >= 5  # a duplicate can only be lost when it does not fit on the table


def test_required_objects_are_added_and_never_duplicated():
    for seed in range(6):
        s = make_scene(
            "tabletop",
            seed,
            camera=SMALL,
            ambiguous_prob=1.0,
            required=[("red", "cube"), ("blue", "bowl")],
        )
        assert len(s.find("red", "cube")) == 1 and len(s.find("blue", "bowl")) == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_street_layout(seed):
    s = make_scene("street", seed, camera=CameraConfig(width=160, height=48, hfov_deg=81.0))
    assert 8 <= len(s.objects) <= 20
    assert np.allclose(s.rig.T_base_from_camera_link[:3, 3], [0.27, 0.0, 1.65])
    assert np.allclose(s.rig.T_base_from_lidar[:3, 3], [0.0, 0.0, 1.73])
    for o in s.objects:
        assert o.bottom_z == pytest.approx(0.0, abs=1e-9)
        assert 2.0 <= np.hypot(*o.center[:2]) <= 50.0
        L, W, H = o.size
        if o.category == "car":
            assert 3.3 < L < 4.8 and 1.4 < W < 1.9 and 1.3 < H < 1.8
        elif o.category == "pedestrian":
            assert 1.5 < H < 2.0 and max(L, W) < 1.0
        elif o.category == "cyclist":
            assert 1.6 < L < 1.9 and 1.5 < H < 2.0
    for a, b in itertools.combinations(s.objects, 2):
        assert a.footprint().distance(b.footprint()) >= 0.3


def test_same_seed_same_scene_other_seed_other_scene():
    a = make_scene("tabletop", 11, camera=SMALL)
    b = make_scene("tabletop", 11, camera=SMALL)
    c = make_scene("tabletop", 12, camera=SMALL)
    key = lambda s: [(o.id, o.colour, tuple(o.center), o.yaw) for o in s.objects]  # noqa: E731
    assert key(a) == key(b)
    assert key(a) != key(c)
    assert np.array_equal(a.rig.T_base_from_camera_link, b.rig.T_base_from_camera_link)


def test_lathe_is_a_closed_solid_of_revolution():
    p = lathe([(0, 0), (0.05, 0), (0.05, 0.1), (0, 0.1)], (1, 0, 0), segments=64)
    r = np.hypot(p.vertices[:, 0], p.vertices[:, 1])
    assert r.max() == pytest.approx(0.05) and set(np.round(p.vertices[:, 2], 9)) == {0.0, 0.1}
    # closed: ray-parity occupancy of random points gives the polygonal cylinder's volume
    rc = o3d.t.geometry.RaycastingScene()
    rc.add_triangles(
        o3d.core.Tensor(p.vertices.astype(np.float32)),
        o3d.core.Tensor(p.triangles.astype(np.uint32)),
    )
    q = np.random.default_rng(0).uniform([-0.05, -0.05, 0.0], [0.05, 0.05, 0.1], (20000, 3))
    inside = rc.compute_occupancy(o3d.core.Tensor(q.astype(np.float32))).numpy().mean()
    polygon_area = 32 * 0.05**2 * np.sin(2 * np.pi / 64)
    assert inside == pytest.approx(polygon_area / 0.1**2, abs=0.01)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"scenario": "moon"}, "scenario"),
        ({"frames": 0}, "frames"),
        ({"seed": -1}, "seed"),
        ({"num_objects": (5, 3)}, "num_objects"),
        ({"trajectory": "maybe"}, "trajectory"),
        ({"scenario": "street", "trajectory": "success"}, "tabletop"),
        ({"goal": "lift the red ball 10 cm above the table"}, "trajectory"),
        ({"camera_rate_hz": 30, "lidar_rate_hz": 7}, "multiple"),
        ({"storage": "rosbag1"}, "storage"),
        ({"camera": {"supersample": 2}}, "supersample"),
        ({"camera": {"depth_encoding": "16UC1", "max_depth": 100}}, "65.535"),
        ({"lidar": {"elevation_min_deg": 5, "elevation_max_deg": -5}}, "elevation"),
        ({"lidar": {"dropout": 1.0}}, "dropout"),
        ({"crop_lidar_to_camera": True}, "tabletop"),
    ],
)
def test_config_validation_names_the_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SimConfig(**kwargs)


def test_config_roundtrip_and_crop():
    cfg = SimConfig(scenario="street", seed=3, crop_lidar_to_camera=True)
    assert cfg.lidar.azimuth_fov_deg == pytest.approx(cfg.camera.hfov_deg + 4)
    back = SimConfig.from_dict(cfg.to_dict())
    assert back.to_dict() == cfg.to_dict()
    with pytest.raises(ConfigError, match="unknown"):
        SimConfig.from_dict({"scenario": "street", "colour": "red"})
