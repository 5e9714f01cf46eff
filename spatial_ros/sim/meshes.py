"""Triangle meshes of the simulated objects, built from a few primitives.

Every object is one :class:`ObjectMesh`: vertices in the object's own z-up frame, centred on the
mesh's axis-aligned bounding box, with a colour and a LiDAR reflectivity per triangle (so a can
has a silver lid, a car dark windows and black wheels). Because the mesh is centred on its own
bounding box, the object's ground-truth 3D box is exact by construction: centre = the object's
position, size = ``ObjectMesh.size``, yaw = the object's yaw.

open3d supplies boxes, spheres and tori. Solids of revolution (bowl with a cavity, mug body, bottle
with shoulder and neck, can with a rim) come from :func:`lathe` (open3d has no lathe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import open3d as o3d


@dataclass(eq=False)
class ObjectMesh:
    """A multi-part mesh in an object's local z-up frame, centred on its bounding box.

    Attributes:
        vertices: (V, 3) float64 metres.
        triangles: (F, 3) int32 vertex indices.
        face_rgb: (F, 3) float32 base colour per triangle in [0, 1].
        face_reflectivity: (F,) float32 LiDAR reflectivity per triangle in [0, 1].
        size: (3,) full extents of the bounding box along local x, y, z (metres).
    """

    vertices: np.ndarray
    triangles: np.ndarray
    face_rgb: np.ndarray
    face_reflectivity: np.ndarray
    size: np.ndarray

    @property
    def num_triangles(self) -> int:
        return int(self.triangles.shape[0])

    def posed_vertices(self, center: np.ndarray, yaw: float) -> np.ndarray:
        """(V, 3) vertices turned ``yaw`` radians about +z and moved to ``center`` (metres)."""
        c, s = np.cos(yaw), np.sin(yaw)
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return self.vertices @ R.T + np.asarray(center, dtype=np.float64)


@dataclass(eq=False)
class Part:
    """One coloured piece of an object before merging (local frame, metres)."""

    vertices: np.ndarray
    triangles: np.ndarray
    rgb: tuple[float, float, float]
    reflectivity: float | None = None  # None: derived from the colour's luminance

    def moved(self, offset: Sequence[float]) -> Part:
        return Part(
            self.vertices + np.asarray(offset, float), self.triangles, self.rgb, self.reflectivity
        )

    def rotated(self, R: np.ndarray) -> Part:
        return Part(
            self.vertices @ np.asarray(R, float).T, self.triangles, self.rgb, self.reflectivity
        )


def _from_o3d(mesh: o3d.geometry.TriangleMesh, rgb, reflectivity=None) -> Part:
    return Part(
        np.asarray(mesh.vertices, dtype=np.float64).copy(),
        np.asarray(mesh.triangles, dtype=np.int32).copy(),
        tuple(rgb),
        reflectivity,
    )


def box(sx: float, sy: float, sz: float, rgb, center=(0.0, 0.0, 0.0), reflectivity=None) -> Part:
    """Cuboid of full extents ``sx, sy, sz`` centred on ``center``."""
    m = o3d.geometry.TriangleMesh.create_box(sx, sy, sz)
    m.translate(np.asarray(center, float) - np.array([sx, sy, sz]) / 2.0)
    return _from_o3d(m, rgb, reflectivity)


def sphere(
    radius: float, rgb, center=(0.0, 0.0, 0.0), resolution: int = 16, reflectivity=None
) -> Part:
    m = o3d.geometry.TriangleMesh.create_sphere(radius, resolution)
    m.translate(center)
    return _from_o3d(m, rgb, reflectivity)


def torus(
    ring_radius: float,
    tube_radius: float,
    rgb,
    axis: str = "z",
    center=(0.0, 0.0, 0.0),
    reflectivity=None,
) -> Part:
    """Torus whose ring lies in the plane normal to ``axis`` ('x', 'y' or 'z')."""
    m = o3d.geometry.TriangleMesh.create_torus(ring_radius, tube_radius, 24, 8)
    p = _from_o3d(m, rgb, reflectivity)
    if axis == "y":  # ring in the x-z plane
        p = p.rotated(np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]))
    elif axis == "x":  # ring in the y-z plane
        p = p.rotated(np.array([[0, 0, 1.0], [0, 1.0, 0], [-1.0, 0, 0]]))
    return p.moved(center)


def lathe(
    profile: Sequence[tuple[float, float]], rgb, segments: int = 32, reflectivity=None
) -> Part:
    """Solid of revolution about +z from a (radius, z) polyline, metres.

    Start and end the profile on the axis (radius 0) for a closed surface. Rings of radius 0
    collapse to one vertex (the degenerate triangles there have zero area and are never hit).
    """
    prof = np.asarray(profile, dtype=np.float64)
    theta = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    r, z = prof[:, 0:1], prof[:, 1:2]
    shape = (len(prof), segments)
    verts = np.stack(
        [r * np.cos(theta)[None, :], r * np.sin(theta)[None, :], np.broadcast_to(z, shape)],
        axis=-1,
    ).reshape(-1, 3)
    i = np.arange(len(prof) - 1)[:, None]
    j = np.arange(segments)[None, :]
    j1 = (j + 1) % segments
    a, b = i * segments + j, i * segments + j1
    c, d = (i + 1) * segments + j, (i + 1) * segments + j1
    tris = np.concatenate(
        [np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)]
    ).astype(np.int32)
    return Part(verts, tris, tuple(rgb), reflectivity)


def cylinder(
    radius: float,
    height: float,
    rgb,
    center=(0.0, 0.0, 0.0),
    segments: int = 32,
    reflectivity=None,
) -> Part:
    """Closed vertical cylinder centred on ``center``."""
    h = height / 2.0
    p = lathe([(0, -h), (radius, -h), (radius, h), (0, h)], rgb, segments, reflectivity)
    return p.moved(center)


def luminance(rgb) -> float:
    r, g, b = (float(x) for x in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def merge(parts: Sequence[Part]) -> ObjectMesh:
    """Merge parts into one :class:`ObjectMesh` re-centred on its bounding box."""
    verts, tris, rgbs, refl = [], [], [], []
    offset = 0
    for p in parts:
        verts.append(p.vertices)
        tris.append(p.triangles + offset)
        offset += len(p.vertices)
        n = len(p.triangles)
        rgbs.append(np.broadcast_to(np.asarray(p.rgb, np.float32), (n, 3)))
        r = 0.1 + 0.8 * luminance(p.rgb) if p.reflectivity is None else p.reflectivity
        refl.append(np.full(n, r, np.float32))
    v = np.concatenate(verts)
    lo, hi = v.min(0), v.max(0)
    return ObjectMesh(
        vertices=v - (lo + hi) / 2.0,
        triangles=np.concatenate(tris).astype(np.int32),
        face_rgb=np.concatenate(rgbs).astype(np.float32),
        face_reflectivity=np.concatenate(refl).astype(np.float32),
        size=hi - lo,
    )
