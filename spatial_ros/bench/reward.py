"""`spatial-ros bench reward`: reward-annotation quality and speed on held-out simulated episodes.

For ``--episodes`` successful and ``--episodes`` failed tabletop trajectories (seeds from
``--seed``, away from the seeds tests and training use) it labels every synchronized frame (one
per LiDAR scan, as bag replay and the node see them) and reports, per grounding:

- VOC (GVL's value-order correlation): Spearman correlation of progress with the frame index,
  median over the successful episodes (an episode with constant progress counts as 0);
- AUROC of the final frame's progress separating successful from failed episodes;
- the mean absolute error of per-frame progress against the simulator's truth progress;
- the final success flag's agreement with the simulator's outcome;
- labelling frames/s (grounding + scoring, frames already in memory) and, with ``--bag``, the
  end-to-end offline rate of ``spatial-ros reward`` on a simulated bag (decode, sync, label,
  parquet).

Groundings: ``truth`` (the simulator's exact boxes: measures the reward logic alone, and the
simulator's own truth progress is reported next to it), and ``model`` with ``--model DIR`` or
``--tiny`` (a random-weight tiny VLM built on the spot: plumbing and speed only, its answers are
noise). ``--untracked`` also labels with the model but without following the goal's objects from
frame to frame (``track_objects: false``), to show what tracking adds.

``--paraphrase`` also labels every episode with its goal said another way (a paraphrase from
``training.goal_paraphrases``: verbs, politeness, fronted placements, "left-hand side",
possessives, "so that it is", no verb, colour and noun synonyms; one per episode, drawn from its
seed), after checking that it parses to the episode's objective; the rows are named
"paraphrased". ``--per-episode`` prints each episode's breakdown (final progress against the
truth, whether the success flag agrees, frames whose target box is more than 5 cm from the true
target's, frames refused because the target resolved to the gripper, the frame the reach stage
ended), to tell grounding errors from scoring errors.

Progress has the reach stage by default (``tool_frame`` = the simulator's ``gripper_tcp``, which
every simulated frame carries in its transforms, as /tf does in a simulated bag); the truth it
is compared with is the simulator's staged progress. ``--goal-only`` also labels without it
(goal region only, against the simulator's goal-region progress); ``--tool-frame ''`` only so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from spatial_ros.errors import DataError

HELP = "reward annotation: VOC and success/failure AUROC on simulated episodes, frames/s"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=10,
                        help="successful and failed episodes each (default 10)")
    parser.add_argument("--frames", type=int, default=30,
                        help="camera frames per episode (a LiDAR scan every 3rd)")
    parser.add_argument("--seed", type=int, default=900_000, help="first held-out seed")
    parser.add_argument("--width", type=int, default=None, help="image width (sim default)")
    parser.add_argument("--height", type=int, default=None, help="image height (sim default)")
    parser.add_argument("--model", type=Path, default=None, help="local model directory")
    parser.add_argument("--tiny", action="store_true",
                        help="also run a random-weight tiny VLM (plumbing and speed only)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--referring", choices=("program", "model"), default="program",
                        help="how the model grounding understands the goal's object phrases "
                             "(the node's referring parameter; default program)")
    parser.add_argument("--untracked", action="store_true",
                        help="also label with the model without object tracking (comparison)")
    parser.add_argument("--tool-frame", default=None,
                        help="tool centre point frame for the reach stage (default: the "
                             "simulator's gripper_tcp; '' = goal region only)")
    parser.add_argument("--goal-only", action="store_true",
                        help="also label without the reach stage (comparison)")
    parser.add_argument("--paraphrase", action="store_true",
                        help="also label each episode with a paraphrase of its goal "
                             "(training.goal_paraphrases), checked to parse to the same goal")
    parser.add_argument("--per-episode", action="store_true",
                        help="print each episode's breakdown (grounding vs scoring errors)")
    parser.add_argument("--bag", action="store_true",
                        help="also time end-to-end offline labelling of a simulated bag")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve of scores ``pos`` (positives) vs ``neg``: P(pos > neg) + half
    the ties (the Mann-Whitney U statistic over n_pos * n_neg)."""
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    if not pos.size or not neg.size:
        return float("nan")
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def voc(progress: list[float]) -> float:
    """Spearman correlation of progress with the frame index (0 when progress is constant)."""
    p = np.asarray(progress, float)
    if len(p) < 2 or np.all(p == p[0]):
        return 0.0
    return float(spearmanr(p, np.arange(len(p))).statistic)


def _camera(args):
    from spatial_ros.sim.config import default_camera

    cam = default_camera("tabletop")
    return dataclasses.replace(cam, width=args.width or cam.width,
                               height=args.height or cam.height)


