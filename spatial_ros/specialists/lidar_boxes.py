"""From the LiDAR specialist's clusters to candidates: boxes, classes, and the pieces of clusters
that hold more than one object (step 4 of ``lidar.py``).

Per cluster (``BoxResolver.candidates``, for all clusters of a scan at once):

- a cluster with no class (or too big for any) that holds several finer clusters (``fine``
  labels) is replaced by the classified ones among them, if any;
- a cluster (or piece) that may hold two objects is cut at its deepest height valley when the
  pieces get classes of their own (``splitting.best_cut``; a classified vehicle splits only
  at a gap or bumper-deep valley, people at shoulder depth between two heads), up to
  ``max_split_rounds`` times;
- what is left is kept when it has a class, or, unclassified, when it fits ``max_size`` and
  does not reach the top of what the sensor sees (walls, trees); an oversized one is
  re-clustered with a one-cell gap keeping what fits (``split_oversized``).

Boxes and classes come from ``cluster_boxes.py``: ``batchfit.fit_groups`` (all clusters of a
scan at once) for L-shape configs with contours (street), else one by one
(``boxfit.fit_box``, min-area rectangles on a table).
"""

from __future__ import annotations

import numpy as np

from spatial_ros.specialists.classify import OPEN_WINDOW, classify_batch
from spatial_ros.specialists.cluster_boxes import ClusterBoxes, ClusterPoints
from spatial_ros.specialists.clustering import grid_clusters, group_indices
from spatial_ros.specialists.lidar_config import LidarSpecialistConfig
from spatial_ros.specialists.planes import Plane
from spatial_ros.specialists.scan_geometry import (
    drop_pole_chains,
    drop_vehicle_parts,
    inside_share,
    overlapping_vehicles,
)
from spatial_ros.specialists.splitting import best_cut
from spatial_ros.types import Candidate


