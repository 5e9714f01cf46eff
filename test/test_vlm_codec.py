"""Cube-LLM codec: round trips (hypothesis), virtual camera, lifting <-> projection, parser
robustness (10,000 mangled outputs) and location tokens."""

from __future__ import annotations

import math
import string
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from spatial_ros.errors import ConfigError
from spatial_ros.geometry.transforms import R_BODY_FROM_OPTICAL
from spatial_ros.types import Box3D, CameraIntrinsics
from spatial_ros.vlm.codec import (
    Box3DCode,
    BoxCodec,
    CodecConfig,
    ParseFailure,
    ParseResult,
    loc_vocabulary,
    parse_loc_tokens,
    to_loc_tokens,
)
from spatial_ros.vlm.lifting import lift_box3d, lift_point3d, project_points, unproject

SETTINGS = settings(max_examples=150, deadline=None)


def _camera(w: int, h: int, hfov: float, distortion: bool = False) -> CameraIntrinsics:
    cam = CameraIntrinsics.from_fov(w, h, hfov)
    if distortion:
        cam.D = np.array([-0.12, 0.03, 0.001, -0.0005, 0.0])
    return cam


cameras = st.builds(
    _camera,
    st.integers(64, 1600),
    st.integers(48, 1200),
    st.floats(40.0, 110.0),
)


def _box_in_view(cam, uv_frac, z, size, rotvec, codec=None) -> Box3D:
    """A box whose centre projects to pixel uv_frac * (W-1, H-1) at depth z (m)."""
    uv = np.array([uv_frac[0] * (cam.width - 1), uv_frac[1] * (cam.height - 1)])
    centre = unproject(uv[None], np.array([z]), cam)[0]
    R = Rotation.from_rotvec(rotvec).as_matrix()
    return Box3D(centre, size, R, cam.frame_id)


def _same_box(a: Box3D, b: Box3D, tol_c: float, tol_s: float, tol_r: float) -> None:
    """Equal as boxes: centres, extents and axes up to the box symmetries (pi turns)."""
    assert np.linalg.norm(a.center - b.center) <= tol_c
    np.testing.assert_allclose(a.size, b.size, atol=tol_s)
    D = a.rotation.T @ b.rotation  # must be diag(+-1, +-1, +-1) with det 1, up to tol_r
    assert np.allclose(np.abs(np.diag(D)), 1.0, atol=tol_r), D
    assert np.allclose(D - np.diag(np.diag(D)), 0.0, atol=tol_r), D


# ----------------------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------------------


