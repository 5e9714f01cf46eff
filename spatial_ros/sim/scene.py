"""Procedural scenes from a seed: a tabletop (table, objects, gripper) and a street (cars,
pedestrians, cyclists, poles), with the sensor rig that observes them.

Frames (REP-103/105): the robot stands still, so ``base_link`` (z up, x forward, origin on the
floor/ground under the robot) is also the world frame; every box and pose here is in base_link.
``camera_link`` (x forward, z up) carries the camera, ``camera_optical_frame`` (z forward, x right,
y down) its images, ``lidar`` (z up when level) the point clouds. Tabletop scenes add the dynamic
frame ``gripper_tcp`` (the gripper's tool centre point, /tf): origin at the centre of the
fingertips (the gripper box's centre minus half its height along base_link z), z parallel to
base_link z, x along the gripper's yaw.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import Polygon

from spatial_ros.errors import DataError
from spatial_ros.geometry.camera import project_points
from spatial_ros.geometry.transforms import (
    R_BODY_FROM_OPTICAL,
    TransformTree,
    apply,
    invert,
    make_transform,
)
from spatial_ros.sim import catalog
from spatial_ros.sim.config import CameraConfig, LidarConfig, SimConfig
from spatial_ros.sim.meshes import ObjectMesh, box, merge
from spatial_ros.types import Box3D, CameraIntrinsics, yaw_to_matrix

BASE_FRAME = "base_link"
CAMERA_FRAME = "camera_link"
OPTICAL_FRAME = "camera_optical_frame"
LIDAR_FRAME = "lidar"
GRIPPER_TCP_FRAME = "gripper_tcp"


def rot_y(angle: float) -> np.ndarray:
    """Rotation about +y by ``angle`` radians (positive tilts a forward x axis downwards)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


# ----------------------------------------------------------------------------------------------
# Data types
# ----------------------------------------------------------------------------------------------


@dataclass(eq=False)
class SimObject:
    """One object of a scene.

    Attributes:
        id: unique within the scene ("mug_0").
        category: "mug", "car", ... or "gripper".
        colour: palette colour name.
        rgb: sRGB 0..255 of that colour.
        caption: referring expression ("the red mug").
        mesh: local mesh, centred on its bounding box.
        center: (3,) bounding-box centre in base_link (metres).
        yaw: heading about +z of base_link (radians).
    """

    id: str
    category: str
    colour: str
    rgb: tuple[int, int, int]
    caption: str
    mesh: ObjectMesh
    center: np.ndarray
    yaw: float = 0.0

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, dtype=np.float64).reshape(3)
        self.yaw = float(self.yaw)

    @property
    def size(self) -> np.ndarray:
        return self.mesh.size

    @property
    def box(self) -> Box3D:
        """Exact ground-truth 3D box in base_link."""
        return Box3D.from_yaw(self.center, self.mesh.size, self.yaw, BASE_FRAME)

    @property
    def bottom_z(self) -> float:
        return float(self.center[2] - self.mesh.size[2] / 2.0)

    def footprint(
        self, center: np.ndarray | None = None, yaw: float | None = None, grow: float = 0.0
    ) -> Polygon:
        """Bird's-eye-view footprint polygon (x, y metres), optionally at another pose."""
        c = self.center if center is None else np.asarray(center, float)
        b = Box3D.from_yaw(c, self.mesh.size + 2 * grow, self.yaw if yaw is None else yaw)
        return Polygon(b.corners()[[0, 2, 6, 4], :2])

    def moved(self, center, yaw: float | None = None) -> SimObject:
        """A copy at another pose (the mesh is shared)."""
        return dataclasses.replace(
            self,
            center=np.asarray(center, float).copy(),
            yaw=self.yaw if yaw is None else float(yaw),
        )


@dataclass(eq=False)
class Surface:
    """A static background surface (not an object of the ground truth).

    Attributes:
        kind: texture name: "floor", "table", "road" (ground with lanes), "building".
        vertices: (V, 3) base_link metres; triangles: (F, 3) int32.
        rgb: base colour (0..1) the texture modulates.
        reflectivity: LiDAR reflectivity (0..1).
    """

    kind: str
    vertices: np.ndarray
    triangles: np.ndarray
    rgb: tuple[float, float, float]
    reflectivity: float = 0.3


