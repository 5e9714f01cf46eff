"""Raycast sensors on CPU (open3d ``RaycastingScene``): RGB camera, aligned depth, spinning LiDAR.

All camera rays of an image go into ONE ``cast_rays`` call (plus one ``test_occlusions`` call for
shadows when enabled); a LiDAR scan is one ``cast_rays`` call. Everything after the cast is
vectorised numpy: per-triangle colour lookup, procedural textures of the background, Lambertian
shading (ambient + diffuse from the hit triangle's normal), supersampling, noise.

Camera rays are built in the optical frame with direction (x_n, y_n, 1) — normalised image
coordinates, undistorted with cv2.undistortPoints when the camera has distortion — so the hit
distance ``t`` of a ray IS the depth (z in the optical frame) of the surface it hits.

Geometry ids: objects are added first, in scene order, so geometry id i is object i; background
surfaces follow. Those ids give exact per-pixel instance masks and per-point object labels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import open3d as o3d

from spatial_ros.sim.config import CameraConfig, LidarConfig
from spatial_ros.sim.scene import Scene
from spatial_ros.types import CameraIntrinsics

INVALID_ID = int(o3d.t.geometry.RaycastingScene.INVALID_ID)
KIND_OBJECT, KIND_FLOOR, KIND_TABLE, KIND_ROAD, KIND_BUILDING = 0, 1, 2, 3, 4
_KIND_CODES = {
    "floor": KIND_FLOOR,
    "table": KIND_TABLE,
    "road": KIND_ROAD,
    "building": KIND_BUILDING,
}
AMBIENT = 0.42
SHADOW_LIGHT = 0.2  # fraction of the diffuse light that still reaches shadowed points


class RayWorld:
    """A scene state in one RaycastingScene, with per-triangle material tables.

    Args:
        scene: the scene at the instant to render (object poses as given).
    """

    def __init__(self, scene: Scene):
        self.scene = scene
        self.rc = o3d.t.geometry.RaycastingScene()
        rgb, refl, offsets, kinds, objs = [], [], [], [], []
        n_faces = 0
        ids = []
        for i, obj in enumerate(scene.objects):
            v = obj.mesh.posed_vertices(obj.center, obj.yaw).astype(np.float32)
            ids.append(
                self.rc.add_triangles(
                    o3d.core.Tensor(v), o3d.core.Tensor(obj.mesh.triangles.astype(np.uint32))
                )
            )
            rgb.append(obj.mesh.face_rgb)
            refl.append(obj.mesh.face_reflectivity)
            offsets.append(n_faces)
            n_faces += obj.mesh.num_triangles
            kinds.append(KIND_OBJECT)
            objs.append(i)
        for s in scene.surfaces:
            ids.append(
                self.rc.add_triangles(
                    o3d.core.Tensor(s.vertices.astype(np.float32)),
                    o3d.core.Tensor(s.triangles.astype(np.uint32)),
                )
            )
            n = len(s.triangles)
            rgb.append(np.broadcast_to(np.asarray(s.rgb, np.float32), (n, 3)))
            refl.append(np.full(n, s.reflectivity, np.float32))
            offsets.append(n_faces)
            n_faces += n
            kinds.append(_KIND_CODES[s.kind])
            objs.append(-1)
        if ids != list(range(len(ids))):  # open3d numbers geometries 0, 1, 2 ... in add order
            raise RuntimeError(f"unexpected RaycastingScene geometry ids {ids}")
        # One extra entry at the end stands for "no hit" (INVALID_ID is remapped to it).
        self.face_rgb = np.concatenate(rgb + [np.zeros((1, 3), np.float32)])
        self.face_reflectivity = np.concatenate(refl + [np.zeros(1, np.float32)])
        self.face_offset = np.array(offsets + [n_faces], np.int64)
        self.geom_kind = np.array(kinds + [-1], np.int32)
        self.geom_object = np.array(objs + [-1], np.int32)
        self.num_geometries = len(ids)

    def geometry_index(self, gid: np.ndarray) -> np.ndarray:
        """Geometry ids with INVALID_ID mapped to ``num_geometries`` (the "no hit" slot)."""
        g = gid.astype(np.int64)
        g[gid == INVALID_ID] = self.num_geometries
        return g

    def cast(self, rays: np.ndarray) -> dict[str, np.ndarray]:
        """First hits of (N, 6) float32 rays [origin, direction] (one ``cast_rays`` call)."""
        out = self.rc.cast_rays(o3d.core.Tensor(rays))
        return {k: v.numpy() for k, v in out.items()}

    def materials(
        self, g: np.ndarray, prim: np.ndarray, points: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Base colour (N, 3) in [0, 1] and LiDAR reflectivity (N,) at hits.

        Args:
            g: (N,) geometry index (``geometry_index`` output); prim: (N,) triangle ids.
            points: (N, 3) hit points in base_link (for the background's procedural textures).
        """
        hit = g < self.num_geometries
        face = np.where(
            hit,
            self.face_offset[g] + np.where(hit, prim, 0).astype(np.int64),
            len(self.face_rgb) - 1,
        )
        rgb = self.face_rgb[face].copy()
        refl = self.face_reflectivity[face].copy()
        kind = self.geom_kind[g]
        for code, fn in (
            (KIND_FLOOR, _tex_floor),
            (KIND_TABLE, _tex_table),
            (KIND_ROAD, _tex_road),
            (KIND_BUILDING, _tex_building),
        ):
            m = kind == code
            if m.any():
                rgb[m], refl[m] = fn(points[m], rgb[m], refl[m])
        return rgb, refl


