"""Object category from a candidate's 3D shape: its box extents and the layout of its points.

A mug and a box of one colour have nearly the same extents; what tells them apart to a range
sensor is the shape of the surface it sees — an arc (cylinder) or flat faces (cuboid), a flat
top or a rim, a neck (bottle) or a dome (ball). ``shape_features`` turns a candidate into a
few such numbers, all in the box's own frame:

====  ===========================================================================
 0-2  log height, log length, log width (metres; length >= width, horizontal)
 3-4  log(height / length), log(length / width)
 5    flat top: share of the points within 1 cm of the highest point
 6    neck: log(radius of the top fifth / radius of the middle), radius = the 90th
      percentile of the points' horizontal distance from the box's vertical axis
 7    foot: log(radius of the bottom fifth / radius of the middle)
 8    roundness: RMS residual of a circle fitted to the points seen from above, / radius
 9    log(fitted circle radius / half the length)
10    faces: share of the points within 6 mm of the box's vertical sides
====  ===========================================================================

A softmax regression over these features and their squares gives P(category | shape). Its
weights are learned from simulated tabletop LiDAR clusters by ``python -m
training.shape_classifier`` (the command, seeds and held-out accuracy are stored with the
weights in ``data/shape_tabletop.json``); an extents-only model serves candidates without
points. Only the tabletop domain has a learned model: street and indoor categories use the
extents priors of ``language.categories`` and the specialist's class label.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from spatial_ros.types import Box3D

FEATURES = ("log_h", "log_len", "log_wid", "log_h_over_len", "log_len_over_wid", "flat_top",
            "neck", "foot", "roundness", "log_circle_radius", "faces")
EXTENT_FEATURES = FEATURES[:5]
MIN_POINTS = 8
DATA = Path(__file__).with_name("data") / "shape_tabletop.json"


def shape_features(box: Box3D, points: np.ndarray | None) -> np.ndarray:
    """The feature vector of a gravity-aligned box and its (N, 3) points in the box's frame
    (metres); NaN for the point features when fewer than ``MIN_POINTS`` points are given."""
    s = np.asarray(box.size, dtype=np.float64)
    h = max(float(s[2]), 1e-3)
    L, W = max(float(s[0]), float(s[1]), 1e-3), max(min(float(s[0]), float(s[1])), 1e-3)
    f = [np.log(h), np.log(L), np.log(W), np.log(h / L), np.log(L / W)]
    if points is None or len(points) < MIN_POINTS:
        return np.array(f + [np.nan] * 6)
    Q = (np.asarray(points, dtype=np.float64)[:, :3] - box.center) @ box.rotation
    z = Q[:, 2]
    zt, zb = float(z.max()), float(z.min())
    H = max(zt - zb, 1e-3)
    top = float(np.mean(z > zt - 0.01))
    r = np.hypot(Q[:, 0], Q[:, 1])

    def band(lo: float, hi: float) -> float:
        m = (z >= zb + lo * H) & (z <= zb + hi * H)
        return float(np.percentile(r[m], 90)) if m.sum() >= 3 else np.nan

    mid = band(0.3, 0.6)
    neck = band(0.8, 1.0) / mid if mid > 0 else np.nan
    foot = band(0.0, 0.2) / mid if mid > 0 else np.nan
    x, y = Q[:, 0], Q[:, 1]
    A = np.c_[2 * x, 2 * y, np.ones_like(x)]
    c, *_ = np.linalg.lstsq(A, x ** 2 + y ** 2, rcond=None)
    R = float(np.sqrt(max(c[2] + c[0] ** 2 + c[1] ** 2, 1e-9)))
    res = float(np.sqrt(np.mean((np.hypot(x - c[0], y - c[1]) - R) ** 2))) / max(R, 1e-3)
    dx, dy = s[0] / 2 - np.abs(x), s[1] / 2 - np.abs(y)
    faces = float(np.mean(np.minimum(dx, dy) < 0.006))
    return np.array(f + [top, _log(neck), _log(foot), min(res, 1.0),
                         _log(R / (L / 2)), faces])


def _log(v: float) -> float:
    return float(np.log(np.clip(v, 0.05, 20.0))) if np.isfinite(v) else np.nan


class ShapeClassifier:
    """Softmax regression P(category | features) over ``FEATURES`` (or ``EXTENT_FEATURES``)
    and their squares, features standardised with the stored mean and scale."""

    def __init__(self, classes, mean, scale, weights, features=FEATURES, meta=None):
        self.classes = tuple(classes)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.features = tuple(features)
        self.meta = dict(meta or {})

    def _design(self, X: np.ndarray) -> np.ndarray:
        Z = (np.nan_to_num(X, nan=0.0) - self.mean) / self.scale
        Z = np.where(np.isnan(X), 0.0, Z)  # a missing feature sits at the mean
        return np.c_[Z, Z ** 2, np.ones(len(Z))]

    def proba(self, X: np.ndarray) -> np.ndarray:
        """(N, C) class probabilities of (N, F) features."""
        S = self._design(np.atleast_2d(X)) @ self.weights
        S -= S.max(axis=1, keepdims=True)
        P = np.exp(S)
        return P / P.sum(axis=1, keepdims=True)

    @classmethod
    def fit(cls, X: np.ndarray, labels, features=FEATURES, l2: float = 1e-3,
            steps: int = 4000, lr: float = 0.5, meta=None) -> ShapeClassifier:
        """Full-batch gradient descent on the L2-regularised cross entropy (a convex
        problem: small data, no library needed beyond numpy)."""
        X = np.asarray(X, dtype=np.float64)
        classes = sorted(set(labels))
        y = np.array([classes.index(c) for c in labels])
        mean = np.nanmean(X, axis=0)
        scale = np.nanstd(X, axis=0) + 1e-9
        model = cls(classes, mean, scale, np.zeros((2 * X.shape[1] + 1, len(classes))),
                    features, meta)
        A = model._design(X)
        Y = np.eye(len(classes))[y]
        W = model.weights
        for _ in range(steps):
            S = A @ W
            S -= S.max(axis=1, keepdims=True)
            P = np.exp(S)
            P /= P.sum(axis=1, keepdims=True)
            W -= lr * (A.T @ (P - Y) / len(A) + l2 * W)
        model.weights = W
        return model

    def to_json(self) -> dict:
        return {"classes": list(self.classes), "features": list(self.features),
                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "weights": self.weights.tolist(), "meta": self.meta}

    @classmethod
    def from_json(cls, d: dict) -> ShapeClassifier:
        return cls(d["classes"], d["mean"], d["scale"], d["weights"], d["features"],
                   d.get("meta"))


@functools.lru_cache(maxsize=4)
def tabletop_models(path: str = str(DATA)) -> tuple[ShapeClassifier, ShapeClassifier] | None:
    """(with points, extents only) classifiers of the tabletop domain, or None when the
    weights file is missing (then categories fall back to the extents priors)."""
    p = Path(path)
    if not p.exists():
        return None
    d = json.loads(p.read_text())
    return ShapeClassifier.from_json(d["points"]), ShapeClassifier.from_json(d["extents"])


def tabletop_posterior(box: Box3D, points: np.ndarray | None) -> dict[str, float] | None:
    """P(category | shape) over the tabletop classes (incl. "gripper" and "other"), or None
    without a model."""
    models = tabletop_models()
    if models is None:
        return None
    f = shape_features(box, points)
    if np.isnan(f[5:]).any():
        m = models[1]
        p = m.proba(f[None, :len(EXTENT_FEATURES)])[0]
    else:
        m = models[0]
        p = m.proba(f[None])[0]
    return dict(zip(m.classes, (float(v) for v in p), strict=True))