@dataclass(eq=False)
class Rig:
    """The sensor rig: camera intrinsics, extrinsics and LiDAR pattern.

    Attributes:
        intrinsics: camera model; ``intrinsics.frame_id`` = camera_optical_frame.
        T_base_from_camera_link: 4x4, camera body frame (x forward, z up) in base_link.
        T_base_from_lidar: 4x4, LiDAR frame in base_link.
        camera, lidar: the sensor settings used.
        table_top_z: tabletop: the table height the rig was set up for (metres), else None.
        cache: derived data of this (static) rig, e.g. its camera and LiDAR rays.
    """

    intrinsics: CameraIntrinsics
    T_base_from_camera_link: np.ndarray
    T_base_from_lidar: np.ndarray
    camera: CameraConfig
    lidar: LidarConfig
    table_top_z: float | None = None
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def T_camera_link_from_optical(self) -> np.ndarray:
        return make_transform(R_BODY_FROM_OPTICAL)

    @property
    def T_base_from_optical(self) -> np.ndarray:
        return self.T_base_from_camera_link @ self.T_camera_link_from_optical

    @property
    def T_optical_from_lidar(self) -> np.ndarray:
        """The camera <- LiDAR extrinsic (points in lidar -> camera optical frame)."""
        return invert(self.T_base_from_optical) @ self.T_base_from_lidar

    def transform_tree(self) -> TransformTree:
        """base_link -> camera_link -> camera_optical_frame and base_link -> lidar (/tf_static)."""
        tree = TransformTree()
        tree.set(BASE_FRAME, CAMERA_FRAME, self.T_base_from_camera_link)
        tree.set(CAMERA_FRAME, OPTICAL_FRAME, self.T_camera_link_from_optical)
        tree.set(BASE_FRAME, LIDAR_FRAME, self.T_base_from_lidar)
        return tree


@dataclass(eq=False)
class Scene:
    """A procedural scene: objects, background surfaces and the sensor rig.

    Attributes:
        scenario: "tabletop" or "street".
        seed: the seed it was drawn from.
        objects: objects with ground truth (tabletop: the gripper is the last one).
        surfaces: background (floor, table, road, buildings).
        rig: sensors.
        table_top_z: tabletop only: height of the table top in base_link (metres), else None.
        table_bounds: tabletop only: (xmin, xmax, ymin, ymax) of the table top in base_link.
        light_dir: (3,) unit vector pointing TO the (directional) light, base_link.
    """

    scenario: str
    seed: int
    objects: list[SimObject]
    surfaces: list[Surface]
    rig: Rig
    table_top_z: float | None = None
    table_bounds: tuple[float, float, float, float] | None = None
    light_dir: np.ndarray = field(default_factory=lambda: np.array([-0.5, 0.3, 0.8]))

    def __post_init__(self) -> None:
        d = np.asarray(self.light_dir, dtype=np.float64)
        self.light_dir = d / np.linalg.norm(d)

    def index(self, object_id: str) -> int:
        for i, o in enumerate(self.objects):
            if o.id == object_id:
                return i
        raise DataError(
            f"no object '{object_id}' in the scene; have {[o.id for o in self.objects]}"
        )

    def get(self, object_id: str) -> SimObject:
        return self.objects[self.index(object_id)]

    @property
    def gripper(self) -> SimObject | None:
        return next((o for o in self.objects if o.category == "gripper"), None)

    def T_base_from_gripper_tcp(self) -> np.ndarray | None:
        """4x4 pose of ``gripper_tcp`` in base_link at this scene state (None: no gripper).

        Origin: the fingertip centre = gripper box centre - (0, 0, box height / 2) (metres);
        rotation: the gripper's yaw about base_link +z.
        """
        g = self.gripper
        if g is None:
            return None
        tip = g.center - np.array([0.0, 0.0, g.size[2] / 2.0])
        return make_transform(yaw_to_matrix(g.yaw), tip)

    def dynamic_transform_tree(self) -> TransformTree:
        """The moving frames at this scene state (/tf): base_link -> gripper_tcp when the scene
        has a gripper, else empty."""
        tree = TransformTree()
        T = self.T_base_from_gripper_tcp()
        if T is not None:
            tree.set(BASE_FRAME, GRIPPER_TCP_FRAME, T)
        return tree

    def with_objects(self, objects: list[SimObject]) -> Scene:
        """Same scene (surfaces, rig) with other object poses."""
        return dataclasses.replace(self, objects=objects)

    def find(self, colour: str, category: str) -> list[SimObject]:
        return [o for o in self.objects if o.colour == colour and o.category == category]


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def image_box(box3: Box3D, rig: Rig) -> np.ndarray | None:
    """(4,) x1, y1, x2, y2 pixel bounds of the projected corners of ``box3`` (base_link), not
    clipped, or None when a corner is behind the camera. Used for placement decisions."""
    uv, front = project_points(
        apply(invert(rig.T_base_from_optical), box3.corners()), rig.intrinsics
    )
    if not front.all():
        return None
    return np.concatenate([uv.min(0), uv.max(0)])