# ----------------------------------------------------------------------------------------------
# Procedural textures (vectorised over hit points in base_link)
# ----------------------------------------------------------------------------------------------


def _hash01(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    h = (i.astype(np.int64) * 73856093) ^ (j.astype(np.int64) * 19349663)
    return (h % 1009).astype(np.float32) / 1009.0


def _tex_floor(p, rgb, refl):
    tile = 0.5
    ix, iy = np.floor(p[:, 0] / tile), np.floor(p[:, 1] / tile)
    f = 0.9 + 0.14 * _hash01(ix, iy)
    fx, fy = p[:, 0] / tile - ix, p[:, 1] / tile - iy
    grout = (np.minimum(fx, 1 - fx) < 0.025) | (np.minimum(fy, 1 - fy) < 0.025)
    f = np.where(grout, 0.6, f)
    return rgb * f[:, None], refl


def _tex_table(p, rgb, refl):
    plank = 0.16
    iy = np.floor(p[:, 1] / plank)
    fy = p[:, 1] / plank - iy
    grain = 0.93 + 0.07 * np.sin(
        2 * np.pi * (p[:, 0] * 7.0 + 0.8 * np.sin(p[:, 1] * 23.0) + 3.0 * _hash01(iy, iy))
    )
    f = grain * (0.92 + 0.12 * _hash01(iy, -iy))
    f = np.where(np.minimum(fy, 1 - fy) < 0.03, 0.62, f)
    return rgb * f[:, None], refl


def _tex_road(p, rgb, refl):
    x, y = p[:, 0], p[:, 1]
    ay = np.abs(y)
    out = rgb * (0.92 + 0.1 * _hash01(np.floor(x / 0.7), np.floor(y / 0.7)))[:, None]
    refl = refl.copy()
    dashed = (np.abs(ay - 3.5) < 0.075) & ((x / 6.0 - np.floor(x / 6.0)) < 0.5)
    edge = np.abs(ay - 6.85) < 0.08
    centre = np.abs(ay - 0.12) < 0.06
    white = dashed | edge
    out[white] = (0.88, 0.88, 0.86)
    out[centre] = (0.9, 0.75, 0.15)
    refl[white | centre] = 0.8
    side = (ay >= 7.0) & (ay < 11.0)
    slab = np.abs(x / 1.5 - np.round(x / 1.5)) < 0.02
    out[side] = np.where(slab[side, None], 0.45, 0.66) * np.array([1.0, 0.98, 0.94])
    refl[side] = 0.35
    grass = ay >= 11.0
    out[grass] = (
        np.array([0.3, 0.42, 0.22])
        * (0.9 + 0.2 * _hash01(np.floor(x[grass] / 0.3), np.floor(y[grass] / 0.3)))[:, None]
    )
    refl[grass] = 0.15
    return out, refl


def _tex_building(p, rgb, refl):
    a = p[:, 0] + p[:, 1]
    fa = a / 3.0 - np.floor(a / 3.0)
    fz = p[:, 2] / 3.0 - np.floor(p[:, 2] / 3.0)
    window = (fa > 0.25) & (fa < 0.75) & (fz > 0.3) & (fz < 0.8) & (p[:, 2] > 1.0)
    out = rgb.copy()
    out[window] = (0.18, 0.22, 0.28)
    refl = np.where(window, 0.1, refl)
    return out, refl


# ----------------------------------------------------------------------------------------------
# Camera
# ----------------------------------------------------------------------------------------------


@dataclass(eq=False)
class CameraImage:
    """One rendered camera frame.

    Attributes:
        rgb: (H, W, 3) uint8.
        depth: (H, W) float32 metres along the optical z axis; NaN = no return.
        instance: (H, W) int32 object index per pixel, -1 = background / sky.
        depth_exact: (H, W) float32 depth before noise (for truth checks).
    """

    rgb: np.ndarray
    depth: np.ndarray
    instance: np.ndarray
    depth_exact: np.ndarray


@functools.lru_cache(maxsize=16)
def _optical_dirs(width: int, height: int, K: tuple, D: tuple, s: int) -> np.ndarray:
    """(H*s, W*s, 3) float64 ray directions (x_n, y_n, 1) in the optical frame; s x s samples per
    pixel at sub-pixel offsets (k + 0.5) / s - 0.5, so the centre sample (s odd) hits the pixel
    centre exactly."""
    off = (np.arange(s) + 0.5) / s - 0.5
    u = (np.arange(width)[:, None] + off[None, :]).reshape(-1)
    v = (np.arange(height)[:, None] + off[None, :]).reshape(-1)
    uu, vv = np.meshgrid(u, v)
    Km = np.asarray(K, float).reshape(3, 3)
    if any(D):
        pts = np.stack([uu.ravel(), vv.ravel()], -1).astype(np.float64)[:, None, :]
        xy = cv2.undistortPoints(
            pts,
            Km,
            np.asarray(D, float),
            criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10),
        ).reshape(uu.shape + (2,))
        x, y = xy[..., 0], xy[..., 1]
    else:
        x = (uu - Km[0, 2]) / Km[0, 0]
        y = (vv - Km[1, 2]) / Km[1, 1]
    return np.stack([x, y, np.ones_like(x)], -1)


