"""The evaluation report: ``report.html`` + PNGs in one self-contained directory.

Figures (matplotlib, Agg, no pyplot state):

- per snapshot frame, the camera image with the 3D boxes projected (edges clipped at the near
  plane): truth dashed green, grounded query objects solid orange, specialist candidates thin
  blue, each with its label;
- per snapshot frame, a bird's-eye view of the output frame (x forward up, y left to the left)
  with the LiDAR points coloured by height and the box footprints (same styles);
- reward / progress curves when reward labels are given (rows of (frame_index, progress,
  reward[, stamp_ns]) or a parquet file with those columns), with the true progress when known;
- a latency histogram; a per-frame table.

The HTML references the PNGs by relative names, so the directory can be moved or served as is.
Without truth it still renders the predictions.
"""

from __future__ import annotations

import html
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spatial_ros.boxfile import BoxFrame, BoxRecord
from spatial_ros.errors import DataError
from spatial_ros.evaluation.metrics import match_frames
from spatial_ros.evaluation.replay import FrameRecord, Snapshot
from spatial_ros.geometry.camera import project_points

TRUTH_STYLE = {"color": "#1a9e3f", "linestyle": (0, (4, 3)), "linewidth": 1.6}
PRED_STYLE = {"color": "#ff8c00", "linestyle": "-", "linewidth": 2.0}
CAND_STYLE = {"color": "#3d6bff", "linestyle": "-", "linewidth": 1.0}
# Box3D.corners() index pairs of the 12 edges (bits: x, y, z) and the bottom footprint loop.
_EDGES = [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]
_FOOTPRINT = [0, 2, 6, 4, 0]
MAX_TABLE_ROWS = 500


@dataclass
class RewardCurve:
    """Reward labels of an episode: frame indices, progress [0, 1] and reward per frame, and
    the source images' stamps (ns) when known."""

    frame_index: np.ndarray
    progress: np.ndarray
    reward: np.ndarray
    stamp_ns: np.ndarray | None = None


def load_reward_curve(source: Any) -> RewardCurve:
    """A reward curve from rows of (frame_index, progress, reward[, stamp_ns]) or a parquet file
    with columns ``frame_index``, ``progress``, ``reward`` (and optionally ``stamp_ns``), as the
    offline reward labeller writes.

    Raises:
        DataError: unreadable file, missing columns, or rows of the wrong shape.
    """
    if isinstance(source, (str, os.PathLike)):
        import pyarrow.parquet as pq

        p = Path(source)
        try:
            table = pq.read_table(p)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read reward labels {p}: {e}") from None
        missing = [c for c in ("frame_index", "progress", "reward") if c not in table.column_names]
        if missing:
            raise DataError(
                f"reward labels {p} lack column(s) {missing}; it has {table.column_names}"
            )
        names = ["frame_index", "progress", "reward"] + (
            ["stamp_ns"] if "stamp_ns" in table.column_names else []
        )
        cols = [np.asarray(table.column(c).to_numpy()) for c in names]
    else:
        rows = list(source)
        widths = {len(r) for r in rows}
        if len(widths) > 1 or not widths <= {3, 4}:
            raise DataError(
                "reward labels must be rows of (frame_index, progress, reward"
                f"[, stamp_ns]), got rows of {sorted(widths)} values"
            )
        cols = [np.array([r[k] for r in rows]) for k in range(widths.pop() if rows else 3)]
    order = np.argsort(cols[0], kind="stable")
    stamps = cols[3][order].astype(np.int64) if len(cols) == 4 else None
    return RewardCurve(
        cols[0][order].astype(np.int64),
        cols[1][order].astype(np.float64),
        cols[2][order].astype(np.float64),
        stamps,
    )


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------


def _figure(width_px: int, height_px: int, dpi: int = 100):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)


def _box_label(o: BoxRecord) -> str:
    name = o.query or o.label or o.id
    return f"{name} {o.score:.2f}" if o.query or o.extra.get("source") else name