def box_in_image(box3: Box3D, rig: Rig, margin_px: float = 2.0) -> bool:
    """True when all 8 corners of ``box3`` (base_link) project inside the image."""
    b = image_box(box3, rig)
    w, h = rig.intrinsics.width, rig.intrinsics.height
    return bool(
        b is not None
        and b[0] >= margin_px
        and b[1] >= margin_px
        and b[2] <= w - 1 - margin_px
        and b[3] <= h - 1 - margin_px
    )


def _overlaps(a: np.ndarray | None, b: np.ndarray | None, margin: float = 0.0) -> bool:
    if a is None or b is None:
        return False
    return bool(
        a[0] - margin < b[2]
        and b[0] - margin < a[2]
        and a[1] - margin < b[3]
        and b[1] - margin < a[3]
    )


def _surface_box(kind: str, lo, hi, rgb, reflectivity: float) -> Surface:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    p = box(*(hi - lo), rgb, center=(lo + hi) / 2)
    return Surface(kind, p.vertices, p.triangles, tuple(rgb), reflectivity)


def _choose_pairs(
    rng: np.random.Generator,
    n: int,
    categories: list[str],
    colours: list[str],
    required: list[tuple[str, str]],
    ambiguous: bool,
) -> list[tuple[str, str]]:
    """n (colour, category) pairs: the required ones first, otherwise distinct; with
    ``ambiguous`` one non-required pair is deliberately repeated (two red mugs)."""
    pairs = list(required)
    pool = [(c, k) for k in categories for c in colours if (c, k) not in pairs]
    order = rng.permutation(len(pool))
    for i in order:
        if len(pairs) >= n:
            break
        pairs.append(pool[i])
    free = len(pairs) - len(required)  # never duplicate a required (goal) object
    if ambiguous and free >= 2:
        src = int(rng.integers(len(required), len(pairs) - 1))
        pairs[-1] = pairs[src]
    return pairs


def _new_id(category: str, used: dict[str, int]) -> str:
    k = used.get(category, 0)
    used[category] = k + 1
    return f"{category}_{k}"


# ----------------------------------------------------------------------------------------------
# Tabletop
# ----------------------------------------------------------------------------------------------

TABLE_SIZE = (1.0, 1.5)  # x (depth away from the robot), y (width), metres
GRIPPER_CLEARANCE = 0.3  # gripper home: fingertips this high above the table top (metres)


def tabletop_rig(rng: np.random.Generator, cfg: SimConfig, table_top: float) -> Rig:
    """Camera 0.6–0.9 m above the table, looking down 35–50 deg; the LiDAR 8 cm to its left with
    the same tilt (a dense short-range unit looking at the table)."""
    height = cfg.camera_height if cfg.camera_height is not None else rng.uniform(0.6, 0.9)
    pitch = math.radians(
        cfg.camera_pitch_deg if cfg.camera_pitch_deg is not None else rng.uniform(35.0, 50.0)
    )
    cam_pos = np.array([0.15, 0.0, table_top + height])
    T_cam = make_transform(rot_y(pitch), cam_pos)
    T_lidar = make_transform(rot_y(pitch), cam_pos + np.array([0.0, 0.08, 0.0]))
    cam = cfg.camera
    intr = CameraIntrinsics.from_fov(cam.width, cam.height, cam.hfov_deg, OPTICAL_FRAME)
    if cam.distortion:
        intr.D = np.asarray(cam.distortion, float)
        intr.distortion_model = "rational_polynomial" if len(cam.distortion) == 8 else "plumb_bob"
    return Rig(intr, T_cam, T_lidar, cam, cfg.lidar, table_top)


