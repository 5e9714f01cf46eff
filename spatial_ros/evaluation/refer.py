"""Referring-expression accuracy by query kind (``spatial-ros bench refer``).

Input: a query file (JSON Lines written by ``python -m training.refqueries``): one line per
query with ``frame`` ("sim:<scenario>:<seed>" or "kitti:<frame id>"), ``query``, ``kind``,
``subkind``, ``expected`` (the object id, null for a query that should be reported
ambiguous). Frames are rebuilt from their key (simulated scenes are deterministic; KITTI frames
are read from ``kitti_root``), the scenario's LiDAR specialist proposes candidates, and the
engine grounds every query of a frame in one call, as the node does.

Per kind: Acc@IoU0.25 / 0.5 (the returned box against the expected object's true box; no box
is a miss), the candidate ceiling (share of queries for which some candidate has IoU >= 0.25
with the expected object), and for ambiguous queries the share reported as ambiguous. Each row
also names the true object the answer landed on (``returned``), for reading the failures.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spatial_ros.errors import DataError
from spatial_ros.types import Box3D, SensorFrame


@dataclass
class EvalFrame:
    """A frame to ground on: the sensor frame, the true boxes by object id (z-up frame
    ``frame_id``), the scenario (specialist preset)."""

    sensor: SensorFrame
    truth: dict[str, Box3D]
    scenario: str
    frame_id: str
    categories: dict[str, list[str]] | None = None


def sim_eval_frame(scenario: str, seed: int) -> tuple[EvalFrame, object]:
    """A fresh simulated scene (``vary_rig``) with a LiDAR scan: (EvalFrame, SimFrame)."""
    from spatial_ros.sim import SimConfig
    from spatial_ros.sim.world import make_episode, render

    ep = make_episode(SimConfig(scenario=scenario, seed=int(seed), vary_rig=True), 0)
    f = render(ep.scene, seed=int(seed), lidar=True)
    truth = {o.id: o.box for o in f.truth.objects}
    return EvalFrame(f.sensor_frame(), truth, scenario, "base_link"), f


def kitti_eval_frame(root: str | Path, frame_id: str) -> EvalFrame:
    """A KITTI frame; truth ids ``label_<k>`` (k = line of label_2), Velodyne-frame boxes."""
    from spatial_ros.datasets.kitti import iter_kitti_frames

    for kf in iter_kitti_frames(root):
        if kf.frame_id == frame_id:
            truth = {f"label_{k}": lab.box for k, lab in enumerate(kf.labels)
                     if not lab.is_dontcare and lab.box is not None}
            sf = kf.sensor_frame()
            return EvalFrame(sf, truth, "street", sf.points_frame)
    raise DataError(f"KITTI frame {frame_id} not found under {root}")


@dataclass
class QueryRecord:
    """One query of a query file (``python -m training.refqueries`` writes them)."""

    frame: str
    query: str
    kind: str
    subkind: str
    expected: str | None
    ambiguous: bool = False


def read_query_file(path: str | Path) -> list[QueryRecord]:
    """The records of a query file (JSON Lines); DataError names a bad line."""
    import json

    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(QueryRecord(**json.loads(line)))
        except (ValueError, TypeError) as e:
            raise DataError(f"{path}:{n}: not a query record ({e})") from None
    return out


def load_frame(key: str, kitti_root: str | Path | None = None) -> EvalFrame:
    kind, _, rest = key.partition(":")
    if kind == "sim":
        scenario, _, seed = rest.partition(":")
        ef, sim = sim_eval_frame(scenario, int(seed))
        ef.categories = {}  # category -> ids of its objects in view (for opposite-word checks)
        for o in sim.truth.objects:
            if o.box_2d is not None and o.visible_fraction >= 0.3:
                ef.categories.setdefault(o.category, []).append(o.id)
        return ef
    if kind == "kitti":
        if kitti_root is None:
            raise DataError(f"frame {key!r} needs --kitti (the KITTI folder)")
        return kitti_eval_frame(kitti_root, rest)
    raise DataError(f"unknown frame key {key!r}: expected sim:<scenario>:<seed> or kitti:<id>")


def evaluate_refer(records: Iterable, engine, kitti_root=None, progress: bool = True,
                   lidar_config=None, per_call: int = 8) -> dict:
    """Metrics by kind (module docstring) for ``records`` (QueryRecord-like objects); a
    frame's queries go to the engine ``per_call`` at a time (the latency is per call)."""
    from tqdm import tqdm

    from spatial_ros.geometry.iou import iou_3d
    from spatial_ros.specialists import LidarSpecialist, LidarSpecialistConfig

    by_frame: dict[str, list] = defaultdict(list)
    for r in records:
        by_frame[r.frame].append(r)
    rows = []
    lat = []
    opposite = {"pairs": 0, "same": 0}
    specialists: dict[str, object] = {}
    for key in tqdm(sorted(by_frame), desc="frames", disable=not progress):
        ef = load_frame(key, kitti_root)
        sp = specialists.get(ef.scenario)
        if sp is None:
            cfg = lidar_config or LidarSpecialistConfig.preset(ef.scenario)
            sp = specialists[ef.scenario] = LidarSpecialist(cfg)
        cands = sp.propose_frame(ef.sensor, ef.frame_id)
        recs = by_frame[key]
        got = {}
        for s in range(0, len(recs), per_call):
            t0 = time.perf_counter()
            objs = engine.ground(ef.sensor, [r.query for r in recs[s:s + per_call]], cands,
                                 ef.frame_id)
            lat.append((time.perf_counter() - t0) * 1e3)
            got.update({s + int(o.id[1:]): o for o in objs})
        _opposites(engine, ef, cands, opposite)
        for k, r in enumerate(recs):
            o = got.get(k)
            row = {"kind": r.kind, "subkind": r.subkind, "query": r.query, "frame": key,
                   "expected": r.expected, "explanation": getattr(o, "explanation", "")}
            if r.expected is None:
                row["ambiguous_flagged"] = bool(o is None or getattr(o, "ambiguous", False))
            else:
                truth = ef.truth[r.expected]
                row["iou"] = iou_3d(o.box, truth) if o is not None else 0.0
                row["ceiling"] = max((iou_3d(c.box, truth) for c in cands), default=0.0)
                row["returned"] = _returned(o, ef.truth)
            rows.append(row)
    out = summarise(rows, lat)
    out["opposite_words_same_object"] = opposite
    return out