class BoxResolver(ClusterBoxes):
    """Step 4 of the LiDAR specialist for one cloud (see the module docstring).

    Args:
        config: the specialist's parameters.
        planes: the detected support planes (planes ground method), for box bottoms.
        T_w: 4x4 working frame from the sensor (the sensor's pose).
        density: the cloud's returns per steradian (distance-aware minimum).
        covered: (360,) azimuth coverage of the cloud, 1-degree bins (camera-view cuts), or
            None.
        source: the candidates' source name.
    """

    def __init__(self, config: LidarSpecialistConfig, planes: list[Plane], T_w: np.ndarray,
                 density: float, covered: np.ndarray | None, source: str = "lidar") -> None:
        self.cfg = config
        self.planes = planes
        self.T_w = T_w
        self.origin = T_w[:3, 3]
        self.density = density
        self.covered = None if covered is None or covered.all() else covered
        self.source = source
        self.batched = config.box_method == "lshape" and config.contour_heading
        self._priors = {p.label: p for p in config.size_priors}
        # indices into the scan's ClusterPoints of each kept candidate (by id, for one scan)
        self._index: dict[int, np.ndarray] = {}

    # -- entry point --------------------------------------------------------------------------

    def candidates(self, cl: ClusterPoints, groups: list[np.ndarray],
                   refine=None) -> list[Candidate]:
        """Candidates of all clusters (``groups``: index arrays into ``cl``). ``refine``:
        a function giving the labels of the finer clusters among points of ``cl`` (indices),
        called once for the points of the clusters that get no class."""
        # Clusters that can get no class and would be dropped as they are (too long for any
        # class, or reaching the top of what the sensor sees and wider than a pole) need no
        # box of their own: only their finer clusters may be objects.
        hopeless = self._hopeless(cl, groups)
        boxes: list[Candidate | None] = [None] * len(groups)
        fit = [k for k in range(len(groups)) if not hopeless[k]]
        for k, c in zip(fit, self.boxes(cl, [groups[k] for k in fit]), strict=True):
            boxes[k] = c
        if refine is not None:
            todo = [g for g, c in zip(groups, boxes, strict=True) if c is None
                    or not self.known(c)]
            if todo:
                idx = np.concatenate(todo)
                cl.fine = np.full(len(cl.xyz), -1, dtype=np.int64)
                cl.fine[idx] = refine(idx)
        out = self._in_rounds(cl, groups, boxes)
        if self.cfg.pole_chain_gap > 0:
            out = drop_pole_chains(out, self.cfg.pole_chain_gap)
        if self.cfg.vehicle_labels:
            out = self.merge_overlapping(cl, out)
            out = drop_vehicle_parts(out, self.cfg.vehicle_labels, self.origin[:2],
                                     self.density)
        return out

    def merge_overlapping(self, cl: ClusterPoints, cands: list[Candidate]) -> list[Candidate]:
        """Candidates whose boxes overlap a vehicle's (``overlapping_vehicles``) as one: refitted
        from all their points when those get a vehicle class; else the box holding most of
        the points is kept, and the others go when they are vehicles or lie mostly inside it
        (an L-shape fit of two pieces can turn 45 degrees and lose the class)."""
        groups = overlapping_vehicles(cands, self.cfg.vehicle_labels)
        if not groups:
            return cands
        drop: set[int] = set()
        add: list[Candidate] = []
        for grp in groups:
            parts = [self._index.get(id(cands[k])) for k in grp]
            if any(p is None for p in parts):
                continue
            union = np.unique(np.concatenate(parts))
            merged = self.boxes(cl, [union])[0]
            if merged.label in self.cfg.vehicle_labels:
                merged.points = cl.xyz[union].astype(np.float32)
                drop.update(grp)
                add.append(merged)
                continue
            pts = cl.xyz[union]
            held = [int(cands[k].box.contains(pts).sum()) for k in grp]
            keep = grp[int(np.argmax(held))]
            kept = cands[keep].box
            for k in grp:
                c = cands[k]
                if k != keep and (c.label in self.cfg.vehicle_labels
                                  or inside_share(c.box, kept) >= 0.5):
                    drop.add(k)
        return [c for k, c in enumerate(cands) if k not in drop] + add

    def _hopeless(self, cl: ClusterPoints, groups: list[np.ndarray]) -> np.ndarray:
        """(G,) bool: the cluster can get no class and would not be kept unclassified: its
        bounding box is longer than any class (and ``max_size``) allows, or it reaches the
        top of what the sensor sees and is wider than any open-topped class (a pole) while
        such clusters are dropped. Only with size priors and without ``split_oversized``."""
        cfg = self.cfg
        G = len(groups)
        if not cfg.size_priors or cfg.split_oversized or not G:
            return np.zeros(G, dtype=bool)
        order = np.concatenate(groups)
        starts = np.concatenate([[0], np.cumsum([len(g) for g in groups])])[:-1]
        xy = cl.xyz[order, :2]
        ext = np.maximum.reduceat(xy, starts) - np.minimum.reduceat(xy, starts)
        longest = max([cfg.max_size[0]] + [p.l_max for p in cfg.size_priors])
        out = np.hypot(ext[:, 0], ext[:, 1]) > np.sqrt(2.0) * longest
        if cfg.drop_open_top_unknown and cl.ceiling is not None:
            open_l = max([p.l_max for p in cfg.size_priors if p.h_range[1] >= 1e6], default=0.0)
            # A vehicle up a hill may reach the top beam, not the top of the height window.
            top = np.maximum.reduceat(cl.ceiling[order], starts) == OPEN_WINDOW
            car_l = max([p.l_max for p in cfg.size_priors if p.grow_height], default=0.0)
            top |= (np.maximum.reduceat(cl.ceiling[order], starts) > 0) \
                & (ext.max(axis=1) > np.sqrt(2.0) * car_l)
            out |= top & (ext.max(axis=1) > np.sqrt(2.0) * open_l)
        return out

    def _plausible_fine(self, cl: ClusterPoints) -> np.ndarray:
        """(n_fine,) bool: the fine cluster passes ``enough`` (all fine clusters at once)."""
        cfg = self.cfg
        lab = np.where(cl.fine >= 0, cl.fine, cl.fine.max() + 1)  # unset: one extra label
        n = int(lab.max()) + 1
        cnt = np.bincount(lab, minlength=n)
        ok = cnt >= cfg.min_points
        if cfg.min_visible_area > 0:
            inv = 1.0 / np.maximum(cnt, 1)
            cx = np.bincount(lab, cl.xyz[:, 0], n) * inv - self.origin[0]
            cy = np.bincount(lab, cl.xyz[:, 1], n) * inv - self.origin[1]
            ok &= cnt >= cfg.min_visible_area * self.density / np.maximum(cx * cx + cy * cy,
                                                                          1e-2)
        top = np.full(n, -np.inf)
        h = cl.heights if cl.heights is not None else cl.xyz[:, 2] - cl.xyz[:, 2].min()
        np.maximum.at(top, lab, h)
        ok &= top >= cfg.min_top
        if cfg.size_priors:
            # Only a piece that can get a class is worth a box: as high as the lowest class,
            # and, reaching the top of what the sensor sees, thin enough for an open-topped
            # one (a pole), not a stretch of wall.
            ok &= top >= min(p.h_range[0] for p in cfg.size_priors)
            if cl.ceiling is not None:
                open_ok = [p.l_max for p in cfg.size_priors if p.h_range[1] >= 1e6]
                ext = np.zeros(n)
                for c in (0, 1):  # per column: a 1-D ufunc.at is 30x faster than a 2-D one
                    lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
                    np.minimum.at(lo, lab, cl.xyz[:, c])
                    np.maximum.at(hi, lab, cl.xyz[:, c])
                    ext = np.maximum(ext, hi - lo)
                wide = ext > max(open_ok, default=0.0)
                ok &= ~(wide & (np.bincount(lab, cl.ceiling == OPEN_WINDOW, n) > 0))
        ok[-1] &= bool((cl.fine >= 0).all())
        return ok

    def _in_rounds(self, cl: ClusterPoints, groups: list[np.ndarray],
                   boxes: list[Candidate | None]) -> list[Candidate]:
        """The decisions of the module docstring for all clusters at once, breadth first, so
        that each step fits the boxes of every cluster's pieces in one batch (a handful of
        ``fit_groups`` calls per scan instead of one per piece): the classified fine clusters
        of unclassified clusters, then up to ``max_split_rounds`` rounds of height-valley
        splits, then ``final``. Work items are (indices into ``cl``, candidate); a cluster
        without a candidate (``_hopeless``) only contributes its classified fine clusters."""
        cfg = self.cfg
        work: list[tuple[np.ndarray, Candidate]] = []
        owners: list[int] = []
        parts: list[np.ndarray] = []
        fine_ok = self._plausible_fine(cl) if cl.fine is not None else None  # [-1]: unset
        for k, (g, c) in enumerate(zip(groups, boxes, strict=True)):
            found = []
            if fine_ok is not None and (c is None or not self.known(c)):
                f = cl.fine[g]
                if f.min() != f.max():  # holds several fine clusters
                    keep = fine_ok[f]
                    found = [g[keep][i] for i in _split_by(f[keep], always=True)]
            if not found and c is not None:
                work.append((g, c))
            parts += found
            owners += [k] * len(found)
        if parts:
            known_of: dict[int, list] = {}
            for k, q, pc in zip(owners, parts, self.boxes(cl, parts), strict=True):
                if self.known(pc):
                    known_of.setdefault(k, []).append((q, pc))
            for k in sorted(set(owners)):  # owners with no classified fine cluster: whole
                whole = [(groups[k], boxes[k])] if boxes[k] is not None else []
                work += known_of.get(k, whole)
        out: list[Candidate] = []
        for _ in range(cfg.max_split_rounds if cfg.split_touching else 0):
            cuts, rest = [], []
            for g, c in work:
                cut = self.find_cut(c, cl, g)
                (cuts if cut is not None else rest).append((g, c, cut))
            out += [x for g, c, _ in rest for x in self.final(cl, g, c)]
            # Rough classes of the pieces first (extents along the whole's heading): only
            # the cuts that may be accepted get their pieces fitted.
            maybe = self._rough_accept(cl, cuts)
            for ok, (g, c, _) in zip(maybe, cuts, strict=True):
                if not ok:
                    out += self.final(cl, g, c)
            cuts = [x for ok, x in zip(maybe, cuts, strict=True) if ok]
            pieces = [g[i] for g, _, cut in cuts for i in (cut.left, cut.right)]
            two_each = self.boxes(cl, pieces) if pieces else []
            work = []
            for j, (g, c, _) in enumerate(cuts):
                two = two_each[2 * j: 2 * j + 2]
                if self.accept_split(c, two):
                    work += list(zip(pieces[2 * j: 2 * j + 2], two, strict=True))
                else:
                    out += self.final(cl, g, c)
            if not work:
                break
        return out + [x for g, c in work for x in self.final(cl, g, c)]

    def _rough_accept(self, cl: ClusterPoints, cuts) -> list[bool]:
        """Whether each cut (cluster indices, candidate, ``Cut``) may be accepted, judged on
        rough boxes of its pieces: extents along and across the whole's heading, height
        above the ground, padded like fitted boxes (``accept_split`` with those classes).
        Pieces whose rough class differs from their fitted one are rare; a cut rejected
        here is one whose pieces do not look like objects even roughly."""
        cfg = self.cfg
        if not cuts or not cfg.size_priors:
            return [True] * len(cuts)
        parts, yaws = [], []
        for g, c, cut in cuts:
            parts += [g[cut.left], g[cut.right]]
            yaws += [c.box.yaw, c.box.yaw]
        order = np.concatenate(parts)
        starts = np.concatenate([[0], np.cumsum([len(q) for q in parts])])[:-1]
        yaw = np.repeat(np.asarray(yaws), [len(q) for q in parts])
        xy = cl.xyz[order, :2]
        a = xy[:, 0] * np.cos(yaw) + xy[:, 1] * np.sin(yaw)
        b = xy[:, 1] * np.cos(yaw) - xy[:, 0] * np.sin(yaw)
        la = np.maximum.reduceat(a, starts) - np.minimum.reduceat(a, starts)
        lb = np.maximum.reduceat(b, starts) - np.minimum.reduceat(b, starts)
        h = cl.heights[order] if cl.heights is not None else cl.xyz[order, 2]
        hh = np.maximum.reduceat(h, starts) - (0.0 if cl.heights is not None
                                              else np.minimum.reduceat(h, starts))
        mx = np.add.reduceat(xy, starts) / np.diff(np.append(starts, len(order)))[:, None]
        pad = 2 * (cfg.box_pad + cfg.box_pad_per_m * np.hypot(mx[:, 0] - self.origin[0],
                                                              mx[:, 1] - self.origin[1]))
        L, W = np.maximum(la, lb) + pad, np.minimum(la, lb) + pad
        top = np.maximum.reduceat(cl.ceiling[order], starts) if cl.ceiling is not None \
            else False
        k, _ = classify_batch(L, W, hh, cfg.size_priors, top)
        out = []
        for j, (_, c, _) in enumerate(cuts):
            two = [Candidate(box=c.box, label=cfg.size_priors[i].label if i >= 0
                             else cfg.unknown_label) for i in k[2 * j: 2 * j + 2]]
            out.append(self.accept_split(c, two))
        return out

    def final(self, cl: ClusterPoints, g: np.ndarray, c: Candidate) -> list[Candidate]:
        """Cluster ``g`` of ``cl`` as it is: classified, or unclassified within ``max_size``
        and not reaching the top of what the sensor sees; oversized: ``split_oversized``."""
        cfg = self.cfg
        if c.box.size.max() < cfg.min_extent:
            return []
        if not self.known(c):
            if not self.fits(c):
                return self.split_oversized(cl.subset(g))
            if cfg.drop_open_top_unknown and cl.ceiling is not None \
                    and bool(cl.ceiling[g].any()):
                return []  # taller than seen and no class: a wall, a tree, a building
        if c.points is None:
            c.points = cl.xyz[g].astype(np.float32)
        self._index[id(c)] = g
        return [c]

    # -- decisions ----------------------------------------------------------------------------

    def known(self, c: Candidate) -> bool:
        return bool(c.label) and c.label != self.cfg.unknown_label

    def fits(self, c: Candidate) -> bool:
        """A classified box fits its class (its prior bounded the visible extents); other
        boxes must be within ``max_size``."""
        if self.known(c):
            return True
        return bool(np.all(c.box.size <= np.asarray(self.cfg.max_size, float)))

    def enough(self, cl: ClusterPoints) -> bool:
        """A piece of a cluster passes the cluster checks: enough points for its range and a
        top high enough (``LidarSpecialist._plausible_clusters``)."""
        cfg = self.cfg
        n = len(cl.xyz)
        if n < cfg.min_points:
            return False
        if cfg.min_visible_area > 0:
            c = cl.xyz[:, :2].mean(axis=0) - self.origin[:2]
            if n < cfg.min_visible_area * self.density / max(float(c @ c), 1e-2):
                return False
        if cfg.min_top > 0:
            h = cl.heights if cl.heights is not None else cl.xyz[:, 2] - cl.xyz[:, 2].min()
            if float(h.max()) < cfg.min_top:
                return False
        return True

    def find_cut(self, whole: Candidate, cl: ClusterPoints, g: np.ndarray | None = None):
        """The deepest height valley of a cluster (``cl``, or its points ``g``) that may hold
        two objects (``splitting.best_cut`` along the box heading), or None. A vehicle's own
        profile dips (glass returns nothing, pillars stand up): a classified vehicle is cut
        only at a gap or a bumper-deep valley; people at shoulder depth, between two peaks of
        similar height (two heads, not a cyclist's handlebar and head)."""
        cfg = self.cfg
        if not cfg.split_touching:
            return None
        cp = cl.xyz if g is None else cl.xyz[g]
        if cl.heights is not None:
            h = cl.heights if g is None else cl.heights[g]
        else:
            h = cp[:, 2] - cp[:, 2].min()
        if not self._may_hold_two(whole, cp, h):
            return None
        if cfg.drop_open_top_unknown and not self.known(whole) and cl.ceiling is not None \
                and bool((cl.ceiling if g is None else cl.ceiling[g]).any()):
            return None  # a wall or a tree: its pieces would be unclassified walls and trees
        whole_known = self.known(whole) and self.fits(whole)
        people = whole.label in cfg.people_classes
        max_ratio = cfg.split_valley_ratio if (people or not whole_known) \
            else cfg.split_known_ratio
        yaw = whole.box.yaw
        # Profile slices no narrower than ~2 azimuth steps of a 64-beam LiDAR at this range
        # (0.35 degrees): a far object's sparse returns leave empty 10 cm slices that are
        # not gaps between objects.
        rng = float(np.hypot(*(cp[:, :2].mean(axis=0) - self.origin[:2])))
        return best_cut(cp[:, :2], h, max_ratio=max_ratio, axis=(np.cos(yaw), np.sin(yaw)),
                        min_peak_ratio=0.75 if people else 0.0,
                        slice_width=max(0.1, 0.006 * rng))

    def accept_split(self, whole: Candidate, pieces: list[Candidate]) -> bool:
        """A classified whole splits only into two classified pieces, not into two of its
        own class (a car with a gap in its returns stays one car) unless it is a person
        (``people_classes``); an unclassified or oversized whole splits when one piece gets
        a class."""
        known = [self.known(p) for p in pieces]
        if self.known(whole) and self.fits(whole):
            if not all(known):
                return False
            return not (pieces[0].label == pieces[1].label == whole.label
                        and whole.label not in self.cfg.people_classes)
        return any(known)

    def _may_hold_two(self, whole: Candidate, cp: np.ndarray, h: np.ndarray) -> bool:
        """Cheap test before looking for a valley: a classified cluster larger than its class
        usually is (visible length beyond 1.1 x its typical length, or height beyond 1.15 x
        its typical height: a person by a car), or an unclassified one at least a metre
        long. Poles and compact objects are one object."""
        ext = cp[:, :2].max(axis=0) - cp[:, :2].min(axis=0)
        length = float(np.hypot(*ext))  # the diagonal bounds the visible length
        if not self.known(whole):
            return length >= 1.0
        pr = self._priors.get(whole.label)
        if pr is None or pr.h_range[1] >= 1e6:
            return False
        return length > 1.1 * pr.length or float(h.max()) > 1.15 * pr.height

    def split_oversized(self, cl: ClusterPoints) -> list[Candidate]:
        """Objects closer than the range-grown gap (parked cars) merged into a cluster too big
        for anything: re-cluster it with the tightest gap (one cell) and keep the pieces that
        fit (with size priors: only those that get a class, not a wall's debris). Not for
        clusters taller than the tallest class or reaching the top of what the sensor sees
        (buildings)."""
        cfg = self.cfg
        max_size = np.asarray(cfg.max_size, float)
        ext = cl.xyz.max(axis=0) - cl.xyz.min(axis=0)
        long_side = max(ext[0], ext[1]) / np.sqrt(2.0)
        split_h = max([p.h_range[1] for p in cfg.size_priors if p.h_range[1] < 1e6],
                      default=max_size[2])
        open_top = cl.ceiling is not None and bool(cl.ceiling.any())
        if not cfg.split_oversized or long_side > 2.5 * max_size[0] or ext[2] > split_h \
                or open_top:
            return []
        pts = cl.xyz if cl.heights is None else np.column_stack([cl.xyz[:, :2], cl.heights])
        labels, n = grid_clusters(pts, cell=cfg.cell, tolerance=cfg.cell,
                                  z_resolution=cfg.z_resolution, z_gap=cfg.z_gap,
                                  origin=self.T_w[:2, 3])
        counts = np.bincount(labels, minlength=n)
        groups = group_indices(labels, n)
        parts = [groups[j] for j in np.flatnonzero(counts >= cfg.min_points)]
        if not parts:
            return []
        out = []
        for g, c in zip(parts, self.boxes(cl, parts), strict=True):
            if c.box.size.max() >= cfg.min_extent and self.fits(c) \
                    and (self.known(c) or not cfg.size_priors):
                if c.points is None:
                    c.points = cl.xyz[g].astype(np.float32)
                out.append(c)
        return out


def _split_by(labels: np.ndarray, always: bool = False) -> list[np.ndarray]:
    """Index arrays of the points of each distinct label; [] when there is only one (unless
    ``always``) or none."""
    if len(labels) == 0:
        return []
    order = np.argsort(labels, kind="stable")
    lab = labels[order]
    cuts = np.flatnonzero(lab[1:] != lab[:-1]) + 1
    return np.split(order, cuts) if (len(cuts) or always) else []
