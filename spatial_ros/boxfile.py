"""The one box file format (BRIEF §3) of ground truth and predictions: JSON Lines, a frame a line.

``{"stamp_ns": int, "frame_id": str, "objects": [{"id", "label", "query", "center": [x, y, z],
"size": [sx, sy, sz], "yaw", "score", ...extra}]}`` — metres, radians, ``frame_id`` z-up,
``size`` full extents along the box's own axes, ``yaw`` about z. Extra keys are kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatial_ros.errors import DataError
from spatial_ros.fileio import atomic_path
from spatial_ros.types import Box3D


@dataclass
class BoxRecord:
    """One object of a frame in the box file."""

    id: str
    label: str
    box: Box3D
    query: str | None = None
    score: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = {"id": self.id, "label": self.label, "query": self.query, **self.box.to_dict()}
        d["score"] = float(self.score)
        d.update(self.extra)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], frame_id: str = "") -> BoxRecord:
        try:
            box = Box3D.from_yaw(d["center"], d["size"], float(d.get("yaw", 0.0)), frame_id)
            known = {"id", "label", "query", "center", "size", "yaw", "score"}
            return cls(
                id=str(d.get("id", "")),
                label=str(d.get("label", "")),
                box=box,
                query=d.get("query"),
                score=float(d.get("score", 1.0)),
                extra={k: v for k, v in d.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"bad box record {d!r}: {e}") from None


@dataclass
class BoxFrame:
    """All objects of one frame."""

    stamp_ns: int
    frame_id: str
    objects: list[BoxRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = {
            "stamp_ns": int(self.stamp_ns),
            "frame_id": self.frame_id,
            "objects": [o.to_json() for o in self.objects],
        }
        d.update(self.extra)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BoxFrame:
        try:
            fid = str(d["frame_id"])
            objs = [BoxRecord.from_json(o, fid) for o in d.get("objects", [])]
            extra = {k: v for k, v in d.items() if k not in ("stamp_ns", "frame_id", "objects")}
            return cls(int(d["stamp_ns"]), fid, objs, extra)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"bad box frame: {e}") from None


def read_box_file(path: str | os.PathLike) -> list[BoxFrame]:
    """All frames of a box file. Raises DataError with the line number on malformed lines."""
    return list(iter_box_file(path))


def iter_box_file(path: str | os.PathLike) -> Iterator[BoxFrame]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"box file not found: {p}")
    with p.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield BoxFrame.from_json(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{p}:{n}: not JSON ({e.msg})") from None
            except DataError as e:
                raise DataError(f"{p}:{n}: {e}") from None


def write_box_file(path: str | os.PathLike, frames: Iterable[BoxFrame]) -> None:
    """Write atomically (temp file in the same directory, then rename; mode 0666 minus the
    umask, ``fileio.atomic_path``)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for fr in frames:
            f.write(json.dumps(fr.to_json(), separators=(",", ":")) + "\n")
