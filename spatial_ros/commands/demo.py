"""`spatial-ros demo`: the most complete end-to-end run that exists (see README)."""

from __future__ import annotations

HELP = "run the offline demo (simulate, ground, reward, evaluate) with the embedded model"


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output directory")


def run(args) -> int:
    import spatial_ros
    from spatial_ros.types import Box3D

    box = Box3D.from_yaw([1.0, 0.0, 0.5], [0.5, 0.5, 0.5], 0.0, "base_link")
    print(f"spatial_ros {spatial_ros.__version__}: core imports; example box {box}")
    print("The full demo arrives with the simulated world, the VLM engine and the default model.")
    return 0