def make_tabletop(
    cfg: SimConfig,
    rng: np.random.Generator,
    required: list[tuple[str, str]] = (),
    rig: Rig | None = None,
) -> Scene:
    table_top = float(rng.uniform(0.72, 0.78))
    if rig is None:
        rig = tabletop_rig(rng, cfg, table_top)
    elif rig.table_top_z is not None:
        table_top = float(rig.table_top_z)
    cam_pos = rig.T_base_from_camera_link[:3, 3]
    pitch = math.atan2(-rig.T_base_from_camera_link[2, 0], rig.T_base_from_camera_link[0, 0])
    look_x = cam_pos[0] + (cam_pos[2] - table_top) / math.tan(pitch)
    tx = look_x + 0.1
    sx, sy = TABLE_SIZE
    bounds = (tx - sx / 2, tx + sx / 2, -sy / 2, sy / 2)
    wood = (0.58, 0.4, 0.24)
    surfaces = [
        _surface_box("floor", (-10, -10, -0.02), (10, 10, 0.0), (0.62, 0.6, 0.56), 0.35),
        _surface_box(
            "table",
            (bounds[0], bounds[2], table_top - 0.04),
            (bounds[1], bounds[3], table_top),
            wood,
            0.45,
        ),
    ]
    for lx in (bounds[0] + 0.05, bounds[1] - 0.05):
        for ly in (bounds[2] + 0.05, bounds[3] - 0.05):
            surfaces.append(
                _surface_box(
                    "table",
                    (lx - 0.03, ly - 0.03, 0.0),
                    (lx + 0.03, ly + 0.03, table_top - 0.04),
                    wood,
                    0.45,
                )
            )

    lo, hi = cfg.num_objects
    required = list(required)
    n = max(int(rng.integers(lo, hi + 1)), len(required))
    ambiguous = bool(rng.random() < cfg.ambiguous_prob)
    pairs = _choose_pairs(
        rng,
        n,
        list(catalog.TABLETOP_CATEGORIES),
        list(catalog.TABLETOP_COLOURS),
        required,
        ambiguous,
    )
    # The gripper, parked above the near edge of the table, inside the image; objects are kept
    # out of its image region so it never hides them while parked.
    grip = merge(catalog.gripper_parts(0.08))
    home = gripper_home(rig, table_top, grip, bounds)
    grip_box = image_box(Box3D.from_yaw(home, grip.size, 0.0), rig)
    used: dict[str, int] = {}
    objects: list[SimObject] = []
    placed: list[Polygon] = []
    margin = 0.04
    for k, (colour, category) in enumerate(pairs):
        mesh = merge(catalog.TABLETOP_CATEGORIES[category](rng, catalog.unit_rgb(colour)))
        for _ in range(300):
            yaw = float(rng.uniform(-math.pi, math.pi))
            xy = rng.uniform(
                [bounds[0] + margin, bounds[2] + margin], [bounds[1] - margin, bounds[3] - margin]
            )
            center = np.array([xy[0], xy[1], table_top + mesh.size[2] / 2])
            b = Box3D.from_yaw(center, mesh.size, yaw)
            fp = Polygon(b.corners()[[0, 2, 6, 4], :2])
            if not shapely.contains(
                Polygon(
                    [
                        (bounds[0] + 0.02, bounds[2] + 0.02),
                        (bounds[1] - 0.02, bounds[2] + 0.02),
                        (bounds[1] - 0.02, bounds[3] - 0.02),
                        (bounds[0] + 0.02, bounds[3] - 0.02),
                    ]
                ),
                fp,
            ):
                continue
            if any(fp.distance(p) < 0.025 for p in placed):
                continue
            if not box_in_image(b, rig, margin_px=3.0):
                continue
            if _overlaps(image_box(b, rig), grip_box, margin=4.0):
                continue
            break
        else:
            if k < len(required):
                raise DataError(
                    f"could not place the required {colour} {category} on the table "
                    f"(seed {cfg.seed}); try another seed or fewer objects"
                )
            continue
        placed.append(fp)
        objects.append(
            SimObject(
                _new_id(category, used),
                category,
                colour,
                catalog.colour_rgb(colour),
                catalog.caption(category, colour),
                mesh,
                center,
                yaw,
            )
        )
    objects.append(
        SimObject(
            "gripper_0",
            "gripper",
            "gray",
            catalog.colour_rgb("gray"),
            "the gripper",
            grip,
            home,
            0.0,
        )
    )
    return Scene("tabletop", cfg.seed, objects, surfaces, rig, table_top, bounds)