def _returned(o, truth: dict[str, Box3D]) -> str | None:
    """The id of the true object the returned box matches best (IoU >= 0.25), None when it
    matches none (no answer, or a box on something unlabelled)."""
    from spatial_ros.geometry.iou import iou_3d

    if o is None or not truth:
        return None
    iou, oid = max((iou_3d(o.box, b), k) for k, b in truth.items())
    return oid if iou >= 0.25 else None


_OPPOSITES = (("the {c} on the left", "the {c} on the right"),
              ("the nearest {c}", "the farthest {c}"))


def _opposites(engine, ef: EvalFrame, cands, tally: dict) -> None:
    """For every category with two or more objects in view: do "on the left" / "on the right"
    and "nearest" / "farthest" return different objects? (``tally``: pairs asked, pairs that
    returned the same object)."""
    for cat, ids in (ef.categories or {}).items():
        if len(ids) < 2 or cat == "gripper":
            continue
        for a, b in _OPPOSITES:
            objs = engine.ground(ef.sensor, [a.format(c=cat), b.format(c=cat)], cands,
                                 ef.frame_id)
            if len(objs) == 2:
                res = getattr(engine, "last_resolutions", {}).get(0)
                one = res is not None and len(res.members) < 2  # one detected: nothing to pick
                tally["pairs"] += 1
                same = np.allclose(objs[0].box.center, objs[1].box.center)
                tally["same"] += int(same)
                tally["same_one_candidate"] = tally.get("same_one_candidate", 0) + int(
                    same and one)


def summarise(rows: list[dict], lat: list[float]) -> dict:
    kinds: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        kinds[r["kind"]].append(r)
    out: dict = {"kinds": {}, "rows": rows}
    for kind, rs in sorted(kinds.items()):
        if kind == "ambiguous":
            out["kinds"][kind] = {"n": len(rs), "flagged": float(np.mean(
                [r["ambiguous_flagged"] for r in rs]))}
            continue
        iou = np.array([r["iou"] for r in rs])
        ceil = np.array([r["ceiling"] for r in rs])
        acc25 = float((iou >= 0.25).mean())
        c25 = float((ceil >= 0.25).mean())
        out["kinds"][kind] = {"n": len(rs), "acc_iou25": acc25,
                              "acc_iou50": float((iou >= 0.5).mean()), "ceiling_iou25": c25,
                              "of_ceiling": acc25 / c25 if c25 else 0.0,
                              "acc_where_ceiling": float((iou[ceil >= 0.25] >= 0.25).mean())
                              if (ceil >= 0.25).any() else 0.0}
    if lat:
        out["latency_ms_per_frame"] = {"p50": float(np.percentile(lat, 50)),
                                       "p95": float(np.percentile(lat, 95)),
                                       "frames": len(lat)}
    return out


def format_table(metrics: dict) -> str:
    lines = [f"{'kind':16s} {'n':>5s} {'Acc@.25':>8s} {'Acc@.5':>7s} {'ceiling':>8s} "
             f"{'of ceil.':>8s}"]
    for kind, m in metrics["kinds"].items():
        if kind == "ambiguous":
            lines.append(f"{kind:16s} {m['n']:5d} flagged ambiguous {m['flagged']:.1%}")
            continue
        lines.append(f"{kind:16s} {m['n']:5d} {m['acc_iou25']:8.1%} {m['acc_iou50']:7.1%} "
                     f"{m['ceiling_iou25']:8.1%} {m['of_ceiling']:8.1%}")
    opp = metrics.get("opposite_words_same_object")
    if opp and opp["pairs"]:
        lines.append(f"opposite words (left/right, nearest/farthest) returning the same object: "
                     f"{opp['same']} of {opp['pairs']} pairs ({opp.get('same_one_candidate', 0)} "
                     "where the specialist found only one object of the category)")
    if "latency_ms_per_frame" in metrics:
        lm = metrics["latency_ms_per_frame"]
        # one engine call per ``per_call`` queries of a frame (the JSON key predates this)
        lines.append(f"latency per engine call: p50 {lm['p50']:.0f} ms, p95 {lm['p95']:.0f} ms "
                     f"({lm['frames']} calls)")
    return "\n".join(lines)