def _draw_box_image(ax, o: BoxRecord, snap: Snapshot, style: dict, label: str | None) -> None:
    # Edges sampled and projected; points behind the camera come back NaN, which breaks the
    # line there (a cheap near-plane clip that is exact at the sampling resolution).
    c = o.box.corners()
    T = snap.T_cam_from_out
    c_cam = c @ T[:3, :3].T + T[:3, 3]
    s = np.linspace(0.0, 1.0, 12)[:, None]
    segs = [c_cam[i] + s * (c_cam[j] - c_cam[i]) for i, j in _EDGES]
    pts = np.concatenate([np.vstack([g, np.full((1, 3), np.nan)]) for g in segs])
    uv, _ = project_points(np.nan_to_num(pts, nan=-1.0), snap.camera, min_depth=0.05)
    uv[np.isnan(pts[:, 0])] = np.nan
    ax.plot(uv[:, 0], uv[:, 1], **style)
    if label:
        vis = uv[np.all(np.isfinite(uv), axis=1)]
        if vis.size:
            u, v = vis[:, 0].min(), vis[:, 1].min()
            W, H = snap.camera.width, snap.camera.height
            if -50 < u < W and -50 < v < H:
                ax.text(
                    max(u, 0),
                    max(v - 2, 8),
                    label,
                    color="white",
                    fontsize=7,
                    va="bottom",
                    bbox={
                        "facecolor": style["color"],
                        "alpha": 0.75,
                        "pad": 1,
                        "edgecolor": "none",
                    },
                )


def render_image(
    path: Path,
    snap: Snapshot,
    preds: BoxFrame | None,
    truth: BoxFrame | None,
    candidates: BoxFrame | None = None,
) -> Path:
    """Camera image with projected boxes (truth dashed, predictions solid)."""
    H, W = snap.image.shape[:2]
    scale = max(1.0, 640 / W)
    fig = _figure(int(W * scale), int(H * scale))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(snap.image)
    for o in truth.objects if truth else []:
        _draw_box_image(ax, o, snap, TRUTH_STYLE, None)
    for o in candidates.objects if candidates else []:
        _draw_box_image(ax, o, snap, CAND_STYLE, None)
    for o in preds.objects if preds else []:
        style = PRED_STYLE if o.query else CAND_STYLE
        _draw_box_image(ax, o, snap, style, _box_label(o))
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.axis("off")
    fig.savefig(path)
    return path


def _footprint(o: BoxRecord) -> np.ndarray:
    return o.box.corners()[_FOOTPRINT, :2]


