"""Core types <-> ROS messages, in one place (nodes, bag recording and replay all use this).

Works with rclpy messages and with rosbags messages through ``spatial_ros.io.msgs.MessageFactory``,
so a live node and ``spatial-ros play --record`` write identical content. No rclpy import here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from spatial_ros.errors import CalibrationError
from spatial_ros.geometry.transforms import (
    TransformHistory,
    TransformTree,
    make_transform,
    matrix_to_quaternion,
    quaternion_to_matrix,
)
from spatial_ros.io.msgs import MessageFactory, stamp_to_ns
from spatial_ros.types import Box3D, GroundedObject, Relation, SensorFrame

GROUNDED_OBJECT = "spatial_ros/msg/GroundedObject3D"
GROUNDED_ARRAY = "spatial_ros/msg/GroundedObject3DArray"
SPATIAL_RELATION = "spatial_ros/msg/SpatialRelation"
REWARD_LABEL = "spatial_ros/msg/RewardLabel"

# RViz colours per source (r, g, b).
_SOURCE_COLOURS = {
    "vlm": (1.0, 0.6, 0.0),
    "vlm+lidar": (0.1, 0.9, 0.2),
    "vlm+depth": (0.1, 0.8, 0.8),
    "lidar": (0.3, 0.5, 1.0),
    "depth": (0.6, 0.3, 1.0),
    "onnx": (1.0, 0.2, 0.6),
}
# Box edges as index pairs into Box3D.corners() (bit order x, y, z).
_BOX_EDGES = [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]


def _pose(f: MessageFactory, box: Box3D) -> Any:
    x, y, z, w = matrix_to_quaternion(box.rotation)
    return f.new(
        "geometry_msgs/msg/Pose",
        position=f.new("geometry_msgs/msg/Point",
                       x=box.center[0], y=box.center[1], z=box.center[2]),
        orientation=f.new("geometry_msgs/msg/Quaternion", x=x, y=y, z=z, w=w),
    )


def grounded_object_to_msg(obj: GroundedObject, f: MessageFactory) -> Any:
    """One ``spatial_ros/msg/GroundedObject3D``."""
    b2 = np.zeros(4) if obj.box_2d is None else np.asarray(obj.box_2d, dtype=np.float64)
    return f.new(
        GROUNDED_OBJECT,
        id=obj.id,
        query=obj.query or "",
        label=obj.label or "",
        score=float(obj.score),
        center=_pose(f, obj.box),
        size=f.new("geometry_msgs/msg/Vector3",
                   x=obj.box.size[0], y=obj.box.size[1], z=obj.box.size[2]),
        box_2d=b2.astype(np.float32),
        distance=float(obj.distance) if math.isfinite(obj.distance) else 0.0,
        source=obj.source,
        explanation=obj.explanation or "",
        ambiguous=bool(obj.ambiguous),
        alternatives=[str(a) for a in obj.alternatives],
    )


def grounded_objects_to_msg(
    objects: Sequence[GroundedObject], stamp_ns: int, frame_id: str, f: MessageFactory
) -> Any:
    """``GroundedObject3DArray`` with the SOURCE IMAGE stamp and the output frame (may be
    empty)."""
    return f.new(
        GROUNDED_ARRAY,
        header=f.header(stamp_ns, frame_id),
        objects=[grounded_object_to_msg(o, f) for o in objects],
    )


def msg_to_grounded_objects(msg: Any) -> tuple[int, str, list[GroundedObject]]:
    """(stamp_ns, frame_id, objects) of a ``GroundedObject3DArray`` (rclpy or rosbags)."""
    frame_id = msg.header.frame_id
    out = []
    for m in msg.objects:
        q = m.center.orientation
        rot = quaternion_to_matrix(q.x, q.y, q.z, q.w)
        c = m.center.position
        box = Box3D([c.x, c.y, c.z], [m.size.x, m.size.y, m.size.z], rot, frame_id)
        b2 = np.asarray(m.box_2d, dtype=np.float64)
        out.append(
            GroundedObject(
                id=m.id, query=m.query, label=m.label, score=float(m.score), box=box,
                box_2d=None if not np.any(b2) else b2, distance=float(m.distance), source=m.source,
                explanation=getattr(m, "explanation", ""), ambiguous=bool(getattr(m, "ambiguous",
                                                                                False)),
                alternatives=list(getattr(m, "alternatives", []) or []),
            )
        )
    return stamp_to_ns(msg.header), frame_id, out


def relation_to_msg(rel: Relation, stamp_ns: int, frame_id: str, f: MessageFactory) -> Any:
    return f.new(
        SPATIAL_RELATION,
        header=f.header(stamp_ns, frame_id),
        subject_id=rel.subject_id,
        object_id=rel.object_id,
        predicate=rel.predicate,
        value=float(rel.value),
        unit=rel.unit,
        answer=rel.answer,
    )


def reward_label_to_msg(
    stamp_ns: int, frame_id: str, goal: str, frame_index: int, reward: float, progress: float,
    success: bool, explanation: str, f: MessageFactory,
) -> Any:
    return f.new(
        REWARD_LABEL,
        header=f.header(stamp_ns, frame_id),
        goal=goal,
        frame_index=int(frame_index),
        reward=float(reward),
        progress=float(progress),
        success=bool(success),
        explanation=explanation,
    )


def markers_for(
    objects: Sequence[GroundedObject],
    relations: Sequence[Relation],
    stamp_ns: int,
    frame_id: str,
    f: MessageFactory,
    lifetime_s: float = 0.5,
) -> Any:
    """``visualization_msgs/MarkerArray``: a DELETEALL, then box edges (LINE_LIST), a text label
    per object, and a line + text per distance relation between two objects."""
    header = f.header(stamp_ns, frame_id)
    sec = int(lifetime_s)
    lifetime = f.new("builtin_interfaces/msg/Duration", sec=sec,
                     nanosec=int((lifetime_s - sec) * 1e9))
    markers = [f.new("visualization_msgs/msg/Marker", header=header, ns="spatial_ros", action=3)]
    by_id = {o.id: o for o in objects}

    def point(p):
        return f.new("geometry_msgs/msg/Point", x=float(p[0]), y=float(p[1]), z=float(p[2]))

    def colour(rgb, a=1.0):
        return f.new("std_msgs/msg/ColorRGBA", r=rgb[0], g=rgb[1], b=rgb[2], a=a)

    def marker(mid, ns, mtype, **kw):
        return f.new(
            "visualization_msgs/msg/Marker", header=header, ns=ns, id=mid, type=mtype, action=0,
            lifetime=lifetime, pose=f.new("geometry_msgs/msg/Pose"), **kw,
        )

    for i, o in enumerate(objects):
        rgb = _SOURCE_COLOURS.get(o.source, (1.0, 1.0, 1.0))
        c = o.box.corners()
        pts = [point(c[k]) for e in _BOX_EDGES for k in e]
        markers.append(
            marker(i, "boxes", 5, points=pts, color=colour(rgb),
                   scale=f.new("geometry_msgs/msg/Vector3", x=0.01 + 0.002 * o.box.size.max()))
        )
        top = o.box.center + np.array([0.0, 0.0, o.box.size[2] / 2 + 0.05])
        text = f"{o.query or o.label or o.id} {o.score:.2f}"
        if math.isfinite(o.distance):
            text += f" {o.distance:.2f} m"
        tm = marker(i, "labels", 9, text=text, color=colour((1.0, 1.0, 1.0)),
                    scale=f.new("geometry_msgs/msg/Vector3", z=0.05 + 0.02 * o.box.size.max()))
        tm.pose.position = point(top)
        markers.append(tm)
    for j, r in enumerate(x for x in relations if x.unit == "m"):
        a, b = by_id.get(r.subject_id), by_id.get(r.object_id)
        if a is None or b is None:
            continue
        markers.append(
            marker(j, "distances", 5, points=[point(a.box.center), point(b.box.center)],
                   color=colour((1.0, 1.0, 0.0)), scale=f.new("geometry_msgs/msg/Vector3", x=0.01))
        )
        tm = marker(j, "distance_labels", 9, text=f"{r.value:.2f} m",
                    color=colour((1.0, 1.0, 0.0)),
                    scale=f.new("geometry_msgs/msg/Vector3", z=0.05))
        tm.pose.position = point((a.box.center + b.box.center) / 2)
        markers.append(tm)
    return f.new("visualization_msgs/msg/MarkerArray", markers=markers)


def _parse_tf_message(msg: Any) -> list[tuple[str, str, np.ndarray, int]]:
    """(parent, child, T_parent_from_child, header stamp ns) of each ``TransformStamped`` of a
    ``tf2_msgs/TFMessage``; all are parsed before any is used, so a bad one changes nothing.

    Raises:
        CalibrationError: an empty frame name, parent == child, or an invalid quaternion.
    """
    out = []
    for ts in msg.transforms:
        parent, child = ts.header.frame_id, ts.child_frame_id
        if not parent or not child or parent == child:
            raise CalibrationError(f"bad TransformStamped frames: '{parent}' -> '{child}'")
        t, q = ts.transform.translation, ts.transform.rotation
        T = make_transform(quaternion_to_matrix(q.x, q.y, q.z, q.w), [t.x, t.y, t.z])
        out.append((parent, child, T, stamp_to_ns(ts.header)))
    return out


def tf_message_into_tree(msg: Any, tree: TransformTree | None = None) -> TransformTree:
    """Add every ``geometry_msgs/TransformStamped`` of a ``tf2_msgs/TFMessage`` (/tf_static) to
    ``tree`` (stamps ignored: static)."""
    tree = TransformTree() if tree is None else tree
    for parent, child, T, _ in _parse_tf_message(msg):
        tree.set(parent, child, T)
    return tree


def tf_message_into_history(
    msg: Any, history: TransformHistory | None = None
) -> TransformHistory:
    """Add every ``geometry_msgs/TransformStamped`` of a ``tf2_msgs/TFMessage`` (/tf) to
    ``history``, each at its own header stamp."""
    history = TransformHistory() if history is None else history
    for parent, child, T, stamp in _parse_tf_message(msg):
        history.set(parent, child, T, stamp)
    return history


def tree_to_tf_message(tree: TransformTree, stamp_ns: int, f: MessageFactory) -> Any:
    """``tf2_msgs/TFMessage`` with one TransformStamped per stored edge (parent -> child)."""
    out = []
    for parent, child, T in tree.edges():
        x, y, z, w = matrix_to_quaternion(T[:3, :3])
        out.append(
            f.new(
                "geometry_msgs/msg/TransformStamped",
                header=f.header(stamp_ns, parent),
                child_frame_id=child,
                transform=f.new(
                    "geometry_msgs/msg/Transform",
                    translation=f.new("geometry_msgs/msg/Vector3",
                                      x=T[0, 3], y=T[1, 3], z=T[2, 3]),
                    rotation=f.new("geometry_msgs/msg/Quaternion", x=x, y=y, z=z, w=w),
                ),
            )
        )
    return f.new("tf2_msgs/msg/TFMessage", transforms=out)


def sensor_frame_from_msgs(
    image: Any,
    info: Any,
    cloud: Any | None = None,
    depth: Any | None = None,
    transforms: TransformTree | None = None,
    index: int = -1,
) -> SensorFrame:
    """One synchronized set of sensor messages (rclpy or rosbags) -> the pipeline's
    ``SensorFrame``. The live nodes and bag replay both build frames here, so replay sees
    exactly what a node sees.

    Args:
        image: sensor_msgs/Image (any encoding) or CompressedImage; its stamp is the frame's.
        info: the CameraInfo for the image (its frame_id falls back to the image's).
        cloud: PointCloud2 or None; NaN points are dropped.
        depth: aligned depth Image (16UC1 mm / 32FC1 m) or None.
        transforms: transforms between the named frames valid at the image's stamp (static,
            plus dynamic ones from ``TransformHistory.tree_at``).
        index: running frame index.

    Raises:
        CalibrationError: the image size differs from the CameraInfo's.
        DecodeError: an image or cloud that cannot be decoded.
    """
    from spatial_ros.io.camera_info import camera_info_to_intrinsics
    from spatial_ros.io.image import decode_compressed, depth_to_metres, image_to_rgb8
    from spatial_ros.io.pointcloud import pointcloud2_to_xyzi

    camera = camera_info_to_intrinsics(info)
    if not camera.frame_id:
        camera.frame_id = image.header.frame_id
    compressed = hasattr(image, "format") and not hasattr(image, "encoding")
    rgb = decode_compressed(image) if compressed else image_to_rgb8(image)
    if rgb.shape[:2] != (camera.height, camera.width):
        raise CalibrationError(
            f"image is {rgb.shape[1]}x{rgb.shape[0]} but CameraInfo says "
            f"{camera.width}x{camera.height}"
        )
    points, points_frame = None, "lidar"
    if cloud is not None:
        points = pointcloud2_to_xyzi(cloud, drop_nan_xyz=True)
        points = points[np.all(np.isfinite(points[:, :3]), axis=1)]
        points_frame = cloud.header.frame_id
    return SensorFrame(
        stamp_ns=stamp_to_ns(image.header),
        image=rgb,
        camera=camera,
        points=points,
        points_frame=points_frame,
        depth=depth_to_metres(depth) if depth is not None else None,
        transforms=transforms,
        index=index,
    )
