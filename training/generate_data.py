"""Generate the training data: simulated + real frames -> spatial conversations -> parquet.

    python -m training.generate_data --out data/train --frames 4000
    python -m training.generate_data --out data/test --frames 200 --split test
    python -m training.generate_data --out data/train --frames 4000 --ray   # same rows, on Ray

Stages (the same on both paths): frame seeds -> TrainingFrame (render a fresh simulated scene,
or load a real KITTI / SUN RGB-D frame and lift it) -> conversations (``training.samples``)
-> rows -> parquet shards ``<split>-NNNNN.parquet`` (Hugging Face ``datasets`` loads the folder:
``load_dataset("parquet", data_files="data/train/*.parquet")``; the ``image`` column is an HF
Image feature). Deterministic: the same arguments give the same rows. Shards are written
atomically and existing ones are skipped, so an interrupted run resumes where it stopped.

Held-out evaluation uses ``--split test``: its frame seeds come from a disjoint range.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.vlm.codec import CodecConfig
from training.samples import SampleConfig, frame_samples
from training.scenes import TrainingFrame, kitti_frames, sim_frame, sunrgbd_frames

log = logging.getLogger("training.generate_data")

SPLIT_SEED_BASE = {"train": 0, "val": 5_000_000, "test": 10_000_000}


@dataclass(frozen=True)
class GenerateConfig:
    """A data generation run.

    Attributes:
        frames: simulated frames (one fresh scene each).
        first_frame: index of the first frame (scene seed = split base + index), so that a
            further data set can use scenes an earlier one did not.
        split: "train", "val" or "test" (disjoint scene seeds).
        seed: seeds the task draws (scene seeds come from the split).
        street_fraction: share of simulated street (KITTI-like) frames; the rest is tabletop.
        specialist_fraction: share of simulated frames that also get a LiDAR scan and the
            LiDAR specialist's boxes (used as imperfect candidates in ``ground`` samples).
        samples_per_frame: conversations per frame.
        shard_size: rows per parquet shard.
        real: folders of real KITTI / SUN RGB-D-format frames to add (each frame's
            conversations are made ``real_repeat`` times with different draws).
        real_repeat: conversations rounds per real frame.
        codec: number formats (recorded with the data; training and inference must agree).
        samples: what conversations to make.
    """

    frames: int = 1000
    first_frame: int = 0
    split: str = "train"
    seed: int = 0
    street_fraction: float = 0.15
    specialist_fraction: float = 0.3
    samples_per_frame: int = 2
    shard_size: int = 1000
    real: tuple[str, ...] = ()
    real_repeat: int = 4
    codec: CodecConfig = dataclasses.field(
        default_factory=lambda: CodecConfig(rotation="yaw", angle_decimals=1))
    samples: SampleConfig = dataclasses.field(default_factory=SampleConfig)

    def __post_init__(self) -> None:
        if self.split not in SPLIT_SEED_BASE:
            raise ConfigError(f"split={self.split!r}: one of {', '.join(SPLIT_SEED_BASE)}")
        if (self.frames < 0 or self.first_frame < 0 or self.samples_per_frame < 1
                or self.shard_size < 1):
            raise ConfigError(
                f"frames={self.frames}, first_frame={self.first_frame} (>= 0), "
                f"samples_per_frame={self.samples_per_frame}, "
                f"shard_size={self.shard_size} (>= 1)"
            )
        for name in ("street_fraction", "specialist_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be in [0, 1]")


# ----------------------------------------------------------------------------------------------
# Stage 1: frames
# ----------------------------------------------------------------------------------------------


def frame_plan(cfg: GenerateConfig, index: int) -> dict:
    """What simulated frame ``index`` is (scenario, specialists, scene seed): a pure function of
    the config and the index, so any worker can make any frame."""
    rng = np.random.default_rng([cfg.seed, 0x5EED, index])
    street = bool(rng.random() < cfg.street_fraction)
    return {
        "index": index,
        "scene_seed": SPLIT_SEED_BASE[cfg.split] + index,
        "scenario": "street" if street else "tabletop",
        "specialists": bool(rng.random() < cfg.specialist_fraction),
    }


def make_frame(plan: dict) -> TrainingFrame:
    return sim_frame(plan["scene_seed"], plan["scenario"], plan["specialists"])


def real_frames(cfg: GenerateConfig) -> list[TrainingFrame]:
    out: list[TrainingFrame] = []
    for root in cfg.real:
        r = Path(root)
        if not r.exists():
            raise ConfigError(f"--real {root}: no such folder")
        found = list(kitti_frames(r)) if _looks_kitti(r) else list(sunrgbd_frames(r))
        if not found:
            raise ConfigError(f"--real {root}: no KITTI or SUN RGB-D-format frame with labels")
        out += found
    return out


def _looks_kitti(root: Path) -> bool:
    return any(root.rglob("calib.txt")) and (
        any(root.rglob("velodyne*")) or any(root.rglob("image_2*"))
    )


# ----------------------------------------------------------------------------------------------
# Stage 2: conversations -> rows
# ----------------------------------------------------------------------------------------------


def _png(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ConfigError("PNG encoding failed")
    return buf.tobytes()


def frame_rows(frame: TrainingFrame, cfg: GenerateConfig, draw: int, n: int) -> list[dict]:
    """Rows (parquet records) of ``n`` conversations about ``frame``; ``draw`` seeds them."""
    rng = np.random.default_rng([cfg.seed, 0xC0DE, draw])
    rows = []
    for k, s in enumerate(frame_samples(frame, rng, cfg.codec, cfg.samples, n)):
        cam = frame.camera
        rows.append({
            "id": f"{frame.key}-{draw}-{k}",
            "source": frame.source,
            "frame": frame.key,
            "task": s["task"],
            "image": {"bytes": _png(s["image"]), "path": None},
            "messages": json.dumps(s["messages"]),
            "camera": json.dumps({"width": cam.width, "height": cam.height, "fx": cam.fx,
                                  "fy": cam.fy, "cx": cam.cx, "cy": cam.cy}),
            "extra": json.dumps(s["extra"]),
        })
    return rows


def rows_for_index(cfg: GenerateConfig, index: int) -> list[dict]:
    plan = frame_plan(cfg, index)
    return frame_rows(make_frame(plan), cfg, index, cfg.samples_per_frame)


# ----------------------------------------------------------------------------------------------
# Stage 3: parquet shards
# ----------------------------------------------------------------------------------------------


def features():
    from datasets import Features, Image, Value

    return Features({
        "id": Value("string"), "source": Value("string"), "frame": Value("string"),
        "task": Value("string"), "image": Image(), "messages": Value("string"),
        "camera": Value("string"), "extra": Value("string"),
    })


def write_shard(rows: list[dict], path: Path) -> None:
    """Write rows as one parquet file, atomically (temp file + rename)."""
    import datasets
    from datasets import Dataset

    datasets.disable_progress_bars()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    Dataset.from_list(rows, features=features()).to_parquet(str(tmp))
    os.replace(tmp, path)


def _shards(cfg: GenerateConfig) -> list[tuple[int, range]]:
    per = max(1, cfg.shard_size // cfg.samples_per_frame)
    end = cfg.first_frame + cfg.frames
    return [(k, range(s, min(s + per, end))) for k, s in
            enumerate(range(cfg.first_frame, end, per))]


def shard_path(out: Path, split: str, k: int) -> Path:
    return out / f"{split}-{k:05d}.parquet"


def _iter_local(cfg: GenerateConfig, indices: range) -> Iterator[list[dict]]:
    for i in indices:
        yield rows_for_index(cfg, i)


def _iter_ray(cfg: GenerateConfig, indices: range) -> Iterator[list[dict]]:
    """The same stages on Ray Data (local mode unless RAY_ADDRESS points at a cluster)."""
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ds = ray.data.from_items([{"index": i} for i in indices])
    ds = ds.map(lambda r: {"rows": json.dumps(_jsonable(rows_for_index(cfg, int(r["index"]))))})
    for rec in ds.iter_rows():
        yield _unjson(json.loads(rec["rows"]))


def _jsonable(rows: list[dict]) -> list[dict]:
    import base64

    return [{**r, "image": base64.b64encode(r["image"]["bytes"]).decode()} for r in rows]


def _unjson(rows: list[dict]) -> list[dict]:
    import base64

    return [{**r, "image": {"bytes": base64.b64decode(r["image"]), "path": None}} for r in rows]


def generate(cfg: GenerateConfig, out: str | Path, use_ray: bool = False,
             progress: bool = True) -> list[Path]:
    """Run every stage; returns the shard paths (existing shards are kept, not redone)."""
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"config": dataclasses.asdict(cfg), "format": "spatial_ros conversations v1"}
    (out / f"{cfg.split}_info.json").write_text(json.dumps(info, indent=2) + "\n")
    if use_ray:
        import ray

        if not ray.is_initialized():
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
    paths = []
    shards = _shards(cfg)
    bar = tqdm(total=cfg.frames, desc=f"frames ({cfg.split})", disable=not progress,
               unit="frame")
    for k, indices in shards:
        path = shard_path(out, cfg.split, k)
        paths.append(path)
        if path.exists():
            bar.update(len(indices))
            continue
        rows: list[dict] = []
        it = _iter_ray(cfg, indices) if use_ray else _iter_local(cfg, indices)
        for r in it:
            rows += r
            bar.update(1)
        write_shard(rows, path)
    bar.close()
    reals = real_frames(cfg)
    if reals:
        path = out / f"{cfg.split}-real.parquet"
        if not path.exists():
            rows = []
            for j, fr in enumerate(reals):
                for rep in range(cfg.real_repeat):
                    rows += frame_rows(fr, cfg, 1_000_000 + j * 100 + rep, 1)
            write_shard(rows, path)
        paths.append(path)
    return paths


def load_rows(paths) -> list[dict]:
    """All rows of parquet shards (``image`` as PNG bytes), in file order."""
    import pyarrow.parquet as pq

    rows = []
    for p in paths:
        rows += pq.read_table(p).to_pylist()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.generate_data",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder of parquet shards")
    ap.add_argument("--frames", type=int, default=1000, help="simulated frames (scenes)")
    ap.add_argument("--split", default="train", choices=sorted(SPLIT_SEED_BASE))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--first-frame", type=int, default=0,
                    help="index of the first frame (its scene seed); later data sets can start "
                    "where earlier ones ended")
    ap.add_argument("--street-fraction", type=float, default=0.15)
    ap.add_argument("--specialist-fraction", type=float, default=0.3)
    ap.add_argument("--samples-per-frame", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=1000, help="rows per parquet shard")
    ap.add_argument("--tasks", default="0.6,0.15,0.15,0.1",
                    help="weights of ground,lv3d,vqa,vip[,refer] conversations (refer: "
                    "referring expressions of every kind, answered with a listed tag)")
    ap.add_argument("--max-turns", type=int, default=3, help="QA pairs per conversation")
    ap.add_argument("--real", action="append", default=[],
                    help="folder of real KITTI / SUN RGB-D-format frames (repeatable)")
    ap.add_argument("--rotation", default="yaw", choices=["yaw", "euler"],
                    help="box rotation format of the codec")
    ap.add_argument("--angle-decimals", type=int, default=1, help="decimals of box angles")
    ap.add_argument("--max-candidates", type=int, default=8,
                    help="most boxes listed in a specialist prompt")
    ap.add_argument("--specialist-prob", type=float, default=0.3,
                    help="share of grounding conversations (on frames with a LiDAR scan) that "
                    "list the specialist's boxes instead of the true ones")
    ap.add_argument("--candidate-index", action="store_true",
                    help="tag the listed boxes (colour + rank, e.g. red2; #k without "
                    "colours) and answer listed objects with their tag")
    ap.add_argument("--candidate-sizes", action="store_true",
                    help="put a size word (flat, tall, wide, small, slim, large) from each "
                    "listed box before its colour")
    ap.add_argument("--list-size", default=None,
                    help="LO,HI: curriculum data; each grounding conversation lists LO..HI "
                    "random boxes and asks only about listed objects")
    ap.add_argument("--same-words-prob", type=float, default=0.0,
                    help="with --list-size: share of lists built around tag words (colour, or "
                    "size + colour) two or more boxes share, asking only about those boxes")
    ap.add_argument("--ray", action="store_true", help="run the stages on Ray Data")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if a.quiet else logging.INFO)
    try:
        weights = tuple(float(x) for x in a.tasks.split(","))
        cfg = GenerateConfig(
            frames=a.frames, first_frame=a.first_frame, split=a.split, seed=a.seed,
            street_fraction=a.street_fraction,
            specialist_fraction=a.specialist_fraction, samples_per_frame=a.samples_per_frame,
            shard_size=a.shard_size, real=tuple(a.real),
            codec=CodecConfig(rotation=a.rotation, angle_decimals=a.angle_decimals),
            samples=SampleConfig(task_weights=weights, max_turns=a.max_turns,
                                 max_candidates=a.max_candidates,
                                 specialist_prob=a.specialist_prob,
                                 candidate_index=a.candidate_index,
                                 candidate_sizes=a.candidate_sizes,
                                 list_size=(tuple(int(x) for x in a.list_size.split(","))
                                            if a.list_size else None),
                                 same_words_prob=a.same_words_prob),
        )
        paths = generate(cfg, a.out, use_ray=a.ray, progress=not a.quiet)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n = sum(len(r) for r in [load_rows([p]) for p in paths])
    print(f"{n} conversations in {len(paths)} shard(s) under {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
