"""SpatialEngine: prompt -> generate -> parse -> lift -> fuse -> output frame, with a scripted
backend (exact answers) and end to end with a real tiny LLaVA on CPU."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.errors import CalibrationError, ConfigError
from spatial_ros.geometry.transforms import R_BODY_FROM_OPTICAL, TransformTree, make_transform
from spatial_ros.types import Box3D, CameraIntrinsics, Candidate, SensorFrame
from spatial_ros.vlm.backend import QwenJSONAdapter, ScriptedBackend, smart_resize
from spatial_ros.vlm.codec import BoxCodec
from spatial_ros.vlm.engine import EngineConfig, Query, SpatialEngine
from spatial_ros.vlm.lifting import points_distance, project_box
from spatial_ros.vlm.prompts import SPECIALIST_PREFIX, VCOT_FOLLOW_UP

CAM = CameraIntrinsics.from_fov(320, 240, 70.0)
TRUTH = {  # base_link boxes: centre, size, yaw
    "the red mug": ([1.30, 0.15, 0.06], [0.09, 0.09, 0.12], 0.2),
    "the blue bowl": ([1.45, -0.20, 0.04], [0.16, 0.16, 0.08], 0.0),
}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The tiny model is overhead-bound: one thread is faster on shared, busy cores."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tree() -> TransformTree:
    """Camera 0.8 m up looking forward and 30 deg down; LiDAR beside it."""
    tf = TransformTree()
    t = np.radians(30.0)
    Ry = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    tf.set("base_link", "camera_optical_frame",
           make_transform(Ry @ R_BODY_FROM_OPTICAL, [0.0, 0.0, 0.8]))
    tf.set("base_link", "lidar", make_transform(None, [0.1, 0.05, 0.9]))
    return tf


def _truth(name: str, frame: str = "base_link") -> Box3D:
    c, s, y = TRUTH[name]
    return Box3D.from_yaw(c, s, y, frame)


def _candidates(tf) -> list[Candidate]:
    out = []
    T = tf.lookup("lidar", "base_link")
    rng = np.random.default_rng(3)
    for k, name in enumerate(TRUTH):
        b = _truth(name)
        # the specialist's box is a little off the truth (it is measured, not known)
        b = Box3D.from_yaw(b.center + [0.01, -0.005, 0.0], b.size * 1.05, b.yaw + 0.05,
                           "base_link")
        pts = rng.uniform(-0.5, 0.5, (150, 3)) * b.size @ b.rotation.T + b.center
        box_l = b.transformed(T, "lidar")
        out.append(Candidate(box=box_l, score=0.8, source="lidar", num_points=150,
                             points=pts @ T[:3, :3].T + T[:3, 3], id=f"lidar_{k}"))
    return out


@pytest.fixture()
def frame() -> SensorFrame:
    img = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    return SensorFrame(stamp_ns=123, image=img, camera=CAM, transforms=_tree())


def _answer(name: str, tf, codec=None) -> str:
    """What a perfect model says: the true box, in the camera frame, in the codec."""
    codec = codec or BoxCodec()
    T = tf.lookup("camera_optical_frame", "base_link")
    return codec.encode_box3d(_truth(name).transformed(T, "camera_optical_frame"), CAM)


# ----------------------------------------------------------------------------------------------
# Scripted backend: exact answers
# ----------------------------------------------------------------------------------------------


def test_answer_is_lifted_fused_and_moved_to_the_output_frame(frame):
    tf = frame.transforms
    cands = _candidates(tf)
    backend = ScriptedBackend({"red mug": _answer("the red mug", tf)})
    engine = SpatialEngine(backend)
    (obj,) = engine.ground(frame, ["the red mug"], cands, output_frame="base_link")
    # fused: the candidate's measured geometry, in base_link
    cand_base = cands[0].box.transformed(tf.lookup("base_link", "lidar"), "base_link")
    assert obj.source == "vlm+lidar" and obj.query == "the red mug" and obj.id == "q0"
    np.testing.assert_allclose(obj.box.center, cand_base.center, atol=1e-9)
    np.testing.assert_allclose(obj.box.size, cand_base.size, atol=1e-9)
    assert obj.box.frame_id == "base_link" and obj.box.yaw == pytest.approx(cand_base.yaw)
    T_cam = tf.lookup("camera_optical_frame", "base_link")
    assert obj.distance == pytest.approx(np.linalg.norm(T_cam[:3, :3] @ cand_base.center
                                                        + T_cam[:3, 3]))
    assert engine.stats.fused == 1 and engine.stats.objects == 1
    assert obj.score == 1.0  # scripted answers carry no confidence -> default_score

    # without fusion: the model's own box, equal to the truth within quantisation
    plain = SpatialEngine(backend, EngineConfig(fuse=False))
    (obj2,) = plain.ground(frame, ["the red mug"], cands)
    truth = _truth("the red mug")
    assert obj2.source == "vlm"
    assert np.linalg.norm(obj2.box.center - truth.center) < 0.01
    np.testing.assert_allclose(obj2.box.size, truth.size, atol=0.006)
    assert obj2.box.yaw == pytest.approx(truth.yaw, abs=0.02)
    # the 2D box is the projection of the lifted box
    b2 = project_box(obj2.box.transformed(T_cam), CAM)
    np.testing.assert_allclose(obj2.box_2d, b2, atol=1e-6)
    # the optical frame itself is a valid output frame
    (obj3,) = plain.ground(frame, ["the red mug"], cands, output_frame="camera_optical_frame")
    np.testing.assert_allclose(obj3.box.center, T_cam[:3, :3] @ obj2.box.center + T_cam[:3, 3])


def test_parse_failures_are_counted_never_raised(frame):
    tf = frame.transforms
    backend = ScriptedBackend({"mug": _answer("the red mug", tf), "": "I do not see it."})
    engine = SpatialEngine(backend)
    objs = engine.ground(frame, ["the red mug", "the unicorn", "the dragon"], _candidates(tf))
    assert [o.query for o in objs] == ["the red mug"]
    s = engine.stats
    assert s.queries == 3 and s.parse_failures == 2 and s.objects == 1
    assert s.failure_reasons == {"no number list found": 2}
    assert s.parse_failure_rate == pytest.approx(2 / 3)
    # a 3D box behind the camera is a failure too, not an exception
    behind = ScriptedBackend(["[500, 500, 0, 1.00, 1.00, 1.00, 0.00, 0.00, 0.00]"])
    eng2 = SpatialEngine(behind, EngineConfig(fuse=False))
    assert len(eng2.ground(frame, ["x"])) == 1  # token 0 = nearest depth, still in front
    assert eng2.ground(frame, []) == [] and eng2.stats.frames == 2


def test_specialist_prompt_lists_candidates_closest_first(frame):
    tf = frame.transforms
    cands = _candidates(tf)
    # a candidate behind the camera is not listed
    behind = Box3D.from_yaw([-2.0, 0.0, 0.5], [0.5, 0.5, 0.5], 0.0, "base_link")
    cands.append(Candidate(box=behind, id="lidar_9"))
    backend = ScriptedBackend(["nothing"])
    engine = SpatialEngine(backend, EngineConfig(referring="model"))  # the prompts themselves
    engine.ground(frame, ["the red mug", "the blue bowl"], cands)
    conv = backend.calls[0][0]
    user = conv[-1].text
    lines = user.split("\n")
    assert lines[0] == SPECIALIST_PREFIX and len(lines) == 4
    codec = BoxCodec()
    T = tf.lookup("camera_optical_frame", "lidar")
    expect = [codec.encode_box3d(c.box.transformed(T, "x"), CAM) for c in cands[:2]]
    assert lines[1:3] == expect  # mug (1.3 m) before bowl (1.45 m)
    assert lines[3].endswith("describes: the red mug")
    # both queries got the same prefix and ONE shared image (prefix reuse possible)
    assert backend.calls[1][0][-1].text.startswith("\n".join(lines[:3]))
    assert backend.calls[0][1] is backend.calls[1][1]
    off = ScriptedBackend(["nothing"])
    SpatialEngine(off, EngineConfig(specialist_prompts=False)).ground(frame, ["m"], cands)
    assert SPECIALIST_PREFIX not in off.calls[0][0][-1].text


def test_vcot_asks_2d_then_3d_with_its_own_answer(frame):
    tf = frame.transforms

    def model(conv, image):
        if "Provide the 2D bounding box" in conv[-1].text:
            return "[300, 400, 500, 600]"
        assert conv[-2].role == "assistant" and conv[-2].text == "[300, 400, 500, 600]"
        assert conv[-1].text == VCOT_FOLLOW_UP
        return _answer("the blue bowl", tf)

    backend = ScriptedBackend(model)
    engine = SpatialEngine(backend, EngineConfig(vcot=True))
    (obj,) = engine.ground(frame, ["the blue bowl"], _candidates(tf))
    assert len(backend.calls) == 2 and obj.source == "vlm+lidar"
    assert SPECIALIST_PREFIX in backend.calls[0][0][-1].text


def test_region_queries_draw_visual_prompts(frame):
    backend = ScriptedBackend(["x"])
    engine = SpatialEngine(backend)
    engine.ground(frame, [Query(region_2d=(100, 80, 180, 150)), Query("the mug")])
    (c0, img0), (c1, img1) = backend.calls
    assert c0[-1].text.endswith("the object within the red rectangle")
    assert img1 is frame.image and img0 is not frame.image
    changed = np.any(img0 != frame.image, axis=2)
    assert changed[80, 100:181].all() and not changed[100:130, 120:160].any()
    arrow = ScriptedBackend(["x"])
    SpatialEngine(arrow).ground(frame, [Query("the cup", (100, 80, 180, 150), None, "arrow")])
    assert arrow.calls[0][0][-1].text.endswith("the cup pointed to by the red arrow")
    marks = ScriptedBackend(["x"])
    SpatialEngine(marks, EngineConfig(visual_prompts=True)).ground(
        frame, ["a", "b"], _candidates(frame.transforms))
    assert marks.calls[0][1] is marks.calls[1][1]  # still one shared image, now marked
    assert np.any(marks.calls[0][1] != frame.image)


def test_2d_answers_lift_via_candidates_or_depth(frame):
    tf = frame.transforms
    cands = _candidates(tf)
    T = tf.lookup("camera_optical_frame", "base_link")
    b2 = project_box(_truth("the red mug").transformed(T), CAM)
    mh, mw = smart_resize(240, 320)
    rb = b2 * [mw / 320, mh / 240, mw / 320, mh / 240]
    x1, y1, x2, y2 = (int(v) for v in np.rint(rb))
    js = f'[{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}], "label": "mug"}}]'
    qwen = ScriptedBackend([js], adapter=QwenJSONAdapter())
    engine = SpatialEngine(qwen)
    (obj,) = engine.ground(frame, ["the red mug"], cands)
    assert obj.source == "vlm+lidar" and obj.label == "mug"
    assert "Locate the red mug" in qwen.calls[0][0][-1].text
    # no candidates, but a depth image (a wall 1.5 m away): lifted from depth
    frame.depth = np.full((240, 320), 1.5, np.float32)
    (obj2,) = SpatialEngine(qwen).ground(frame, ["the red mug"], [])
    assert obj2.source == "vlm+depth"
    c_opt = T[:3, :3] @ obj2.box.center + T[:3, 3]
    assert 1.5 < c_opt[2] < 1.6
    # neither: a counted failure
    frame.depth = None
    eng = SpatialEngine(qwen)
    assert eng.ground(frame, ["the red mug"], []) == []
    assert eng.stats.failure_reasons == {"unliftable": 1}


def test_distances_between_grounded_objects(frame):
    tf = frame.transforms
    cands = _candidates(tf)
    backend = ScriptedBackend({"mug": _answer("the red mug", tf),
                               "bowl": _answer("the blue bowl", tf)})
    engine = SpatialEngine(backend)
    mug, bowl = engine.ground(frame, ["the red mug", "the blue bowl"], cands)
    d = engine.distance(mug, bowl)
    T = tf.lookup("base_link", "lidar")
    pa = cands[0].points @ T[:3, :3].T + T[:3, 3]
    pb = cands[1].points @ T[:3, :3].T + T[:3, 3]
    assert d["method"] == "points" and d["surface"] == pytest.approx(points_distance(pa, pb))
    assert d["center"] == pytest.approx(np.linalg.norm(mug.box.center - bowl.box.center))
    assert 0 < d["surface"] < d["center"]


def test_specialist_objects_and_calibration_errors(frame):
    tf = frame.transforms
    cands = _candidates(tf)
    engine = SpatialEngine(ScriptedBackend(["x"]))
    objs = engine.specialist_objects(frame, cands, "base_link")
    assert [o.id for o in objs] == ["lidar_0", "lidar_1"]
    assert all(o.source == "lidar" and o.box.frame_id == "base_link" for o in objs)
    expect = TRUTH["the red mug"][0] + np.r_[0.01, -0.005, 0]
    np.testing.assert_allclose(objs[0].box.center, expect, atol=1e-9)
    with pytest.raises(CalibrationError, match="odom"):
        engine.ground(frame, ["the mug"], cands, output_frame="odom")
    with pytest.raises(ConfigError, match="visual_prompt_kind='star'"):
        EngineConfig(visual_prompt_kind="star")
    with pytest.raises(ConfigError, match="iou_2d_min=2"):
        EngineConfig(fusion_iou_2d=2.0)


# ----------------------------------------------------------------------------------------------
# End to end with a real tiny LLaVA on CPU
# ----------------------------------------------------------------------------------------------


class _Forced:
    """Delegates to a backend with a fixed generation mode."""

    def __init__(self, backend, mode):
        self.backend, self.mode, self.adapter = backend, mode, backend.adapter
        self.info = backend.info

    def generate(self, images, prompts, max_new_tokens=64, *, mode="auto"):
        return self.backend.generate(images, prompts, max_new_tokens, mode=self.mode)


def _memorise(backend, convs_answers, image, steps=100, lr=3e-3):
    """Fine-tune the tiny model to give fixed answers to fixed conversations (one right-padded
    batch, a few seconds). Returns the last loss."""
    import torch

    torch.manual_seed(0)
    model = backend.model
    rows, labels = [], []
    for conv, ans in convs_answers:
        prompt = backend.chat_text(conv)
        ids = backend.processor(images=[image], text=[prompt + " " + ans + "</s>"])["input_ids"]
        n = len(backend.processor(images=[image], text=[prompt])["input_ids"][0])
        rows.append(list(ids[0]))
        labels.append([-100] * n + list(ids[0][n:]))
    L = max(map(len, rows))
    pad = backend.pad_id
    x = torch.tensor([r + [pad] * (L - len(r)) for r in rows])
    y = torch.tensor([r + [-100] * (L - len(r)) for r in labels])
    mask = torch.tensor([[1] * len(r) + [0] * (L - len(r)) for r in rows])
    pix = backend.processor.image_processor(images=[image] * len(rows), return_tensors="pt")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = model(input_ids=x, attention_mask=mask, pixel_values=pix["pixel_values"],
                     labels=y).loss
        loss.backward()
        opt.step()
    model.eval()
    return loss.item()


def test_tiny_model_end_to_end_batch_equals_sequential(frame, tmp_path):
    from spatial_ros.vlm.backend import TransformersBackend
    from spatial_ros.vlm.codec import CodecConfig
    from spatial_ros.vlm.tiny import build_tiny_vlm

    tf = frame.transforms
    cands = _candidates(tf)
    codec = BoxCodec(CodecConfig(rotation="yaw"))  # 7-number boxes: shorter answers, faster
    backend = TransformersBackend(build_tiny_vlm(tmp_path / "tiny", "test", seed=1), device="cpu")
    cfg = EngineConfig(max_new_tokens=48)
    # The exact conversations the engine sends (recorded with a scripted run).
    rec = ScriptedBackend(["-"])
    SpatialEngine(rec, cfg, codec).ground(frame, list(TRUTH), cands)
    pairs = [(conv, _answer(n, tf, codec)) for (conv, _), n in zip(rec.calls, TRUTH, strict=True)]
    assert _memorise(backend, pairs, frame.image) < 0.1

    queries = ["the red mug", "the blue bowl", "the green can", "the yellow box",
               "the ball", "the bottle", "the purple book", "the cube"]
    engine = SpatialEngine(backend, cfg, codec)
    objs = engine.ground(frame, queries, cands)  # one batch, prefix reuse (the default)
    by_q = {o.query: o for o in objs}
    T = tf.lookup("base_link", "lidar")
    for k, name in enumerate(TRUTH):  # the trained queries ground onto the right candidates
        o = by_q[name]
        assert o.source == "vlm+lidar", o.raw_text
        np.testing.assert_allclose(o.box.center, T[:3, :3] @ cands[k].box.center + T[:3, 3])
        assert 0.3 < o.score <= 1.0
    assert engine.stats.queries == 8
    assert engine.stats.objects + engine.stats.parse_failures == 8

    # 8 sequential calls and a plain left-padded batch return exactly the same objects
    key = lambda objs: [(o.query, o.raw_text, tuple(np.round(o.box.center, 9))) for o in objs]  # noqa: E731
    for mode in ("sequential", "batched"):
        eng = SpatialEngine(_Forced(backend, mode), cfg, codec)
        assert key(eng.ground(frame, queries, cands)) == key(objs), mode
