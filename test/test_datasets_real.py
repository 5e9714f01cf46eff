"""Dataset loaders: synthetic frames with exact truth (always run) and the real KITTI 000008 /
SUN RGB-D 000001 samples (skipped when ../shared/data/real is absent)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from spatial_ros.datasets.kitti import (
    KittiCalib,
    KittiLabel,
    iter_kitti_frames,
    label_box_in_velo,
    load_kitti_frame,
    read_labels,
    write_kitti_label,
)
from spatial_ros.datasets.sunrgbd import load_sunrgbd_frame, project_upright_points
from spatial_ros.errors import DataError
from spatial_ros.geometry.camera import in_image, points_to_image, project_box
from spatial_ros.geometry.iou import iou_2d
from spatial_ros.types import Box3D

# ----------------------------------------------------------------------------------------------
# synthetic KITTI frames (exact truth)
# ----------------------------------------------------------------------------------------------

W, H = 320, 120
K = np.array([[250.0, 0.0, 160.0], [0.0, 250.0, 60.0], [0.0, 0.0, 1.0]])
T2 = np.array([0.06, -0.001, 0.003])  # camera 2 offset from the rectified reference camera


def _rot(axis: int, a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def _synthetic_calib() -> KittiCalib:
    # Velodyne (x fwd, y left, z up) -> camera (x right, y down, z fwd), slightly rotated.
    axes = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    Tr = np.hstack([_rot(1, 0.01) @ axes, np.array([[0.0], [-0.08], [-0.27]])])
    R0 = _rot(0, 0.004) @ _rot(2, 0.009)
    P2 = K @ np.hstack([np.eye(3), T2[:, None]])
    return KittiCalib.from_matrices(P2, R0, Tr, W, H)


def _write_calib(path, calib: KittiCalib) -> None:
    fmt = lambda a: " ".join(f"{v:.12e}" for v in np.ravel(a))  # noqa: E731
    path.write_text(
        f"P0: {fmt(np.hstack([K, np.zeros((3, 1))]))}\nP1: {fmt(np.zeros(12))}\n"
        f"P2: {fmt(calib.P2)}\nP3: {fmt(np.zeros(12))}\nR0_rect: {fmt(calib.R0_rect)}\n"
        f"Tr_velo_to_cam: {fmt(calib.Tr_velo_to_cam)}\nTr_imu_to_velo: {fmt(np.zeros(12))}\n"
    )


def _synthetic_frame(rng):
    calib = _synthetic_calib()
    boxes = [Box3D.from_yaw([12.0, 2.0, -0.9], [3.9, 1.6, 1.5], 0.4, "velodyne"),
             Box3D.from_yaw([20.0, -3.0, -0.8], [4.2, 1.7, 1.6], -2.5, "velodyne")]
    pts = np.vstack([(rng.uniform(-0.5, 0.5, (300, 3)) * b.size) @ b.rotation.T + b.center
                     for b in boxes])
    pts = np.hstack([pts, rng.uniform(0, 1, (len(pts), 1))]).astype(np.float32)
    labels = [KittiLabel.from_box(b, calib, "Car") for b in boxes]
    image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    return calib, boxes, pts, labels, image


def _write_frame(files: dict, calib, pts, labels, image) -> None:
    for p in files.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(files["image"]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    pts.tofile(files["velodyne"])
    _write_calib(files["calib"], calib)
    write_kitti_label(files["label"], labels)


def test_calib_splits_p2_exactly():
    calib = _synthetic_calib()
    rng = np.random.default_rng(0)
    p = np.hstack([rng.uniform(5, 30, (50, 1)), rng.uniform(-5, 5, (50, 2))])
    uv, depth, _ = points_to_image(p, calib.T_cam_from_velo, calib.intrinsics)
    X = calib.P2 @ (calib.T_rect_from_velo @ np.c_[p, np.ones(50)].T)
    np.testing.assert_allclose(uv, (X[:2] / X[2]).T, atol=1e-9)
    np.testing.assert_allclose(calib.T_cam_from_rect[:3, 3], T2, atol=1e-12)
    T = calib.transform_tree().lookup("camera_2_optical", "velodyne")
    np.testing.assert_allclose(T, calib.T_cam_from_velo)


def test_label_box_roundtrip_and_conventions():
    calib = _synthetic_calib()
    box = Box3D.from_yaw([15.0, -2.0, -0.7], [4.0, 1.7, 1.5], 0.8, "velodyne")
    lab = KittiLabel.from_box(box, calib, "Car", score=0.75)
    h, w, length = lab.dimensions
    assert (h, w, length) == pytest.approx((1.5, 1.7, 4.0))
    # Camera y points down: the bottom centre is h/2 below (larger y than) the box centre.
    c_rect = calib.T_rect_from_velo[:3, :3] @ box.center + calib.T_rect_from_velo[:3, 3]
    np.testing.assert_allclose(lab.location, c_rect + [0, 0.75, 0])
    # Heading 0.8 rad left of the Velodyne x axis is rotation_y ~ -(0.8 + pi/2) about camera y.
    assert lab.rotation_y == pytest.approx(-(0.8 + np.pi / 2), abs=0.02)
    back = label_box_in_velo(lab.dimensions, lab.location, lab.rotation_y, calib)
    np.testing.assert_allclose(back.center, box.center, atol=1e-9)
    np.testing.assert_allclose(back.size, box.size)
    assert back.yaw == pytest.approx(box.yaw, abs=1e-9)
    # alpha = rotation_y - atan2(x, z), the observation angle.
    assert lab.alpha == pytest.approx(lab.rotation_y - np.arctan2(lab.location[0],
                                                                  lab.location[2]), abs=1e-9)
    line = lab.to_line()
    assert line.startswith("Car 0.00 0 ") and line.endswith(" 0.7500")


@pytest.mark.parametrize("layout", ["kitti", "folder"])
def test_synthetic_frame_both_layouts(tmp_path, layout):
    rng = np.random.default_rng(1)
    calib, boxes, pts, labels, image = _synthetic_frame(rng)
    if layout == "kitti":
        root = tmp_path / "training"
        files = {k: root / sub / f"000042.{ext}" for k, sub, ext in (
            ("image", "image_2", "png"), ("velodyne", "velodyne", "bin"),
            ("calib", "calib", "txt"), ("label", "label_2", "txt"))}
        _write_frame(files, calib, pts, labels, image)
        frame = load_kitti_frame(root, "000042")
    else:
        root = tmp_path / "frames"
        d = root / "kitti_000042"
        files = {"image": d / "image_2.png", "velodyne": d / "velodyne.bin",
                 "calib": d / "calib.txt", "label": d / "label_2.txt"}
        _write_frame(files, calib, pts, labels, image)
        frame = load_kitti_frame(d)
    assert frame.frame_id == "000042"
    np.testing.assert_array_equal(frame.image, image)  # RGB order preserved
    np.testing.assert_array_equal(frame.points, pts)
    np.testing.assert_allclose(frame.calib.T_cam_from_velo, calib.T_cam_from_velo, atol=1e-9)
    assert [lab.type for lab in frame.labels] == ["Car", "Car"]
    for lab, box in zip(frame.labels, boxes, strict=True):
        # Written with 2 decimals: centres within 1 cm, yaw within 0.01 rad.
        np.testing.assert_allclose(lab.box.center, box.center, atol=0.01)
        np.testing.assert_allclose(lab.box.size, box.size, atol=0.006)
        assert abs(np.angle(np.exp(1j * (lab.box.yaw - box.yaw)))) < 0.01
        assert lab.box.contains(frame.points, margin=0.02).sum() >= 300
    frames = list(iter_kitti_frames(root))
    assert [f.frame_id for f in frames] == ["000042"]
    sf = frame.sensor_frame(stamp_ns=5)
    assert sf.points_frame == "velodyne" and sf.transforms.can_transform("camera_2_optical",
                                                                         "velodyne")


def test_kitti_errors_and_dontcare(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_kitti_frame(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither"):
        load_kitti_frame(tmp_path / "empty")
    with pytest.raises(DataError, match="no KITTI frames"):
        list(iter_kitti_frames(tmp_path / "empty"))
    calib = _synthetic_calib()
    p = tmp_path / "l.txt"
    p.write_text("DontCare -1 -1 -10 800.38 163.67 825.45 184.07 -1 -1 -1 -1000 -1000 -1000 -10\n")
    (lab,) = read_labels(p, calib)
    assert lab.is_dontcare and lab.box is None and lab.box_2d[2] == pytest.approx(825.45)
    p.write_text("Car 0 0 0 1 2 3\n")
    with pytest.raises(DataError, match="15 or 16 columns"):
        read_labels(p, calib)


# ----------------------------------------------------------------------------------------------
# real frames
# ----------------------------------------------------------------------------------------------


def test_kitti_000008_lidar_boxes_match_2d_labels(kitti_dir, capsys):
    frame = load_kitti_frame(kitti_dir)
    calib = frame.calib
    assert frame.points.shape == (17238, 4) and frame.image.shape == (375, 1242, 3)
    uv, depth, mask = points_to_image(frame.points, calib.T_cam_from_velo, calib.intrinsics)
    assert mask.mean() > 0.99  # the scan is pre-cut to the camera's field of view
    cars = [lab for lab in frame.labels if lab.type == "Car"]
    assert len(cars) == 6 and sum(lab.is_dontcare for lab in frame.labels) == 4
    rows = []
    for lab in cars:
        inside = lab.box.contains(frame.points)
        b = lab.box_2d
        u = uv[inside]
        hit = (u[:, 0] >= b[0]) & (u[:, 0] <= b[2]) & (u[:, 1] >= b[1]) & (u[:, 1] <= b[3])
        proj = project_box(lab.box.transformed(calib.T_cam_from_velo), calib.intrinsics)
        iou = iou_2d(proj, b)
        rows.append((int(inside.sum()), float(hit.mean()), iou))
        assert hit.mean() >= 0.95, (lab.to_line(), hit.mean())
        assert iou >= 0.7, (lab.to_line(), iou)
    counts = [r[0] for r in rows]
    # README: about 1424, 1940, 878, 668, 53, 164 points inside the six car boxes.
    np.testing.assert_allclose(counts, [1424, 1940, 878, 668, 53, 164], rtol=0.05, atol=6)
    with capsys.disabled():
        print("\nKITTI 000008 cars: points in box / fraction inside 2D label / 2D IoU: "
              + "; ".join(f"{n} / {f:.3f} / {i:.3f}" for n, f, i in rows))


def test_kitti_000008_label_roundtrip(kitti_dir, tmp_path):
    frame = load_kitti_frame(kitti_dir)
    cars = [lab for lab in frame.labels if not lab.is_dontcare]
    again = [KittiLabel.from_box(lab.box, frame.calib, lab.type, box_2d=lab.box_2d,
                                 truncated=lab.truncated, occluded=lab.occluded) for lab in cars]
    for a, b in zip(again, cars, strict=True):
        np.testing.assert_allclose(a.location, b.location, atol=1e-9)
        np.testing.assert_allclose(a.dimensions, b.dimensions, atol=1e-9)
        # Only the ~0.5 degree Velodyne/camera tilt separates the yaw-only box from the label.
        assert abs(np.angle(np.exp(1j * (a.rotation_y - b.rotation_y)))) < 0.01
        assert a.alpha == pytest.approx(b.alpha, abs=0.05)  # KITTI alphas are approximate
    out = tmp_path / "pred" / "000008.txt"
    write_kitti_label(out, again)
    reread = read_labels(out, frame.calib)
    assert [r.type for r in reread] == ["Car"] * 6 and all(r.score is None for r in reread)
    # The shared folder holds several KITTI frames; iteration is sorted by frame id.
    ids = [f.frame_id for f in iter_kitti_frames(kitti_dir.parent)]
    assert "000008" in ids and ids == sorted(ids)


def test_sunrgbd_000001_geometry(sunrgbd_dir, capsys):
    frame = load_sunrgbd_frame(sunrgbd_dir)
    assert frame.points.shape == (280961, 6) and frame.image.shape == (530, 730, 3)
    np.testing.assert_allclose(frame.intrinsics.K, [[529.5, 0, 365], [0, 529.5, 265], [0, 0, 1]])
    uv, depth = project_upright_points(frame.points, frame)
    ok = in_image(uv, frame.intrinsics)
    assert ok.mean() > 0.99 and (depth[ok] > 0).all()
    # The points' own colours match the pixels they project onto (checks Rtilt, axis swap, K).
    pix = np.round(uv[ok]).astype(int)
    colour_err = np.abs(frame.image[pix[:, 1], pix[:, 0]] / 255.0 - frame.points[ok, 3:6]).mean()
    assert colour_err < 0.05
    names = [lab.classname for lab in frame.labels]
    assert names == ["bed", "night_stand", "ottoman", "dresser_mirror", "dresser", "lamp"]
    centres = np.array([lab.box.center for lab in frame.labels])
    cuv, cdepth = project_upright_points(centres, frame)
    inside = [bool(b[0] <= u <= b[2] and b[1] <= v <= b[3])
              for (u, v), b in zip(cuv, (lab.box_2d for lab in frame.labels), strict=True)]
    assert sum(inside) >= 5 and (cdepth > 0).all()
    # Size order (across, along heading, up): the boxes hold far more of the scene's points
    # than with the first two half sizes swapped.
    ours = sum(int(lab.box.contains(frame.points).sum()) for lab in frame.labels)
    swapped = sum(int(Box3D.from_yaw(lab.box.center, lab.box.size[[1, 0, 2]], lab.box.yaw)
                      .contains(frame.points).sum()) for lab in frame.labels)
    assert ours > 1.5 * swapped
    bed = frame.labels[0].box
    np.testing.assert_allclose(bed.size, 2 * np.array([1.151035, 0.943792, 0.984807]))
    assert bed.yaw == pytest.approx(np.arctan2(-0.992216, -0.124529))
    ious = []
    for lab in frame.labels:
        b2 = project_box(lab.box.transformed(frame.T_cam_from_upright), frame.intrinsics)
        ious.append(iou_2d(b2, lab.box_2d) if b2 is not None else 0.0)
    with capsys.disabled():
        print(f"\nSUN RGB-D 000001: colour err {colour_err:.3f}, centres in 2D box "
              f"{sum(inside)}/6 {inside}, projected-box IoU "
              + ", ".join(f"{n} {i:.2f}" for n, i in zip(names, ious, strict=True))
              + f"; points in boxes {ours} vs {swapped} swapped")
