"""Weight-name layout of saved LLaVA models, so that one folder serves transformers AND vLLM.

transformers 5.x saves a LLaVA model's CLIP/SigLIP vision tower flattened
(``vision_tower.embeddings...``); vLLM's LLaVA weight mapping expects the nested layout of the
original checkpoints (``vision_tower.vision_model.embeddings...``) and fails to load the flat one.
transformers loads both (its LLaVA key mapping accepts either), so our model-saving code writes
the nested one: :func:`write_vision_model_layout` renames the tensors in place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

LLAVA_TYPES = ("llava", "vipllava", "llava_next")
TOWER_TYPES = ("clip_vision_model", "siglip_vision_model")
FLAT, NESTED = "vision_tower.", "vision_tower.vision_model."


def nested_name(key: str) -> str:
    """``vision_tower.X`` -> ``vision_tower.vision_model.X`` (other names unchanged)."""
    if key.startswith(FLAT) and not key.startswith(NESTED):
        return NESTED + key[len(FLAT):]
    return key


def write_vision_model_layout(model_dir: str | Path) -> int:
    """Rename a saved LLaVA-type model's vision-tower tensors to the nested layout, in place
    (each safetensors file replaced atomically; the shard index updated). A folder of another
    architecture, or already nested, is left alone. Returns the number of tensors renamed."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    d = Path(model_dir)
    cfg = json.loads((d / "config.json").read_text())
    tower = (cfg.get("vision_config") or {}).get("model_type")
    if cfg.get("model_type") not in LLAVA_TYPES or tower not in TOWER_TYPES:
        return 0
    renamed = 0
    for f in sorted(d.glob("*.safetensors")):
        with safe_open(f, "pt") as sf:
            keys = list(sf.keys())
            if all(nested_name(k) == k for k in keys):
                continue
            meta = sf.metadata() or {"format": "pt"}
            tensors = {nested_name(k): sf.get_tensor(k) for k in keys}
        renamed += sum(nested_name(k) != k for k in keys)
        tmp = f.with_name(f.name + ".tmp")
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, f)
    index = d / "model.safetensors.index.json"
    if renamed and index.is_file():
        data = json.loads(index.read_text())
        data["weight_map"] = {nested_name(k): v for k, v in data["weight_map"].items()}
        index.write_text(json.dumps(data, indent=2) + "\n")
    return renamed
