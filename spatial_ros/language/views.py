"""A specialist candidate as the referring-expression program sees it (``ObjectView``: its box
in the z-up frame, where it lies from the camera, what its pixels and points look like), and
the short description a "which one?" answer gives of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from spatial_ros.language.surface import SurfaceEvidence
from spatial_ros.types import Box3D


@dataclass(eq=False)
class ObjectView:
    """A candidate as the program sees it.

    Attributes:
        box: 3D box in the z-up frame the viewpoint is in (base_link), metres.
        center_optical: (3,) box centre in the camera optical frame (z forward), metres.
        colours: share of its pixels per basic colour term ({} when unknown).
        colour_bands: the same for height bands of its points ("body", "torso").
        label: the specialist's class label ('' when none).
        points: optional (N, 3) surface points in the z-up frame.
        in_view: share of its projected 2D box inside the image, [0, 1] (an object with only
            a sliver in the picture counts less).
        score: the specialist's confidence in [0, 1] (LiDAR: from its number of points;
            kept for explanations; weighting memberships by it lowered accuracy on held-out
            street scenes, where far true objects have few points too).
        surface: vehicle cues of a vehicle-labelled or vehicle-sized LiDAR candidate
            (``language.surface``), None otherwise.
        lightness: band (and "all") -> median value (0..1) of its achromatic pixels.
    """

    box: Box3D
    center_optical: np.ndarray
    colours: dict[str, float] = field(default_factory=dict)
    label: str = ""
    points: np.ndarray | None = None
    in_view: float = 1.0
    score: float = 1.0
    colour_bands: dict[str, dict[str, float]] = field(default_factory=dict)
    surface: SurfaceEvidence | None = None
    lightness: dict[str, float] = field(default_factory=dict)

    def _band(self, categories: tuple[str, ...]) -> str | None:
        from spatial_ros.language.bands import BAND_OF

        bands = {BAND_OF.get(c) for c in categories}
        return bands.pop() if len(bands) == 1 else None

    def lightness_for(self, categories: tuple[str, ...]) -> float | None:
        """Lightness (0..1) of the achromatic pixels where a phrase about ``categories`` looks
        (the band of ``colours_for``), else of all its pixels; None when unknown."""
        band = self._band(categories)
        return self.lightness.get(band) if band in self.lightness else self.lightness.get("all")

    def colours_for(self, categories: tuple[str, ...]) -> dict[str, float]:
        """The colours a phrase about ``categories`` refers to: a car's paint (below the
        windows), a person's clothes (the torso), else the whole object."""
        band = self._band(categories)
        if band in self.colour_bands:
            return self.colour_bands[band]
        return self.colours

    @property
    def bearing(self) -> float:
        """Horizontal image position of the centre, x/z (right positive, dimensionless)."""
        c = self.center_optical
        return float(c[0] / max(c[2], 1e-6))

    @property
    def range(self) -> float:
        return float(np.linalg.norm(self.center_optical))


def describe_view(v: ObjectView, views: Sequence[ObjectView]) -> str:
    """A short description of a candidate for a "which one?" answer: its colour, its place in
    the view (left / middle / right by bearing among the candidates) and its distance:
    "red, left, 1.10 m away"."""
    colour = max(v.colours, key=v.colours.get) if v.colours else "unknown colour"
    bearings = sorted(w.bearing for w in views)
    rank = bearings.index(v.bearing) / max(len(bearings) - 1, 1)
    side = "left" if rank < 1 / 3 else ("right" if rank > 2 / 3 else "middle")
    return f"{colour}, {side}, {v.range:.2f} m away"
