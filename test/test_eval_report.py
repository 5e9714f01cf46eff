"""The report renders: report.html + PNGs in one directory, every <img> loads in headless
Chromium (Debian ``chromium``; a missing control image proves the check can fail). Where
Chromium is not installed that check is skipped and the PNGs are checked to exist and show
more than one colour instead."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from spatial_ros.boxfile import read_box_file
from spatial_ros.errors import DataError
from spatial_ros.evaluation.replay import replay_bag
from spatial_ros.evaluation.report import load_reward_curve, write_report
from spatial_ros.evaluation.runs import summarize, truth_progress_of
from spatial_ros.perception import PerceptionConfig
from spatial_ros.sim import SimConfig, simulate

GOAL = "put the red cube next to the blue bowl"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    sim = tmp_path_factory.mktemp("sim_report")
    simulate(SimConfig("tabletop", seed=3, frames=9, trajectory="success", goal=GOAL), sim)
    rep = replay_bag(sim / "bag", PerceptionConfig(use_vlm=False), snapshots=2)
    truth = read_box_file(sim / "truth.jsonl")
    return sim, rep, truth


def _render(run, out, with_truth=True):
    sim, rep, truth = run
    t = truth if with_truth else None
    metrics, rows = summarize(
        rep.predictions, t, queries=[], candidates=rep.candidates, records=rep.records
    )
    reward = [(i, i / 8, 0.1 * i) for i in range(9)]  # what the reward labeller gives
    t0 = time.perf_counter()
    path = write_report(
        out,
        metrics=metrics,
        snapshots=rep.snapshots,
        predictions=rep.predictions,
        truth=t,
        candidates=rep.candidates,
        records=rep.records,
        per_frame=rows,
        reward=reward,
        truth_progress=truth_progress_of(sim / "truth_detail.jsonl"),
    )
    print(f"\nreport rendered in {time.perf_counter() - t0:.2f} s ({len(rep.snapshots)} frames)")
    return path


def _img_sources(html: str) -> list[str]:
    return re.findall(r"<img src='([^']+)'", html)


def test_report_files_are_self_contained_and_non_trivial(run, tmp_path):
    path = _render(run, tmp_path / "report")
    html = path.read_text()
    srcs = _img_sources(html)
    # 2 frames x (image + bird's-eye view) + reward curves + latency
    assert len(srcs) == 6 and "reward.png" in srcs and "latency.png" in srcs
    for s in srcs:
        assert "/" not in s  # relative, next to report.html
        png = path.parent / s
        assert png.is_file() and png.stat().st_size > 2000
        import cv2

        img = cv2.imread(str(png))
        assert img is not None and img.shape[0] > 100
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20  # not a blank canvas
    # per-frame table: one row per replayed frame (3 LiDAR frames) + the header row
    table = html.split("Per-frame table")[1]
    assert table.count("<tr>") == 1 + len(run[1].records) == 4
    assert "BEV detection of candidates (all@0.5)" in html and "No ground truth" not in html
    # the directory can move: nothing refers to where it was written
    assert str(tmp_path) not in html


def test_report_images_load_in_headless_chromium(run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed: PNG existence/content is checked by the test above")
    path = _render(run, tmp_path / "report")
    html = path.read_text()
    probe = (
        "<img src='missing_control.png'><script>window.addEventListener('load', () => "
        "document.body.setAttribute('data-imgs', [...document.images].map(i => "
        "i.getAttribute('src') + '=' + i.naturalWidth).join(';')));</script>"
    )
    check = path.parent / "check.html"
    check.write_text(html.replace("</body>", probe + "</body>"))
    res = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            check.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    m = re.search(r'data-imgs="([^"]*)"', res.stdout)
    assert m, f"chromium did not render the page: {res.stderr[-500:]}"
    widths = dict(item.rsplit("=", 1) for item in m.group(1).split(";"))
    assert widths.pop("missing_control.png") == "0"  # the check sees a broken image
    assert set(widths) == set(_img_sources(html))
    assert all(int(w) > 0 for w in widths.values()), widths


def test_report_without_truth_draws_predictions(run, tmp_path):
    path = _render(run, tmp_path / "report", with_truth=False)
    html = path.read_text()
    assert "No ground truth given" in html
    assert len(_img_sources(html)) == 6 and "frame_00000_bev.png" in html


def test_reward_curve_from_parquet_and_bad_input(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "labels.parquet"
    pq.write_table(
        pa.table(
            {
                "frame_index": [2, 0, 1],
                "progress": [1.0, 0.0, 0.5],
                "reward": [0.3, 0.1, 0.2],
                "goal": ["g", "g", "g"],
                "stamp_ns": [30, 10, 20],
            }
        ),
        p,
    )
    c = load_reward_curve(p)
    assert c.frame_index.tolist() == [0, 1, 2] and c.progress.tolist() == [0.0, 0.5, 1.0]
    assert c.stamp_ns.tolist() == [10, 20, 30]
    assert load_reward_curve([(1, 0.5, 0.2), (0, 0.0, 0.1)]).stamp_ns is None
    pq.write_table(pa.table({"frame_index": [0], "reward": [0.1]}), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="progress"):
        load_reward_curve(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="rows of"):
        load_reward_curve([(0, 1.0)])
    with pytest.raises(DataError, match="cannot read"):
        load_reward_curve(tmp_path / "missing.parquet")


def test_truth_progress_with_the_reach_stage(run):
    """The report's truth curve for labels with the reach stage is the simulator's staged
    progress: above the goal-region progress while the gripper approaches, equal at the end."""
    from spatial_ros.reward.goal_measure import staged_progress

    sim, _, _ = run
    plain = truth_progress_of(sim / "truth_detail.jsonl")
    staged = truth_progress_of(sim / "truth_detail.jsonl", staged=True)
    details = [json.loads(x)["trajectory"] for x in
               (sim / "truth_detail.jsonl").read_text().splitlines()]
    assert [s[1] for s in staged] == pytest.approx(
        [staged_progress(d["progress"], d["reach"]) for d in details])
    assert [s[0] for s in staged] == [p[0] for p in plain]
    assert max(s[1] - p[1] for s, p in zip(staged, plain, strict=True)) > 0.1
    assert staged[-1][1] == pytest.approx(plain[-1][1])
