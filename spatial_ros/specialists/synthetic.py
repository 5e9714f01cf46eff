"""Small ray-cast scenes with exact truth, for specialist tests and ``spatial-ros bench lidar``.

This is not the simulated world (``spatial_ros.sim``): no images, no trajectories, no bags —
just a spinning LiDAR (open3d ``RaycastingScene``, one ``cast_rays`` call) over boxes on a
plane, so the specialists can be checked against exact boxes without any other module.
Frames: points are in the LiDAR frame, truth boxes in the z-up base frame (ground/floor at
z = 0); ``SyntheticScan.T_base_from_lidar`` links them (the tabletop LiDAR is pitched down).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_ros.types import Box3D


@dataclass(eq=False)
class SyntheticScan:
    """A ray-cast cloud with exact truth.

    Attributes:
        points: (N, 4) float32 x, y, z, intensity in the LiDAR frame, metres.
        boxes: truth boxes of the objects (base frame, z-up, "base_link").
        labels: category of each box.
        point_counts: LiDAR points that hit each object.
        object_ids: (N,) index into ``boxes`` of the object each point hit, -1 for the
            ground/background.
        T_base_from_lidar: (4, 4) base frame from LiDAR frame.
    """

    points: np.ndarray
    boxes: list[Box3D]
    labels: list[str]
    point_counts: np.ndarray
    object_ids: np.ndarray
    T_base_from_lidar: np.ndarray


def _box_mesh(box: Box3D):
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_box(*box.size)
    m.translate(-box.size / 2.0)
    m.rotate(box.rotation, center=np.zeros(3))
    m.translate(box.center)
    return m


def _cylinder_mesh(center, radius, height):
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_cylinder(radius=radius, height=height, resolution=24)
    m.translate(np.asarray(center, float))
    return m


def raycast_lidar(
    meshes: list,
    *,
    origin=(0.0, 0.0, 0.0),
    beams: int = 64,
    v_fov_deg=(-24.9, 2.0),
    azimuth_steps: int = 2048,
    h_fov_deg=(-180.0, 180.0),
    max_range: float = 80.0,
    noise_m: float = 0.01,
    dropout: float = 0.0,
    seed: int = 0,
    pitch_deg: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cast a spinning LiDAR's rays at ``meshes`` (open3d legacy TriangleMesh list).

    Returns:
        (points (N, 4) float32 in the LiDAR frame with intensity, geometry index (N,) of the
        mesh each point hit, T_scene_from_lidar (4, 4)). The LiDAR sits at ``origin``, pitched
        down by ``pitch_deg`` about its y axis.
    """
    import open3d as o3d

    rng = np.random.default_rng(seed)
    scene = o3d.t.geometry.RaycastingScene()
    for m in meshes:
        scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(m))
    el = np.radians(np.linspace(v_fov_deg[0], v_fov_deg[1], beams))
    az = np.radians(np.linspace(h_fov_deg[0], h_fov_deg[1], azimuth_steps, endpoint=False))
    E, A = np.meshgrid(el, az, indexing="ij")
    d_l = np.stack([np.cos(E) * np.cos(A), np.cos(E) * np.sin(A), np.sin(E)], axis=-1)
    d_l = d_l.reshape(-1, 3)
    p = np.radians(pitch_deg)  # positive pitch looks down (rotation about +y)
    R = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    d = d_l @ R.T
    o = np.broadcast_to(np.asarray(origin, float), d.shape)
    rays = o3d.core.Tensor(np.concatenate([o, d], axis=1).astype(np.float32))
    ans = scene.cast_rays(rays)
    t = ans["t_hit"].numpy().astype(np.float64)
    gid = ans["geometry_ids"].numpy().astype(np.int64)
    hit = np.isfinite(t) & (t <= max_range)
    if dropout > 0:
        hit &= rng.random(len(t)) >= dropout
    t = t[hit] + rng.normal(0.0, noise_m, int(hit.sum()))
    pts = d_l[hit] * t[:, None]
    inten = np.clip(1.0 / (1.0 + 0.05 * t), 0, 1)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, np.asarray(origin, float)
    return np.column_stack([pts, inten]).astype(np.float32), gid[hit], T


