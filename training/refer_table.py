"""The by-kind referring-expression table of a model card (``training.model_card --refer``).

Input: the JSON that ``spatial-ros bench refer --compare --json FILE`` writes ({mode: metrics},
metrics by ``spatial_ros.evaluation.refer.summarise``). Output: a Markdown table, one row per
query kind and one per set (captions, paraphrases, spatial: the kinds pooled, weighted by their
query counts), Acc@IoU0.25 of each mode with the candidate ceiling; optionally the previous
model's numbers on the same queries beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.refqueries import PARAPHRASE_KINDS, SPATIAL_KINDS

PRODUCT = "program + model names"
MODES = (PRODUCT, "program, no model", "model alone")
SETS = (("captions", ("caption",)), ("paraphrases", PARAPHRASE_KINDS),
        ("spatial", SPATIAL_KINDS))


def load(path: str | Path) -> dict:
    """{mode: {"kinds": {...}}} of a bench JSON (rows dropped)."""
    raw = json.loads(Path(path).read_text())
    return {mode: {"kinds": m["kinds"], "latency": m.get("latency_ms_per_frame")}
            for mode, m in raw.items()}


def pooled(kinds: dict, names) -> dict | None:
    """Acc@IoU0.25 and the ceiling of several kinds together (query-weighted), or None."""
    got = [kinds[k] for k in names if k in kinds and "acc_iou25" in kinds[k]]
    n = sum(m["n"] for m in got)
    if not n:
        return None
    acc = sum(m["n"] * m["acc_iou25"] for m in got) / n
    ceil = sum(m["n"] * m["ceiling_iou25"] for m in got) / n
    return {"n": n, "acc_iou25": acc, "ceiling_iou25": ceil,
            "of_ceiling": acc / ceil if ceil else 0.0}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _row(label: str, per_mode: dict[str, dict | None], before: dict[str, dict | None] | None
         ) -> str:
    ref = next((m for m in per_mode.values() if m), None)
    if ref is None:
        return ""
    cells = [label, str(ref["n"]), _pct(ref.get("ceiling_iou25"))]
    cells += [_pct(per_mode[m]["acc_iou25"]) if per_mode.get(m) else "–" for m in MODES]
    if before is not None:
        cells += [_pct(before[m]["acc_iou25"]) if before.get(m) else "–"
                  for m in (PRODUCT, "model alone")]
    return "| " + " | ".join(cells) + " |"


def table(after: dict, before: dict | None = None) -> str:
    """Markdown table of one scenario (``load`` output; ``before``: the previous model's)."""
    head = ["query kind", "n", "ceiling", "**product**: program + model names",
            "program, no model", "model alone"]
    if before is not None:
        head += ["previous model: product", "previous model: model alone"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    kinds = sorted({k for m in after.values() for k in m["kinds"]},
                   key=lambda k: (k == "ambiguous", k))
    for k in kinds:
        if k == "ambiguous":
            cells = [k, str(after[PRODUCT]["kinds"][k]["n"]), "–"] + [
                f"flagged {_pct(after[m]['kinds'][k]['flagged'])}" if m in after else "–"
                for m in MODES]
            if before is not None:
                cells += [f"flagged {_pct(before[m]['kinds'][k]['flagged'])}"
                          if m in before else "–" for m in (PRODUCT, "model alone")]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        lines.append(_row(k, {m: after[m]["kinds"].get(k) for m in after},
                          None if before is None else
                          {m: before[m]["kinds"].get(k) for m in before}))
    for name, members in SETS:
        row = _row(f"*{name}* (pooled)", {m: pooled(after[m]["kinds"], members) for m in after},
                   None if before is None else
                   {m: pooled(before[m]["kinds"], members) for m in before})
        if row:
            lines.append(row)
    return "\n".join(ln for ln in lines if ln)