def gripper_home(rig: Rig, table_top: float, grip: ObjectMesh, bounds) -> np.ndarray:
    """Gripper rest position: ``GRIPPER_CLEARANCE`` above the table near its robot-side edge,
    on the right of the image, chosen so the whole gripper is in view."""
    for dy in np.linspace(-0.45, 0.0, 10):
        for dx in np.linspace(0.15, 0.45, 7):
            c = np.array([bounds[0] + dx, dy, table_top + GRIPPER_CLEARANCE + grip.size[2] / 2])
            if box_in_image(Box3D.from_yaw(c, grip.size, 0.0), rig, margin_px=2.0):
                return c
    return np.array([bounds[0] + 0.3, 0.0, table_top + GRIPPER_CLEARANCE + grip.size[2] / 2])


# ----------------------------------------------------------------------------------------------
# Street
# ----------------------------------------------------------------------------------------------

LANES_Y = (-5.25, -1.75, 1.75, 5.25)
ROAD_HALF_WIDTH = 7.0
SIDEWALK = (7.0, 11.0)


def street_rig(cfg: SimConfig) -> Rig:
    """KITTI-like: camera at 1.65 m, 0.27 m ahead of a 64-beam LiDAR at 1.73 m; both level."""
    cam = cfg.camera
    intr = CameraIntrinsics.from_fov(cam.width, cam.height, cam.hfov_deg, OPTICAL_FRAME)
    if cam.distortion:
        intr.D = np.asarray(cam.distortion, float)
        intr.distortion_model = "rational_polynomial" if len(cam.distortion) == 8 else "plumb_bob"
    return Rig(
        intr,
        make_transform(translation=[0.27, 0.0, 1.65]),
        make_transform(translation=[0.0, 0.0, 1.73]),
        cam,
        cfg.lidar,
    )


def make_street(cfg: SimConfig, rng: np.random.Generator, rig: Rig | None = None) -> Scene:
    rig = street_rig(cfg) if rig is None else rig
    surfaces = [
        _surface_box("road", (-150, -150, -0.05), (150, 150, 0.0), (0.36, 0.36, 0.38), 0.2)
    ]
    # Building facades along both sides (background, not ground truth).
    for side in (-1, 1):
        x = -60.0
        while x < 120.0:
            length = float(rng.uniform(8, 25))
            height = float(rng.uniform(6, 18))
            depth0 = SIDEWALK[1] + float(rng.uniform(2, 6))
            shade = float(rng.uniform(0.45, 0.8))
            tint = np.clip(
                np.array([shade, shade * rng.uniform(0.85, 1.0), shade * rng.uniform(0.7, 1.0)]),
                0,
                1,
            )
            y0, y1 = sorted((side * depth0, side * (depth0 + 10)))
            surfaces.append(
                _surface_box("building", (x, y0, 0.0), (x + length, y1, height), tuple(tint), 0.5)
            )
            x += length + float(rng.uniform(0.5, 6))
    lo, hi = cfg.num_objects
    n = int(rng.integers(lo, hi + 1))
    cats = list(catalog.STREET_WEIGHTS)
    w = np.array([catalog.STREET_WEIGHTS[c] for c in cats])
    used: dict[str, int] = {}
    objects: list[SimObject] = []
    placed: list[Polygon] = [Polygon([(-3, -1.3), (3, -1.3), (3, 1.3), (-3, 1.3)])]  # ego car
    half_fov = math.radians(rig.camera.hfov_deg) / 2 - math.radians(4)
    for _ in range(n):
        category = cats[int(rng.choice(len(cats), p=w / w.sum()))]
        colours = catalog.STREET_COLOURS[category]
        colour = colours[int(rng.integers(len(colours)))]
        rgb = catalog.colour_rgb(colour)
        mesh = merge(catalog.STREET_CATEGORIES[category](rng, tuple(c / 255 for c in rgb)))
        for _ in range(200):
            in_view = rng.random() < 0.8
            if in_view:
                r = rng.uniform(3.0, 50.0)
                a = rng.uniform(-half_fov, half_fov)
                x, y = r * math.cos(a), r * math.sin(a)
            else:
                x, y = rng.uniform(-50, 50), rng.uniform(-12, 12)
            y, yaw = _street_lane(rng, category, y)
            r = math.hypot(x, y)
            if not 2.0 <= r <= 50.0:
                continue
            center = np.array([x, y, mesh.size[2] / 2])
            fp = Polygon(Box3D.from_yaw(center, mesh.size, yaw).corners()[[0, 2, 6, 4], :2])
            if any(fp.distance(p) < 0.4 for p in placed):
                continue
            break
        else:
            continue
        placed.append(fp)
        objects.append(
            SimObject(
                _new_id(category, used),
                category,
                colour,
                rgb,
                catalog.caption(category, colour),
                mesh,
                center,
                yaw,
            )
        )
    return Scene(
        "street", cfg.seed, objects, surfaces, rig, light_dir=np.array([-0.45, -0.3, 0.85])
    )


