"""Choosing the LiDAR preset from the data, the warning when the one in use plainly does not
fit, and ``lidar_preset: auto`` in the perception pipeline (street bag without a preset ->
street candidates)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from spatial_ros.perception import PerceptionConfig, PerceptionPipeline
from spatial_ros.specialists import LidarSpecialist, LidarSpecialistConfig, choose_preset
from spatial_ros.specialists.preset_choice import preset_warning
from spatial_ros.specialists.synthetic import street_scan, tabletop_cloud


@pytest.fixture(scope="module")
def street():
    return street_scan(3)


@pytest.fixture(scope="module")
def tabletop():
    return tabletop_cloud(4)


def test_choice_from_ranges(street, tabletop):
    s = choose_preset(street.points)
    t = choose_preset(tabletop.points)
    assert s.preset == "street" and s.median_range > 5.0 and "median range" in s.reason
    assert t.preset == "tabletop" and t.median_range < 2.5 and t.far_share == 0.0


def test_metadata_breaks_a_tie_only():
    rng = np.random.default_rng(0)
    # a mid-range cloud (median 3.5 m, nothing beyond 10 m): the ranges alone say tabletop
    d = rng.normal(size=(5000, 3))
    mid = d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(2.8, 4.2, (5000, 1))
    assert choose_preset(mid).preset == "tabletop"
    assert choose_preset(mid, ["/velodyne_points", "velodyne"]).preset == "street"
    # clear ranges win over misleading names
    assert choose_preset(mid * 5.0, ["/camera/realsense/points"]).preset == "street"
    # no points: the names decide, else the default
    assert choose_preset(np.zeros((0, 3)), ["/kitti/velo/pointcloud"]).preset == "street"
    assert choose_preset(np.full((10, 3), np.nan)).preset == "tabletop"


def test_warning_when_the_preset_plainly_does_not_fit(street, tabletop, caplog):
    sp = LidarSpecialist(LidarSpecialistConfig.tabletop())
    with caplog.at_level(logging.WARNING, logger="spatial_ros.specialists.lidar"):
        cands = sp.propose(street.points)
    w = sp.last_stats.warning
    assert "'tabletop'" in w and "street" in w and "lidar_preset" in w
    assert not cands or sp.last_stats.n_cropped < 0.1 * sp.last_stats.n_valid
    assert any("lidar_preset" in r.getMessage() for r in caplog.records)
    # logged once, not per frame
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spatial_ros.specialists.lidar"):
        sp.propose(street.points)
    assert sp.last_stats.warning and not caplog.records
    # the right preset, or a cloud that is too small to judge: no warning
    ok = LidarSpecialist(LidarSpecialistConfig.street())
    ok.propose(street.points, T_base_from_lidar=street.T_base_from_lidar)
    assert ok.last_stats.warning == ""
    assert preset_warning("street", tabletop.points[:500], 0, 0, 500) == ""
    # the street preset on a tabletop cloud
    bad = LidarSpecialist(LidarSpecialistConfig.street())
    bad.propose(tabletop.points)
    assert bad.last_stats.warning == "" or "tabletop" in bad.last_stats.warning


@pytest.mark.parametrize("scenario", ["street", "tabletop"])
def test_pipeline_auto_preset(scenario):
    """``lidar_preset: auto`` (the default): a street bag gets the street preset, a tabletop
    bag the tabletop one, decided on the first frame with points."""
    from spatial_ros import sim

    assert PerceptionConfig().lidar_preset == "auto"
    fr = sim.render(sim.make_scene(scenario, 7), seed=7)
    pipe = PerceptionPipeline(PerceptionConfig(use_vlm=False, queries=[],
                                               relation_pairs=[]))
    pipe.load()
    assert pipe.lidar_preset == ""
    res = pipe.process(fr.sensor_frame(), [])
    assert pipe.lidar_preset == scenario and scenario in pipe.lidar_choice.preset
    assert res.candidates
    labels = {c.label for c in res.candidates}
    if scenario == "street":
        assert labels & {"car", "pedestrian", "cyclist"}
    else:
        assert labels == {""}  # the tabletop preset has no classes (its output is unchanged)
    pipe.unload()


def test_ground_on_a_street_bag_without_a_preset(tmp_path, caplog):
    """``spatial-ros ground`` with no ``--lidar-preset`` on a simulated street bag: street
    candidates (classes), the choice logged with its reason; with ``--lidar-preset
    tabletop`` forced: a warning that names the street preset."""
    import json

    from spatial_ros.boxfile import read_box_file
    from spatial_ros.cli import main

    out = tmp_path / "sim"
    assert main(["sim", "--scenario", "street", "--seed", "3", "--frames", "1",
                 "--out", str(out), "--no-progress"]) == 0
    pred = tmp_path / "pred.jsonl"
    with caplog.at_level(logging.INFO):
        assert main(["ground", "--bag", str(out / "bag"), "--specialists-only",
                     "--out", str(pred)]) == 0
    frames = read_box_file(pred)
    labels = {o.label for f in frames for o in f.objects}
    assert labels & {"car", "pedestrian", "cyclist"}, labels
    assert any("lidar_preset auto: street" in r.getMessage() for r in caplog.records)
    caplog.clear()
    forced = tmp_path / "forced.jsonl"
    with caplog.at_level(logging.WARNING):
        assert main(["ground", "--bag", str(out / "bag"), "--specialists-only",
                     "--lidar-preset", "tabletop", "--out", str(forced)]) == 0
    assert any("looks like a street scene" in r.getMessage() for r in caplog.records)
    forced_labels = {o["label"] for line in forced.read_text().splitlines()
                     for o in json.loads(line)["objects"]}
    assert forced_labels <= {""}  # the tabletop preset classifies nothing
