"""Referring-expression queries with known answers, generated from 3D truth.

    python -m training.refqueries --scenario tabletop --frames 60 --out runs/q_tabletop.jsonl
    python -m training.refqueries --scenario street --frames 60 --out runs/q_street.jsonl
    python -m training.refqueries --kitti ../shared/data/real --out runs/q_kitti.jsonl

One JSON line per query: ``{"frame": "sim:tabletop:<seed>" | "kitti:<dir>", "query", "kind",
"subkind", "expected": object id | null, "ambiguous": bool}`` (ids: the simulator's object ids,
or ``label_<k>`` for the k-th KITTI label). ``spatial-ros bench refer`` scores a model on such a
file; ``generate_data``'s ``refer`` task trains on the same generator (train seeds).

Kinds: ``caption`` (the simulator's own caption), ``colour_synonym``, ``noun_synonym``,
``both_synonyms``, ``word_order``, ``casual`` (paraphrases of a unique caption), ``viewer``
(left/right/nearest/farthest/highest/lowest/middle), ``ordinal`` ("the second box from the
left"), ``comparative`` ("the bigger of the two boxes", "the tallest bottle"), ``relation``
("the box to the left of the yellow can", "next to", "between", "in front of", "behind"),
``ambiguous`` (the words fit several objects; expected null).

The meaning of each spatial word is computed here from the truth, independently of the
grounding code, and a query is written only when its answer holds with a margin under every
reasonable reading (e.g. "on the left" by image column AND by sideways metres; in evaluation
files an order also counting only the objects at least 30 % visible, so that a person hidden
behind a car does not decide which one is "the second closest"), so that a definitional nuance
cannot decide a score.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from spatial_ros.evaluation.refer import QueryRecord, read_query_file
from training.refwords import COLOUR_SYNONYMS, NOUN_SYNONYMS, caption, noun_phrase

KINDS = ("caption", "colour_synonym", "noun_synonym", "both_synonyms", "word_order", "casual",
         "viewer", "ordinal", "comparative", "relation", "ambiguous")
PARAPHRASE_KINDS = ("colour_synonym", "noun_synonym", "both_synonyms", "word_order", "casual")
SPATIAL_KINDS = ("viewer", "ordinal", "comparative", "relation")
NOT_QUERIED = ("gripper",)
SEEN = 0.3  # visible fraction from which an object counts as seen (and may be a query's answer)
MIDDLE = "middle"  # ``_Gen._clear_pick`` position: the middle one of an odd number


@dataclass
class TruthObject:
    """One object in view: id, category, colour term, box in the z-up frame, box centre in the
    camera optical frame (metres), visible fraction."""

    id: str
    category: str
    colour: str
    box: object  # Box3D, z-up
    center_optical: np.ndarray
    visible: float = 1.0

    @property
    def bearing(self) -> float:
        return float(self.center_optical[0] / max(self.center_optical[2], 1e-6))

    @property
    def range(self) -> float:
        return float(np.linalg.norm(self.center_optical))


class _Gen:
    """Query generator over one frame's truth (see the module docstring)."""

    def __init__(self, objs: list[TruthObject], frame: str, rng, tabletop: bool,
                 right_axis: np.ndarray, seen_reading: bool = False):
        self.all = [o for o in objs if o.category not in NOT_QUERIED]
        self.targets = [o for o in self.all if o.visible >= SEEN]
        # orders (extremes, ordinals, the middle, comparatives) also read as counting only
        # the objects visible enough to be seen: "the second closest pedestrian" is another
        # one when the closest stands 95 % hidden behind a car (evaluation files; training
        # data keeps the one reading it was made with)
        self.seen_reading = seen_reading
        self.frame = frame
        self.rng = rng
        self.scale = 0.03 if tabletop else 0.8  # metres: a clear difference
        self.right = right_axis  # horizontal right axis of the camera in the z-up frame

    def rec(self, q, kind, sub, o, amb=False):
        return QueryRecord(self.frame, q, kind, sub, None if o is None else o.id, amb)

    def same_cat(self, cat):
        return [o for o in self.all if o.category == cat]

    def unique_caption(self, o) -> bool:
        return sum(1 for p in self.all if p.category == o.category
                   and (p.colour == o.colour or o.category == "pole")) == 1

    # -- paraphrases --------------------------------------------------------------------------

    def paraphrases(self) -> list[QueryRecord]:
        out = []
        rng = self.rng
        for o in self.targets:
            if not self.unique_caption(o):
                continue
            out.append(self.rec(caption(o.category, o.colour), "caption", "caption", o))
            if o.category == "pole":
                continue
            cs = COLOUR_SYNONYMS.get(o.colour, ())
            ns = NOUN_SYNONYMS.get(o.category, ())
            if cs:
                out.append(self.rec(noun_phrase(o.category, o.colour, rng.choice(cs)),
                                    "colour_synonym", "colour", o))
            if ns:
                out.append(self.rec(noun_phrase(o.category, o.colour, None, rng.choice(ns)),
                                    "noun_synonym", "noun", o))
            if cs and ns:
                out.append(self.rec(noun_phrase(o.category, o.colour, rng.choice(cs),
                                                rng.choice(ns)), "both_synonyms", "both", o))
            n = rng.choice((o.category,) + ns)
            if o.category in ("pedestrian", "cyclist"):
                forms = (f"the {n} wearing {o.colour}", f"the {n} dressed in {o.colour}",
                         f"the {n} who is in {o.colour}")
            else:
                forms = (f"the {n} that is {o.colour}", f"the {n} which is {o.colour}",
                         f"the {o.colour}-coloured {n}", f"the {n} painted {o.colour}")
            out.append(self.rec(str(rng.choice(forms)), "word_order", "order", o))
            c = rng.choice((o.colour,) + cs)
            if o.category in ("pedestrian", "cyclist"):
                casual = (f"that {n} in {c}", f"find the {n} in {c}", f"{n} in {c} please")
            else:
                casual = (f"that {c} {n}", f"{c} {n}", f"find the {c} {n}",
                          f"where is the {c} {n}?", f"the {c} {n} please", f"gimme that {c} {n}")
            out.append(self.rec(str(rng.choice(casual)), "casual", "casual", o))
        return out

    # -- viewer-relative, ordinal, comparative ----------------------------------------------

    def _lateral(self, o) -> float:
        return float(np.asarray(o.box.center) @ self.right)

    def _clear_pick(self, objs, keys_margins, k: int | str):
        """The object at position k (0 = largest key; ``MIDDLE``: the middle one of an odd
        number) when every (key, margin) ordering puts the same object there, clearly apart
        from its neighbours, and (``seen_reading``) counting only the objects visible enough
        to be seen puts the same one there too; else None."""
        groups = [objs]
        seen = [o for o in objs if o.visible >= SEEN]
        if self.seen_reading and len(seen) < len(objs):
            groups.append(seen)
        picks = []
        for group in groups:
            if k == MIDDLE:
                if len(group) % 2 == 0:
                    return None
                kk = len(group) // 2
            elif k >= len(group) or k < -len(group):
                return None
            else:
                kk = k % len(group)
            for key, margin in keys_margins:
                s = sorted(group, key=lambda o: -key(o))
                o = s[kk]
                for j in (kk - 1, kk + 1):
                    if 0 <= j < len(s) and abs(key(s[j]) - key(o)) <= margin(s[j], o):
                        return None
                picks.append(o)
        return picks[0] if all(p is picks[0] for p in picks) else None

    def spatial(self) -> list[QueryRecord]:
        out = []
        rng = self.rng
        vis = {o.id for o in self.targets}
        for cat in sorted({o.category for o in self.targets}):
            members = self.same_cat(cat)
            noun = cat
            plural = noun + ("es" if noun.endswith(("s", "x")) else "s")
            if len(members) < 2:
                continue
            n = len(members)
            # left / right: by image column AND by sideways metres
            def col_m(a, b):  # metres at the nearer object's depth -> image column
                return self.scale / max(min(a.center_optical[2], b.center_optical[2]), 1e-3)
            lr = [(lambda o: -o.bearing, col_m),
                  (lambda o: -self._lateral(o), lambda a, b: self.scale)]
            for k, sub, words in ((0, "left", ("the {n} on the left", "the leftmost {n}",
                                               "the {n} furthest to the left",
                                               "the {n} on the left side")),
                                  (-1, "right", ("the {n} on the right", "the rightmost {n}",
                                                 "the {n} farthest to the right",
                                                 "the right-most {n}"))):
                o = self._clear_pick(members, lr, k)
                if o is not None and o.id in vis:
                    out.append(self.rec(str(rng.choice(words)).format(n=noun), "viewer", sub, o))
            if n >= 3:
                k = int(rng.integers(1, n - 1))  # neither the first nor the last
                side = str(rng.choice(("left", "right")))
                o = self._clear_pick(members, lr, k if side == "left" else -1 - k)
                ordw = ("first", "second", "third", "fourth", "fifth")[k] if k < 5 else None
                if o is not None and o.id in vis and ordw:
                    out.append(self.rec(f"the {ordw} {noun} from the {side}", "ordinal",
                                        f"{ordw}_{side}", o))
                if n % 2 == 1:
                    o = self._clear_pick(members, lr, MIDDLE)
                    if o is not None and o.id in vis:
                        out.append(self.rec(f"the {noun} in the middle", "viewer", "middle", o))
            # nearest / farthest from the camera
            rg = [(lambda o: -o.range, lambda a, b: max(self.scale, 0.08 * min(a.range,
                                                                                b.range)))]
            o = self._clear_pick(members, rg, 0)
            if o is not None and o.id in vis:
                out.append(self.rec(str(rng.choice((
                    f"the closest {noun}", f"the nearest {noun}",
                    f"the {noun} closest to the camera", f"the {noun} nearest to me"))),
                    "viewer", "near", o))
            o = self._clear_pick(members, rg, -1)
            if o is not None and o.id in vis:
                out.append(self.rec(str(rng.choice((
                    f"the farthest {noun}", f"the {noun} furthest away",
                    f"the {noun} farthest from the camera", f"the most distant {noun}"))),
                    "viewer", "far", o))
            if n >= 3:
                o = self._clear_pick(members, rg, 1)
                if o is not None and o.id in vis:
                    out.append(self.rec(f"the second closest {noun}", "ordinal", "second_near",
                                        o))
            # comparatives by volume / height
            for measure, key, more, less, most, least in (
                    ("volume", lambda o: float(np.prod(o.box.size)), "bigger", "smaller",
                     "biggest", "smallest"),
                    ("height", lambda o: float(o.box.size[2]), "taller", "shorter",
                     "tallest", "shortest")):
                km = [(key, lambda a, b, k=key: 0.2 * max(k(a), k(b)))]
                pick = int(rng.integers(2))
                o = self._clear_pick(members, km, 0 if pick == 0 else -1)
                if o is None or o.id not in vis:
                    continue
                sub = f"{measure}_{'max' if pick == 0 else 'min'}"
                if n == 2:
                    w = more if pick == 0 else less
                    out.append(self.rec(str(rng.choice((f"the {w} of the two {plural}",
                                                        f"the {w} {noun}"))),
                                        "comparative", sub, o))
                else:
                    w = most if pick == 0 else least
                    out.append(self.rec(f"the {w} {noun}", "comparative", sub, o))
            # ambiguous: the bare noun with several members in view
            if all(o.visible >= SEEN for o in members):
                out.append(self.rec(f"the {noun}", "ambiguous", "bare_noun", None, True))
        return out

    # -- relations ------------------------------------------------------------------------------

    def relations(self) -> list[QueryRecord]:
        out = []
        rng = self.rng
        anchors = [a for a in self.targets if self.unique_caption(a) and a.category != "pole"]
        for a in anchors:
            acap = caption(a.category, a.colour)
            for cat in sorted({o.category for o in self.targets if o is not a}):
                members = [o for o in self.same_cat(cat) if o is not a]
                if len(members) < 2:
                    continue
                noun = cat
                # left / right of the anchor: exactly one member clearly on that side
                for side, sign in (("left", -1.0), ("right", 1.0)):
                    lat = {o.id: sign * (self._lateral(o) - self._lateral(a)) for o in members}
                    col = {o.id: sign * (o.bearing - a.bearing) for o in members}
                    yes = [o for o in members if lat[o.id] > self.scale and col[o.id] > 0]
                    no = [o for o in members if lat[o.id] < -self.scale and col[o.id] < 0]
                    if len(yes) == 1 and len(yes) + len(no) == len(members) \
                            and yes[0].visible >= SEEN:
                        out.append(self.rec(str(rng.choice((
                            f"the {noun} to the {side} of {acap}",
                            f"the {noun} {side} of {acap}",
                            f"the {noun} on the {side} side of {acap}"))), "relation",
                            f"{side}_of", yes[0]))
                # nearest to the anchor (footprint gap), clearly
                gaps = sorted((_bev_gap(o.box, a.box), o.id, o) for o in members)
                if gaps[1][0] - gaps[0][0] > max(self.scale, 0.3 * gaps[1][0]) \
                        and gaps[0][2].visible >= SEEN:
                    out.append(self.rec(str(rng.choice((
                        f"the {noun} next to {acap}", f"the {noun} closest to {acap}",
                        f"the {noun} nearest to {acap}", f"the {noun} beside {acap}"))),
                        "relation", "next_to", gaps[0][2]))
                # in front of / behind the anchor (nearer / farther along the view)
                for word, sign in (("in front of", 1.0), ("behind", -1.0)):
                    d = {o.id: sign * (a.range - o.range) for o in members}
                    yes = [o for o in members if d[o.id] > max(self.scale, 0.1 * a.range)
                           and abs(self._lateral(o) - self._lateral(a)) < 3 * self.scale + 0.5
                           * (max(a.box.size[:2]) + max(o.box.size[:2]))]
                    no = [o for o in members if d[o.id] < 0]
                    if len(yes) == 1 and len(yes) + len(no) == len(members) \
                            and yes[0].visible >= SEEN:
                        out.append(self.rec(f"the {noun} {word} {acap}", "relation",
                                            word.replace(" ", "_"), yes[0]))
        # between two anchors
        for i, a in enumerate(anchors):
            for b in anchors[i + 1:]:
                pa, pb = np.asarray(a.box.center[:2]), np.asarray(b.box.center[:2])
                ab = pb - pa
                L = float(np.linalg.norm(ab))
                if L < 4 * self.scale:
                    continue
                inside = []
                for o in self.all:
                    if o is a or o is b:
                        continue
                    p = np.asarray(o.box.center[:2])
                    t = float((p - pa) @ ab) / L ** 2
                    off = abs(float(ab[0] * (p - pa)[1] - ab[1] * (p - pa)[0])) / L
                    if 0.2 < t < 0.8 and off < 0.25 * L:
                        inside.append(o)
                    elif -0.05 < t < 1.05 and off < 0.5 * L:
                        inside.append(None)  # a near case: no clean query
                if len(inside) == 1 and inside[0] is not None and inside[0].visible >= SEEN:
                    o = inside[0]
                    noun = o.category
                    bcap = caption(b.category, b.colour)
                    acap = caption(a.category, a.colour)
                    out.append(self.rec(f"the {noun} between {acap} and {bcap}", "relation",
                                        "between", o))
        return out


