"""Relations of the grounding program ("the mug to the left of the bowl", "the can next to the
red book", "between A and B", "the car closest to you"), evaluated in 3D with
``spatial_ros.spatial.predicates`` (viewer-relative ones from the camera's viewpoint).

``RelationMixin`` is part of ``language.program.Program``: it uses the program's ``views``
(``ObjectView``), ``_objs`` (their ``SpatialObject``), ``vp`` (the viewpoint), ``resolve`` (for
the anchors) and ``_tol`` (metres below which two objects count as level).
"""

from __future__ import annotations

import math

import numpy as np

from spatial_ros.language.refexpr import RefExpr, Relation
from spatial_ros.spatial import predicates as P
from spatial_ros.types import Box3D

CLOSEST_COLOUR = "no candidate reads as"  # how a closest-in-colour pick's explanation begins


class RelationMixin:
    """Anchors and relations of ``Program`` (see the module docstring)."""

    def _anchor(self, a: RefExpr, exclude) -> tuple[int | None, str]:
        if a.np.categories == ("robot",):
            return None, "robot"
        r = self.resolve(a, frozenset(exclude))
        if r.explanation.startswith(CLOSEST_COLOUR):
            return r.index, f"{a.np.canonical()} (the closest in colour)"
        return r.index, a.np.canonical()

    def _relation(self, c: Relation, S: list[int], m: np.ndarray, exclude, doubt=None):
        anchors = []
        for a in c.anchors:
            k, name = self._anchor(a, exclude)
            anchors.append((k, name))
        names = " and ".join(n for _, n in anchors)
        if any(k is None for k, n in anchors if n != "robot"):
            return S, False, f"cannot find {names}"
        idx = [k for k, _ in anchors if k is not None]
        pool = [s for s in S if s not in idx]
        if not pool:
            return [], False, f"nothing but {names} itself"
        pred = c.predicate
        if pred in ("between",) and len(idx) == 2:
            keyed = [(self._between(s, idx[0], idx[1]), s) for s in pool]
            keyed = [(d, s) for d, s in keyed if d is not None]
            return self._closest(keyed, f"between {names}", doubt)
        if not idx:  # relative to the robot/viewer
            if pred in ("far_from", "farthest_from"):
                return self._ordered(pool, [self.views[s].range for s in pool], "far from you")
            return self._ordered(pool, [-self.views[s].range for s in pool], "close to you")
        a = idx[0]
        A = self._objs[a]
        if pred in ("next_to", "closest_to", "toward", "within"):
            keyed = [(P.box_box_distance(self.views[s].box, A.box), s) for s in pool]
            return self._closest(keyed, f"{pred.replace('_', ' ')} {names}", doubt)
        if pred in ("far_from", "farthest_from"):
            d = [float(np.linalg.norm(self.views[s].box.center - A.box.center)) for s in pool]
            return self._ordered(pool, d, f"farthest from {names}")
        if pred == "inside":
            keyed = [(float(np.linalg.norm(self.views[s].box.center - A.box.center)), s)
                     for s in pool if _inside(self.views[s].box, A.box)]
            if not keyed:
                return [], False, f"nothing inside {names}"
            return self._closest(keyed, f"inside {names}", doubt)
        fn = {"left_of": P.left_of, "right_of": P.right_of, "in_front_of": P.in_front_of,
              "behind": P.behind, "above": P.above, "on": P.above, "below": P.below,
              "under": P.below}[pred]
        sat = []
        for s in pool:
            rel = fn(self._objs[s], A, self.vp)
            if rel.value:
                gap = P.box_box_distance(self.views[s].box, A.box)
                if pred in ("on", "above", "under", "below"):
                    gap = _footprint_offset(self.views[s].box, A.box)
                    if pred == "on":  # resting on: its bottom at the anchor's top
                        gap += abs(P.z_interval(self.views[s].box)[0] - P.z_interval(A.box)[1])
                sat.append((gap, s))
        label = f"{pred.replace('_', ' ')} {names}"
        if not sat:
            return [], False, f"nothing is {label}"
        return self._closest(sat, label, doubt)

    def _between(self, s: int, a: int, b: int) -> float | None:
        p = self.views[s].box.center[:2]
        pa, pb = self.views[a].box.center[:2], self.views[b].box.center[:2]
        ab = pb - pa
        L2 = float(ab @ ab)
        if L2 < 1e-12:
            return None
        t = float((p - pa) @ ab) / L2
        if not -0.1 <= t <= 1.1:
            return None
        return float(np.linalg.norm(p - (pa + np.clip(t, 0, 1) * ab)))

    def _closest(self, keyed: list[tuple[float, int]], label: str,
                 doubt: np.ndarray | None = None):
        """The candidates ordered by a distance-like key (smallest first; with ``doubt``, the
        likeliest member first: ``likeliest_at``); decisive when the runner-up is clearly
        apart."""
        if not keyed:
            return [], False, f"nothing is {label}"
        keyed.sort()
        S = [s for _, s in keyed]
        if len(keyed) == 1:
            return S, True, f"{label}"
        if doubt is not None:
            keyed.insert(0, keyed.pop(S.index(likeliest_at(S, 0, doubt))))
            S = [s for _, s in keyed]
        tol = self._tol(S[0], S[1])
        ok = abs(keyed[1][0] - keyed[0][0]) > tol
        note = "" if ok else " (a near tie)"
        return S, ok, f"{label}, the nearest of {len(S)}{note}"

    def _ordered(self, pool: list[int], values: list[float], label: str):
        order = sorted(range(len(pool)), key=lambda i: -values[i])
        S = [pool[i] for i in order]
        ok = len(S) == 1 or values[order[0]] - values[order[1]] > self._tol(S[0], S[1])
        return S, ok, label


def _footprint_offset(a: Box3D, b: Box3D) -> float:
    """Horizontal distance of a's centre from b's centre, metres."""
    return float(math.hypot(*(a.center[:2] - b.center[:2])))


def _inside(a: Box3D, b: Box3D, margin: float = 0.02) -> bool:
    """a's centre lies inside b's box grown by ``margin``."""
    local = (a.center - b.center) @ b.rotation
    return bool(np.all(np.abs(local) <= b.size / 2 + margin))


def likeliest_at(order: list[int], k: int, m: np.ndarray) -> int:
    """The candidate most likely to be the (k+1)-th member along ``order`` (best first) when
    membership is uncertain: each candidate is a member with probability m / max(m) over
    ``order``, so a weak member at the extreme ("a pole" that may be a facade's sliver) gives
    way to a sure one just behind it. Equal memberships keep ``order[k]``."""
    if k < 0:  # the last: the first from the other end
        return likeliest_at(order[::-1], 0, m)
    q = np.array([m[s] for s in order], dtype=np.float64)
    q = np.clip(q / max(float(q.max()), 1e-12), 0.0, 1.0)
    ahead = np.zeros(k + 1)  # ahead[j]: P(exactly j members before this candidate)
    ahead[0] = 1.0
    best, pick = -1.0, order[min(k, len(order) - 1)]
    for s, p in zip(order, q, strict=True):
        here = p * ahead[k]
        if here > best + 1e-9:
            best, pick = here, s
        ahead[1:] = ahead[1:] * (1.0 - p) + ahead[:-1] * p
        ahead[0] *= 1.0 - p
    return pick