def _rotate(d: np.ndarray, R: np.ndarray) -> np.ndarray:
    # einsum, not ``d @ R.T``: a BLAS matmul of a tall (N, 3) array spins up threads and is
    # 20x slower on a busy 2-core machine.
    return np.einsum("ij,kj->ik", d, R)


def _ray_array(origin: np.ndarray, d_base: np.ndarray) -> np.ndarray:
    rays = np.empty((d_base.shape[0], 6), np.float32)
    rays[:, :3] = origin
    rays[:, 3:] = d_base
    return rays


def camera_rays(rig, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Camera rays of a rig in base_link, cached on the rig (it never moves).

    Returns:
        rays: (N, 6) float32 [origin, direction] for ``cast_rays`` (N = H*s * W*s, row-major).
        d: (N, 3) float32 directions with unit optical z (hit distance = depth).
    """
    key = ("camera", supersample)
    if key not in rig.cache:
        T = rig.T_base_from_optical
        d = _rotate(optical_rays(rig.intrinsics, supersample).reshape(-1, 3), T[:3, :3])
        rig.cache[key] = (_ray_array(T[:3, 3], d), d.astype(np.float32))
    return rig.cache[key]


def lidar_rays(rig) -> tuple[np.ndarray, np.ndarray]:
    """LiDAR beams of a rig: (N, 6) float32 rays in base_link and (N, 3) unit directions in
    the LiDAR frame (cached on the rig)."""
    if "lidar" not in rig.cache:
        dl = lidar_directions(rig.lidar)
        T = rig.T_base_from_lidar
        rig.cache["lidar"] = (_ray_array(T[:3, 3], _rotate(dl, T[:3, :3])), dl)
    return rig.cache["lidar"]


def optical_rays(intr: CameraIntrinsics, supersample: int = 1) -> np.ndarray:
    """Per-pixel ray directions (H*s, W*s, 3) in the optical frame with unit z (t = depth)."""
    return _optical_dirs(
        intr.width, intr.height, tuple(intr.K.ravel()), tuple(intr.D.ravel()), supersample
    )


def _sky(dirs_base: np.ndarray, scenario: str) -> np.ndarray:
    up = dirs_base[:, 2] / np.linalg.norm(dirs_base, axis=1)
    t = np.clip(up * 2.0, 0, 1)[:, None]
    if scenario == "tabletop":
        return np.array([0.78, 0.78, 0.76]) * (1 - t) + np.array([0.9, 0.9, 0.88]) * t
    return np.array([0.75, 0.83, 0.93]) * (1 - t) + np.array([0.4, 0.6, 0.88]) * t


def render_camera(world: RayWorld, rng: np.random.Generator) -> CameraImage:
    """Render colour, depth and instance mask of ``world.scene`` through its rig's camera."""
    scene = world.scene
    rig = scene.rig
    cam: CameraConfig = rig.camera
    s = cam.supersample
    intr = rig.intrinsics
    H, W = intr.height, intr.width
    rays, d = camera_rays(rig, s)
    o = rays[0, :3]
    hit = world.cast(rays)
    t = hit["t_hit"]
    g = world.geometry_index(hit["geometry_ids"])
    ok = np.isfinite(t)
    p = o + d * np.where(ok, t, 0.0)[:, None]
    base, _ = world.materials(g, hit["primitive_ids"], p)
    n = hit["primitive_normals"]
    n *= np.where(np.einsum("ij,ij->i", n, d) > 0, -1.0, 1.0).astype(np.float32)[:, None]
    L = scene.light_dir.astype(np.float32)
    lam = np.clip(np.einsum("ij,j->i", n, L), 0.0, 1.0)
    if cam.shadows:
        idx = np.flatnonzero(ok & (lam > 0))
        sr = np.empty((len(idx), 6), np.float32)
        sr[:, :3] = p[idx] + n[idx] * 2e-3
        sr[:, 3:] = L
        occ = world.rc.test_occlusions(o3d.core.Tensor(sr)).numpy()
        lam[idx[occ]] *= SHADOW_LIGHT
    col = base * (AMBIENT + (1 - AMBIENT) * lam)[:, None]
    col[~ok] = _sky(d[~ok], scene.scenario)
    col = col.reshape(H * s, W * s, 3)
    if s > 1:
        col = col.reshape(H, s, W, s, 3).mean(axis=(1, 3))
    img = col * 255.0
    if cam.image_noise_std > 0:
        img = img + rng.normal(0.0, cam.image_noise_std, img.shape)
    rgb = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    c = (s - 1) // 2
    tc = t.reshape(H * s, W * s)[c::s, c::s]
    gc = g.reshape(H * s, W * s)[c::s, c::s]
    depth_exact = np.where(np.isfinite(tc) & (tc <= cam.max_depth), tc, np.nan).astype(np.float32)
    depth = depth_exact
    if cam.depth_noise_std > 0:
        depth = (depth_exact + rng.normal(0.0, cam.depth_noise_std, depth.shape)).astype(
            np.float32
        )
    instance = world.geom_object[gc].astype(np.int32)
    return CameraImage(rgb, depth, instance, depth_exact)


def footprint_pixels(world: RayWorld, instance: np.ndarray, boxes_2d: list) -> np.ndarray:
    """Per object: the number of pixels it would cover if nothing occluded it (in the image).

    Each object is cast alone (its own small RaycastingScene) with the centre rays of the pixels
    inside its projected 2D box, so the count is exact at pixel centres, like the instance mask.
    (One scene per object is cheaper than ``list_intersections`` through the whole scene.)

    Args:
        world: the rendered scene state.
        instance: (H, W) instance mask of the render (its shape gives the image size).
        boxes_2d: per object, its (4,) projected 2D box in pixels or None (out of view).
    """
    H, W = instance.shape
    objects = world.scene.objects
    counts = np.zeros(len(objects), np.int64)
    rays_all = camera_rays(world.scene.rig, 1)[0].reshape(H, W, 6)
    for i, (obj, b) in enumerate(zip(objects, boxes_2d, strict=True)):
        if b is None:
            continue
        x1, y1 = max(int(np.floor(b[0])), 0), max(int(np.floor(b[1])), 0)
        x2, y2 = min(int(np.ceil(b[2])), W - 1), min(int(np.ceil(b[3])), H - 1)
        rays = np.ascontiguousarray(rays_all[y1 : y2 + 1, x1 : x2 + 1].reshape(-1, 6))
        if not len(rays):
            continue
        rc = o3d.t.geometry.RaycastingScene()
        v = obj.mesh.posed_vertices(obj.center, obj.yaw).astype(np.float32)
        rc.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(obj.mesh.triangles.astype(np.uint32)))
        counts[i] = int(rc.test_occlusions(o3d.core.Tensor(rays)).numpy().sum())
    return counts