def simulate_episodes(args) -> list[dict]:
    """Held-out episodes in memory: frames with a LiDAR scan, truth boxes, table height."""
    from spatial_ros.sim import SimConfig, iter_frames

    cam = _camera(args)
    out, skipped = [], 0
    for mode in ("success", "fail"):
        seed, n = args.seed + (0 if mode == "success" else 50_000), 0
        while n < args.episodes:
            cfg = SimConfig(camera=cam, seed=seed, frames=args.frames, trajectory=mode)
            seed += 1
            eps: list = []
            try:
                frames = [f for f in iter_frames(cfg, eps) if f.points is not None]
            except DataError:
                skipped += 1
                continue
            traj = eps[0].trajectory
            out.append({
                "mode": mode, "seed": cfg.seed, "goal": traj.goal.text, "kind": traj.goal.kind,
                "fail_mode": traj.fail_mode,
                "success": traj.success, "frames": frames,
                "table_z": eps[0].scene.table_top_z,
                "truth_progress": [f.truth.trajectory.progress for f in frames],
                "truth_staged": [f.truth.trajectory.staged_progress() for f in frames],
            })
            n += 1
    if skipped:
        log.info("%d seeds had no feasible trajectory and were skipped", skipped)
    return out


PARAPHRASE_KEY = "paraphrase"
TARGET_ERROR_M = 0.05  # a target box further than this from the true target's is a grounding error


def add_paraphrases(episodes: list[dict]) -> dict:
    """Give each episode a paraphrase of its goal (``ep["paraphrase"]``, ``ep["style"]``) and
    check that it parses to the episode's goal. Returns the agreement and the disagreements."""
    from spatial_ros.errors import ParseError
    from spatial_ros.reward.goal import parse_goal
    from training.goal_paraphrases import paraphrases

    bad = []
    for ep in episodes:
        goal = parse_goal(ep["goal"])
        rng = np.random.default_rng(ep["seed"])
        options = paraphrases(goal, rng)
        text, style = options[int(rng.integers(len(options)))]
        ep[PARAPHRASE_KEY], ep["style"] = text, style
        try:
            same = parse_goal(text) == goal
        except ParseError as e:
            same = False
            log.warning("paraphrase %r of %r does not parse: %s", text, ep["goal"], e)
        if not same:
            bad.append({"goal": ep["goal"], "paraphrase": text, "style": style})
    return {"parse_agreement": 1.0 - len(bad) / max(len(episodes), 1), "disagreements": bad}


def _target_error(frame, state) -> float:
    """Metres from the scored target box's centre to the true target's (NaN: none scored)."""
    if state is None or state.target is None:
        return float("nan")
    tid = frame.truth.trajectory.target_id
    true = next(o.box for o in frame.truth.objects if o.id == tid)
    return float(np.linalg.norm(state.target.center - true.center))


