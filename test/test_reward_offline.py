"""Offline reward labelling over simulated bags with ground-truth grounding: progress equals the
simulator's truth, VOC on a success, success vs failure, SIGKILL + restart -> identical parquet,
Ray local mode, CLI errors."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.stats import spearmanr

from spatial_ros.cli import main as cli
from spatial_ros.errors import DataError
from spatial_ros.reward.annotator import RewardAnnotatorConfig
from spatial_ros.reward.offline import SCHEMA, label_dataset, sources_for
from spatial_ros.sim import CameraConfig, SimConfig, simulate

GOAL = "put the red cube next to the blue bowl"
CAM = CameraConfig(width=96, height=72, hfov_deg=50.0)
RAW = RewardAnnotatorConfig(smoothing="none", success_tolerance=0.0, rest_tolerance=0.01)


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    """ep0: a successful episode, ep1: a failed one (stall); 10 synchronized frames each."""
    root = tmp_path_factory.mktemp("episodes")
    simulate(SimConfig(camera=CAM, goal=GOAL, trajectory="success", seed=11, frames=30),
             root / "ep0")
    simulate(SimConfig(camera=CAM, goal=GOAL, trajectory="fail", fail_mode="stall", seed=12,
                       frames=30), root / "ep1")
    return root


@pytest.fixture(scope="module")
def multi(tmp_path_factory) -> Path:
    """One bag holding two simulated episodes (6 synchronized frames each)."""
    out = tmp_path_factory.mktemp("multi") / "run"
    simulate(SimConfig(camera=CAM, goal=GOAL, trajectory="success", seed=13, frames=36,
                       frames_per_scene=18), out)
    return out


def truth_by_stamp(run: Path) -> dict[int, dict]:
    lines = (run / "truth_detail.jsonl").read_text().splitlines()
    return {d["stamp_ns"]: d["trajectory"] for d in map(json.loads, lines)}


def test_truth_grounding_reproduces_truth_progress(episodes, tmp_path):
    out = tmp_path / "labels.parquet"
    res = label_dataset(sources_for(episodes=episodes, gt="auto"), GOAL, out, RAW,
                        progress=False)
    t = pq.read_table(out)
    assert t.schema.equals(SCHEMA) and res.rows == t.num_rows == 20 and res.episodes == 2
    df = t.to_pandas()
    assert df["index"].tolist() == list(range(20))
    for ep, run in enumerate(("ep0", "ep1")):
        rows = df[df.episode_index == ep]
        assert rows.frame_index.tolist() == list(range(10))
        assert np.all(np.diff(rows.timestamp) > 0) and rows.timestamp.iloc[0] == 0.0
        truth = truth_by_stamp(episodes / run)
        want = np.array([truth[s]["progress"] for s in rows.stamp_ns])  # image stamps
        np.testing.assert_allclose(rows.progress, want, atol=1e-6)  # float32 column
        assert rows.success.tolist() == [truth[s]["in_goal"] for s in rows.stamp_ns]
        assert rows.grounded.all() and (rows.goal == GOAL).all()
        assert rows.reward.sum() == pytest.approx(rows.progress.iloc[-1], abs=1e-5)


def test_ignored_goal_words_are_warned_once_and_noted_per_episode(episodes, tmp_path, caplog):
    """`spatial-ros reward` / label_dataset with a goal holding words the parser cannot place:
    one warning for the job, the note on each episode's first label, the labels otherwise
    those of the plain goal."""
    import logging

    noisy = GOAL + " with care"
    with caplog.at_level(logging.WARNING):
        label_dataset(sources_for(episodes=episodes, gt="auto"), noisy, tmp_path / "n.parquet",
                      RAW, progress=False)
    warned = [r.getMessage() for r in caplog.records if "not understood" in r.getMessage()]
    assert warned == [f"goal '{noisy}': words not understood (ignored): 'with care' (the "
                      "labels' first explanation of each episode says so too)"]
    label_dataset(sources_for(episodes=episodes, gt="auto"), GOAL, tmp_path / "p.parquet", RAW,
                  progress=False)
    df = pq.read_table(tmp_path / "n.parquet").to_pandas()
    plain = pq.read_table(tmp_path / "p.parquet").to_pandas()
    noted = df.explanation.str.endswith("; words not understood (ignored): 'with care'")
    assert noted.tolist() == (df.frame_index == 0).tolist() and noted.sum() == 2
    assert df.progress.tolist() == plain.progress.tolist()


def test_reach_stage_from_the_bags_tf(episodes, tmp_path):
    """The simulated bags carry the gripper's tool point on /tf: with tool_frame set, bag
    replay labels the simulator's staged truth progress (reach + goal region) exactly."""
    from spatial_ros.reward.goal_measure import staged_progress

    out = tmp_path / "labels.parquet"
    cfg = dataclasses.replace(RAW, tool_frame="gripper_tcp")
    label_dataset(sources_for(episodes=episodes, gt="auto"), GOAL, out, cfg, progress=False)
    df = pq.read_table(out).to_pandas()
    for ep, run in enumerate(("ep0", "ep1")):
        rows = df[df.episode_index == ep]
        truth = truth_by_stamp(episodes / run)
        want = [staged_progress(truth[s]["progress"], truth[s]["reach"]) for s in rows.stamp_ns]
        np.testing.assert_allclose(rows.progress, want, atol=1e-5)
        assert rows.progress.iloc[2] > 0.0 == truth[rows.stamp_ns.iloc[2]]["progress"]