def render_bev(
    path: Path,
    snap: Snapshot,
    preds: BoxFrame | None,
    truth: BoxFrame | None,
    candidates: BoxFrame | None = None,
) -> Path:
    """Bird's-eye view: LiDAR points (colour = height) and box footprints, x forward up."""
    fig = _figure(560, 560)
    ax = fig.add_subplot(1, 1, 1)
    boxes = [o for f in (preds, truth, candidates) if f for o in f.objects]
    # Window: around the boxes when there are any (the objects are what matters; a tabletop
    # scan reaches metres beyond the table), else around the bulk of the points.
    if boxes:
        allxy = np.concatenate([_footprint(o) for o in boxes])
        lo, hi = allxy.min(axis=0), allxy.max(axis=0)
        pad = max(0.3 * float(np.max(hi - lo)), 0.15)
    elif snap.points is not None and len(snap.points):
        lo = np.percentile(snap.points[:, :2], 1, axis=0)
        hi = np.percentile(snap.points[:, :2], 99, axis=0)
        pad = 0.05 * float(np.max(hi - lo)) + 0.05
    else:
        lo = hi = None
    if lo is not None:
        cx, cy = (lo + hi) / 2
        half = float(np.max(hi - lo)) / 2 + pad
        if snap.points is not None and len(snap.points):
            p = snap.points
            inside = (np.abs(p[:, 0] - cx) <= half) & (np.abs(p[:, 1] - cy) <= half)
            p = p[inside]
            ax.scatter(
                p[:, 1], p[:, 0], c=p[:, 2], s=0.6, cmap="viridis", linewidths=0, rasterized=True
            )
        ax.set_xlim(cy + half, cy - half)  # +y (left) on the left
        ax.set_ylim(cx - half, cx + half)
    for o in truth.objects if truth else []:
        f = _footprint(o)
        ax.plot(f[:, 1], f[:, 0], **TRUTH_STYLE)
    for o in candidates.objects if candidates else []:
        f = _footprint(o)
        ax.plot(f[:, 1], f[:, 0], **CAND_STYLE)
    for o in preds.objects if preds else []:
        f = _footprint(o)
        ax.plot(f[:, 1], f[:, 0], **(PRED_STYLE if o.query else CAND_STYLE))
        if o.query:
            ax.text(o.box.center[1], o.box.center[0], o.query, fontsize=7, color="#b35f00")
    ax.set_aspect("equal")
    ax.set_xlabel(f"y [m] ({snap.output_frame}, left +)")
    ax.set_ylabel(f"x [m] ({snap.output_frame}, forward)")
    ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    ax.legend(
        handles=[
            Line2D([], [], **TRUTH_STYLE, label="truth"),
            Line2D([], [], **PRED_STYLE, label="query object"),
            Line2D([], [], **CAND_STYLE, label="candidate"),
        ],
        loc="upper right",
        fontsize=7,
    )
    fig.tight_layout()
    fig.savefig(path)
    return path


def render_curves(
    path: Path, curve: RewardCurve | None, truth_progress: Sequence[tuple[int, float, int]] | None
) -> Path:
    """Predicted progress and reward with the true progress ((frame index, progress, stamp_ns)
    rows), against time since the first frame when both carry stamps, else the frame index."""
    fig = _figure(720, 360)
    ax = fig.add_subplot(1, 1, 1)
    tp = np.asarray(truth_progress, dtype=np.float64) if truth_progress else None
    starts = []
    if curve is not None and curve.stamp_ns is not None and curve.stamp_ns.size:
        starts.append(float(curve.stamp_ns.min()))
    if tp is not None and tp.size and tp.shape[1] >= 3:
        starts.append(float(tp[:, 2].min()))
    # time axis only when every curve shown has stamps
    timed = len(starts) == (curve is not None) + (tp is not None and bool(tp.size))
    timed = timed and bool(starts)
    t0 = min(starts) if timed else 0.0
    if curve is not None:
        x = (curve.stamp_ns - t0) / 1e9 if timed else curve.frame_index
        ax.plot(x, curve.progress, "-o", ms=3, color="#ff8c00", label="predicted progress")
        ax.plot(x, curve.reward, "-", color="#7a3db8", label="predicted reward")
    if tp is not None and tp.size:
        x = (tp[:, 2] - t0) / 1e9 if timed else tp[:, 0]
        ax.plot(x, tp[:, 1], linestyle=(0, (4, 3)), color="#1a9e3f", label="true progress")
    ax.set_xlabel("time since the first frame [s]" if timed else "frame index")
    ax.set_ylabel("progress / reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def render_latency(path: Path, records: Sequence[FrameRecord]) -> Path:
    """Histogram of per-frame pipeline time (ms), stacked by stage."""
    fig = _figure(560, 300)
    ax = fig.add_subplot(1, 1, 1)
    total = np.array([r.timings_ms.get("total", np.nan) for r in records], dtype=np.float64)
    spec = np.array([r.timings_ms.get("specialists", np.nan) for r in records], np.float64)
    gr = np.array([r.timings_ms.get("grounding", np.nan) for r in records], np.float64)
    idx = np.array([r.index for r in records])
    ax.bar(idx, np.nan_to_num(spec), color="#3d6bff", label="specialists")
    ax.bar(idx, np.nan_to_num(gr), bottom=np.nan_to_num(spec), color="#ff8c00", label="grounding")
    ax.plot(idx, total, "k.", ms=3, label="total")
    ax.set_xlabel("frame index")
    ax.set_ylabel("ms")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


# ----------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{font-size:12px;color:#555}
img{max-width:100%;border:1px solid #ddd}.note{color:#666;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}.card h3{margin:6px 0}
.key span{display:inline-block;margin-right:14px}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.4g}"
    return html.escape(str(v))


def _kv_table(d: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th class=l>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>"
        for k, v in d.items()
        if not isinstance(v, (dict, list))
    )
    return f"<table>{rows}</table>"


def _grid(rows: dict[str, dict[str, Any]], first: str) -> str:
    """A table with one row per key of ``rows`` and one column per inner key."""
    keys = sorted({k for v in rows.values() for k in v})
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        f"<tr><td class=l>{html.escape(name)}</td>"
        + "".join(f"<td>{_fmt(v.get(k))}</td>" for k in keys)
        + "</tr>"
        for name, v in rows.items()
    )
    return f"<table><tr><th class=l>{html.escape(first)}</th>{head}</tr>{body}</table>"


