"""`spatial-ros sim`: simulated world -> rosbag2 + exact ground truth.

Writes ``OUT/bag`` (MCAP or sqlite3: /camera/image_raw, /camera/camera_info,
/camera/depth/image_raw, /lidar/points, /tf_static), ``OUT/truth.jsonl`` (box format, base_link),
``OUT/truth_detail.jsonl`` and ``OUT/scene.json``.
"""

from __future__ import annotations

import dataclasses

HELP = "simulate a tabletop or street scene into a rosbag2 with exact ground truth"


def add_arguments(parser) -> None:
    parser.add_argument("--scenario", choices=("tabletop", "street"), default="tabletop")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--frames", type=int, default=30, help="camera frames (default 30)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument(
        "--trajectory",
        choices=("none", "success", "fail"),
        default="none",
        help="tabletop: the gripper moves an object towards a goal (success) or fails "
        "(default: none, or success when --goal is given)",
    )
    parser.add_argument(
        "--goal", default=None, help='e.g. "put the red cube next to the blue bowl" (tabletop)'
    )
    parser.add_argument(
        "--fail-mode", choices=("stall", "wrong_way", "wrong_object"), default=None
    )
    parser.add_argument("--width", type=int, default=None, help="image width (pixels)")
    parser.add_argument("--height", type=int, default=None, help="image height (pixels)")
    parser.add_argument("--hfov", type=float, default=None, help="horizontal FOV (degrees)")
    parser.add_argument(
        "--supersample", type=int, default=None, help="odd rays per pixel side (anti-aliasing)"
    )
    parser.add_argument("--depth-encoding", choices=("32FC1", "16UC1"), default=None)
    parser.add_argument(
        "--frames-per-scene", type=int, default=0, help="new scene every N frames (0 = one)"
    )
    parser.add_argument(
        "--crop-lidar-to-camera",
        action="store_true",
        help="street: crop the 360 deg scan to the camera field of view",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing bag/truth in --out"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args):
    """The ``SimConfig`` the arguments describe (ConfigError on invalid values)."""
    from spatial_ros.sim.config import SimConfig, default_camera

    cam = default_camera(args.scenario)
    overrides = {
        "width": args.width,
        "height": args.height,
        "hfov_deg": args.hfov,
        "supersample": args.supersample,
        "depth_encoding": args.depth_encoding,
    }
    cam = dataclasses.replace(cam, **{k: v for k, v in overrides.items() if v is not None})
    return SimConfig(
        scenario=args.scenario,
        seed=args.seed,
        frames=args.frames,
        camera=cam,
        # a goal alone means "show me it being reached"
        trajectory="success" if args.goal and args.trajectory == "none" else args.trajectory,
        goal=args.goal,
        fail_mode=args.fail_mode,
        storage=args.storage,
        frames_per_scene=args.frames_per_scene,
        crop_lidar_to_camera=args.crop_lidar_to_camera,
    )


def run(args) -> int:
    from tqdm import tqdm

    from spatial_ros.sim.world import simulate

    cfg = config_from_args(args)
    bar = tqdm(total=cfg.frames, unit="frame", disable=args.no_progress, desc="sim")
    try:
        res = simulate(cfg, args.out, overwrite=args.overwrite, on_frame=lambda _f: bar.update(1))
    finally:
        bar.close()
    print(
        f"wrote {res.frames} camera frames + {res.scans} LiDAR scans to {res.bag_path} "
        f"({cfg.storage}) in {res.elapsed_s:.1f} s: {res.fps:.1f} frames/s"
    )
    print(f"ground truth: {res.truth_path}, {res.detail_path}; scene: {res.scene_path}")
    for i, ep in enumerate(res.episodes):
        if ep:
            mode = ep["mode"] + (f" ({ep['fail_mode']})" if ep.get("fail_mode") else "")
            print(
                f"episode {i}: goal '{ep['goal']}' [{mode}] moved {ep['moved_id']}, "
                f"success={ep['success']}"
            )
    return 0