def _bev_gap(a, b) -> float:
    """Gap between two boxes' footprints seen from above, metres (0 when they overlap)."""
    from shapely.geometry import MultiPoint

    pa = MultiPoint(np.asarray(a.corners())[:, :2]).convex_hull
    pb = MultiPoint(np.asarray(b.corners())[:, :2]).convex_hull
    return float(pa.distance(pb))


def frame_queries(objs: list[TruthObject], frame: str, rng, tabletop: bool,
                  right_axis: np.ndarray, kinds=KINDS,
                  seen_reading: bool = False) -> list[QueryRecord]:
    """Every query the generator can make for one frame (filtered to ``kinds``);
    ``seen_reading``: orders must also hold counting only the objects visible enough to be
    seen (evaluation files)."""
    g = _Gen(objs, frame, rng, tabletop, right_axis, seen_reading)
    recs = g.paraphrases() + g.spatial() + g.relations()
    return [r for r in recs if r.kind in kinds]


def sim_truth(seed: int, scenario: str):
    """(SimFrame, [TruthObject], right axis) of a fresh simulated scene (vary_rig)."""
    from spatial_ros.sim import SimConfig
    from spatial_ros.sim.world import make_episode, render

    ep = make_episode(SimConfig(scenario=scenario, seed=int(seed), vary_rig=True), 0)
    f = render(ep.scene, seed=int(seed), lidar=True)
    sf = f.sensor_frame()
    objs, right = sim_truth_objects(f, sf.transforms.lookup(sf.camera.frame_id, "base_link"))
    return f, objs, right