def label_episodes(episodes: list[dict], grounding: str, goal_key: str = "goal",
                   name: str = "", **cfg) -> dict:
    """Label every episode (its goal in words from ``ep[goal_key]``); quality metrics, the
    labelling rate and a per-episode breakdown (also kept in ``ep["runs"][name]``)."""
    from spatial_ros.errors import ParseError
    from spatial_ros.reward.annotator import (
        RewardAnnotator,
        RewardAnnotatorConfig,
        TruthGrounding,
    )

    truth_key = "truth_staged" if cfg.get("tool_frame") else "truth_progress"
    ann = None
    finals, success_ok, vocs, frames, seconds, errors = {}, [], [], 0, 0.0, []
    per_kind: dict[str, list[float]] = {}
    for ep in episodes:
        truth = TruthGrounding([f.truth.box_frame() for f in ep["frames"]], {0: ep["table_z"]})
        config = RewardAnnotatorConfig(grounding=grounding, **cfg)
        if ann is None:
            ann = RewardAnnotator(config, truth=truth)
            ann.load()
        else:
            ann.truth = truth
        n = len(ep["frames"])
        try:
            ann.set_goal(ep[goal_key], warn=False)
        except ParseError as e:  # what a user gets: no labels (progress 0, no success)
            log.warning("episode %d: goal %r refused: %s", ep["seed"], ep[goal_key], e)
            prog, ok_flag, detail = [0.0] * n, not ep["success"], {"refused_goal": str(e)}
        else:
            prog, target_err, refused, reach_at = [], [], 0, None
            t0 = time.perf_counter()
            for k, f in enumerate(ep["frames"]):
                lab = ann.label(f.sensor_frame())
                seconds += time.perf_counter() - t0
                prog.append(lab.progress)
                target_err.append(_target_error(f, ann.last_state))
                refused += int(lab.refused)
                if reach_at is None and "reach done" in lab.explanation:
                    reach_at = k
                t0 = time.perf_counter()
            ok_flag = lab.success == ep["success"]
            err = np.asarray(target_err)
            detail = {"target_error_frames": int(np.sum(err > TARGET_ERROR_M)),
                      "ungrounded_frames": int(np.isnan(err).sum()),
                      "gripper_refused": refused, "reach_done_frame": reach_at,
                      "ignored": list(ann.goal.ignored)}
        frames += n
        errors += [abs(p - t) for p, t in zip(prog, ep[truth_key], strict=True)]
        finals.setdefault(ep["mode"], []).append(prog[-1])
        success_ok.append(ok_flag)
        if ep["mode"] == "success":
            vocs.append(voc(prog))
            per_kind.setdefault(ep["kind"], []).append(vocs[-1])
        truth_reach = next((k for k, f in enumerate(ep["frames"])
                            if f.truth.trajectory.reach >= 1.0), None)
        detail.update(progress=[round(p, 4) for p in prog], final=prog[-1],
                      truth_final=ep[truth_key][-1], voc=voc(prog), success_ok=bool(ok_flag),
                      truth_reach_done_frame=truth_reach,
                      mae=float(np.mean(np.abs(np.subtract(prog, ep[truth_key])))))
        ep.setdefault("runs", {})[name or grounding] = detail
    ann.unload()
    return {
        "voc_median": float(np.median(vocs)),
        "voc_min": float(np.min(vocs)),
        "voc_by_kind": {k: round(float(np.median(v)), 3) for k, v in sorted(per_kind.items())},
        "auroc": auroc(finals.get("success", []), finals.get("fail", [])),
        "progress_mae": float(np.mean(errors)),
        "final_success_agreement": float(np.mean(success_ok)),
        "final_progress_success_mean": float(np.mean(finals.get("success", [np.nan]))),
        "final_progress_fail_mean": float(np.mean(finals.get("fail", [np.nan]))),
        "frames": frames,
        "frames_per_s": frames / seconds if seconds > 0 else float("nan"),
    }


def offline_rate(args, model_path: str | None) -> dict:
    """End-to-end ``label_dataset`` over one simulated bag (decode, sync, label, parquet)."""
    from spatial_ros.reward.annotator import RewardAnnotatorConfig
    from spatial_ros.reward.offline import label_dataset, sources_for
    from spatial_ros.sim import SimConfig, simulate

    cam = _camera(args)
    with tempfile.TemporaryDirectory() as d:
        cfg = SimConfig(camera=cam, seed=args.seed, frames=max(args.frames, 60),
                        trajectory="success", lidar_rate_hz=30.0)
        res = simulate(cfg, Path(d) / "sim")
        goal = res.episodes[0]["goal"]
        out = {}
        for name, gt, mp in (("truth", "auto", None), ("model", None, model_path)):
            if name == "model" and not mp:
                continue
            rc = RewardAnnotatorConfig(model_path=mp or "", device=args.device)
            r = label_dataset(sources_for(bag=Path(d) / "sim", gt=gt), goal,
                              Path(d) / f"{name}.parquet", rc, progress=False)
            out[name] = {"frames": r.rows, "frames_per_s": r.fps}
    return out


def print_breakdown(episodes: list[dict], name: str) -> None:
    """One line per episode of run ``name`` (see the module docstring)."""
    print(f"per episode, {name}: mode/failure, seed, kind, final progress (truth), VOC, flag "
          f"agrees, target boxes > {TARGET_ERROR_M * 100:.0f} cm off / ungrounded / refused "
          f"(gripper) frames, reach done at frame (truth)")
    for ep in episodes:
        d = ep["runs"].get(name)
        if d is None:
            continue
        mode = ep["mode"] + (f"/{ep['fail_mode']}" if ep.get("fail_mode") else "")
        if "refused_goal" in d:
            print(f"  {mode:20s} {ep['seed']} {ep['kind']:9s} goal refused: "
                  f"{d['refused_goal'][:80]}")
            continue
        goal = ep.get(PARAPHRASE_KEY, ep["goal"]) if "paraphrased" in name else ep["goal"]
        print(f"  {mode:20s} {ep['seed']} {ep['kind']:9s} {d['final']:.2f} "
              f"({d['truth_final']:.2f}) VOC {d['voc']:+.2f} {'ok ' if d['success_ok'] else 'BAD'}"
              f" {d['target_error_frames']:2d}/{d['ungrounded_frames']:2d}/"
              f"{d['gripper_refused']:2d} reach {d['reach_done_frame']} "
              f"({d['truth_reach_done_frame']})  '{goal}'"
              + (f" ignored {d['ignored']}" if d["ignored"] else ""))