# ----------------------------------------------------------------------------------------------
# LiDAR
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _lidar_dirs(
    beams: int, el_min: float, el_max: float, az_res: float, az_fov: float
) -> np.ndarray:
    el = np.radians(np.linspace(el_min, el_max, beams)) if beams > 1 else np.radians([el_min])
    n_az = max(1, int(round(az_fov / az_res)))
    if az_fov >= 360.0:
        az = np.radians(-180.0 + az_res * np.arange(n_az))
    else:
        az = np.radians((np.arange(n_az) - (n_az - 1) / 2.0) * az_res)
    ce = np.cos(el)
    # firing order: azimuth-major (all beams at one azimuth, then the next azimuth)
    d = np.stack(
        [
            np.cos(az)[:, None] * ce[None, :],
            np.sin(az)[:, None] * ce[None, :],
            np.broadcast_to(np.sin(el)[None, :], (n_az, beams)),
        ],
        -1,
    )
    return d.reshape(-1, 3)


def lidar_directions(cfg: LidarConfig) -> np.ndarray:
    """(N, 3) unit beam directions in the LiDAR frame, azimuth-major."""
    return _lidar_dirs(
        cfg.beams,
        cfg.elevation_min_deg,
        cfg.elevation_max_deg,
        cfg.azimuth_res_deg,
        cfg.azimuth_fov_deg,
    )


