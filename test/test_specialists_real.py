"""Specialists on real frames (skipped where ../shared/data/real is absent).

KITTI 000008: the 6 labelled cars from the velodyne scan (cut to the camera's view), recall at
BEV IoU >= 0.5 / 0.3. All shared KITTI frames: the issue #20 targets (recall of well-supported
vehicles and people, right classes, boxes per frame), and the 360-degree scans. SUN RGB-D
000001: the 6 labelled objects from its depth points, lifted from the labelled 2D boxes (and,
for reference, without any boxes), recall at 3D IoU >= 0.25.
Numbers are printed (``pytest -s``).
"""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.geometry.iou import iou_2d, iou_3d_matrix, iou_bev_matrix
from spatial_ros.specialists import (
    DepthSpecialist,
    DepthSpecialistConfig,
    LidarSpecialist,
    LidarSpecialistConfig,
)

kitti = pytest.importorskip("spatial_ros.datasets.kitti")
sunrgbd = pytest.importorskip("spatial_ros.datasets.sunrgbd")


def test_kitti_000008_cars(kitti_dir):
    fr = kitti.load_kitti_frame(kitti_dir)
    cars = [lab for lab in fr.labels if lab.type == "Car"]
    assert len(cars) == 6
    sp = LidarSpecialist(LidarSpecialistConfig.street(ground_height=-1.73))
    cands = sp.propose(fr.points, frame_id="velodyne", camera=fr.calib.intrinsics,
                       T_cam_from_lidar=fr.calib.T_cam_from_velo)
    truth = [lab.box for lab in cars]
    for b in truth:
        b.frame_id = "velodyne"
    B = iou_bev_matrix(truth, [c.box for c in cands])
    M = iou_3d_matrix(truth, [c.box for c in cands])
    best = B.argmax(axis=1)
    r50, r30 = int((B.max(axis=1) >= 0.5).sum()), int((B.max(axis=1) >= 0.3).sum())
    print(f"\nKITTI 000008: {len(cands)} candidates in {sp.last_stats.timings_ms['total']:.1f} ms;"
          f" cars recalled at BEV IoU>=0.5: {r50}/6, >=0.3: {r30}/6; per car BEV "
          f"{np.round(B.max(axis=1), 2).tolist()}, 3D {np.round(M.max(axis=1), 2).tolist()}")
    assert r50 >= 5 and r30 == 6
    # The matched candidates are labelled cars and, for cars mostly inside the image (KITTI's
    # truncation <= 0.5), their projections overlap the labelled 2D boxes (checks the camera
    # projection path on real calibration; a car cut by the image border is completed past
    # it, its clipped projection is not the label's).
    for lab, j, bev in zip(cars, best, B.max(axis=1), strict=True):
        if bev >= 0.5:
            assert cands[j].label == "car"
            if lab.truncated <= 0.5:
                assert iou_2d(cands[j].box_2d, lab.box_2d) >= 0.5


def _frames(real_data):
    dirs = sorted(d for d in real_data.glob("kitti_*") if (d / "image_2.png").is_file())
    if not dirs:
        pytest.skip("no KITTI frames in the real data folder")
    return [kitti.load_kitti_frame(d) for d in dirs]