def run(args) -> int:
    from spatial_ros.errors import ConfigError

    if args.episodes < 2 or args.frames < 6:
        raise ConfigError(f"--episodes ({args.episodes}) must be >= 2 and --frames "
                          f"({args.frames}) >= 6")
    t0 = time.perf_counter()
    episodes = simulate_episodes(args)
    sim_s = time.perf_counter() - t0
    n_frames = sum(len(e["frames"]) for e in episodes)
    print(f"{len(episodes)} held-out episodes ({args.episodes} success + {args.episodes} fail, "
          f"seeds from {args.seed}), {n_frames} synchronized frames, simulated in {sim_s:.0f} s")
    from spatial_ros.sim import GRIPPER_TCP_FRAME

    tool = GRIPPER_TCP_FRAME if args.tool_frame is None else args.tool_frame
    runs = [("", dict(tool_frame=tool))]  # (name suffix, config)
    if args.paraphrase:
        runs.append((" paraphrased", dict(tool_frame=tool, goal_key=PARAPHRASE_KEY)))
    if args.goal_only and tool:
        runs.append((" goal only", dict(tool_frame="")))
    results: dict = {"episodes": len(episodes), "frames": n_frames, "tool_frame": tool}
    if args.paraphrase:
        results["paraphrases"] = add_paraphrases(episodes)
        print(f"paraphrased goals: {results['paraphrases']['parse_agreement']:.0%} parse to the "
              f"episode's goal; disagreements: {results['paraphrases']['disagreements']}")
    for key in ("truth_staged", "truth_progress"):
        results[f"sim_{key}_voc_median"] = float(np.median(
            [voc(e[key]) for e in episodes if e["mode"] == "success"]))
    for suffix, cfg in runs:
        results["truth" + suffix] = label_episodes(episodes, "truth", name="truth" + suffix,
                                                   **cfg)
    model_path = str(args.model) if args.model else None
    tiny_dir = None
    if args.tiny and not model_path:
        from spatial_ros.vlm.tiny import build_tiny_vlm

        tiny_dir = tempfile.TemporaryDirectory()
        model_path = str(build_tiny_vlm(Path(tiny_dir.name) / "tiny", "test"))
    try:
        name = "tiny (random weights)" if tiny_dir else model_path
        for suffix, cfg in runs if model_path else []:
            results["model" + suffix] = label_episodes(
                episodes, "perception", name="model" + suffix, model_path=model_path,
                device=args.device, referring=args.referring, **cfg)
            results["model" + suffix]["model"] = name + suffix.replace(" ", ", ", 1)
        if model_path and args.untracked:
            results["untracked"] = label_episodes(episodes, "perception", name="untracked",
                                                  model_path=model_path, device=args.device,
                                                  referring=args.referring,
                                                  track_objects=False, tool_frame=tool)
            results["untracked"]["model"] = name + ", untracked"
        if args.bag:
            results["offline_bag"] = offline_rate(args, model_path)
    finally:
        if tiny_dir is not None:
            tiny_dir.cleanup()
    print(f"simulator truth progress: VOC median {results['sim_truth_staged_voc_median']:.3f} "
          f"with the reach stage, {results['sim_truth_progress_voc_median']:.3f} goal region "
          f"only; reach stage from tool frame {tool!r}" if tool else "reach stage off")
    names = ("truth", "truth paraphrased", "truth goal only", "model", "model paraphrased",
             "model goal only", "untracked")
    for name in names:
        r = results.get(name)
        if r is None:
            continue
        label = (name.replace("truth", "GT grounding") if name.startswith("truth")
                 else f"model ({r['model']})")
        print(f"{label:>24s}: VOC median {r['voc_median']:.3f} (min {r['voc_min']:.3f}; by "
              f"kind {r['voc_by_kind']}), AUROC {r['auroc']:.3f}, progress error "
              f"{r['progress_mae']:.3f} (mean |progress - truth| per frame), final success flag "
              f"agrees {r['final_success_agreement']:.0%}, final progress success "
              f"{r['final_progress_success_mean']:.2f} / fail "
              f"{r['final_progress_fail_mean']:.2f}; {r['frames_per_s']:.1f} frames/s")
    if args.per_episode:
        for name in names:
            if name in results:
                print_breakdown(episodes, name)
    results["per_episode"] = [
        {k: ep.get(k) for k in ("mode", "fail_mode", "seed", "kind", "goal", PARAPHRASE_KEY,
                                "style", "runs")} for ep in episodes]
    for name, r in results.get("offline_bag", {}).items():
        print(f"offline bag -> parquet ({name} grounding): {r['frames']} frames at "
              f"{r['frames_per_s']:.1f} frames/s end to end")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0
