"""Lifting answers to metric boxes, matching/fusing with candidates, distances, prompts and
visual prompts."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.errors import CalibrationError, ConfigError
from spatial_ros.geometry.transforms import R_BODY_FROM_OPTICAL, TransformTree, make_transform
from spatial_ros.types import Box3D, CameraIntrinsics, Candidate
from spatial_ros.vlm.codec import BoxCodec
from spatial_ros.vlm.lifting import (
    FusionConfig,
    box_surface_distance,
    candidate_views,
    center_distance,
    lift_box2d_with_depth,
    lift_box3d,
    match_candidate,
    points_distance,
    project_box,
    project_points,
    surface_distance,
)
from spatial_ros.vlm.prompts import SPECIALIST_PREFIX, VCOT_FOLLOW_UP, PromptBuilder, Turn
from spatial_ros.vlm.visual_prompts import (
    COLORS,
    KINDS,
    draw_visual_prompt,
    line_width,
    phrase_for,
)

CAM = CameraIntrinsics.from_fov(640, 480, 70.0)


def _tree() -> TransformTree:
    """base_link (z up) -> camera_optical_frame 0.5 m up, level, looking along +x;
    base_link -> lidar 0.3 m forward, 0.6 m up, turned 10 deg."""
    tf = TransformTree()
    tf.set("base_link", "camera_optical_frame",
           make_transform(R_BODY_FROM_OPTICAL, [0.0, 0.0, 0.5]))
    c, s = np.cos(0.17), np.sin(0.17)
    tf.set("base_link", "lidar", make_transform([[c, -s, 0], [s, c, 0], [0, 0, 1]],
                                                [0.3, 0.0, 0.6]))
    return tf


def _candidate(tf, centre_base, size, yaw, cid, n_pts=200, seed=0) -> Candidate:
    T_lidar_from_base = tf.lookup("lidar", "base_link")
    box_base = Box3D.from_yaw(centre_base, size, yaw, "base_link")
    box = box_base.transformed(T_lidar_from_base, "lidar")
    rng = np.random.default_rng(seed)
    local = rng.uniform(-0.5, 0.5, (n_pts, 3)) * box.size
    pts = local @ box.rotation.T + box.center
    return Candidate(box=box, score=0.9, source="lidar", num_points=n_pts, points=pts, id=cid)


# ----------------------------------------------------------------------------------------------
# Matching and fusion
# ----------------------------------------------------------------------------------------------


def test_answer_near_a_candidate_matches_it_and_far_answers_do_not():
    tf = _tree()
    cands = [
        _candidate(tf, [3.0, 0.5, 0.4], [0.4, 0.3, 0.5], 0.3, "lidar_0"),
        _candidate(tf, [5.0, -1.0, 0.5], [0.6, 0.6, 0.9], -0.5, "lidar_1"),
    ]
    views = candidate_views(cands, CAM, tf)
    codec = BoxCodec()
    # The model's answer: candidate 1 with a 5 % depth error and slightly wrong size.
    b = views[1].box_optical
    answer = Box3D(b.center * 1.05, b.size * 1.2, b.rotation, CAM.frame_id)
    lifted = lift_box3d(codec.parse_box3d(codec.encode_box3d(answer, CAM)).value, CAM, codec)
    b2 = project_box(lifted, CAM)
    cuv = project_points(lifted.center[None], CAM)[0]
    m = match_candidate(b2, cuv, lifted.center[2], views, CAM)
    assert m is not None and m.index == 1 and m.iou_2d > 0.5
    # Same pixel, twice the depth: not the same object.
    assert match_candidate(b2, cuv, 2 * lifted.center[2], views, CAM) is None
    # Elsewhere in the image: nothing.
    far = np.array([5.0, 5.0, 40.0, 40.0])
    assert match_candidate(far, far[:2] + 17, lifted.center[2], views, CAM) is None
    # 2D-only (no depth) still matches by overlap.
    m2 = match_candidate(views[0].box_2d, None, None, views, CAM)
    assert m2 is not None and m2.index == 0 and m2.iou_2d == pytest.approx(1.0)


def test_candidate_views_transform_into_the_optical_frame():
    tf = _tree()
    c = _candidate(tf, [3.0, 0.0, 0.5], [0.4, 0.4, 0.4], 0.0, "lidar_0")
    (v,) = candidate_views([c], CAM, tf)
    # 3 m ahead at camera height: straight down the optical axis.
    np.testing.assert_allclose(v.box_optical.center, [0.0, 0.0, 3.0], atol=1e-9)
    uv = project_points(v.box_optical.center[None], CAM)[0]
    np.testing.assert_allclose(uv, [CAM.cx, CAM.cy], atol=1e-9)
    assert v.box_2d is not None
    with pytest.raises(CalibrationError, match="lidar"):
        candidate_views([c], CAM, None)


def test_fusion_config_validates():
    with pytest.raises(ConfigError, match="iou_2d_min=1.5"):
        FusionConfig(iou_2d_min=1.5)


def test_lift_2d_box_with_depth_plane():
    depth = np.full((480, 640), 2.0, np.float32)
    depth[:10] = np.nan  # invalid rows are ignored
    box_px = np.array([300.0, 200.0, 364.0, 264.0])
    b = lift_box2d_with_depth(box_px, CAM, depth)
    w = 64.0 * 2.0 / CAM.fx
    assert b.size[1] == pytest.approx(w) and b.size[2] == pytest.approx(w)
    assert b.center[2] == pytest.approx(2.0 + w / 2)  # front face at the measured depth
    uv = project_points(b.center[None], CAM)[0]
    np.testing.assert_allclose(uv, [332.0, 232.0], atol=1e-6)
    assert lift_box2d_with_depth(box_px, CAM, np.full((480, 640), np.nan)) is None


# ----------------------------------------------------------------------------------------------
# Distances
# ----------------------------------------------------------------------------------------------


def test_box_surface_distance_exact_cases():
    a = Box3D.from_yaw([0, 0, 0], [1, 1, 1], 0.0)
    assert box_surface_distance(a, Box3D.from_yaw([3, 0, 0], [1, 1, 1], 0.0)) == pytest.approx(2)
    # gaps of 2 m along x and along z -> sqrt(8)
    assert box_surface_distance(a, Box3D.from_yaw([3, 0, 3], [1, 1, 1], 0.0)) == pytest.approx(
        np.sqrt(8)
    )
    # a unit cube turned 45 deg about z: its nearest edge is at x = 3 - sqrt(2)/2
    d = box_surface_distance(a, Box3D.from_yaw([3, 0, 0], [1, 1, 1], np.pi / 4))
    assert d == pytest.approx(3 - np.sqrt(2) / 2 - 0.5)
    assert box_surface_distance(a, Box3D.from_yaw([0.5, 0, 0], [1, 1, 1], 0.0)) == 0.0
    assert center_distance(a, Box3D.from_yaw([3, 4, 0], [1, 1, 1], 0.0)) == pytest.approx(5)


def test_surface_distance_prefers_points():
    a = Box3D.from_yaw([0, 0, 0], [1, 1, 1], 0.0)
    b = Box3D.from_yaw([3, 0, 0], [1, 1, 1], 0.0)
    pa = np.array([[0.2, 0.0, 0.0], [0.0, 0.3, 0.0]])
    pb = np.array([[2.7, 0.0, 0.0], [3.0, 0.0, 0.4]])
    assert points_distance(pa, pb) == pytest.approx(2.5)
    assert surface_distance(a, b, pa, pb) == (pytest.approx(2.5), "points")
    assert surface_distance(a, b, pa, None) == (pytest.approx(2.0), "boxes")


# ----------------------------------------------------------------------------------------------
# Prompts
# ----------------------------------------------------------------------------------------------


def test_specialist_prompt_lists_visible_boxes_in_codec_format():
    codec = BoxCodec()
    pb = PromptBuilder(codec)
    boxes = [Box3D([0, 0, 3.0], [1, 1, 1]), Box3D([0, 0, -2.0], [1, 1, 1]),
             Box3D([0.5, 0.2, 6.0], [1, 2, 1])]
    block = pb.specialist_block(boxes, CAM)
    lines = block.split("\n")
    assert lines[0] == SPECIALIST_PREFIX
    assert lines[1:] == [codec.encode_box3d(boxes[0], CAM), codec.encode_box3d(boxes[2], CAM)]
    conv = pb.box3d("the red mug", block)
    assert conv[0] == Turn("system", pb.system)
    assert conv[1].image and conv[1].text == (
        block + "\nProvide the 3D bounding box of the region this sentence describes: the red mug"
    )
    second = pb.vcot_second(pb.box2d("the red mug"), " [1, 2, 3, 4] ")
    assert [t.role for t in second] == ["system", "user", "assistant", "user"]
    assert second[2].text == "[1, 2, 3, 4]" and second[3].text == VCOT_FOLLOW_UP
    assert "How far is the mug from the bowl?" in pb.spatial_question(
        "distance", "the mug", "the bowl")[-1].text
    with pytest.raises(ConfigError, match="needs two objects"):
        pb.spatial_question("distance", "the mug")
    with pytest.raises(ConfigError, match="unknown question kind"):
        pb.ask("box4d", "x")


# ----------------------------------------------------------------------------------------------
# Visual prompts
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_visual_prompt_changes_only_pixels_under_the_mark(kind):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    mask = np.zeros((240, 320), bool)
    mask[80:160, 100:220] = True
    mask[80:100, 100:120] = False  # not a plain rectangle
    box = np.array([100.0, 80.0, 219.0, 159.0])
    vp = draw_visual_prompt(img, kind, box, mask, color="red", alpha=0.6, rng=rng)
    changed = np.any(vp.image != img, axis=2)
    assert vp.mark.any()
    assert not changed[~vp.mark].any()  # alpha-blended ONLY under the mark
    under = vp.image[vp.mark].astype(float)
    expected = np.rint(0.4 * img[vp.mark] + 0.6 * np.array(COLORS["red"]))
    np.testing.assert_allclose(under, expected, atol=0.51)
    assert vp.phrase == phrase_for(kind, "red")
    assert vp.query().startswith("the object ")
    if kind == "arrow":
        hu, hv = vp.info["head"]
        assert mask[int(round(hv)), int(round(hu))]  # head inside the object
        assert vp.mark[int(round(hv)), int(round(hu))]
        tu, tv = vp.info["tail"]
        assert not (100 <= tu <= 219 and 80 <= tv <= 159)  # tail outside the box
    if kind == "ellipse":
        assert 1.0 <= vp.info["scale"] <= 1.5
    if kind in ("point", "triangle"):
        cu, cv = vp.info["center"]
        assert mask[int(round(cv)), int(round(cu))]
    if kind == "scribble":
        ctrl = vp.info["controls"]
        assert np.all(mask[np.rint(ctrl[:, 1]).astype(int), np.rint(ctrl[:, 0]).astype(int)])


def test_visual_prompt_phrases_and_width_scaling():
    assert phrase_for("rectangle", "red") == "within the red rectangle"
    assert phrase_for("arrow", "blue") == "pointed to by the blue arrow"
    assert line_width(112, 112) == 1
    assert line_width(1280, 960) > line_width(320, 240) > line_width(112, 112) - 1
    img = np.zeros((100, 100, 3), np.uint8)
    full = draw_visual_prompt(img, "rectangle", [20, 20, 80, 80], color="green")
    assert (full.image[full.mark] == COLORS["green"]).all()  # alpha 1: the colour itself
    none = draw_visual_prompt(img, "rectangle", [20, 20, 80, 80], alpha=0.0)
    assert (none.image == img).all()
    big = np.zeros((960, 1280, 3), np.uint8)
    thick = draw_visual_prompt(big, "rectangle", [200, 200, 800, 700])
    assert thick.thickness == line_width(1280, 960)
    rows = np.nonzero(thick.mark[150:250, 500])[0] + 150  # the top edge, centred on y = 200
    assert thick.thickness <= len(rows) <= thick.thickness + 2 and rows.min() < 200 < rows.max()
    with pytest.raises(ConfigError, match="unknown visual prompt kind"):
        draw_visual_prompt(img, "star", [1, 1, 5, 5])
    with pytest.raises(ConfigError, match="needs a 2D box"):
        draw_visual_prompt(img, "rectangle")
    with pytest.raises(ConfigError, match="alpha"):
        draw_visual_prompt(img, "rectangle", [1, 1, 5, 5], alpha=2.0)
