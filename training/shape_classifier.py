"""Learn the tabletop shape classifier (``spatial_ros.language.shape``) from simulated scenes.

    python -m training.shape_classifier --frames 200 \
        --out spatial_ros/language/data/shape_tabletop.json

Scenes come from the ``train`` seed range (fresh scene and camera rig per seed, as
``generate_data``); each is scanned by the LiDAR specialist with its tabletop preset, and each
cluster is labelled with the category of the true object it overlaps (3D IoU >= 0.3), or
"other". Two softmax regressions are fitted: on all shape features (clusters with points) and
on the box extents alone. Held-out accuracy is measured on ``test``-range scenes never used
for anything else and stored with the weights, with the exact command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from spatial_ros.language.shape import EXTENT_FEATURES, FEATURES, ShapeClassifier, shape_features

HELD_OUT_OFFSET = 700_000


def clusters(seeds, progress: bool = True) -> tuple[np.ndarray, list[str]]:
    """(features, labels) of the LiDAR specialist's clusters on the scenes of ``seeds``."""
    from tqdm import tqdm

    from spatial_ros.evaluation.refer import sim_eval_frame
    from spatial_ros.geometry.iou import iou_3d
    from spatial_ros.specialists import LidarSpecialist, LidarSpecialistConfig

    sp = LidarSpecialist(LidarSpecialistConfig.preset("tabletop"))
    X, y = [], []
    for seed in tqdm(list(seeds), desc="scenes", disable=not progress):
        ef, f = sim_eval_frame("tabletop", int(seed))
        for c in sp.propose_frame(ef.sensor, "base_link"):
            iou, obj = max(((iou_3d(c.box, o.box), o) for o in f.truth.objects),
                           key=lambda t: t[0], default=(0.0, None))
            X.append(shape_features(c.box, c.points))
            y.append(obj.category if obj is not None and iou >= 0.3 else "other")
    return np.array(X), y


def main(argv: list[str] | None = None) -> int:
    from training.generate_data import SPLIT_SEED_BASE

    ap = argparse.ArgumentParser(prog="python -m training.shape_classifier",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200, help="training scenes")
    ap.add_argument("--held-out", type=int, default=60, help="held-out scenes")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    t0 = time.time()
    train = range(SPLIT_SEED_BASE["train"], SPLIT_SEED_BASE["train"] + a.frames)
    test0 = SPLIT_SEED_BASE["test"] + HELD_OUT_OFFSET
    X, y = clusters(train)
    Xt, yt = clusters(range(test0, test0 + a.held_out))
    ok = ~np.isnan(X[:, 5:]).any(axis=1)
    command = "python -m training.shape_classifier " + " ".join(argv or sys.argv[1:])
    out = {}
    for name, cols, rows in (("points", FEATURES, ok), ("extents", EXTENT_FEATURES, None)):
        k = len(cols)
        Xi = X[rows][:, :k] if rows is not None else X[:, :k]
        yi = [v for v, r in zip(y, rows if rows is not None else [True] * len(y), strict=True)
              if r]
        model = ShapeClassifier.fit(Xi, yi, cols)
        pred = [model.classes[i] for i in model.proba(Xt[:, :k]).argmax(axis=1)]
        acc = float(np.mean([p == t for p, t in zip(pred, yt, strict=True)]))
        confusions = Counter((t, p) for p, t in zip(pred, yt, strict=True) if p != t)
        model.meta = {"command": command, "train_scenes": a.frames, "train_clusters": len(yi),
                      "held_out_scenes": a.held_out, "held_out_clusters": len(yt),
                      "held_out_accuracy": round(acc, 4),
                      "confusions": [f"{t}->{p}: {n}" for (t, p), n in
                                     confusions.most_common(8)]}
        out[name] = model.to_json()
        print(f"{name}: held-out accuracy {acc:.1%} on {len(yt)} clusters; "
              f"confusions {dict(confusions.most_common(5))}")
    p = Path(a.out)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")
    tmp.replace(p)
    print(f"wrote {p} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
