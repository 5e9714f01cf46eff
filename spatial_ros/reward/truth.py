"""Ground-truth grounding of the reward annotator: boxes per image stamp from a box file
(``truth.jsonl`` written by ``spatial-ros sim``), matched to the goal's objects by query phrase or
by label + colour. Separates the reward logic from perception (``grounding: truth``)."""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable
from pathlib import Path

from spatial_ros.boxfile import BoxFrame, BoxRecord, iter_box_file
from spatial_ros.errors import DataError
from spatial_ros.reward.goal import ObjectRef


def _norm(text: str | None) -> str:
    return " ".join(str(text or "").lower().split())


def match_records(records: list[BoxRecord], ref: ObjectRef) -> list[BoxRecord]:
    """Box-file records that are ``ref``: the same query phrase, or the same label (category)
    and colour (``extra["colour"]``; any colour when the goal names none)."""
    out = []
    for r in records:
        if _norm(r.query) == ref.phrase:
            out.append(r)
        elif r.label == ref.category and (not ref.colour or r.extra.get("colour") == ref.colour):
            out.append(r)
    return out


class TruthGrounding:
    """Ground-truth boxes per image stamp, from box-file frames (``truth.jsonl``).

    Args:
        frames: the box-file frames (boxes in a z-up frame).
        table_z: table-top height (metres) per episode number (``frame.extra["episode"]``).
        tolerance_ns: a frame matches an image stamp within this many nanoseconds.
    """

    def __init__(
        self,
        frames: Iterable[BoxFrame],
        table_z: dict[int, float] | None = None,
        tolerance_ns: int = 2_000_000,
    ) -> None:
        self.frames = sorted(frames, key=lambda f: f.stamp_ns)
        self._stamps = [f.stamp_ns for f in self.frames]
        self.table_z = dict(table_z or {})
        self.tolerance_ns = int(tolerance_ns)

    @classmethod
    def from_file(cls, path: str | Path) -> TruthGrounding:
        """Read a box file; table heights come from ``scene.json`` next to it when present.

        Raises:
            DataError: missing or malformed files.
        """
        p = Path(path)
        frames = list(iter_box_file(p))
        table: dict[int, float] = {}
        scene = p.parent / "scene.json"
        if scene.is_file():
            try:
                for ep in json.loads(scene.read_text()).get("episodes", []):
                    if ep.get("table_top_z") is not None:
                        table[int(ep["episode"])] = float(ep["table_top_z"])
            except (ValueError, KeyError, TypeError) as e:
                raise DataError(
                    f"{scene}: cannot read the episodes' table heights ({e})"
                ) from None
        return cls(frames, table)

    def lookup(self, stamp_ns: int) -> BoxFrame | None:
        """The truth frame of an image stamp (nearest within ``tolerance_ns``), or None."""
        i = bisect.bisect_left(self._stamps, stamp_ns)
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(self._stamps):
                d = abs(self._stamps[j] - stamp_ns)
                if d <= self.tolerance_ns and (best is None or d < best[0]):
                    best = (d, self.frames[j])
        return None if best is None else best[1]

    @staticmethod
    def episode_of(frame: BoxFrame) -> int | None:
        ep = frame.extra.get("episode")
        return None if ep is None else int(ep)

    def support_z(self, frame: BoxFrame) -> float | None:
        ep = self.episode_of(frame)
        return self.table_z.get(0 if ep is None else ep)