@dataclass(eq=False)
class LidarScan:
    """One LiDAR scan.

    Attributes:
        points: (N, 4) float32 x, y, z (lidar frame, metres), intensity in [0, 1].
        object_index: (N,) int32 object hit by each return (-1 = background).
        ranges_exact: (N,) float64 noise-free range of each return (metres).
    """

    points: np.ndarray
    object_index: np.ndarray
    ranges_exact: np.ndarray


def render_lidar(world: RayWorld, rng: np.random.Generator) -> LidarScan:
    """Cast one scan of the rig's LiDAR into ``world`` (noise, dropout, range limits applied)."""
    rig = world.scene.rig
    cfg = rig.lidar
    rays, dl = lidar_rays(rig)
    d = rays[:, 3:]
    hit = world.cast(rays)
    t = hit["t_hit"].astype(np.float64)
    keep = np.isfinite(t) & (t >= cfg.min_range) & (t <= cfg.max_range)
    if cfg.dropout > 0:
        keep &= rng.random(t.shape) >= cfg.dropout
    idx = np.flatnonzero(keep)
    t = t[idx]
    r = t + rng.normal(0.0, cfg.range_noise_std, t.shape) if cfg.range_noise_std > 0 else t
    g = world.geometry_index(hit["geometry_ids"][idx])
    p_base = rays[0, :3] + d[idx] * t[:, None]
    _, refl = world.materials(g, hit["primitive_ids"][idx], p_base)
    n = hit["primitive_normals"][idx].astype(np.float64)
    cos_inc = np.abs(np.einsum("ij,ij->i", n, d[idx]))
    inten = refl * (0.3 + 0.7 * cos_inc)
    if cfg.intensity_noise_std > 0:
        inten = inten + rng.normal(0.0, cfg.intensity_noise_std, inten.shape)
    pts = np.empty((len(idx), 4), np.float32)
    pts[:, :3] = dl[idx] * r[:, None]
    pts[:, 3] = np.clip(inten, 0.0, 1.0)
    return LidarScan(pts, world.geom_object[g].astype(np.int32), t)