def sim_truth_objects(f, T_opt_from_base: np.ndarray) -> tuple[list[TruthObject], np.ndarray]:
    """([TruthObject] of a rendered SimFrame's objects in view, boxes in base_link; the
    camera's horizontal right axis in base_link). ``T_opt_from_base``: 4x4."""
    from spatial_ros.spatial.predicates import Viewpoint

    vp = Viewpoint.from_camera_pose(np.linalg.inv(T_opt_from_base))
    objs = []
    for o in f.truth.objects:
        if o.box_2d is None:
            continue
        c = T_opt_from_base[:3, :3] @ o.box.center + T_opt_from_base[:3, 3]
        if c[2] <= 0:
            continue
        objs.append(TruthObject(o.id, o.category, o.colour, o.box, c, o.visible_fraction))
    return objs, vp.right


def sim_queries(scenario: str, seeds, per_frame: int | None = None, kinds=KINDS,
                seed: int = 0) -> list[QueryRecord]:
    out = []
    rng = np.random.default_rng(seed)
    for s in seeds:
        _, objs, right = sim_truth(int(s), scenario)
        recs = frame_queries(objs, f"sim:{scenario}:{int(s)}", rng, scenario == "tabletop",
                             right, kinds, seen_reading=True)
        if per_frame is not None and len(recs) > per_frame:
            recs = [recs[i] for i in sorted(rng.choice(len(recs), per_frame, replace=False))]
        out.extend(recs)
    return out


