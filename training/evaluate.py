"""Evaluate a spatial VLM on held-out simulated scenes: 3D grounding and spatial VQA.

    python -m training.evaluate --model models/default --frames 60 --out runs/eval_default
    python -m training.evaluate --random-init default --frames 60 --out runs/eval_random

Held-out frames are simulated tabletop scenes from the ``test`` seed range (never used by
``training.generate_data --split train``), each with a LiDAR scan. Per frame:

- 3D grounding of every object whose caption is unique in view (visible >= 30 %), through the
  product path (``SpatialEngine.ground``): with the LiDAR specialist's candidates in the prompt
  (and fusion), and without candidates; and with candidates by the model alone
  (``referring: model``: the caption goes to the model, not to the grounding program, which
  answers most captions without it), which measures the model's own selection. Acc@IoU
  0.25 / 0.5 = share of queries whose returned box (base_link) has 3D IoU >= 0.25 / 0.5 with the
  truth; a query with no returned box counts as a miss. Parse-failure rate = unparseable
  answers / queries. ``candidate_ceiling_iou25``: share of queries for which some LiDAR
  candidate has IoU >= 0.25 with the truth (the most that selecting a candidate can reach).
- Spatial VQA on generated questions (``spatial_ros.spatial.qa``): (a) *grounded*: the package's
  ``ask`` path — ground the named objects with candidates, answer with the predicates; (b)
  *direct*: the model's own text answer to the question. Qualitative accuracy; quantitative: share
  of answers with a number, within [0.5x, 2x], within +-25 % and +-10 % of the truth.

Writes ``metrics.json`` and ``metrics.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from spatial_ros.errors import SpatialRosError

log = logging.getLogger("training.evaluate")


def held_out_frames(n: int, start: int = 0):
    """Held-out tabletop frames (test seed range) with LiDAR scans."""
    from spatial_ros.sim import SimConfig
    from spatial_ros.sim.world import make_episode, render
    from training.generate_data import SPLIT_SEED_BASE

    for i in range(start, start + n):
        seed = SPLIT_SEED_BASE["test"] + 500_000 + i
        ep = make_episode(SimConfig(scenario="tabletop", seed=seed, vary_rig=True), 0)
        yield render(ep.scene, seed=seed, lidar=True)


def _unique_visible(truth, min_visible: float = 0.3):
    caps = [o.caption for o in truth.objects if o.box_2d is not None]
    return [o for o in truth.objects if o.box_2d is not None
            and o.visible_fraction >= min_visible and caps.count(o.caption) == 1]


def _quant_scores(pred: float | None, true: float) -> dict:
    if pred is None or not np.isfinite(pred):
        return {"number": 0, "x2": 0, "p25": 0, "p10": 0}
    t = abs(true)
    r = abs(pred) / t if t > 0 else np.inf
    return {"number": 1, "x2": int(0.5 <= r <= 2.0), "p25": int(abs(pred - true) <= 0.25 * t),
            "p10": int(abs(pred - true) <= 0.10 * t)}


def _qual_correct(pair, answer_text: str | None, grounded_pair=None) -> int:
    from spatial_ros.spatial.answers import parse_choice, parse_yes_no

    if grounded_pair is not None:
        if isinstance(pair.value, bool):
            return int(grounded_pair.value is pair.value)
        return int(grounded_pair.choice is not None and pair.choice is not None
                   and grounded_pair.choice.lower() == pair.choice.lower())
    if answer_text is None:
        return 0
    if isinstance(pair.value, bool):
        return int(parse_yes_no(answer_text) is pair.value)
    opts = [pair.subject, pair.object or ""]
    k = parse_choice(answer_text, opts)
    return int(k is not None and pair.choice is not None and opts[k].lower() ==
               pair.choice.lower())


def evaluate(backend, frames: int = 60, qa_per_frame: int = 6, seed: int = 0,
             progress: bool = True) -> dict:
    """Metrics of ``backend`` on ``frames`` held-out frames (see the module docstring)."""
    from tqdm import tqdm

    from spatial_ros.geometry.iou import iou_3d
    from spatial_ros.spatial.answers import parse_quantity
    from spatial_ros.spatial.predicates import SpatialObject, Viewpoint
    from spatial_ros.spatial.qa import QAConfig, generate_qa
    from spatial_ros.spatial.qa_answer import answer_question
    from spatial_ros.specialists import LidarSpecialist, LidarSpecialistConfig
    from spatial_ros.vlm.engine import EngineConfig, SpatialEngine
    from spatial_ros.vlm.prompts import PromptBuilder

    with_c = SpatialEngine(backend, EngineConfig())
    without = SpatialEngine(backend, EngineConfig(specialist_prompts=False, fuse=False))
    model_alone = SpatialEngine(backend, EngineConfig(referring="model"))
    lidar = LidarSpecialist(LidarSpecialistConfig.preset("tabletop"))
    rng = np.random.default_rng(seed)
    g = defaultdict(list)
    vqa = {"grounded": defaultdict(list), "direct": defaultdict(list)}
    lat = []
    for f in tqdm(held_out_frames(frames), total=frames, desc="held-out frames",
                  disable=not progress):
        sf = f.sensor_frame()
        objs = _unique_visible(f.truth)
        if not objs:
            continue
        cands = lidar.propose_frame(sf, "base_link")
        queries = [o.caption for o in objs]
        t0 = time.perf_counter()
        found_c = {o.query: o for o in with_c.ground(sf, queries, cands, "base_link")}
        lat.append((time.perf_counter() - t0) * 1e3)
        found_n = {o.query: o for o in without.ground(sf, queries, None, "base_link")}
        found_m = {o.query: o for o in model_alone.ground(sf, queries, cands, "base_link")}
        for o in objs:
            # the ceiling of selection: does any LiDAR candidate match this object?
            g["candidate_ceiling"].append(max((iou_3d(c.box, o.box) for c in cands),
                                              default=0.0))
            for name, found in (("with_candidates", found_c), ("without_candidates", found_n),
                                ("with_candidates_model_alone", found_m)):
                p = found.get(o.caption)
                iou = iou_3d(p.box, o.box) if p is not None else 0.0
                g[name].append(iou)
        # -- spatial VQA -----------------------------------------------------------------
        T = sf.transforms.lookup("base_link", sf.camera.frame_id)
        vp = Viewpoint.from_camera_pose(T)
        truth_objs = [SpatialObject(o.caption.removeprefix("the "), o.box, id=o.id)
                      for o in objs]
        pairs = generate_qa(truth_objs, vp, rng, qa_per_frame, QAConfig())
        if not pairs:
            continue
        grounded = [SpatialObject(o.caption.removeprefix("the "), found_c[o.caption].box,
                                  id=o.id) for o in objs if o.caption in found_c]
        builder = PromptBuilder(with_c.codec)
        convs = [builder._first_user(p.question, None) for p in pairs]
        res = backend.generate([sf.image], convs, 48)
        for p, r in zip(pairs, res, strict=True):
            try:
                gp = answer_question(p.question, grounded, vp) if grounded else None
            except SpatialRosError:
                gp = None
            kind = "qualitative" if p.qualitative else "quantitative"
            if p.qualitative:
                vqa["grounded"][kind].append(_qual_correct(p, None, gp) if gp else 0)
                vqa["direct"][kind].append(_qual_correct(p, r.text))
            elif p.unit == "m" and isinstance(p.value, float):
                gv = gp.value if gp is not None and isinstance(gp.value, float) else None
                vqa["grounded"][kind].append(_quant_scores(gv, p.value))
                vqa["direct"][kind].append(_quant_scores(parse_quantity(r.text), p.value))
    out: dict = {"frames": frames, "grounding": {}, "vqa": {}}
    ceiling = np.asarray(g.pop("candidate_ceiling", []))
    for name, ious in g.items():
        a = np.asarray(ious)
        out["grounding"][name] = {"queries": int(a.size),
                                  "acc_iou25": float((a >= 0.25).mean()) if a.size else 0.0,
                                  "acc_iou50": float((a >= 0.5).mean()) if a.size else 0.0,
                                  "mean_iou": float(a.mean()) if a.size else 0.0}
    if ceiling.size:
        # share of queries some listed candidate could answer (IoU >= 0.25): the most that
        # selecting among the LiDAR specialist's boxes can reach
        out["grounding"]["with_candidates"]["candidate_ceiling_iou25"] = float(
            (ceiling >= 0.25).mean())
    for eng, name in ((with_c, "with_candidates"), (without, "without_candidates"),
                      (model_alone, "with_candidates_model_alone")):
        q = max(eng.stats.queries, 1)
        out["grounding"].setdefault(name, {})["parse_failure_rate"] = \
            eng.stats.parse_failures / q
        out["grounding"][name]["failure_reasons"] = dict(eng.stats.failure_reasons)
        # answers naming a tag the prompt did not hold, asked again without the list
        out["grounding"][name]["retry_rate"] = eng.stats.retries / q
        # answers naming a tag the prompt did not hold, resolved to the likeliest listed tag
        # sharing a word with it (EngineConfig.unknown_tag = rank)
        out["grounding"][name]["ranked_rate"] = eng.stats.ranked / q
    for path, d in vqa.items():
        ql = d["qualitative"]
        qn = d["quantitative"]
        out["vqa"][path] = {
            "qualitative_n": len(ql),
            "qualitative_acc": float(np.mean(ql)) if ql else 0.0,
            "quantitative_n": len(qn),
            **{f"quantitative_{k}": float(np.mean([s[k] for s in qn])) if qn else 0.0
               for k in ("number", "x2", "p25", "p10")},
        }
    if lat:
        out["latency_ms_per_frame_with_candidates"] = {
            "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95))}
    return out


def plot(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    gr = metrics["grounding"]
    names = list(gr)
    x = np.arange(len(names))
    ax[0].bar(x - 0.2, [gr[n]["acc_iou25"] for n in names], 0.4, label="Acc@IoU0.25")
    ax[0].bar(x + 0.2, [gr[n]["acc_iou50"] for n in names], 0.4, label="Acc@IoU0.5")
    ax[0].set_xticks(x, [n.replace("_", " ") for n in names])
    ax[0].set_ylim(0, 1)
    ax[0].set_title("3D grounding (held-out tabletop)")
    ax[0].legend()
    keys = ["qualitative_acc", "quantitative_number", "quantitative_x2",
            "quantitative_p25", "quantitative_p10"]
    x = np.arange(len(keys))
    for k, (path_name, d) in enumerate(metrics["vqa"].items()):
        ax[1].bar(x + (k - 0.5) * 0.4, [d[q] for q in keys], 0.4, label=path_name)
    ax[1].set_xticks(x, ["qual. acc", "has number", "[0.5x,2x]", "±25 %", "±10 %"])
    ax[1].set_ylim(0, 1)
    ax[1].set_title("spatial VQA")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.evaluate",
                                 description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="local model folder")
    src.add_argument("--random-init", choices=["default", "test"],
                     help="evaluate a random-init tiny model of this preset (for contrast)")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--qa-per-frame", type=int, default=6)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads of the model (0 = auto: 1 on <= 2 cores)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from spatial_ros.vlm.backend import TransformersBackend

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    model = a.model
    if a.random_init:
        from spatial_ros.vlm.tiny import build_tiny_vlm

        model = str(build_tiny_vlm(out / "random_init", a.random_init))
    try:
        backend = TransformersBackend(model, threads=a.threads)
        m = evaluate(backend, a.frames, a.qa_per_frame)
    except SpatialRosError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    m["model"] = model
    (out / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
    plot(m, out / "metrics.png")
    print(json.dumps({k: m[k] for k in ("grounding", "vqa")}, indent=1))
    print(f"wrote {out / 'metrics.json'} and {out / 'metrics.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
