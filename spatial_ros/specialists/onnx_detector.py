"""ONNX Runtime adapter for learned 2D/3D (or open-vocabulary) detectors → candidates.

A YAML file says which model to run and how to feed and read it, so any exported detector can
be plugged in without code (``onnxruntime-gpu`` on robots, ``onnxruntime`` here)::

    model: detector.onnx              # relative to the YAML file's folder
    input:
      kind: image                     # image | points
      name: images                    # graph input (default: the first one)
      layout: NCHW                    # NCHW | NHWC
      size: [640, 640]                # [height, width] fed to the net (default: its static shape)
      letterbox: false                # keep the aspect ratio, pad with pad_value
      color: rgb                      # rgb | bgr
      scale: 0.00392156862745098      # pixel * scale, then (x - mean) / std per channel
      mean: [0.0, 0.0, 0.0]
      std: [1.0, 1.0, 1.0]
      # points: max_points (pad/cut to N, 0 = dynamic), features (3|4), mask_name (valid mask)
    outputs:
      boxes: boxes                    # (1, K, 4) 2D or (1, K, 7) 3D; leading batch dim optional
      scores: scores                  # (1, K) or (1, K, C) class scores (then argmax = label)
      labels: labels                  # (1, K) class indices (optional)
      box_format: xyxy                # 2D: xyxy | xywh | cxcywh; 3D: xyzlwhr (centre, length
                                      # along heading, width, height, yaw) | xyzwlhr
      normalized: false               # 2D boxes in [0, 1] of the net input
      z_origin: center                # 3D: center | bottom (box z is its bottom face)
    class_names: [person, car]
    score_threshold: 0.3
    max_detections: 100
    providers: auto                   # or e.g. [CUDAExecutionProvider, CPUExecutionProvider]

2D detections become candidates by lifting them with the depth specialist (needs a depth
image); 3D detections are boxes in the input cloud's frame (z-up). ``providers: auto`` picks
TensorRT, then CUDA, then CPU among those this onnxruntime build offers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from spatial_ros.errors import ConfigError, ModelError
from spatial_ros.types import Box3D, CameraIntrinsics, Candidate

log = logging.getLogger(__name__)

PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
)
BOX_FORMATS_2D = ("xyxy", "xywh", "cxcywh")
BOX_FORMATS_3D = ("xyzlwhr", "xyzwlhr")


@dataclass
class OnnxInputSpec:
    """How to build the network input (see the module docstring for each key)."""

    kind: str = "image"
    name: str | None = None
    layout: str = "NCHW"
    size: tuple[int, int] | None = None
    letterbox: bool = False
    color: str = "rgb"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    pad_value: float = 0.0
    max_points: int = 0
    features: int = 4
    mask_name: str | None = None

    def __post_init__(self) -> None:
        bad = []
        if self.kind not in ("image", "points"):
            bad.append(f"kind={self.kind!r} (image|points)")
        if self.layout not in ("NCHW", "NHWC"):
            bad.append(f"layout={self.layout!r} (NCHW|NHWC)")
        if self.color not in ("rgb", "bgr"):
            bad.append(f"color={self.color!r} (rgb|bgr)")
        if self.size is not None:
            self.size = tuple(int(v) for v in self.size)
            if len(self.size) != 2 or min(self.size) < 1:
                bad.append(f"size={self.size} ([height, width], positive)")
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        if len(self.mean) != 3 or len(self.std) != 3 or min(abs(v) for v in self.std) == 0:
            bad.append(f"mean={self.mean}, std={self.std} (3 values each, std non-zero)")
        if self.max_points < 0 or self.features not in (3, 4):
            bad.append(f"max_points={self.max_points} (>= 0), features={self.features} (3|4)")
        if bad:
            raise ConfigError("ONNX input spec: " + "; ".join(bad))


@dataclass
class OnnxOutputSpec:
    """Which outputs hold boxes/scores/labels and how boxes are encoded."""

    boxes: str = "boxes"
    scores: str | None = "scores"
    labels: str | None = None
    box_format: str = "xyxy"
    normalized: bool = False
    z_origin: str = "center"

    def __post_init__(self) -> None:
        if self.box_format not in BOX_FORMATS_2D + BOX_FORMATS_3D:
            raise ConfigError(f"ONNX outputs: box_format={self.box_format!r}; use one of "
                              f"{BOX_FORMATS_2D + BOX_FORMATS_3D}")
        if self.z_origin not in ("center", "bottom"):
            raise ConfigError(f"ONNX outputs: z_origin={self.z_origin!r} (center|bottom)")

    @property
    def is_3d(self) -> bool:
        return self.box_format in BOX_FORMATS_3D


@dataclass
class OnnxDetectorConfig:
    """A detector: model file + input/output spec (usually from YAML, ``from_yaml``)."""

    model: str
    input: OnnxInputSpec = field(default_factory=OnnxInputSpec)
    outputs: OnnxOutputSpec = field(default_factory=OnnxOutputSpec)
    class_names: tuple[str, ...] = ()
    score_threshold: float = 0.3
    max_detections: int = 100
    providers: str | tuple[str, ...] = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.input, dict):
            self.input = _build(OnnxInputSpec, self.input, "input")
        if isinstance(self.outputs, dict):
            self.outputs = _build(OnnxOutputSpec, self.outputs, "outputs")
        self.class_names = tuple(str(c) for c in self.class_names)
        if not isinstance(self.providers, str):
            self.providers = tuple(str(p) for p in self.providers)
        if not 0 <= self.score_threshold <= 1 or self.max_detections < 1:
            raise ConfigError(f"ONNX detector: score_threshold={self.score_threshold} (in [0, 1]),"
                              f" max_detections={self.max_detections} (>= 1)")
        if self.outputs.is_3d and self.input.kind != "points":
            raise ConfigError(f"ONNX detector: 3D box_format {self.outputs.box_format!r} needs "
                              "input kind 'points' (image-based 3D detectors: export 2D boxes)")
        if self.input.kind == "points" and not self.outputs.is_3d:
            raise ConfigError("ONNX detector: a points input needs a 3D box_format "
                              f"({BOX_FORMATS_3D})")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> OnnxDetectorConfig:
        """Load a detector spec; ``model`` is resolved relative to the YAML file's folder."""
        import yaml

        p = Path(path)
        try:
            d = yaml.safe_load(p.read_text())
        except OSError as e:
            raise ConfigError(f"cannot read ONNX detector spec {p}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"ONNX detector spec {p} is not valid YAML: {e}") from None
        if not isinstance(d, dict) or "model" not in d:
            raise ConfigError(f"ONNX detector spec {p} must be a mapping with a 'model' key")
        model = Path(str(d["model"])).expanduser()
        d["model"] = str(model if model.is_absolute() else (p.parent / model))
        return _build(cls, d, str(p))


def _build(cls, d: dict, where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**d)


def select_providers(requested: str | tuple[str, ...] = "auto") -> list[str]:
    """Execution providers to use: ``"auto"`` → TensorRT, CUDA, CPU (those available, in that
    order); an explicit list is checked against what this onnxruntime build offers."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested == "auto":
        return [p for p in PREFERRED_PROVIDERS if p in available] or list(available)
    req = [requested] if isinstance(requested, str) else list(requested)
    missing = [p for p in req if p not in available]
    if missing:
        raise ModelError(f"execution providers {missing} are not available in this onnxruntime "
                         f"build (available: {available}); install onnxruntime-gpu for CUDA/"
                         "TensorRT or use providers: auto")
    return req


@dataclass(eq=False)
class Detections:
    """Raw detector output after decoding and thresholding.

    Attributes:
        boxes_2d: (K, 4) x1, y1, x2, y2 in the ORIGINAL image's pixels (2D detectors), or None.
        boxes_3d: K boxes in the input cloud's frame (3D detectors), or None.
        scores: (K,) in [0, 1].
        labels: K class names ('' when unknown).
    """

    boxes_2d: np.ndarray | None
    boxes_3d: list[Box3D] | None
    scores: np.ndarray
    labels: list[str]

    def __len__(self) -> int:
        return len(self.scores)


class OnnxDetector:
    """Runs an ONNX detector described by an ``OnnxDetectorConfig`` (see the module docstring).

    Raises:
        ModelError: the model file is missing/unloadable or lacks the named inputs/outputs.
    """

    source = "onnx"

    def __init__(self, config: OnnxDetectorConfig | str | os.PathLike) -> None:
        if not isinstance(config, OnnxDetectorConfig):
            config = OnnxDetectorConfig.from_yaml(config)
        self.config = config
        import onnxruntime as ort

        path = Path(config.model)
        if not path.is_file():
            raise ModelError(f"ONNX model not found: {path} (set 'model' in the detector YAML)")
        self.providers = select_providers(config.providers)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load ONNX model {path}: {e}") from None
        ins = {i.name: i for i in self.session.get_inputs()}
        outs = [o.name for o in self.session.get_outputs()]
        spec = config.input
        self.input_name = spec.name or self.session.get_inputs()[0].name
        if self.input_name not in ins:
            raise ModelError(f"ONNX model {path} has no input {self.input_name!r} "
                             f"(inputs: {sorted(ins)})")
        if spec.mask_name is not None and spec.mask_name not in ins:
            raise ModelError(f"ONNX model {path} has no mask input {spec.mask_name!r} "
                             f"(inputs: {sorted(ins)})")
        o = config.outputs
        wanted = [n for n in (o.boxes, o.scores, o.labels) if n is not None]
        missing = [n for n in wanted if n not in outs]
        if missing:
            raise ModelError(f"ONNX model {path} has no outputs {missing} (outputs: {outs})")
        self._output_names = wanted
        self._input_shape = ins[self.input_name].shape
        self._input_type = ins[self.input_name].type

    # -- inference ----------------------------------------------------------------------------

    def detect(
        self, image: np.ndarray | None = None, points: np.ndarray | None = None
    ) -> Detections:
        """Run the detector on an (H, W, 3) uint8 RGB image or an (N, 3+) cloud."""
        spec = self.config.input
        if spec.kind == "image":
            if image is None:
                raise ConfigError("this ONNX detector takes an image (input kind: image)")
            feeds, undo = self._image_feed(np.asarray(image))
        else:
            if points is None:
                raise ConfigError("this ONNX detector takes points (input kind: points)")
            feeds, undo = self._points_feed(np.asarray(points)), None
        raw = self.session.run(self._output_names, feeds)
        return self._decode(dict(zip(self._output_names, raw, strict=True)), undo)

    def propose(
        self,
        image: np.ndarray | None = None,
        points: np.ndarray | None = None,
        *,
        camera: CameraIntrinsics | None = None,
        depth_m: np.ndarray | None = None,
        depth_specialist=None,
        T_cam_from_points: np.ndarray | None = None,
        T_base_from_points: np.ndarray | None = None,
        T_base_from_camera: np.ndarray | None = None,
        frame_id: str = "lidar",
        base_frame: str = "base_link",
    ) -> list[Candidate]:
        """Candidates from the detector: 3D boxes directly, 2D boxes lifted with depth.

        Args:
            image: (H, W, 3) uint8 RGB (image detectors).
            points: (N, 3+) cloud in ``frame_id`` (point detectors).
            camera: intrinsics of ``image``/``depth_m``; 3D boxes are projected into it.
            depth_m: (H, W) depth aligned with the image (needed to lift 2D detections).
            depth_specialist: a ``DepthSpecialist`` (default: one with default settings).
            T_cam_from_points: optical frame from the cloud frame (3D boxes → 2D boxes).
            T_base_from_points: 3D boxes are returned in ``base_frame`` when given.
            T_base_from_camera: passed to the depth specialist for 2D detections.
            frame_id, base_frame: frame names.

        Returns:
            Candidates sorted by distance from the sensor, ids "onnx_0", …, labelled with the
            detector's classes and scores.
        """
        from spatial_ros.specialists.lidar import box_to_image, finalize_candidates

        det = self.detect(image=image, points=points)
        if self.config.outputs.is_3d:
            T = np.eye(4) if T_base_from_points is None else np.asarray(T_base_from_points, float)
            out_frame = frame_id if T_base_from_points is None else base_frame
            cands = []
            for b, s, lab in zip(det.boxes_3d, det.scores, det.labels, strict=True):
                box = b.transformed(T, out_frame)
                c = Candidate(box=box, score=float(s), source=self.source, label=lab)
                if points is not None:
                    pts = np.asarray(points, dtype=np.float64)[:, :3]
                    inside = b.contains(pts, margin=1e-3)  # 1 mm: float32 outputs
                    c.num_points = int(inside.sum())
                    c.points = (pts[inside] @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
                if camera is not None and T_cam_from_points is not None:
                    from spatial_ros.geometry.transforms import invert

                    c.box_2d = box_to_image(box, camera, np.asarray(T_cam_from_points) @ invert(T))
                cands.append(c)
            return finalize_candidates(cands, T[:3, 3], self.source)
        if depth_m is None or camera is None:
            raise ConfigError("2D ONNX detections need depth_m and camera to become 3D candidates")
        if depth_specialist is None:
            from spatial_ros.specialists.depth import DepthSpecialist

            depth_specialist = DepthSpecialist()
        cands = depth_specialist.propose(
            depth_m, camera, boxes_2d=det.boxes_2d, labels=det.labels, scores=det.scores,
            T_base_from_camera=T_base_from_camera, base_frame=base_frame,
        )
        for c in cands:
            c.source = self.source
        origin = (np.zeros(3) if T_base_from_camera is None
                  else np.asarray(T_base_from_camera)[:3, 3])
        return finalize_candidates(cands, origin, self.source)

    # -- pre/post-processing ------------------------------------------------------------------

    def _net_size(self, h0: int, w0: int) -> tuple[int, int]:
        spec = self.config.input
        if spec.size is not None:
            return spec.size
        shp = self._input_shape
        hw = (shp[2], shp[3]) if spec.layout == "NCHW" else (shp[1], shp[2])
        if all(isinstance(v, int) and v > 0 for v in hw):
            return int(hw[0]), int(hw[1])
        return h0, w0  # dynamic input: feed the image as it is

    def _image_feed(self, img: np.ndarray):
        import cv2

        spec = self.config.input
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ConfigError(f"ONNX detector: image must be (H, W, 3) uint8 RGB, got "
                              f"{img.shape} {img.dtype}")
        h0, w0 = img.shape[:2]
        h, w = self._net_size(h0, w0)
        if spec.letterbox:
            r = min(h / h0, w / w0)
            nh, nw = max(1, round(h0 * r)), max(1, round(w0 * r))
            canvas = np.full((h, w, 3), 0, dtype=np.float32)
            top, left = (h - nh) // 2, (w - nw) // 2
            resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
            x = resized.astype(np.float32)
            undo = (r, r, left, top, w, h)
        else:
            x = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
            undo = (w / w0, h / h0, 0, 0, w, h)
        if spec.color == "bgr":
            x = x[..., ::-1]
        x = (x * spec.scale - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
        if spec.letterbox:
            canvas[...] = spec.pad_value
            canvas[top:top + nh, left:left + nw] = x
            x = canvas
        x = x.transpose(2, 0, 1)[None] if spec.layout == "NCHW" else x[None]
        dtype = np.float16 if "float16" in self._input_type else np.float32
        return {self.input_name: np.ascontiguousarray(x, dtype=dtype)}, undo

    def _points_feed(self, pts: np.ndarray) -> dict:
        spec = self.config.input
        if pts.ndim != 2 or pts.shape[1] < 3:
            raise ConfigError(f"ONNX detector: points must be (N, 3+), got {pts.shape}")
        f = spec.features
        x = np.zeros((len(pts), f), dtype=np.float32)
        x[:, : min(f, pts.shape[1])] = pts[:, :f]
        x = x[np.isfinite(x).all(axis=1)]
        mask = np.ones(len(x), dtype=np.float32)
        if spec.max_points:
            n = spec.max_points
            if len(x) > n:  # cut: evenly strided subset (deterministic)
                x = x[np.linspace(0, len(x) - 1, n).astype(np.int64)]
                mask = mask[:n]
            elif len(x) < n:
                pad = np.full((n - len(x), f), spec.pad_value, dtype=np.float32)
                x = np.concatenate([x, pad])
                mask = np.concatenate([mask, np.zeros(n - len(mask), np.float32)])
        feeds = {self.input_name: x[None]}
        if spec.mask_name is not None:
            feeds[spec.mask_name] = mask[None]
        return feeds

    def _decode(self, raw: dict, undo) -> Detections:
        cfg, o = self.config, self.config.outputs
        boxes = np.asarray(raw[o.boxes], dtype=np.float64)
        width = 7 if o.is_3d else 4
        if boxes.ndim == 3:
            boxes = boxes[0]
        if boxes.ndim != 2 or boxes.shape[1] < width:
            raise ModelError(f"ONNX output {o.boxes!r} has shape {np.shape(raw[o.boxes])}; "
                             f"expected (1, K, {width}) or (K, {width}) for {o.box_format}")
        k = len(boxes)
        labels_idx = None
        if o.scores is not None:
            sc = np.asarray(raw[o.scores], dtype=np.float64)
            if sc.ndim == 3 or (sc.ndim == 2 and sc.shape == (1, k)):
                sc = sc[0]  # leading batch dimension
            if sc.ndim == 2:  # (K, C) per-class scores
                labels_idx = sc.argmax(axis=1)
                sc = sc.max(axis=1)
            scores = sc.reshape(-1)
        else:
            scores = np.ones(k)
        if o.labels is not None:
            labels_idx = np.asarray(raw[o.labels]).reshape(-1).astype(np.int64)
        if len(scores) != k or (labels_idx is not None and len(labels_idx) != k):
            raise ModelError(f"ONNX outputs disagree: {k} boxes, {len(scores)} scores, "
                             f"{None if labels_idx is None else len(labels_idx)} labels")
        keep = np.flatnonzero(np.isfinite(scores) & (scores >= cfg.score_threshold)
                              & np.isfinite(boxes[:, :width]).all(axis=1))
        keep = keep[np.argsort(-scores[keep], kind="stable")][: cfg.max_detections]
        names = [self._label_name(None if labels_idx is None else labels_idx[i]) for i in keep]
        scores = np.clip(scores[keep], 0.0, 1.0)
        if o.is_3d:
            return Detections(None, [self._box3d(b) for b in boxes[keep]], scores, names)
        return Detections(self._boxes2d(boxes[keep, :4], undo), None, scores, names)

    def _label_name(self, idx) -> str:
        if idx is None:
            return ""
        names = self.config.class_names
        return names[idx] if 0 <= idx < len(names) else str(int(idx))

    def _boxes2d(self, b: np.ndarray, undo) -> np.ndarray:
        o = self.config.outputs
        if o.box_format == "xywh":
            b = np.column_stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]])
        elif o.box_format == "cxcywh":
            b = np.column_stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2,
                                 b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2])
        sx, sy, left, top, w, h = undo
        if o.normalized:
            b = b * np.array([w, h, w, h], dtype=np.float64)
        # net-input pixels → original pixels
        return (b - np.array([left, top, left, top])) / np.array([sx, sy, sx, sy])

    def _box3d(self, v: np.ndarray) -> Box3D:
        o = self.config.outputs
        x, y, z = v[:3]
        if o.box_format == "xyzlwhr":
            length, width, height = v[3], v[4], v[5]
        else:  # xyzwlhr
            width, length, height = v[3], v[4], v[5]
        if o.z_origin == "bottom":
            z = z + height / 2.0
        return Box3D.from_yaw([x, y, z], [length, width, height], float(v[6]))
