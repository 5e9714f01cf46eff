"""ONNX adapter: tiny detectors exported by the test itself (fixed weights, known outputs)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import yaml

from spatial_ros.errors import ConfigError, ModelError
from spatial_ros.geometry.iou import iou_3d
from spatial_ros.specialists.onnx_detector import (
    OnnxDetector,
    OnnxDetectorConfig,
    select_providers,
)
from spatial_ros.types import Box3D, CameraIntrinsics

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


def _export(model, args, path, input_names, output_names):
    """Legacy exporter when available (fast); the dynamo exporter (onnxscript) otherwise."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, args, buf, input_names=input_names,
                              output_names=output_names, dynamo=False)
        except Exception:  # legacy exporter removed in this torch: use torch.export
            buf = io.BytesIO()
            torch.onnx.export(model, args, buf, input_names=input_names,
                              output_names=output_names, dynamo=True)
    path.write_bytes(buf.getvalue())


class BrightBoxNet(torch.nn.Module):
    """'Detects' the bright region of a normalised image by its moments: for a uniform
    rectangle, centre = mean and half-size = sqrt(3) * std. Outputs xyxy in [0, 1] of the net
    input, a constant score 0.9 and class 1. A second, constant low-score box tests the
    threshold."""

    def forward(self, x):
        m = torch.sigmoid(40.0 * x.mean(1))  # (1, H, W); bright pixels normalise to > 0
        h, w = x.shape[2], x.shape[3]
        gy = (torch.arange(h, dtype=torch.float32) + 0.5) / h
        gx = (torch.arange(w, dtype=torch.float32) + 0.5) / w
        s = m.sum((1, 2))
        mx = (m * gx[None, None, :]).sum((1, 2)) / s
        my = (m * gy[None, :, None]).sum((1, 2)) / s
        hx = torch.sqrt(3.0 * ((m * gx[None, None, :] ** 2).sum((1, 2)) / s - mx**2))
        hy = torch.sqrt(3.0 * ((m * gy[None, :, None] ** 2).sum((1, 2)) / s - my**2))
        box = torch.stack([mx - hx, my - hy, mx + hx, my + hy], -1)  # (1, 4)
        junk = torch.tensor([[0.0, 0.0, 0.1, 0.1]])
        boxes = torch.stack([box, junk], 1)  # (1, 2, 4)
        scores = torch.tensor([[0.9, 0.1]]) + 0.0 * s[:, None]
        labels = torch.tensor([[1, 0]], dtype=torch.int64)
        return boxes, scores, labels


class ExtentNet(torch.nn.Module):
    """A point 'detector': the axis-aligned box of the valid points (mask input), as
    x, y, z, l, w, h, yaw (z = bottom face), score 1, class 0."""

    def forward(self, pts, mask):
        xyz = pts[0, :, :3]
        m = mask[0][:, None]
        lo = (xyz + (1.0 - m) * 1e6).min(0).values
        hi = (xyz - (1.0 - m) * 1e6).max(0).values
        c = (lo + hi) / 2
        size = hi - lo
        box = torch.cat([c[:2], lo[2:3], size, torch.zeros(1)])[None, None]
        return box, torch.ones(1, 1)


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx2d")
    _export(BrightBoxNet().eval(), (torch.zeros(1, 3, 64, 64),), d / "bright.onnx",
            ["images"], ["boxes", "scores", "labels"])
    spec = {
        "model": "bright.onnx",
        "input": {"kind": "image", "layout": "NCHW", "size": [64, 64], "mean": [0.5] * 3,
                  "std": [0.5] * 3},
        "outputs": {"boxes": "boxes", "scores": "scores", "labels": "labels",
                    "box_format": "xyxy", "normalized": True},
        "class_names": ["background", "thing"],
        "score_threshold": 0.5,
    }
    (d / "bright.yaml").write_text(yaml.safe_dump(spec))
    return d / "bright.yaml"


@pytest.fixture(scope="module")
def points_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx3d")
    _export(ExtentNet().eval(), (torch.zeros(1, 256, 4), torch.ones(1, 256)), d / "ext.onnx",
            ["points", "mask"], ["boxes", "scores"])
    spec = {
        "model": str(d / "ext.onnx"),
        "input": {"kind": "points", "max_points": 256, "features": 4, "mask_name": "mask",
                  "pad_value": 0.0},
        "outputs": {"boxes": "boxes", "scores": "scores", "labels": None,
                    "box_format": "xyzlwhr", "z_origin": "bottom"},
        "score_threshold": 0.5,
    }
    (d / "ext.yaml").write_text(yaml.safe_dump(spec))
    return d / "ext.yaml"


def _image_with_rect(w=160, h=120, rect=(40, 30, 100, 90)):
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = rect
    img[y1:y2, x1:x2] = 255
    return img


def test_image_detector_finds_the_rectangle_in_original_pixels(image_model):
    det = OnnxDetector(image_model)
    assert det.providers[-1] == "CPUExecutionProvider"
    # Pixels [40, 100) x [30, 90): the covered area spans x 40..100, y 30..90 in pixel edges.
    out = det.detect(image=_image_with_rect())
    assert len(out) == 1  # the 0.1-score box is below the threshold
    assert out.labels == ["thing"]
    assert out.scores[0] == pytest.approx(0.9)
    np.testing.assert_allclose(out.boxes_2d[0], [40, 30, 100, 90], atol=2.0)