def write_queries(records: list[QueryRecord], path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(asdict(r)) + "\n" for r in records))
    tmp.replace(p)


def read_queries(path: str | Path) -> list[QueryRecord]:
    return read_query_file(path)


def main(argv: list[str] | None = None) -> int:
    from training.generate_data import SPLIT_SEED_BASE

    ap = argparse.ArgumentParser(prog="python -m training.refqueries",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", choices=["tabletop", "street"], default="tabletop")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--split", default="test", choices=sorted(SPLIT_SEED_BASE))
    ap.add_argument("--first", type=int, default=600_000, help="first seed offset in the split")
    ap.add_argument("--kitti", help="KITTI-format folder (queries from its labels instead)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-dontcare-orders", action="store_true",
                    help="KITTI: also write orders that a car in a DontCare region could change")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    skipped: list[QueryRecord] = []
    if a.kitti:
        from training.kitti_refqueries import kitti_queries

        recs = kitti_queries(a.kitti, a.seed, not a.keep_dontcare_orders, skipped)
    else:
        base = SPLIT_SEED_BASE[a.split] + a.first
        recs = sim_queries(a.scenario, range(base, base + a.frames), seed=a.seed)
    write_queries(recs, a.out)
    by = {}
    for r in recs:
        by[r.kind] = by.get(r.kind, 0) + 1
    print(f"wrote {len(recs)} queries to {a.out}: " + ", ".join(f"{k} {v}" for k, v in
                                                                 sorted(by.items())))
    if skipped:
        from training.kitti_refqueries import left_out_line

        print(left_out_line(skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
