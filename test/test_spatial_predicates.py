"""Spatial predicates against hand-computed answers, exact box geometry and re-orientation.

The hand-laid scene (world frame, z up; the camera at (0, 0, 1) looks along +x, so its right
axis is -y and "left" means +y). Centre / full size -> extents:

    table  (2.0, 0.0, 0.375) / (1.2, 0.8, 0.75)   x [1.4, 2.6]   y [-0.4, 0.4]    z [0, 0.75]
    mug    (1.8, 0.2, 0.80)  / (0.08, 0.08, 0.1)  x [1.76, 1.84] y [0.16, 0.24]   z [0.75, 0.85]
    bowl   (2.2, -0.1, 0.785) / (0.16, 0.16, 0.07) x [2.12, 2.28] y [-0.18, -0.02] z [0.75, 0.82]
    lamp   (2.5, 0.3, 1.05)  / (0.2, 0.2, 0.6)    x [2.4, 2.6]   y [0.2, 0.4]     z [0.75, 1.35]
    chair  (1.0, -1.0, 0.45) / (0.6, 0.4, 0.9), yaw 90 deg
                                                  x [0.8, 1.2]   y [-1.3, -0.7]   z [0, 0.9]
                                                  (its 0.6 m side runs along y)
    shelf  (2.5, -0.5, 1.51) / (0.6, 0.2, 0.02)                                   z [1.5, 1.52]
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from spatial_ros.errors import ConfigError
from spatial_ros.geometry.transforms import (
    R_BODY_FROM_OPTICAL,
    invert,
    make_transform,
    quaternion_to_matrix,
)
from spatial_ros.spatial import predicates as P
from spatial_ros.spatial.predicates import (
    PredicateConfig,
    SpatialObject,
    Viewpoint,
    box_box_distance,
    reorient,
)
from spatial_ros.types import Box3D, GroundedObject, yaw_to_matrix


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


@pytest.fixture
def scene():
    objs = {
        "table": SpatialObject("table", Box3D([2.0, 0.0, 0.375], [1.2, 0.8, 0.75])),
        "mug": SpatialObject("mug", Box3D([1.8, 0.2, 0.80], [0.08, 0.08, 0.1])),
        "bowl": SpatialObject("bowl", Box3D([2.2, -0.1, 0.785], [0.16, 0.16, 0.07])),
        "lamp": SpatialObject("lamp", Box3D([2.5, 0.3, 1.05], [0.2, 0.2, 0.6])),
        "chair": SpatialObject("chair", Box3D.from_yaw([1.0, -1.0, 0.45], [0.6, 0.4, 0.9],
                                                       math.pi / 2)),
        "shelf": SpatialObject("shelf", Box3D([2.5, -0.5, 1.51], [0.6, 0.2, 0.02])),
    }
    vp = Viewpoint([0.0, 0.0, 1.0], [1.0, 0.0, 0.0])
    return objs, vp


def test_viewpoint_axes(scene):
    _, vp = scene
    assert np.allclose(vp.heading, [1, 0, 0]) and np.allclose(vp.right, [0, -1, 0])
    # A pitched-down camera has the same heading (gravity-aligned semantics).
    assert np.allclose(Viewpoint([0, 0, 1], [1, 0, -0.7]).right, [0, -1, 0])


def test_left_right(scene):
    o, vp = scene
    # right coordinates (r = -y): mug -0.2, bowl +0.1 -> mug is 0.3 m left of the bowl.
    r = P.left_of(o["mug"], o["bowl"], vp)
    assert r.value and not r.ambiguous and r.margin == pytest.approx(0.3)
    assert P.right_of(o["bowl"], o["mug"], vp).margin == pytest.approx(0.3)
    assert not P.left_of(o["bowl"], o["mug"], vp).value
    # chair (y = -1) is right of the table (y = 0) by 1.0 m.
    assert P.right_of(o["chair"], o["table"], vp).margin == pytest.approx(1.0)
    # Near tie: move the bowl to y = 0.19 -> |dx| = 0.01 < 0.02 -> ambiguous.
    near = SpatialObject("bowl", Box3D([2.2, 0.19, 0.785], [0.16, 0.16, 0.07]))
    tie = P.left_of(o["mug"], near, vp)
    assert tie.ambiguous and tie.clear_value is None and tie.margin == pytest.approx(0.01)


def test_above_below(scene):
    o, vp = scene
    # mug bottom 0.75 - table top 0.75 + contact 0.03 = 0.03 > 0: resting on counts as above.
    r = P.above(o["mug"], o["table"])
    assert r.value and not r.ambiguous and r.margin == pytest.approx(0.03)
    assert P.below(o["table"], o["mug"]).value
    # mug vs bowl side by side: 0.75 - 0.82 + 0.03 = -0.04 -> neither above nor below.
    assert P.above(o["mug"], o["bowl"]).margin == pytest.approx(-0.04)
    assert not P.above(o["mug"], o["bowl"]).value and not P.below(o["mug"], o["bowl"]).value
    # shelf bottom 1.5 - lamp top 1.35 + 0.03 = 0.18.
    assert P.above(o["shelf"], o["lamp"]).margin == pytest.approx(0.18)
    assert P.below(o["lamp"], o["shelf"]).margin == pytest.approx(0.18)
    # Without contact tolerance the resting mug is a near tie (margin 0 < 0.02).
    strict = PredicateConfig(contact_tolerance=0.0)
    assert P.above(o["mug"], o["table"], config=strict).ambiguous


def test_behind_uses_nearest_surface(scene):
    o, vp = scene
    # Nearest surfaces along +x from the camera at x = 0: mug 1.76, bowl 2.12, table 1.4.
    r = P.behind(o["bowl"], o["mug"], vp)
    assert r.value and r.margin == pytest.approx(0.36)
    assert P.in_front_of(o["mug"], o["bowl"], vp).margin == pytest.approx(0.36)
    # The mug's CENTRE (1.8) is nearer than the table's (2.0), but its nearest surface (1.76)
    # is farther than the table's front edge (1.4): by the rule the mug is behind the table.
    r = P.behind(o["mug"], o["table"], vp)
    assert r.value and r.margin == pytest.approx(0.36)
    assert r.details["near_a"] == pytest.approx(1.76) and r.details["near_b"] == pytest.approx(1.4)
    # Points, when given, define the surface: a cloud only at the back of the mug's box.
    back = np.array([[1.84, 0.2, 0.8], [1.84, 0.18, 0.78]])
    mug_pts = SpatialObject("mug", o["mug"].box, back)
    assert P.depth_offset(mug_pts, o["table"], vp).value == pytest.approx(0.44)
    assert P.depth_offset(mug_pts, o["table"], vp).method == "points-box"


def test_closer_to_camera(scene):
    o, vp = scene
    # Closest points to the camera (0, 0, 1): chair corner (0.8, -0.7, 0.9) -> sqrt(0.64 +
    # 0.49 + 0.01) = 1.0677; mug corner (1.76, 0.16, 0.85) -> sqrt(3.0976 + 0.0256 + 0.0225).
    r = P.closer_to_camera(o["chair"], o["mug"], vp)
    assert r.details["dist_a"] == pytest.approx(math.sqrt(1.14))
    assert r.details["dist_b"] == pytest.approx(math.sqrt(3.0976 + 0.0256 + 0.0225))
    assert r.value and not P.farther_from_camera(o["chair"], o["mug"], vp).value


def test_sizes(scene):
    o, vp = scene
    assert P.height(o["chair"]).value == pytest.approx(0.9)
    # table 0.75 vs lamp 0.6 -> the table is taller by 0.15.
    assert P.taller(o["table"], o["lamp"]).margin == pytest.approx(0.15)
    assert P.shorter(o["lamp"], o["table"]).value
    # Width = extent along the right axis (world y): the turned chair spans its 0.6 m length.
    assert P.width(o["chair"], vp).value == pytest.approx(0.6)
    assert P.width(o["table"], vp).value == pytest.approx(0.8)
    assert P.wider(o["table"], o["chair"], vp).margin == pytest.approx(0.2)
    assert P.thinner(o["chair"], o["table"], vp).value
    # Volumes: table 0.72, chair 0.216 -> relative margin (0.72 - 0.216) / 0.72 = 0.7.
    r = P.bigger(o["table"], o["chair"])
    assert r.value and r.margin == pytest.approx(0.7) and r.unit == ""
    assert P.smaller(o["chair"], o["table"]).margin == pytest.approx(0.7)
    same = SpatialObject("box", Box3D([0, 0, 0], [0.6, 0.4, 0.95]))  # 0.228 vs 0.216: 5 %
    assert P.bigger(same, o["chair"]).ambiguous


def test_height_reads_world_z_extent():
    # Turned 90 deg about z: still 0.5 tall. Laid on its side (90 deg about x): 0.3 tall.
    upright = SpatialObject("box", Box3D([0, 0, 0], [0.1, 0.3, 0.5], yaw_to_matrix(math.pi / 2)))
    lying = SpatialObject("box", Box3D([0, 0, 0], [0.1, 0.3, 0.5], rot_x(math.pi / 2)))
    assert P.height(upright).value == pytest.approx(0.5)
    assert P.height(lying).value == pytest.approx(0.3)
    # 45 deg about x: z extent = 0.3 sin45 + 0.5 cos45.
    tilted = SpatialObject("box", Box3D([0, 0, 0], [0.1, 0.3, 0.5], rot_x(math.pi / 4)))
    assert P.height(tilted).value == pytest.approx(0.8 / math.sqrt(2))


def test_distances(scene):
    o, vp = scene
    mug, bowl = o["mug"], o["bowl"]
    # centres differ by (0.4, -0.3, -0.015).
    assert P.center_distance(mug, bowl).value == pytest.approx(math.sqrt(0.250225))
    # boxes: x gap 2.12 - 1.84 = 0.28, y gap 0.16 - (-0.02) = 0.18, z overlap.
    s = P.surface_distance(mug, bowl)
    assert s.value == pytest.approx(math.sqrt(0.28**2 + 0.18**2)) and s.method == "box"
    h = P.horizontal_distance(mug, bowl)
    assert h.value == pytest.approx(0.5)
    assert h.details["footprint"] == pytest.approx(math.sqrt(0.28**2 + 0.18**2))
    # shelf z [1.5, 1.52] over table z [0, 0.75]: gap 0.75; centres 1.51 - 0.375.
    v = P.vertical_distance(o["shelf"], o["table"])
    assert v.value == pytest.approx(0.75) and v.details["center_dz"] == pytest.approx(1.135)
    assert P.vertical_distance(mug, bowl).value == 0.0  # overlapping heights
    assert P.lateral_offset(bowl, mug, vp).value == pytest.approx(0.3)  # bowl is right


def test_point_cloud_distances():
    a = SpatialObject("a", Box3D([0.5, 0, 0], [1, 0.1, 0.1]), np.array([[0, 0, 0], [1, 0, 0]]))
    b = SpatialObject("b", Box3D([2, 1, 0], [2, 2, 0.1]), np.array([[3, 0, 0], [1, 2, 0]]))
    # nearest pair: (1,0,0)-(3,0,0) and (1,0,0)-(1,2,0), both 2.
    m = P.surface_distance(a, b)
    assert m.value == pytest.approx(2.0) and m.method == "points"
    no_pts = PredicateConfig(use_points=False)
    assert P.surface_distance(a, b, config=no_pts).method == "box"
    c = SpatialObject("c", Box3D([4, 0, 0], [1, 1, 1]))
    m = P.surface_distance(a, c)  # point (1,0,0) to the face x = 3.5
    assert m.value == pytest.approx(2.5) and m.method == "points-box"


def test_depth_camera_distance_and_clock(scene):
    o, vp = scene
    d = P.depth(o["mug"], vp)
    assert d.value == pytest.approx(1.8)
    assert d.details["near"] == pytest.approx(1.76) and d.details["far"] == pytest.approx(1.84)
    assert P.camera_distance(o["mug"], vp).value == pytest.approx(math.sqrt(3.32))
    # mug: forward 1.8, right -0.2 -> bearing -6.3 deg -> 12 o'clock.
    c = P.clock_direction(o["mug"], vp)
    assert c.hour == 12 and not c.ambiguous and c.text == "12 o'clock"
    cases = [([0, -2, 1], 3), ([-2, 0, 1], 6), ([0, 2, 1], 9), ([2, 2 * 0.5774, 0], 11)]
    for centre, hour in cases:
        obj = SpatialObject("x", Box3D(centre, [0.1, 0.1, 0.1]))
        assert P.clock_direction(obj, vp).hour == hour
    # chair: forward 1, right 1 -> 45 deg, exactly between 1 and 2 o'clock -> ambiguous.
    assert P.clock_direction(o["chair"], vp).ambiguous
    # From the lamp, the bowl is at (-0.3 forward, 0.4 right): 126.9 deg -> 4 o'clock.
    c = P.clock_direction(o["bowl"], vp, reference=o["lamp"])
    assert c.hour == 4 and c.reference == "lamp" and c.distance == pytest.approx(0.5)


def test_box_box_distance_hand_cases():
    cube = Box3D([0, 0, 0], [1, 1, 1])
    # A cube turned 45 deg at x = 2: its nearest edge is at x = 2 - sqrt(2)/2.
    turned = Box3D.from_yaw([2, 0, 0], [1, 1, 1], math.pi / 4)
    assert box_box_distance(cube, turned) == pytest.approx(1.5 - math.sqrt(0.5))
    # Two long bars crossing at right angles, 1 m apart vertically, each turned 45 deg about
    # its own long axis: the closest pair is edge-to-edge, 1 - 2 * 0.1 * sqrt(2).
    bar_x = Box3D([0, 0, 0], [4, 0.2, 0.2], rot_x(math.pi / 4))
    bar_y = Box3D([0, 0, 1], [0.2, 4, 0.2], rot_y(math.pi / 4))
    assert box_box_distance(bar_x, bar_y) == pytest.approx(1 - 0.2 * math.sqrt(2))
    # The same bars crossing through each other (a plus sign): no vertex inside the other box,
    # but they intersect -> 0 (found by the separating-axis test).
    plus = Box3D([0, 0, 0], [0.2, 4, 0.2])
    assert P.boxes_overlap(Box3D([0, 0, 0], [4, 0.2, 0.2]), plus)
    assert box_box_distance(Box3D([0, 0, 0], [4, 0.2, 0.2]), plus) == 0.0


def _qp_distance(a: Box3D, b: Box3D) -> float:
    """Reference: minimise |p - q|^2 over p in a, q in b (local box coordinates, SLSQP)."""

    def pts(x):
        return a.center + a.rotation @ x[:3], b.center + b.rotation @ x[3:]

    def f(x):
        p, q = pts(x)
        return float(np.sum((p - q) ** 2))

    bounds = [(-h, h) for h in a.size / 2] + [(-h, h) for h in b.size / 2]
    best = math.inf
    for x0 in (np.zeros(6), np.r_[a.size / 4, -b.size / 4], np.r_[-a.size / 4, b.size / 4]):
        res = minimize(f, x0, bounds=bounds, method="L-BFGS-B", options={"ftol": 1e-15,
                                                                         "gtol": 1e-12})
        best = min(best, res.fun)
    return math.sqrt(max(best, 0.0))


def test_box_box_distance_matches_optimiser():
    rng = np.random.default_rng(3)
    for _ in range(40):
        boxes = []
        for _ in range(2):
            q = rng.normal(size=4)
            q /= np.linalg.norm(q)
            boxes.append(Box3D(rng.uniform(-1.5, 1.5, 3), rng.uniform(0.05, 1.5, 3),
                               quaternion_to_matrix(*q)))
        exact = box_box_distance(*boxes)
        assert exact == pytest.approx(_qp_distance(*boxes), abs=1e-5)


def _all_answers(objs: dict, vp: Viewpoint) -> dict:
    out = {}
    names = sorted(objs)
    for a in names:
        for b in names:
            if a == b:
                continue
            for rel, fn in P.RELATIONS.items():
                r = fn(objs[a], objs[b], vp)
                out[(rel, a, b)] = (r.clear_value, round(r.margin, 9))
            for m, fn in P.PAIR_MEASURES.items():
                out[(m, a, b)] = round(fn(objs[a], objs[b], vp).value, 9)
            c = P.clock_direction(objs[a], vp, objs[b])
            out[("clock", a, b)] = 0 if c.ambiguous else c.hour
        for m, fn in P.UNARY_MEASURES.items():
            out[(m, a)] = round(fn(objs[a], vp).value, 9)
        c = P.clock_direction(objs[a], vp)
        out[("clock", a)] = 0 if c.ambiguous else c.hour
    return out


def test_rotated_scene_gives_the_same_answers(scene):
    objs, vp = scene
    before = _all_answers(objs, vp)
    T = make_transform(yaw_to_matrix(math.pi / 2), [3.0, -1.0, 0.2])
    moved, vp2 = reorient(list(objs.values()), vp, T)
    after = _all_answers({o.name: o for o in moved}, vp2)
    assert after == before
    # The chair's box now has yaw 180 deg, but its width (across the view) is still 0.6 and its
    # height 0.9; "behind" did not flip.
    chair = next(o for o in moved if o.name == "chair")
    assert P.width(chair, vp2).value == pytest.approx(0.6)
    assert P.height(chair).value == pytest.approx(0.9)
    assert P.behind(moved[2], moved[1], vp2).value  # bowl behind mug


def test_tilted_sensor_frame_brought_upright(scene):
    """Data expressed in a tilted, rolled, optical-style sensor frame; a known T (the inverse
    of the sensor pose, up to a yaw, as a gravity alignment returns it) brings it upright."""
    objs, vp = scene
    T_world_from_sensor = make_transform(
        yaw_to_matrix(0.4) @ rot_y(0.35) @ rot_x(-0.2) @ R_BODY_FROM_OPTICAL, [0.1, 0.0, 1.0])
    T_sensor_from_world = invert(T_world_from_sensor)
    raw, vp_raw = reorient(list(objs.values()), vp, T_sensor_from_world)
    # In the raw tilted frame "height" is meaningless: the lamp is not 0.6 tall there.
    assert abs(P.height(raw[3]).value - 0.6) > 0.05
    # Alignment = inverse pose followed by an arbitrary yaw and shift (gravity fixes only z).
    T_align = make_transform(yaw_to_matrix(-1.1), [0.5, 2.0, -0.3]) @ T_world_from_sensor
    up, vp_up = reorient(raw, vp_raw, T_align)
    before = _all_answers(objs, vp)
    after = _all_answers({o.name: o for o in up}, vp_up)
    assert after.keys() == before.keys()
    for k, v in before.items():
        if isinstance(v, tuple):
            assert after[k][0] == v[0] and after[k][1] == pytest.approx(v[1], abs=1e-9), k
        else:
            assert after[k] == pytest.approx(v, abs=1e-9), k
    lamp = next(o for o in up if o.name == "lamp")
    assert P.height(lamp).value == pytest.approx(0.6)


def test_viewpoint_from_camera_poses():
    # Level camera: optical z -> world x.
    vp = Viewpoint.from_camera_pose(make_transform(R_BODY_FROM_OPTICAL, [0, 0, 1]))
    assert np.allclose(vp.heading, [1, 0, 0]) and np.allclose(vp.position, [0, 0, 1])
    # Looking straight down with the image top towards +x: heading = image up = +x, right =
    # the optical x axis (-y).
    R = np.column_stack([[0, -1, 0], [-1, 0, 0], [0, 0, -1]])
    down = Viewpoint.from_camera_pose(make_transform(R, [0, 0, 2]))
    assert np.allclose(down.heading, [1, 0, 0]) and np.allclose(down.right, R[:, 0])
    body = Viewpoint.from_body_pose(make_transform(yaw_to_matrix(math.pi / 2)))
    assert np.allclose(body.heading, [0, 1, 0])


def test_input_validation():
    box = Box3D([0, 0, 0], [1, 1, 1])
    with pytest.raises(ConfigError, match="vertical"):
        _ = Viewpoint([0, 0, 0], [0, 0, -1]).heading  # the property raises
    with pytest.raises(ConfigError, match="vertical"):
        P.left_of(SpatialObject("a", box), SpatialObject("b", box),
                  Viewpoint([0, 0, 0], [0, 0, 1]))
    with pytest.raises(ConfigError, match="non-zero"):
        Viewpoint([0, 0, 0], [0, 0, 0])
    with pytest.raises(ConfigError, match="tolerances"):
        PredicateConfig(tie_tolerance=-0.1)
    with pytest.raises(ConfigError, match="clock_tolerance_deg"):
        PredicateConfig(clock_tolerance_deg=20)
    with pytest.raises(ConfigError, match="points"):
        SpatialObject("x", box, np.zeros((4, 2)))
    with pytest.raises(ConfigError, match="name"):
        SpatialObject("  ", box)
    with pytest.raises(ConfigError, match="rigid"):
        reorient([SpatialObject("x", box)], Viewpoint([0, 0, 0], [1, 0, 0]),
                 np.diag([1.0, -1.0, 1.0, 1.0]))  # a mirror would swap left and right
    with pytest.raises(ConfigError, match="viewpoint"):
        P.left_of(SpatialObject("a", box), SpatialObject("b", box))
    with pytest.raises(ConfigError, match="unknown relation"):
        P.relation("near", SpatialObject("a", box), SpatialObject("b", box))
    # Empty clouds count as no points; NaN rows are dropped.
    assert SpatialObject("x", box, np.zeros((0, 3))).points is None
    assert len(SpatialObject("x", box, np.array([[0, 0, 0], [np.nan, 0, 0]])).points) == 1


def test_from_grounded_object():
    g = GroundedObject("3", "the red mug", "mug", 0.9, Box3D([1, 0, 0], [0.1, 0.1, 0.1]))
    o = SpatialObject.from_grounded(g)
    assert o.name == "the red mug" and o.id == "3"


def test_kitti_boxes_brought_upright(kitti_dir):
    """Real KITTI labels (rectified camera frame: x right, y down, z forward) brought upright
    with the known optical->body rotation: heights equal the labelled h, depths the labelled z,
    and left/behind follow the labelled camera-frame x/z (a sign error in the right axis or the
    heading would flip them)."""
    objs = []
    for k, line in enumerate((kitti_dir / "label_2.txt").read_text().splitlines()):
        f = line.split()
        if f[0] != "Car":
            continue
        h, w, l_, x, y, z, ry = map(float, f[8:15])
        c, s = math.cos(ry), math.sin(ry)
        R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # box axes: length, height, width
        objs.append(SpatialObject(f"car {k}", Box3D([x, y - h / 2, z], [l_, h, w], R)))
    assert len(objs) == 6
    up, vp = reorient(objs, Viewpoint([0, 0, 0], [0, 0, 1]), make_transform(R_BODY_FROM_OPTICAL))
    assert [P.height(o).value for o in up] == pytest.approx([o.box.size[1] for o in objs])
    for i, a in enumerate(up):
        assert P.depth(a, vp).value == pytest.approx(objs[i].box.center[2])
        for j, b in enumerate(up):
            if i != j:
                dx = objs[j].box.center[0] - objs[i].box.center[0]
                assert P.left_of(a, b, vp).value == (dx > 0)
                assert P.behind(a, b, vp).value == (
                    P.depth(a, vp).details["near"] > P.depth(b, vp).details["near"])
    # The nearest car (z = 3.68) is in front of the one 7.86 m ahead.
    assert P.in_front_of(up[0], up[1], vp).value and P.left_of(up[0], up[1], vp).value


def test_tie_tolerance_boundary_is_strict():
    """A near tie is ``|margin| < tolerance``: a margin of exactly the tolerance is a clear
    answer, one just below it is "not clearly". Sizes are exact binary fractions so the margins
    are exact (0.5 - 0.375 = 0.125)."""
    cfg = PredicateConfig(tie_tolerance=0.125)
    tall = SpatialObject("tall", Box3D([0.0, 0.0, 0.25], [0.25, 0.25, 0.5]))
    short = SpatialObject("short", Box3D([1.0, 0.0, 0.1875], [0.25, 0.25, 0.375]))
    at = P.taller(tall, short, config=cfg)
    assert at.margin == 0.125 and at.value and not at.ambiguous and at.clear_value is True
    below = P.taller(tall, short, config=PredicateConfig(tie_tolerance=0.125 + 2**-20))
    assert below.ambiguous and below.clear_value is None
    # The same boundary for a relative tolerance (volumes 1 and 0.75: margin 0.25).
    big = SpatialObject("big", Box3D([0.0, 0.0, 0.5], [1.0, 1.0, 1.0]))
    small = SpatialObject("small", Box3D([3.0, 0.0, 0.5], [1.0, 0.75, 1.0]))
    rel = P.bigger(big, small, config=PredicateConfig(volume_tolerance=0.25))
    assert rel.margin == 0.25 and not rel.ambiguous
    assert P.bigger(big, small, config=PredicateConfig(volume_tolerance=0.2500001)).ambiguous
