"""Depth specialist parts with exact truth: touching objects cut at depth and colour edges on
the pixel grid, boxes squared to walls and reaching back to them, class-depth completion."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.specialists.depth_edges import edge_segments
from spatial_ros.specialists.planes import Plane
from spatial_ros.specialists.room import (
    INDOOR_SIZES,
    complete_depth,
    extend_to_wall,
    snap_yaw,
)
from spatial_ros.types import Box3D


def grid(w=40, h=30):
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    return np.column_stack([u.ravel(), v.ravel()]).astype(float)


def test_depth_edge_cuts_and_slopes_do_not():
    px = grid()
    # left half a plane at 2.0 m, right half 0.3 m further back: two segments
    r = np.where(px[:, 0] < 20, 2.0, 2.3)
    lab, n = edge_segments(px, r)
    assert n == 2 and len(set(lab[px[:, 0] < 20])) == 1
    # a slanted surface: 5 mm per pixel, no edge
    lab, n = edge_segments(px, 2.0 + 0.005 * px[:, 0])
    assert n == 1


def test_colour_edge_counts_only_with_a_small_depth_step():
    px = grid()
    left = px[:, 0] < 20
    rgb = np.where(left[:, None], [0.8, 0.7, 0.5], [0.3, 0.15, 0.1])  # tan | dark wood
    flat = np.full(len(px), 2.0)
    # the same surface, two colours (a painted pattern): one segment
    assert edge_segments(px, flat, rgb)[1] == 1
    # touching objects: 1.5 cm depth step (below the 4 cm depth tolerance) and a colour edge
    step = np.where(left, 2.0, 2.015)
    assert edge_segments(px, step)[1] == 1  # depth alone does not cut
    lab, n = edge_segments(px, step, rgb)
    assert n == 2 and np.array_equal(lab[left] == lab[left][0], np.ones(left.sum(), bool))


def back_wall(y: float) -> Plane:
    """A wall at ``y`` facing a camera at the origin (normal towards it: -y)."""
    return Plane(np.array([0.0, -1.0, 0.0]), float(y), np.zeros(0, np.int64), 10.0)


def test_front_reaches_back_to_the_wall_and_snaps_square():
    wall = back_wall(4.0)
    sensor = np.zeros(3)
    front = Box3D.from_yaw([0.5, 3.3, 0.6], [1.2, 0.2, 1.2], np.radians(8.0))
    yaw = snap_yaw(front.yaw, [wall])
    assert yaw is not None and abs(np.sin(2 * yaw)) < 1e-9  # a multiple of 90 degrees
    square = Box3D.from_yaw(front.center, front.size, yaw)
    out = extend_to_wall(square, [wall], sensor)
    y0, y1 = out.center[1] - out.size.min() / 2, out.center[1] + out.size.min() / 2
    assert y0 == pytest.approx(3.2) and y1 == pytest.approx(4.0)
    # a box already deep (its top seen), or a wall too far behind: unchanged
    assert extend_to_wall(Box3D.from_yaw([0.5, 3.0, 0.3], [1.2, 0.7, 0.6], 0.0), [wall],
                          sensor).size[1] == pytest.approx(0.7)
    assert extend_to_wall(square, [back_wall(6.0)], sensor) is square
    # a heading far from the wall's: not snapped
    assert snap_yaw(np.radians(40.0), [wall]) is None


def test_class_depth_completion():
    sensor = np.zeros(3)
    face = Box3D.from_yaw([-0.8, 1.9, 0.5], [1.1, 0.24, 1.8], np.radians(90.0))  # dresser front
    out = complete_depth(face, "dresser", sensor)
    assert out.size.min() == pytest.approx(INDOOR_SIZES["dresser"][1])
    # grown away from the camera: the visible face stays where it was
    near = face.center[0] + 0.12  # the face nearest the camera (x = -0.68)
    assert out.center[0] + out.size.min() / 2 == pytest.approx(near)
    assert complete_depth(face, "vase", sensor) is face  # unknown class
    deep = Box3D.from_yaw([0.8, 2.6, 0.4], [0.6, 0.45, 0.7], 0.0)
    assert complete_depth(deep, "night_stand", sensor) is deep  # its top was seen: deep enough