def test_default_scoring_voc_and_separation(episodes, tmp_path):
    out = tmp_path / "labels.parquet"
    label_dataset(sources_for(episodes=episodes, gt="auto"), GOAL, out, progress=False)
    df = pq.read_table(out).to_pandas()
    ok, bad = df[df.episode_index == 0], df[df.episode_index == 1]
    voc = spearmanr(ok.progress, ok.frame_index).statistic
    print(f"GT grounding: VOC {voc:.3f}; final progress success {ok.progress.iloc[-1]:.2f}, "
          f"fail {bad.progress.iloc[-1]:.2f}")
    assert voc >= 0.9
    assert ok.progress.iloc[-1] == 1.0 and ok.success.iloc[-1]
    assert bad.progress.iloc[-1] < 0.8 and not bad.success.any()
    assert "gap(red cube, blue bowl)" in ok.explanation.iloc[0]


SLOW_CLI = (
    "import sys, time\n"
    "from spatial_ros.reward import annotator as A\n"
    "label = A.RewardAnnotator.label\n"
    "def slow(self, *a, **k):\n"
    "    time.sleep(0.15)\n"
    "    return label(self, *a, **k)\n"
    "A.RewardAnnotator.label = slow\n"
    "from spatial_ros.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_sigkill_then_restart_gives_an_identical_file(multi, tmp_path, capsys):
    args = ["reward", "--bag", str(multi), "--gt", "--goal", GOAL, "--chunk-size", "2",
            "--no-progress"]
    ref = tmp_path / "ref.parquet"
    assert cli(args + ["--out", str(ref)]) == 0
    df = pq.read_table(ref).to_pandas()
    assert df.episode_index.tolist() == [0] * 6 + [1] * 6  # episodes from the truth file
    assert df.frame_index.tolist() == list(range(6)) * 2
    assert df[df.episode_index == 1].progress.iloc[0] == 0.0  # scoring restarts per episode

    out = tmp_path / "killed.parquet"
    parts = tmp_path / "killed.parquet.parts"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLI, *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 60
        while len(list(parts.glob("s*.parquet"))) < 3 and time.monotonic() < end:
            assert proc.poll() is None, "the job finished before it could be killed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    done = len(list(parts.glob("s*.parquet")))
    assert 3 <= done < 6 and not out.exists()
    capsys.readouterr()
    assert cli(args + ["--out", str(out)]) == 0  # the same command resumes
    assert f"{2 * done} resumed from an earlier run" in capsys.readouterr().out
    assert not parts.exists()
    assert pq.read_table(out).equals(pq.read_table(ref))
    assert out.read_bytes() == ref.read_bytes()


def test_restart_with_other_settings_is_refused(multi, tmp_path, capsys):
    out = tmp_path / "l.parquet"
    (tmp_path / "l.parquet.parts").mkdir()
    (tmp_path / "l.parquet.parts" / "manifest.json").write_text('{"goal": "other"}')
    args = ["reward", "--bag", str(multi), "--gt", "--goal", GOAL, "--no-progress",
            "--out", str(out)]
    assert cli(args) == 1
    assert "other settings" in capsys.readouterr().err
    assert cli(args + ["--overwrite"]) == 0 and out.is_file()
    assert cli(args) == 1  # finished output: not silently replaced
    assert "exists" in capsys.readouterr().err
    assert cli(["reward", "--bag", str(multi), "--gt", "--goal", "make tea", "--out",
                str(tmp_path / "x.parquet")]) == 1
    assert "cannot parse goal" in capsys.readouterr().err
    with pytest.raises(DataError, match="no truth.jsonl"):
        sources_for(bag=tmp_path, gt="auto")


def test_ray_local_mode(episodes, tmp_path):
    ray = pytest.importorskip("ray")
    ref = tmp_path / "ref.parquet"
    label_dataset(sources_for(episodes=episodes, gt="auto"), GOAL, ref, progress=False)
    out = tmp_path / "ray.parquet"
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        res = label_dataset(sources_for(episodes=episodes, gt="auto"), GOAL, out,
                            progress=False, use_ray=True)
    finally:
        ray.shutdown()
    assert res.labelled == 20
    assert out.read_bytes() == ref.read_bytes()


def test_bench_reward_reports_both_progress_definitions(tmp_path):
    """`spatial-ros bench reward` with ground-truth grounding on a few tiny episodes: the reach
    stage's rows use the simulator's staged truth, the goal-only rows its goal-region truth,
    and both score ground-truth boxes close to those truths."""
    out = tmp_path / "bench.json"
    assert cli(["bench", "reward", "--episodes", "2", "--frames", "15", "--goal-only",
                "--paraphrase", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["tool_frame"] == "gripper_tcp" and r["episodes"] == 4
    assert r["sim_truth_staged_voc_median"] > r["sim_truth_progress_voc_median"]
    for name in ("truth", "truth goal only"):
        assert r[name]["frames"] == r["frames"] and r[name]["auroc"] == 1.0
        assert r[name]["progress_mae"] < 0.15  # the causal median smoothing's lag only
    assert r["truth"]["voc_median"] > r["truth goal only"]["voc_median"]
    # --paraphrase: each episode's goal said another way, parsed to the same objective, so the
    # labels are the canonical goal's
    assert r["paraphrases"] == {"parse_agreement": 1.0, "disagreements": []}
    eps = r["per_episode"]
    assert len(eps) == 4 and all(e["paraphrase"] != e["goal"] for e in eps)
    for e in eps:
        assert e["runs"]["truth paraphrased"]["progress"] == e["runs"]["truth"]["progress"]
        assert e["runs"]["truth"]["gripper_refused"] == 0