@SETTINGS
@given(
    cam=cameras,
    uv=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    uv2=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_2d_point_and_box_round_trip_within_half_a_step(cam, uv, uv2):
    codec = BoxCodec()
    W, H = cam.width, cam.height
    p = np.array([uv[0] * (W - 1), uv[1] * (H - 1)])
    q = np.array([uv2[0] * (W - 1), uv2[1] * (H - 1)])
    step = np.array([W / 999, H / 999])
    r = codec.parse_point2d(codec.encode_point2d(p, W, H))
    assert r.ok
    back = codec.norm_to_pixels([r.value.x, r.value.y], W, H)
    assert np.all(np.abs(back - p) <= step / 2 + 1e-9)
    lo, hi = np.minimum(p, q), np.maximum(p, q)
    if np.any(codec.pixels_to_norm(hi, W, H) == codec.pixels_to_norm(lo, W, H)):
        return  # degenerate after quantisation (zero-area box): rejected by design
    r = codec.parse_box2d(codec.encode_box2d(np.r_[lo, hi], W, H))
    assert r.ok
    b = r.value
    back = codec.norm_to_pixels([[b.x1, b.y1], [b.x2, b.y2]], W, H)
    assert np.all(np.abs(back - np.stack([lo, hi])) <= step / 2 + 1e-9)


def _centre_tolerance(cam, centre, z, half_log_step, codec) -> float:
    """Largest centre error the quantisation allows: the decoded centre is the unprojection of
    a pixel within half a coordinate step (W/999, H/999) of the true one, at a depth within half
    a log step. The error is affine in each of the three quantities, so its norm is largest at
    a corner of that cell; the corners are evaluated exactly (1 % for the distortion model's
    curvature within the cell). A depth error moves the centre along the ray, by up to
    |ray| = sqrt(1 + x^2 + y^2) times the depth error: near the top of a tall narrow image that
    is several times the depth error itself."""
    uv = project_points(centre[None], cam)[0]
    half = np.array([cam.width, cam.height]) / codec.config.coord_max / 2
    worst = 0.0
    for du in (-half[0], half[0]):
        for dv in (-half[1], half[1]):
            for dz in (-half_log_step, half_log_step):
                p = unproject((uv + [du, dv])[None], np.array([z * math.exp(dz)]), cam)[0]
                worst = max(worst, float(np.linalg.norm(p - centre)))
    return worst * 1.01 + 1e-9


@SETTINGS
@given(
    cam=cameras,
    uv=st.tuples(st.floats(0.02, 0.98), st.floats(0.02, 0.98)),
    z=st.floats(0.3, 60.0),
    size=st.tuples(st.floats(0.05, 8.0), st.floats(0.05, 8.0), st.floats(0.05, 8.0)),
    rotvec=st.tuples(*[st.floats(-3.0, 3.0)] * 3),
    distortion=st.booleans(),
)
def test_box3d_round_trip_within_quantisation(cam, uv, z, size, rotvec, distortion):
    if distortion:
        cam = _camera(cam.width, cam.height, 70.0, distortion=True)
    codec = BoxCodec()
    box = _box_in_view(cam, uv, z, size, rotvec)
    if not codec.depth_in_range(z, cam):
        return
    text = codec.encode_box3d(box, cam)
    r = codec.parse_box3d(text)
    assert r.ok, (text, r)
    back = lift_box3d(r.value, cam, codec)
    # depth: half a log step
    cfg = codec.config
    half_log_step = math.log(cfg.depth_max / cfg.depth_min) / cfg.depth_bins / 2
    assert abs(back.center[2] - z) <= z * (math.exp(half_log_step) - 1) + 1e-9
    _same_box(box, back, _centre_tolerance(cam, box.center, z, half_log_step, codec),
              0.005 + 1e-9, 0.02)
    # lifting then projecting gives the same pixel centre within 1 px
    uv_true = project_points(box.center[None], cam)[0]
    uv_back = project_points(back.center[None], cam)[0]
    assert np.linalg.norm(uv_back - uv_true) <= 1.0


@SETTINGS
@given(
    uv=st.tuples(st.floats(0.05, 0.95), st.floats(0.05, 0.95)),
    z=st.floats(1.0, 50.0),
    yaw=st.floats(-3.1, 3.1),
    size=st.tuples(st.floats(0.1, 5.0), st.floats(0.1, 5.0), st.floats(0.1, 5.0)),
)
def test_yaw_mode_round_trip_for_upright_boxes(uv, z, yaw, size):
    cam = _camera(640, 480, 70.0)
    codec = BoxCodec(CodecConfig(rotation="yaw"))
    uvp = np.array([uv[0] * 639, uv[1] * 479])
    centre = unproject(uvp[None], np.array([z]), cam)[0]
    R_body = Rotation.from_euler("z", yaw).as_matrix()  # upright in the camera body frame
    box = Box3D(centre, size, R_BODY_FROM_OPTICAL.T @ R_body, cam.frame_id)
    text = codec.encode_box3d(box, cam)
    assert text.count(",") == 6  # [x, y, z, w, h, l, yaw]
    back = lift_box3d(codec.parse_box3d(text).value, cam, codec)
    _same_box(box, back, 0.01 * z + 0.02, 0.005 + 1e-9, 0.01)


def test_upright_box_of_a_level_camera_has_zero_roll_and_pitch():
    codec = BoxCodec()
    cam = _camera(1242, 375, 81.0)
    R_body = Rotation.from_euler("z", 0.7).as_matrix()
    box = Box3D([1.0, 0.5, 15.0], [3.9, 1.6, 1.5], R_BODY_FROM_OPTICAL.T @ R_body)
    code = codec.box3d_code(box, cam)
    assert code.angles[0] == pytest.approx(0.0, abs=1e-9)
    assert code.angles[1] == pytest.approx(0.0, abs=1e-9)
    assert code.angles[2] == pytest.approx(0.7)
    assert (code.l, code.w, code.h) == pytest.approx((3.9, 1.6, 1.5))
    # the symmetric box (turned by pi) encodes to the same answer
    flipped = Box3D(box.center, box.size, box.rotation @ np.diag([-1.0, -1.0, 1.0]))
    assert codec.encode_box3d(flipped, cam) == codec.encode_box3d(box, cam)


# ----------------------------------------------------------------------------------------------
# Virtual camera
# ----------------------------------------------------------------------------------------------


@SETTINGS
@given(
    z=st.floats(0.5, 80.0),
    scale=st.sampled_from([2, 3, 4]),
    hfov=st.floats(45.0, 100.0),
)
def test_virtual_depth_is_camera_independent(z, scale, hfov):
    codec = BoxCodec()
    # Same field of view, different resolutions (focal lengths in pixels differ by `scale`).
    small = _camera(160, 120, hfov)
    big = _camera(160 * scale, 120 * scale, hfov)
    assert big.fy == pytest.approx(small.fy * scale, rel=1e-6)
    box = Box3D([0.3, -0.2, z], [1.0, 1.0, 1.0])
    assert codec.encode_depth(z, small) == codec.encode_depth(z, big)
    a, b = codec.box3d_code(box, small), codec.box3d_code(box, big)
    assert a.z_token == b.z_token and (a.x, a.y) == (b.x, b.y)
    # Same picture, different focal lengths (a zoom): the same object (same size and lateral
    # offset) `scale` times farther, seen with `scale` times the focal length, projects to the
    # same pixels, so it gets the same answer, depth token included.
    cam1 = _camera(320, 240, hfov)
    K2 = cam1.K.copy()
    K2[0, 0] *= scale
    K2[1, 1] *= scale
    cam2 = CameraIntrinsics(320, 240, K2)
    far = Box3D([0.3, -0.2, z * scale], [1.0, 1.0, 1.0])
    assert np.allclose(
        project_points(far.center[None], cam2), project_points(box.center[None], cam1)
    )
    assert codec.encode_box3d(far, cam2) == codec.encode_box3d(box, cam1)


def test_depth_tokens_are_log_scale_and_clamped():
    codec = BoxCodec(CodecConfig(virtual_focal=100.0, virtual_height=100.0))
    cam = CameraIntrinsics(100, 100, [[100, 0, 50], [0, 100, 50], [0, 0, 1]])  # scale 1
    assert int(codec.depth_to_token(0.1, cam)) == 0
    assert int(codec.depth_to_token(200.0, cam)) == 999
    assert int(codec.depth_to_token(1000.0, cam)) == 999  # clamped
    geo = math.sqrt(0.1 * 200.0)  # geometric middle of the range -> middle token
    assert int(codec.depth_to_token(geo, cam)) in (499, 500)
    t = codec.depth_to_token(np.array([1.0, 2.0, 4.0]), cam)
    assert abs((t[1] - t[0]) - (t[2] - t[1])) <= 1  # equal ratios -> equal token steps
    assert not codec.depth_in_range(500.0, cam) and codec.depth_in_range(5.0, cam)


def test_point3d_and_depth_round_trip():
    codec = BoxCodec()
    cam = _camera(640, 480, 60.0)
    p = np.array([0.4, -0.3, 3.2])
    r = codec.parse_point3d(codec.encode_point3d(p, cam))
    assert r.ok
    q = lift_point3d(r.value, cam, codec)
    assert np.linalg.norm(q - p) < 0.02
    d = codec.parse_depth(codec.encode_depth(3.2, cam))
    assert float(codec.token_to_depth(d.value.token, cam)) == pytest.approx(3.2, rel=0.004)


# ----------------------------------------------------------------------------------------------
# Parsing: tolerated variations and explicit failures
# ----------------------------------------------------------------------------------------------

GOOD = "[512, 300, 421, 1.62, 1.50, 3.90, 0.00, 0.00, 1.57]"


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        f"The 3D bounding box is {GOOD}. Anything else?",
        GOOD[1:-1],  # missing brackets
        GOOD[:-1],  # missing closing bracket (truncated after the last number)
        "[512,300,421,1.62,1.5,3.9,0,0,1.57]",
        "[512 300 421 1.62 1.50 3.90 0.00 0.00 1.57]",
        "[512, 300, 421, 1.62, 1.50, 3.90, 0.00, 0.00, 1.57, ]",
        "[1, 2] then " + GOOD,  # a shorter list first
    ],
)
def test_parse_box3d_tolerates_formatting(text):
    r = BoxCodec().parse_box3d(text)
    assert isinstance(r, ParseResult)
    assert r.value == Box3DCode(512, 300, 421, 3.90, 1.62, 1.50, (0.0, 0.0, 1.57))


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty answer"),
        ("I cannot see that object.", "no number list"),
        ("[512, 300, 421]", "wrong number of values"),
        ("[1512, 300, 421, 1.62, 1.50, 3.90, 0.00, 0.00, 1.57]", "out of range: x=1512"),
        ("[512, -90, 421, 1.62, 1.50, 3.90, 0.00, 0.00, 1.57]", "out of range: y=-90"),
        ("[512, 300, 1421, 1.62, 1.50, 3.90, 0.00, 0.00, 1.57]", "out of range: depth token"),
        ("[512, 300, 42.5, 1.62, 1.50, 3.90, 0.00, 0.00, 1.57]", "bad depth token"),
        ("[512, 300, 421, 0, 1.50, 3.90, 0.00, 0.00, 1.57]", "bad size: w=0"),
        ("[512, 300, 421, 1.62, 1.50, 3.90, 0.00, 0.00, 99]", "out of range: angle"),
        ("[512, 300, abc, 1.62, 1.50, 3.90, 0.00, 0.00, 1.57]", "non-numeric value: 'abc'"),
        ("[512, 300, 421, 1.62, 1.50, 3.90, nan, 0.00, 1.57]", "non-numeric value: 'nan'"),
        ("[512, 300, 421, 1.62, 1.50, 3.90, 1e999, 0.00, 1.57]", "non-finite value"),
    ],
)
def test_parse_box3d_failures_have_reasons(text, reason):
    r = BoxCodec().parse_box3d(text)
    assert isinstance(r, ParseFailure)
    assert reason in r.reason