def street_scan(
    seed: int,
    *,
    n_cars: int = 10,
    n_pedestrians: int = 4,
    n_poles: int = 3,
    lidar_height: float = 1.73,
    beams: int = 64,
    azimuth_steps: int = 2048,
    noise_m: float = 0.01,
    max_range: float = 80.0,
    target_points: int | None = None,
) -> SyntheticScan:
    """A KITTI-like street: ground, cars (body + cabin), pedestrians, poles, a building wall,
    seen by a level LiDAR ``lidar_height`` above the ground.

    Objects are placed 4-45 m from the LiDAR without overlapping; poles and the wall are
    clutter (not in the truth). ``target_points`` (optional) subsamples the returned cloud
    (fixed seed) to exactly that many points.
    """
    rng = np.random.default_rng(seed)
    g = 0.0
    wall_y = float(rng.choice([-1, 1]) * rng.uniform(14, 20))
    meshes = [_box_mesh(Box3D([0, 0, g - 0.05], [200, 200, 0.1])),
              _box_mesh(Box3D([10, wall_y, g + 4], [60, 0.5, 8]))]
    owner = [-1, -1]  # object index of each mesh (-1: ground, wall, poles)
    boxes: list[Box3D] = []
    labels: list[str] = []
    placed: list[tuple[float, float, float]] = []

    def free(x, y, r):
        far_from_others = all(np.hypot(x - a, y - b) > r + c + 0.8 for a, b, c in placed)
        return far_from_others and abs(y - wall_y) > r + 1.0

    for label, count in (("car", n_cars), ("pedestrian", n_pedestrians), ("pole", n_poles)):
        k = tries = 0
        while k < count and tries < 2000:
            tries += 1
            rad, ang = rng.uniform(4, 45), rng.uniform(-np.pi, np.pi)
            x, y = rad * np.cos(ang), rad * np.sin(ang)
            if label == "car":
                L, W, H = rng.uniform(3.5, 4.6), rng.uniform(1.55, 1.85), rng.uniform(1.4, 1.6)
            elif label == "pedestrian":
                L, W, H = rng.uniform(0.5, 0.9), rng.uniform(0.45, 0.7), rng.uniform(1.55, 1.9)
            else:
                L = W = 0.25
                H = rng.uniform(3.0, 5.0)
            yaw = float(rng.uniform(-np.pi, np.pi))
            if not free(x, y, np.hypot(L, W) / 2):
                continue
            placed.append((x, y, np.hypot(L, W) / 2))
            k += 1
            if label == "pole":
                meshes.append(_cylinder_mesh([x, y, g + H / 2], 0.12, H))
                owner.append(-1)
                continue
            boxes.append(Box3D.from_yaw([x, y, g + H / 2], [L, W, H], yaw, "base_link"))
            labels.append(label)
            if label == "car":
                # body 0.15-1.05 m, a narrower "wheels" block under it, a cabin on top
                fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
                parts = [
                    Box3D.from_yaw([x, y, g + 0.6], [L, W, 0.9], yaw),
                    Box3D.from_yaw([x, y, g + 0.075], [L - 0.6, W - 0.2, 0.15], yaw),
                    Box3D.from_yaw(np.array([x, y, g + (1.05 + H) / 2]) - 0.1 * L * fwd,
                                   [0.55 * L, W - 0.1, H - 1.05], yaw),
                ]
            else:
                parts = [boxes[-1]]
            meshes += [_box_mesh(b) for b in parts]
            owner += [len(boxes) - 1] * len(parts)
    pts, gid, T = raycast_lidar(meshes, origin=(0.0, 0.0, lidar_height), beams=beams,
                                azimuth_steps=azimuth_steps, max_range=max_range,
                                noise_m=noise_m, seed=seed)
    obj = np.asarray(owner, dtype=np.int64)[gid]
    if target_points is not None and len(pts) > target_points:
        sub = np.random.default_rng(seed + 1).choice(len(pts), target_points, replace=False)
        keep = np.sort(sub)
        pts, obj = pts[keep], obj[keep]
    counts = np.bincount(obj[obj >= 0], minlength=len(boxes))
    return SyntheticScan(pts, boxes, labels, counts, obj, T)


def _tabletop_scene(seed: int, n_objects: int, table_height: float):
    """Meshes (floor, table, leg, objects), truth boxes, labels, owner index of each mesh."""
    rng = np.random.default_rng(seed)
    th = table_height
    meshes = [_box_mesh(Box3D([0.6, 0, -0.05], [6, 6, 0.1])),  # floor
              _box_mesh(Box3D([0.6, 0, th - 0.02], [0.8, 1.2, 0.04])),  # table top
              _box_mesh(Box3D([0.6, 0, (th - 0.04) / 2], [0.1, 0.1, th - 0.04]))]  # leg
    owner = [-1, -1, -1]
    boxes: list[Box3D] = []
    labels: list[str] = []
    placed: list[tuple[float, float, float]] = []
    tries = 0
    while len(boxes) < n_objects and tries < 2000:
        tries += 1
        kind = "box" if rng.random() < 0.5 else "cylinder"
        if kind == "box":
            L, W, H = rng.uniform(0.05, 0.2), rng.uniform(0.04, 0.12), rng.uniform(0.04, 0.2)
            L, W = max(L, W), min(L, W)
            foot = np.hypot(L, W) / 2
        else:
            rad, H = rng.uniform(0.03, 0.06), rng.uniform(0.06, 0.2)
            L = W = 2 * rad
            foot = rad
        x, y = rng.uniform(0.3 + foot, 0.95 - foot), rng.uniform(-0.55 + foot, 0.55 - foot)
        if any(np.hypot(x - a, y - b) < foot + c + 0.04 for a, b, c in placed):
            continue
        placed.append((x, y, foot))
        yaw = float(rng.uniform(-np.pi / 2, np.pi / 2))
        box = Box3D.from_yaw([x, y, th + H / 2], [L, W, H], yaw, "base_link")
        boxes.append(box)
        labels.append(kind)
        if kind == "box":
            meshes.append(_box_mesh(box))
        else:
            meshes.append(_cylinder_mesh([x, y, th + H / 2], L / 2, H))
        owner.append(len(boxes) - 1)
    return meshes, boxes, labels, np.asarray(owner, dtype=np.int64)