def _summary_html(metrics: dict[str, Any]) -> str:
    parts = []
    g = metrics.get("grounding")
    if g:
        card = "<h3>Grounding (query objects, 3D IoU)</h3>" + _kv_table(g)
        if g.get("per_query"):
            card += _grid(g["per_query"], "query")
        for key in ("unmatched_queries", "ambiguous_queries"):
            if g.get(key):
                card += (
                    f"<p class=note>{key.replace('_', ' ')} (frames): "
                    f"{html.escape(json.dumps(g[key]))}</p>"
                )
        parts.append(card)
    for key, det in (metrics.get("detection_bev") or {}).items():
        parts.append(f"<h3>BEV detection of candidates ({html.escape(key)})</h3>" + _kv_table(det))
    for key, st in (metrics.get("distance") or {}).items():
        if st and st.get("n"):
            parts.append(f"<h3>Distance errors: {html.escape(key)} (m)</h3>" + _kv_table(st))
    pf = metrics.get("parse_failures")
    if pf and pf.get("queries"):
        card = "<h3>VLM parse failures</h3>" + _kv_table(pf)
        if pf.get("reasons"):
            card += f"<p class=note>reasons: {html.escape(json.dumps(pf['reasons']))}</p>"
        parts.append(card)
    if metrics.get("latency_ms"):
        parts.append("<h3>Latency (ms per frame)</h3>" + _grid(metrics["latency_ms"], "stage"))
    if metrics.get("reward"):
        parts.append("<h3>Reward</h3>" + _kv_table(metrics["reward"]))
    return "<div class=cards>" + "".join(f"<div class=card>{p}</div>" for p in parts) + "</div>"