def test_small_coordinate_overshoot_is_clipped_not_failed():
    codec = BoxCodec()
    r = codec.parse_box2d("[-3, 10, 1005, 200]")
    assert r.ok and (r.value.x1, r.value.x2) == (0.0, 999.0)
    assert not BoxCodec(CodecConfig(coord_slack=0)).parse_box2d("[-3, 10, 1005, 200]").ok


def test_box2d_corners_are_reordered_and_degenerate_rejected():
    codec = BoxCodec()
    r = codec.parse_box2d("[400, 300, 100, 50]")
    assert r.ok and (r.value.x1, r.value.y1, r.value.x2, r.value.y2) == (100, 50, 400, 300)
    f = codec.parse_box2d("[100, 50, 100, 300]")
    assert not f.ok and "degenerate" in f.reason


def test_parse_never_raises_on_non_text():
    codec = BoxCodec()
    for bad in (None, 42, b"[1, 2]", ["[1, 2]"]):
        for fn in (codec.parse_box3d, codec.parse_box2d, codec.parse_point2d, codec.parse_depth):
            r = fn(bad)
            assert isinstance(r, ParseFailure) and r.reason


def _mangle(rng: np.random.Generator, text: str) -> str:
    ops = rng.integers(0, 9)
    s = list(text)
    if ops == 0 and s:  # delete a span
        i = int(rng.integers(0, len(s)))
        del s[i : i + int(rng.integers(1, 6))]
    elif ops == 1:  # insert junk
        i = int(rng.integers(0, len(s) + 1))
        alphabet = list(string.printable + "[]{},.-+eE√ñ中")
        junk = "".join(rng.choice(alphabet, int(rng.integers(1, 8))))
        s[i:i] = list(junk)
    elif ops == 2:  # truncate
        s = s[: int(rng.integers(0, len(s) + 1))]
    elif ops == 3:  # replace digits with letters
        s = [rng.choice(list("abcxyz")) if c.isdigit() and rng.random() < 0.3 else c for c in s]
    elif ops == 4:  # nested / doubled brackets
        s = list("[[" + text + "]]" + text)
    elif ops == 5:  # huge or weird numbers
        weird = ["1e308", "1e999", "-0", "99999999999", ".", "+-"]
        s = list(text.replace("1", str(rng.choice(weird))))
    elif ops == 6:  # random printable garbage
        s = list(rng.choice(list(string.printable), int(rng.integers(0, 80))))
    elif ops == 7:  # repeated answer, unclosed
        s = list((text + ", ") * int(rng.integers(1, 4)) + "[" + text[: len(text) // 2])
    else:  # separators swapped
        s = list(text.replace(",", rng.choice([";", " ", ",,", "", "\n"])))
    return "".join(map(str, s))


def test_parser_fuzzing_10000_outputs_never_raise():
    rng = np.random.default_rng(0)
    codec = BoxCodec()
    seeds = [
        GOOD,
        "[12, 40, 777, 900]",
        "[500, 500]",
        "[250]",
        "[12, 34, 567]",
        "The mug is at [512, 300, 421, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0] on the table",
        "<loc_1><loc_2><loc_3>",
    ]
    parsers = [codec.parse_box3d, codec.parse_box2d, codec.parse_point2d, codec.parse_point3d,
               codec.parse_depth, codec.parse_any]
    n_ok = n_fail = 0
    t0 = time.perf_counter()
    for k in range(10_000):
        text = _mangle(rng, seeds[k % len(seeds)])
        for fn in parsers[k % 2 :: 2]:  # every text through three parsers
            r = fn(text)
            if r.ok:
                n_ok += 1
            else:
                assert isinstance(r, ParseFailure) and r.reason.strip(), text
                n_fail += 1
        r = parse_loc_tokens(text, 3)
        assert r.ok or r.reason
    elapsed = time.perf_counter() - t0
    assert n_ok > 1000 and n_fail > 1000  # the fuzzer exercised both outcomes
    assert elapsed < 10.0, f"fuzzing took {elapsed:.1f} s"


def test_pathological_input_is_bounded_in_time():
    codec = BoxCodec()
    t0 = time.perf_counter()
    for text in ("1," * 50_000, "[" * 50_000, "9" * 100_000, "[1, " * 30_000):
        r = codec.parse_box3d(text)
        assert isinstance(r, ParseFailure) and r.reason
    assert time.perf_counter() - t0 < 2.0


# ----------------------------------------------------------------------------------------------
# Location tokens and configuration
# ----------------------------------------------------------------------------------------------


def test_location_tokens_round_trip():
    vals = [0, 17, 999, 512, 3, 640]
    text = "box: " + to_loc_tokens(vals) + " done"
    r = parse_loc_tokens(text, 6)
    assert r.ok and list(r.value) == vals
    assert not parse_loc_tokens(to_loc_tokens([1, 2]), 3).ok
    assert "out of range" in parse_loc_tokens("<loc_1000>", 1).reason
    assert len(loc_vocabulary()) == 1000 and loc_vocabulary()[7] == "<loc_7>"


def test_formatting_is_configurable():
    cam = _camera(640, 480, 60.0)
    box = Box3D([0.0, 0.0, 3.0], [1.234, 0.5, 0.25], np.eye(3))
    codec = BoxCodec(CodecConfig(size_decimals=3, angle_unit="deg", angle_decimals=0))
    text = codec.encode_box3d(box, cam)
    assert "0.500, 0.250, 1.234" in text and ", -90, 0, -90]" in text
    back = lift_box3d(codec.parse_box3d(text).value, cam, codec)
    _same_box(box, back, 0.02, 1e-9, 1e-6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"depth_min": 5.0, "depth_max": 1.0}, "depth_min=5.0"),
        ({"rotation": "quaternion"}, "rotation='quaternion'"),
        ({"angle_unit": "grad"}, "angle_unit='grad'"),
        ({"coord_max": 0}, "coord_max=0"),
        ({"virtual_focal": -1.0}, "virtual_focal=-1.0"),
    ],
)
def test_codec_config_validates(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        CodecConfig(**kwargs)
