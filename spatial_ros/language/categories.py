"""How well a candidate box's shape fits an object category — the geometric half of "is this
candidate a mug?", so that categories work without a model that has seen the object
(a KITTI car for a model trained on simulated tables).

Each category has typical extents of a gravity-aligned box (metres; height = box z, length and
width = the longer and shorter horizontal sides): common-sense sizes of household objects and
road users (street sizes span KITTI's Car / Van / Truck / Pedestrian / Cyclist / pole ranges).
A box scores exp(-0.5 * sum(excess / sigma)^2) where excess is how far each extent lies outside
its range and sigma scales with the range (LiDAR boxes of partly seen objects run small, merged
ones large), so a score falls smoothly rather than cutting at a threshold.

A specialist's own class label (the street LiDAR preset's car / van / truck / pedestrian /
cyclist / pole / misc) counts too: a candidate labelled with another street class (or "misc",
none of them) is unlikely but not impossible; a van is half a car; a rider whose bike the scan
split off reads as a pedestrian.
"""

from __future__ import annotations

import numpy as np

from spatial_ros.language.lexicon import ANY, domain_of
from spatial_ros.types import Box3D

# category -> ((h_lo, h_hi), (len_lo, len_hi), (wid_lo, wid_hi)) metres
EXTENTS: dict[str, tuple[tuple[float, float], ...]] = {
    "mug": ((0.07, 0.13), (0.085, 0.15), (0.065, 0.11)),
    "bowl": ((0.035, 0.09), (0.12, 0.24), (0.12, 0.24)),
    "can": ((0.09, 0.17), (0.05, 0.085), (0.05, 0.085)),
    "bottle": ((0.16, 0.34), (0.05, 0.10), (0.05, 0.10)),
    "book": ((0.01, 0.055), (0.15, 0.30), (0.10, 0.22)),
    "box": ((0.05, 0.30), (0.085, 0.45), (0.06, 0.35)),
    "cube": ((0.035, 0.08), (0.035, 0.08), (0.035, 0.08)),
    "ball": ((0.055, 0.12), (0.055, 0.12), (0.055, 0.12)),
    "gripper": ((0.10, 0.40), (0.03, 0.12), (0.02, 0.10)),
    "car": ((1.2, 1.9), (3.0, 5.2), (1.4, 2.1)),
    "van": ((1.7, 2.6), (4.0, 6.5), (1.7, 2.3)),
    "truck": ((2.2, 4.2), (5.5, 16.0), (2.0, 2.8)),
    "pedestrian": ((1.0, 2.0), (0.25, 1.1), (0.2, 0.9)),
    "cyclist": ((1.2, 2.0), (1.2, 2.1), (0.3, 0.95)),
    "pole": ((2.0, 12.0), (0.05, 0.6), (0.05, 0.6)),
    "bed": ((0.3, 1.3), (1.6, 2.4), (0.8, 2.2)),
    "night_stand": ((0.35, 0.8), (0.3, 0.7), (0.25, 0.6)),
    "ottoman": ((0.25, 0.55), (0.4, 1.2), (0.3, 0.9)),
    "dresser": ((0.5, 1.6), (0.6, 2.0), (0.3, 0.7)),
    "dresser_mirror": ((0.4, 2.0), (0.3, 1.6), (0.01, 0.3)),
    "lamp": ((0.2, 1.9), (0.15, 0.6), (0.15, 0.6)),
    "chair": ((0.6, 1.3), (0.4, 0.9), (0.4, 0.8)),
    "sofa": ((0.6, 1.1), (1.2, 3.0), (0.7, 1.2)),
    "table": ((0.4, 1.2), (0.6, 2.5), (0.4, 1.5)),
    "pillow": ((0.08, 0.3), (0.3, 0.8), (0.25, 0.6)),
    "monitor": ((0.25, 0.9), (0.3, 1.5), (0.03, 0.35)),
    "shelf": ((0.5, 2.4), (0.5, 2.0), (0.2, 0.6)),
}
# Specialist class labels (any case) -> the category names they mean.
LABELS = {"car": "car", "van": "van", "truck": "truck", "tram": "truck",
          "pedestrian": "pedestrian", "person_sitting": "pedestrian", "person": "pedestrian",
          "cyclist": "cyclist", "pole": "pole"}
STREET = ("car", "van", "truck", "pedestrian", "cyclist", "pole")
SIGMA_FRACTION = 0.35  # sigma = this * (range midpoint); partial views shrink boxes
LABEL_MISMATCH = 0.15  # factor for a candidate the specialist labelled as another street class
PEOPLE_MISMATCH = 0.2  # a pedestrian-labelled candidate as a cyclist, and the reverse


def extents(box: Box3D) -> tuple[float, float, float]:
    """(height, length, width) of a gravity-aligned box, metres."""
    h = float(box.size[2])
    a, b = float(box.size[0]), float(box.size[1])
    return h, max(a, b), min(a, b)


def shape_score(category: str, box: Box3D) -> float:
    """exp(-0.5 * sum((excess / sigma)^2)) of the box's extents against the category's range
    (1 inside every range); 1 for a category without known extents."""
    ranges = EXTENTS.get(category)
    if ranges is None:
        return 1.0
    z = 0.0
    for x, (lo, hi) in zip(extents(box), ranges, strict=True):
        sigma = SIGMA_FRACTION * 0.5 * (lo + hi)
        excess = max(0.0, lo - x, x - hi)
        z += (excess / sigma) ** 2
    return float(np.exp(-0.5 * z))


def category_score(categories: tuple[str, ...], box: Box3D, label: str = "",
                   points: np.ndarray | None = None) -> float:
    """How well a candidate (its z-up box, the specialist's label, its points in the box's
    frame) fits a noun that admits ``categories``; 1 for any-category nouns ("object") and for
    nouns the lexicon does not know (the model alone decides those).

    Tabletop categories: the learned shape classifier's posterior summed over the admitted
    categories (``language.shape``), times the extents prior (a street-sized box is no mug).
    Others: the best extents prior, with the specialist's street class label."""
    if not categories or ANY in categories:
        return 1.0
    if all(domain_of(c) == "tabletop" for c in categories):
        from spatial_ros.language.shape import tabletop_posterior

        post = tabletop_posterior(box, points)
        if post is not None:
            prior = max(shape_score(c, box) for c in categories)
            return float(min(1.0, sum(post.get(c, 0.0) for c in categories))) * \
                max(prior, 0.05)
    raw = label.lower() if label else ""
    lab = LABELS.get(raw, "misc" if raw == "misc" else "")
    best = 0.0
    for cat in categories:
        s = shape_score(cat, box)
        if lab and cat in STREET:
            if lab == cat:
                s = max(s, 0.9)
            elif {lab, cat} == {"car", "van"}:  # people call a van a car, less often
                s = max(s * LABEL_MISMATCH, 0.5)
            elif lab == "pedestrian" and cat == "cyclist":  # the specialist tells these two
                # apart least well: a box as long as a bike labelled "pedestrian" is still a
                # rider (the shape decides, at half weight), and a rider whose bike the scan
                # split off is found when nothing better fits (PEOPLE_MISMATCH: below
                # SET_RELATIVE of a true member)
                s = max(0.5 * s * s, PEOPLE_MISMATCH)
            elif lab == "cyclist" and cat == "pedestrian":  # the reverse: the specialist saw
                # something bike-long; a walker is that long only when pushing a bike, so
                # only when nothing better fits
                s = PEOPLE_MISMATCH
            else:  # the specialist's classifier says it is another class (or none)
                s *= LABEL_MISMATCH
        best = max(best, s)
    return best