def _frame_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p class=note>no frames</p>"
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    shown = rows[:MAX_TABLE_ROWS]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(k))}</td>" for k in keys) + "</tr>" for r in shown
    )
    more = (
        (
            f"<p class=note>first {MAX_TABLE_ROWS} of {len(rows)} frames shown; all are in "
            "metrics.json</p>"
        )
        if len(rows) > MAX_TABLE_ROWS
        else ""
    )
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def write_report(
    out_dir: str | os.PathLike,
    *,
    metrics: dict[str, Any],
    snapshots: Sequence[Snapshot],
    predictions: Sequence[BoxFrame],
    truth: Sequence[BoxFrame] | None = None,
    candidates: Sequence[BoxFrame] | None = None,
    records: Sequence[FrameRecord] = (),
    per_frame: Sequence[dict[str, Any]] = (),
    reward: Any = None,
    truth_progress: Sequence[tuple[int, float, int]] | None = None,
    title: str = "spatial_ros evaluation",
) -> Path:
    """Render ``report.html`` and its PNGs into ``out_dir`` (created).

    Args:
        out_dir: report directory.
        metrics: the metrics.json content (summary tables).
        snapshots: frames to draw (image + BEV each).
        predictions, truth, candidates: box frames (matched to snapshots by stamp); the
            candidates are drawn unless the predictions are the candidates (specialists only).
        records: per-frame pipeline records (latency figure).
        per_frame: rows of the per-frame table.
        reward: reward labels (rows of (frame_index, progress, reward[, stamp_ns]) or a parquet
            path).
        truth_progress: (frame_index, true progress, stamp_ns) rows (simulated episodes).
        title: page title.

    Returns:
        Path of report.html.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    snap_frames = [BoxFrame(s.stamp_ns, s.output_frame) for s in snapshots]
    pred_by = {f.stamp_ns: f for f in predictions}
    # Candidates are drawn separately unless the predictions are the candidates themselves
    # (specialists-only output: objects that ground no query).
    cands_are_preds = any(not o.query for f in predictions for o in f.objects)
    cand_by = {} if cands_are_preds else {f.stamp_ns: f for f in candidates or []}
    truth_of = [t for _, t in match_frames(snap_frames, list(truth or []))]
    figs = []
    for s, tr in zip(snapshots, truth_of, strict=True):
        pr, ca = pred_by.get(s.stamp_ns), cand_by.get(s.stamp_ns)
        img = render_image(out / f"frame_{s.index:05d}_image.png", s, pr, tr, ca)
        bev = render_bev(out / f"frame_{s.index:05d}_bev.png", s, pr, tr, ca)
        n_p = len(pr.objects) if pr else 0
        n_t = len(tr.objects) if tr else 0
        cap = f"frame {s.index}, stamp {s.stamp_ns}: {n_p} predicted" + (
            f", {n_t} truth" if tr else ", no truth"
        )
        figs.append((img.name, bev.name, cap))
    curve_png = None
    curve = load_reward_curve(reward) if reward is not None else None
    if curve is not None or truth_progress:
        curve_png = render_curves(out / "reward.png", curve, truth_progress).name
    lat_png = render_latency(out / "latency.png", records).name if records else None

    key = (
        "<p class=key><span style='color:#1a9e3f'>- - truth</span>"
        "<span style='color:#ff8c00'>── query object</span>"
        "<span style='color:#3d6bff'>── specialist candidate</span></p>"
    )
    fig_html = "".join(
        f"<div class=figs><figure><img src='{html.escape(a)}' alt='image {html.escape(c)}'>"
        f"<figcaption>{html.escape(c)}</figcaption></figure>"
        f"<figure><img src='{html.escape(b)}' alt='bird-eye view {html.escape(c)}'>"
        f"<figcaption>bird's-eye view</figcaption></figure></div>"
        for a, b, c in figs
    )
    src = metrics.get("source") or {}
    src_html = (
        _kv_table({k: (", ".join(v) if isinstance(v, list) else v) for k, v in src.items()})
        if src
        else ""
    )
    no_truth = "" if truth else "<p class=note>No ground truth given: predictions only.</p>"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        src_html,
        no_truth,
        "<h2>Summary</h2>",
        _summary_html(metrics),
        "<h2>Frames</h2>",
        key,
        fig_html or "<p class=note>no frames to show</p>",
    ]
    if curve_png:
        body += [
            "<h2>Reward and progress</h2>",
            f"<figure><img src='{curve_png}' alt='reward and progress curves'></figure>",
        ]
    if lat_png:
        body += [
            "<h2>Latency</h2>",
            f"<figure><img src='{lat_png}' alt='per-frame latency'></figure>",
        ]
    body += ["<h2>Per-frame table</h2>", _frame_table(per_frame)]
    render_s = time.perf_counter() - t0
    body.append(f"<p class=note>rendered in {render_s:.2f} s</p>")
    doc = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    path = out / "report.html"
    path.write_text(doc, encoding="utf-8")
    return path