def test_image_detector_letterbox_and_bgr(image_model, tmp_path):
    spec = yaml.safe_load(image_model.read_text())
    spec["model"] = str(image_model.parent / spec["model"])
    spec["input"].update(letterbox=True, color="bgr", pad_value=-1.0)
    p = tmp_path / "lb.yaml"
    p.write_text(yaml.safe_dump(spec))
    out = OnnxDetector(p).detect(image=_image_with_rect(w=200, h=100, rect=(120, 20, 180, 70)))
    np.testing.assert_allclose(out.boxes_2d[0], [120, 20, 180, 70], atol=3.0)


def test_2d_detections_lifted_with_depth(image_model):
    """A bright square on a flat wall 2 m away in front of the camera → 3D box at 2 m."""
    cam = CameraIntrinsics.from_fov(160, 120, 60.0)
    depth = np.full((120, 160), 4.0, np.float32)
    depth[30:90, 40:100] = 2.0  # a 'box face' nearer than the background
    from spatial_ros.specialists.depth import DepthSpecialist, DepthSpecialistConfig

    ds = DepthSpecialist(DepthSpecialistConfig(remove_support=False, min_points=10))
    T = np.eye(4)
    from spatial_ros.geometry.transforms import R_BODY_FROM_OPTICAL

    T[:3, :3] = R_BODY_FROM_OPTICAL  # level camera: base x = optical z
    cands = OnnxDetector(image_model).propose(
        image=_image_with_rect(), camera=cam, depth_m=depth, depth_specialist=ds,
        T_base_from_camera=T,
    )
    assert [c.id for c in cands] == ["onnx_0"] and cands[0].source == "onnx"
    c = cands[0]
    assert c.label == "thing"
    assert c.box.center[0] == pytest.approx(2.0, abs=0.02)  # 2 m in front
    # 60 px at f = 80/tan(30 deg) = 138.6 px and 2 m → 0.866 m wide and high; the detected 2D
    # box is within 2 px per side (4 px = 0.058 m). A flat face has no depth, so the wide side
    # is the box's length (x axis).
    assert c.box.size[0] == pytest.approx(60 * 2.0 / cam.fx, abs=0.06)
    assert c.box.size[1] < 0.02
    assert c.box.size[2] == pytest.approx(60 * 2.0 / cam.fx, abs=0.06)


def test_points_detector_gives_the_exact_box(points_model):
    truth = Box3D.from_yaw([5.0, -1.0, 0.75], [4.0, 1.8, 1.5], 0.0)
    rng = np.random.default_rng(0)
    corners = truth.corners()
    inner = truth.center + (rng.random((92, 3)) - 0.5) * truth.size * 0.9
    pts = np.concatenate([corners, inner])
    pts = np.column_stack([pts, np.ones(len(pts))]).astype(np.float32)
    det = OnnxDetector(points_model)
    out = det.detect(points=pts)  # 100 points padded to 256 with the mask input
    assert len(out) == 1
    b = out.boxes_3d[0]
    np.testing.assert_allclose(b.center, truth.center, atol=1e-5)
    np.testing.assert_allclose(b.size, truth.size, atol=1e-5)
    T = np.eye(4)
    T[2, 3] = 1.73
    cands = det.propose(points=pts, T_base_from_points=T)
    assert cands[0].box.frame_id == "base_link" and cands[0].num_points == len(pts)
    moved = Box3D.from_yaw(truth.center + [0, 0, 1.73], truth.size, 0.0, "base_link")
    assert iou_3d(cands[0].box, moved) == pytest.approx(1.0, abs=1e-6)


def test_points_detector_cuts_large_clouds(points_model):
    pts = np.random.default_rng(1).uniform(-1, 1, (1000, 4)).astype(np.float32)
    out = OnnxDetector(points_model).detect(points=pts)
    assert out.boxes_3d[0].size.max() <= 2.0


def test_bad_specs_and_models_say_what_is_wrong(tmp_path, image_model):
    with pytest.raises(ModelError, match="not found"):
        OnnxDetector(OnnxDetectorConfig(model=str(tmp_path / "missing.onnx")))
    spec = yaml.safe_load(image_model.read_text())
    spec["model"] = str(image_model.parent / spec["model"])
    spec["outputs"]["boxes"] = "dets"
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(spec))
    with pytest.raises(ModelError, match="dets"):
        OnnxDetector(p)
    with pytest.raises(ConfigError, match="unknown keys"):
        OnnxDetectorConfig(model="x.onnx", input={"knd": "image"})
    with pytest.raises(ConfigError, match="box_format"):
        OnnxDetectorConfig(model="x.onnx", outputs={"box_format": "xyzxyz"})
    (tmp_path / "junk.yaml").write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        OnnxDetectorConfig.from_yaml(tmp_path / "junk.yaml")
    with pytest.raises(ModelError, match="not available"):
        select_providers(("NoSuchExecutionProvider",))
    det = OnnxDetector(image_model)
    with pytest.raises(ConfigError, match="takes an image"):
        det.detect(points=np.zeros((3, 3)))
    with pytest.raises(ConfigError, match="uint8"):
        det.detect(image=np.zeros((10, 10, 3), np.float32))


@pytest.mark.gpu
def test_auto_providers_prefer_cuda_when_present(image_model):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu with CUDA is not installed here")
    det = OnnxDetector(image_model)
    assert det.providers[0] in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    assert "CUDAExecutionProvider" in det.session.get_providers()
    out = det.detect(image=_image_with_rect())
    np.testing.assert_allclose(out.boxes_2d[0], [40, 30, 100, 90], atol=2.0)
