"""Boxes and classes of the LiDAR specialist's clusters (part of step 4 of ``lidar.py``; the
decisions about pieces are in ``lidar_boxes.py``).

``ClusterBoxes`` is a mixin of ``lidar_boxes.BoxResolver``, which holds what the methods
read: ``cfg`` (LidarSpecialistConfig), ``planes``, ``T_w`` and ``origin`` (the sensor's pose
and position in the working frame), ``covered`` (azimuth coverage or None), ``source`` and
``batched`` (L-shape boxes of all clusters at once, ``batchfit.fit_groups``; else one by one,
``boxfit.fit_box``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_ros.specialists.batchfit import fit_groups, group_pitch
from spatial_ros.specialists.boxfit import extend_away, fit_box, lshape_heading
from spatial_ros.specialists.classify import (
    FACING_L,
    FACING_W,
    classify_batch,
    complete_batch,
    complete_with_prior,
    facing_sides,
)
from spatial_ros.specialists.common import beam_pitch, far_row_gap, support_below
from spatial_ros.specialists.scan_geometry import truncation_point
from spatial_ros.types import Box3D, Candidate

__all__ = ["ClusterBoxes", "ClusterPoints"]


@dataclass
class ClusterPoints:
    """Points of clusters (or pieces of them) in the working frame and what is known per
    point: height above the local ground (patchwise ground), on its cluster's visible
    contour, at the ceiling of what the sensor sees, label of its finer cluster, LiDAR row
    pitch of its cluster (radians; pieces keep their cluster's)."""

    xyz: np.ndarray
    heights: np.ndarray | None = None
    contour: np.ndarray | None = None
    ceiling: np.ndarray | None = None
    fine: np.ndarray | None = None
    pitch: np.ndarray | None = None

    def subset(self, idx: np.ndarray) -> ClusterPoints:
        return ClusterPoints(*(None if a is None else a[idx] for a in
                               (self.xyz, self.heights, self.contour, self.ceiling, self.fine,
                                self.pitch)))


class ClusterBoxes:
    """Box, class and score of clusters (see the module docstring)."""

    def boxes(self, cl: ClusterPoints, groups: list[np.ndarray]) -> list[Candidate]:
        """One candidate (box, class, score) per group of points of ``cl``."""
        if not self.batched:
            return [self.box(cl.subset(g)) for g in groups]
        if not groups:
            return []
        cfg = self.cfg
        order = np.concatenate(groups)
        starts = np.concatenate([[0], np.cumsum([len(g) for g in groups])])
        xyz = cl.xyz[order]
        contour = None if cl.contour is None else cl.contour[order]
        pitch = None
        if cfg.top_pad_rows:
            if cl.pitch is not None:  # a piece keeps its cluster's row pitch
                pitch = cl.pitch[[g[0] for g in groups]]
            else:
                pitch = group_pitch(xyz if contour is None else xyz[contour],
                                    _starts_of(contour, starts), self.T_w)
        gb = fit_groups(
            xyz, starts, origin=self.origin, contour=contour,
            ground_z=None if cl.heights is None else xyz[:, 2] - cl.heights[order],
            pitch=pitch, pad=cfg.box_pad, pad_per_m=cfg.box_pad_per_m,
            top_pad_rows=cfg.top_pad_rows, contour_min_extent=cfg.contour_min_extent,
        )
        if pitch is not None and cl.pitch is None:
            cl.pitch = np.zeros(len(cl.xyz))
            cl.pitch[order] = np.repeat(pitch, np.diff(starts))
        open_top = (np.maximum.reduceat(cl.ceiling[order], starts[:-1])
                    if cl.ceiling is not None else np.zeros(len(groups), np.int8))
        center, size, yaw = gb.center, gb.size, gb.yaw
        labels = [""] * len(groups)
        if cfg.size_priors:
            priors = cfg.size_priors
            facing = facing_sides(center[:, :2], yaw, self.origin[:2])
            cut = None
            if self.covered is not None:
                cut = np.full((len(groups), 2), np.nan)
                for j, g in enumerate(groups):
                    q = truncation_point(cl.xyz[g], self.T_w, self.covered)
                    if q is None:
                        continue
                    cut[j] = q
                    # Cut by the field of view: the side running into the cut is a lower
                    # bound, most likely of the object's length (a parked car at the image
                    # border): read the box that way (as if the other side faced us).
                    d = q - center[j, :2]
                    along = abs(d[0] * np.cos(yaw[j]) + d[1] * np.sin(yaw[j]))
                    across = abs(-d[0] * np.sin(yaw[j]) + d[1] * np.cos(yaw[j]))
                    facing[j] = FACING_W if along >= across else FACING_L
            k, end_on = classify_batch(size[:, 0], size[:, 1], size[:, 2], priors, open_top,
                                       gb.roughness, facing)
            center, size, yaw = complete_batch(center, size, yaw, k, end_on, priors,
                                               self.origin[:2], cut, open_top)
            labels = [priors[i].label if i >= 0 else cfg.unknown_label for i in k]
        out = []
        for j, g in enumerate(groups):
            n = len(g)
            out.append(Candidate(  # points: filled in by ``final`` (most pieces never are)
                box=Box3D.from_yaw(center[j], size[j], float(yaw[j])),
                score=float(n / (n + cfg.score_points)), source=self.source, num_points=n,
                label=labels[j]))
        return out

    def box(self, cl: ClusterPoints) -> Candidate:
        """Box, class and score of one cluster, on its own (``boxfit.fit_box``)."""
        cfg = self.cfg
        cp = cl.xyz
        origin = self.origin
        if cl.heights is not None:
            z_min = float(np.mean(cp[:, 2] - cl.heights))
        else:
            z_min = support_below(cp, self.planes, cfg.support_gap, cfg.plane_distance) \
                if cfg.extend_to_support else None
        pitch = beam_pitch(cp, self.T_w) if (cfg.sampling_pad or cfg.top_pad_rows) else 0.0
        c = cp.mean(axis=0) - origin
        pad = cfg.box_pad + cfg.box_pad_per_m * float(np.hypot(c[0], c[1]))
        pad_top = pad + cfg.top_pad_rows * pitch * float(np.linalg.norm(c))
        heading, rough = None, 0.0
        if cfg.box_method == "lshape" and cl.contour is not None \
                and np.count_nonzero(cl.contour) >= 3:
            ext = cp[:, :2].max(axis=0) - cp[:, :2].min(axis=0)
            if float(ext.max()) >= cfg.contour_min_extent:
                heading, rough = lshape_heading(cp[cl.contour, :2])
        box = fit_box(cp, method=cfg.box_method, z_min=z_min, pad=pad, pad_top=pad_top,
                      yaw=heading, lshape_criterion="closeness")
        if cfg.sampling_pad and pitch > 0:
            box = extend_away(box, box.center[:2] - origin[:2],
                              far_row_gap(cp, self.T_w, pitch, cfg.sampling_pad_max))
        open_top = int(cl.ceiling.max()) if cl.ceiling is not None and len(cl.ceiling) else 0
        return self._classified(box, cp, open_top, rough)

    def _classified(self, box: Box3D, pts: np.ndarray, open_top: int,
                    rough: float) -> Candidate:
        cfg = self.cfg
        label = ""
        if cfg.size_priors:
            # Points at the top of what the sensor sees belong to something that may be
            # taller: only open-topped classes (poles) may take it.
            cut = None if self.covered is None else truncation_point(pts, self.T_w,
                                                                     self.covered)
            box, label = complete_with_prior(box, cfg.size_priors, self.origin[:2],
                                             open_top=open_top, roughness=rough, cut_xy=cut)
            label = label or cfg.unknown_label
        n = len(pts)
        return Candidate(box=box, score=float(n / (n + cfg.score_points)), source=self.source,
                         num_points=n, label=label, points=pts.astype(np.float32))


def _starts_of(mask: np.ndarray | None, starts: np.ndarray) -> np.ndarray:
    """Group starts of the points kept by ``mask`` (groups given by ``starts``)."""
    if mask is None:
        return starts
    return np.concatenate([[0], np.cumsum(np.add.reduceat(mask.astype(np.int64),
                                                          starts[:-1]))])