def tabletop_cloud(
    seed: int,
    *,
    n_objects: int = 6,
    table_height: float = 0.75,
    lidar_xyz=(-0.45, 0.0, 1.45),
    pitch_deg: float = 45.0,
    beams: int = 64,
    v_fov_deg=(-25.0, 25.0),
    azimuth_steps: int = 900,
    h_fov_deg=(-45.0, 45.0),
    noise_m: float = 0.003,
) -> SyntheticScan:
    """A table (0.8 x 1.2 m top at ``table_height``) on a floor with boxes and cylinders on it,
    seen by a dense LiDAR at ``lidar_xyz`` pitched down ``pitch_deg`` towards +x.

    Boxes are in the z-up base frame (floor at z = 0); points in the tilted LiDAR frame.
    """
    meshes, boxes, labels, owner = _tabletop_scene(seed, n_objects, table_height)
    pts, gid, T = raycast_lidar(meshes, origin=lidar_xyz, beams=beams, v_fov_deg=v_fov_deg,
                                azimuth_steps=azimuth_steps, h_fov_deg=h_fov_deg, max_range=5.0,
                                noise_m=noise_m, seed=seed, pitch_deg=pitch_deg)
    obj = owner[gid]
    counts = np.bincount(obj[obj >= 0], minlength=len(boxes))
    return SyntheticScan(pts, boxes, labels, counts, obj, T)


@dataclass(eq=False)
class SyntheticDepth:
    """A ray-cast depth image with exact truth.

    Attributes:
        depth: (H, W) float32 metres along the optical axis, NaN where nothing was hit.
        camera: intrinsics (optical frame "camera_optical_frame").
        T_base_from_camera: (4, 4) base frame from the optical frame.
        boxes, labels: truth boxes (base frame) and categories.
        instance: (H, W) int64 index into ``boxes`` of the object at each pixel, -1 elsewhere.
        boxes_2d: (K, 4) tight pixel boxes of each object's visible pixels (NaN if unseen).
    """

    depth: np.ndarray
    camera: object
    T_base_from_camera: np.ndarray
    boxes: list[Box3D]
    labels: list[str]
    instance: np.ndarray
    boxes_2d: np.ndarray


def tabletop_depth(
    seed: int,
    *,
    n_objects: int = 6,
    table_height: float = 0.75,
    camera_xyz=(-0.35, 0.0, 1.5),
    pitch_deg: float = 45.0,
    width: int = 320,
    height: int = 240,
    hfov_deg: float = 70.0,
    noise_m: float = 0.0,
) -> SyntheticDepth:
    """The tabletop scene of ``tabletop_cloud`` seen by a depth camera pitched down
    ``pitch_deg`` towards +x (one ``cast_rays`` call for the whole image)."""
    import open3d as o3d

    from spatial_ros.geometry.transforms import R_BODY_FROM_OPTICAL
    from spatial_ros.types import CameraIntrinsics

    meshes, boxes, labels, owner = _tabletop_scene(seed, n_objects, table_height)
    cam = CameraIntrinsics.from_fov(width, height, hfov_deg)
    p = np.radians(pitch_deg)
    R_pitch = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    T = np.eye(4)
    T[:3, :3] = R_pitch @ R_BODY_FROM_OPTICAL
    T[:3, 3] = camera_xyz
    uu, vv = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays_opt = np.stack([(uu - cam.cx) / cam.fx, (vv - cam.cy) / cam.fy, np.ones_like(uu)], -1)
    dirs = rays_opt.reshape(-1, 3) @ T[:3, :3].T
    scene = o3d.t.geometry.RaycastingScene()
    for m in meshes:
        scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(m))
    o = np.broadcast_to(T[:3, 3], dirs.shape)
    ans = scene.cast_rays(o3d.core.Tensor(np.concatenate([o, dirs], 1).astype(np.float32)))
    t = ans["t_hit"].numpy().reshape(height, width).astype(np.float64)  # ray length / |dir|
    gid = ans["geometry_ids"].numpy().astype(np.int64).reshape(height, width)
    hit = np.isfinite(t)
    depth = np.where(hit, t, np.nan)  # |rays_opt z| = 1: t is the optical-axis depth
    if noise_m > 0:
        depth = depth + np.random.default_rng(seed).normal(0, noise_m, depth.shape)
    inst = np.where(hit, owner[np.where(hit, gid, 0)], -1)
    b2 = np.full((len(boxes), 4), np.nan)
    for k in range(len(boxes)):  # per object (few), vectorised inside
        ys, xs = np.nonzero(inst == k)
        if len(xs):
            b2[k] = [xs.min(), ys.min(), xs.max(), ys.max()]
    return SyntheticDepth(depth.astype(np.float32), cam, T, boxes, labels, inst, b2)