def test_kitti_frames_recall_classes_and_box_count(real_data):
    """On every shared KITTI frame (camera-view cut, as ``eval --kitti`` reads it): cars/vans
    and pedestrians/cyclists with >= 50 LiDAR points recalled at BEV IoU 0.5 (issue #20:
    >= 90 % and >= 70 %), the right class for >= 90 % of the hits, <= 40 boxes per frame."""
    stats = {"vehicles": [0, 0], "people": [0, 0]}
    right = hits = 0
    for fr in _frames(real_data):
        sp = LidarSpecialist(LidarSpecialistConfig.street())
        cands = sp.propose(fr.points, frame_id="velodyne", camera=fr.calib.intrinsics,
                           T_cam_from_lidar=fr.calib.T_cam_from_velo, )
        in_view = [c for c in cands if c.box_2d is not None]
        assert len(in_view) <= 40, (fr.frame_id, len(in_view))
        labs = [lab for lab in fr.labels if lab.box is not None]
        for lab in labs:
            lab.box.frame_id = "velodyne"
        B = iou_bev_matrix([lab.box for lab in labs], [c.box for c in in_view])
        for i, lab in enumerate(labs):
            group = {"Car": "vehicles", "Van": "vehicles", "Pedestrian": "people",
                     "Cyclist": "people"}.get(lab.type)
            if group is None or int(lab.box.contains(fr.points[:, :3]).sum()) < 50:
                continue
            stats[group][1] += 1
            j = int(B[i].argmax())
            if B[i, j] >= 0.5:
                stats[group][0] += 1
                hits += 1
                ok = {"vehicles": ("car", "van"), "people": ("pedestrian", "cyclist")}[group]
                right += in_view[j].label in ok
    print(f"\nKITTI frames, objects with >= 50 points recalled at BEV 0.5: {stats}; right "
          f"class {right}/{hits}")
    (vh, vn), (ph, pn) = stats["vehicles"], stats["people"]
    assert vn >= 1 and vh >= 0.9 * vn
    assert ph >= 0.7 * pn
    assert right >= 0.9 * hits


def test_kitti_360_scans(real_data):
    """The full 360-degree scans give the same objects (and stay within 120 boxes: a scan
    holds about four camera views)."""
    n = 0
    for fr in _frames(real_data):
        f = fr.path / "velodyne_360.bin"
        if not f.is_file():
            continue
        pts = kitti.read_velodyne(f)
        sp = LidarSpecialist(LidarSpecialistConfig.street())
        cands = sp.propose(pts, frame_id="velodyne")
        assert 0 < len(cands) <= 120
        labs = [lab for lab in fr.labels if lab.box is not None and lab.type != "DontCare"]
        for lab in labs:
            lab.box.frame_id = "velodyne"
        if labs:
            B = iou_bev_matrix([lab.box for lab in labs], [c.box for c in cands])
            for i, lab in enumerate(labs):
                if int(lab.box.contains(pts[:, :3]).sum()) >= 50:
                    assert B[i].max() >= 0.5, (fr.frame_id, lab.type)
        n += 1
    if not n:
        pytest.skip("no velodyne_360.bin scans")


def test_sunrgbd_000001_from_depth_points(sunrgbd_dir):
    fr = sunrgbd.load_sunrgbd_frame(sunrgbd_dir)
    truth = [lab.box for lab in fr.labels]
    for b in truth:
        b.frame_id = "upright"
    uv, _ = sunrgbd.project_upright_points(fr.points, fr)
    ds = DepthSpecialist(DepthSpecialistConfig(max_walls=3))
    common = dict(pixels=uv, T_base_from_points=np.eye(4), base_frame="upright",
                  camera=fr.intrinsics, T_cam_from_points=fr.T_cam_from_upright)
    guided = ds.propose_points(fr.points, boxes_2d=np.array([lab.box_2d for lab in
                                                                    fr.labels]),
                               labels=[lab.classname for lab in fr.labels], **common)
    M = iou_3d_matrix(truth, [c.box for c in guided])
    walls = ds.last_stats.walls
    free = ds.propose_points(fr.points[:, :3], **common)
    F = iou_3d_matrix(truth, [c.box for c in free]) if free else np.zeros((len(truth), 1))
    r_guided, r_free = int((M.max(axis=1) >= 0.25).sum()), int((F.max(axis=1) >= 0.25).sum())
    names = [lab.classname for lab in fr.labels]
    print(f"\nSUN RGB-D 000001 ({len(fr.points)} points, {walls} walls removed): recall at 3D "
          f"IoU>=0.25 from the labelled 2D boxes {r_guided}/6 "
          f"{dict(zip(names, np.round(M.max(axis=1), 2).tolist(), strict=True))}; without "
          f"boxes {r_free}/6 ({len(free)} candidates)")
    assert r_guided >= 5  # issue #20 (3/6 before: touching objects, fronts without depth)
    # Lifted boxes keep their region's label, and the right one wins for the ones recalled.
    for i, lab in enumerate(fr.labels):
        j = int(M[i].argmax())
        if M[i, j] >= 0.25:
            assert guided[j].label == lab.classname