def _street_lane(rng: np.random.Generator, category: str, y: float) -> tuple[float, float]:
    """Snap a lateral position to where the category belongs; returns (y, yaw)."""
    side = 1.0 if y >= 0 else -1.0
    if category == "car":
        if rng.random() < 0.3:  # parked at the kerb
            y = side * 6.1
        else:
            y = LANES_Y[int(np.argmin([abs(y - ly) for ly in LANES_Y]))] + rng.normal(0, 0.2)
        heading = 0.0 if y < 0 else math.pi  # right-hand traffic: oncoming on the left
        return y, heading + rng.normal(0, 0.05)
    if category == "cyclist":
        y = side * rng.uniform(5.8, 6.6)
        return y, (0.0 if y < 0 else math.pi) + rng.normal(0, 0.08)
    if category == "pole":
        return side * rng.uniform(7.2, 7.6), 0.0
    # pedestrian: on the sidewalk, or crossing the road now and then
    if rng.random() < 0.15:
        return float(np.clip(y, -6.5, 6.5)), side * math.pi / 2 + rng.normal(0, 0.3)
    return side * rng.uniform(*SIDEWALK), float(rng.uniform(-math.pi, math.pi))


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def make_scene(
    scenario: str = "tabletop", seed: int = 0, *, required=(), rig: Rig | None = None, **opts
) -> Scene:
    """Draw a scene from a seed (deterministic).

    Args:
        scenario: "tabletop" or "street".
        seed: non-negative integer.
        required: (colour, category) pairs that must be in the scene (tabletop; from a goal).
        rig: reuse this sensor rig (e.g. for later episodes of one bag) instead of drawing one.
        **opts: any other ``SimConfig`` field (``camera=CameraConfig(...)``,
            ``num_objects=(3, 5)``, ``camera_height=0.7`` ...).

    Returns:
        The scene, objects and boxes in base_link.
    """
    cfg = opts.pop("config", None) or SimConfig(scenario=scenario, seed=seed, **opts)
    rng = np.random.default_rng([cfg.seed, 0x5CE7E])
    if cfg.scenario == "tabletop":
        return make_tabletop(cfg, rng, list(required), rig)
    if required:
        raise DataError("required objects are supported for the tabletop scenario only")
    return make_street(cfg, rng, rig)


def scene_for_config(
    cfg: SimConfig, seed: int | None = None, required=(), rig: Rig | None = None
) -> Scene:
    """:func:`make_scene` for a validated config (optionally another seed)."""
    if seed is not None and seed != cfg.seed:
        cfg = dataclasses.replace(cfg, seed=seed)
    return make_scene(cfg.scenario, cfg.seed, required=required, rig=rig, config=cfg)


__all__ = [
    "BASE_FRAME",
    "CAMERA_FRAME",
    "GRIPPER_TCP_FRAME",
    "LIDAR_FRAME",
    "OPTICAL_FRAME",
    "Rig",
    "Scene",
    "SimObject",
    "Surface",
    "make_scene",
    "scene_for_config",
    "yaw_to_matrix",
]
