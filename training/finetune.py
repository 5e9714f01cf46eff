"""Fine-tune a LLaVA-style spatial VLM on the generated conversations (Hugging Face Trainer).

    # our tiny default model, full training from random init, on CPU:
    python -m training.finetune --config training/configs/default.yaml --out runs/default
    # LoRA on a pretrained local checkpoint, vision tower frozen:
    python -m training.finetune --model /models/llava-1.5-7b --data 'data/train/*.parquet' \
        --lora --freeze-vision --out runs/lora
    # resume after an interruption (same command + --resume):
    python -m training.finetune --config training/configs/default.yaml --out runs/default --resume
    # continue a trained model with some stages of a config (the others count as done):
    python -m training.finetune --config training/configs/default.yaml --model models/default \
        --stages refer --out runs/refer
    # several GPUs:
    torchrun --nproc_per_node 8 -m training.finetune --config ... (or: accelerate launch -m ...)

Only assistant tokens are trained (the prompt, image tokens and padding get label -100). The
conversation is tokenized piece by piece (prompt pieces masked, answer pieces ``" " + answer +
"</s>"`` trained) and the pieces concatenate to exactly the tokens the chat template gives at
inference (``check_tokenization`` verifies it on the first rows).

A config file may list stages (the Cube-LLM recipe: LV3D pre-training, then fine-tuning with
specialist prompts); each stage continues from the previous one's weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import io
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spatial_ros.errors import ConfigError

log = logging.getLogger("training.finetune")
IGNORE = -100


@dataclass
class StageConfig:
    """One training stage.

    Attributes:
        name: stage name (its checkpoints go to ``<out>/<name>``).
        data: glob(s) of parquet shards.
        tasks: train only on these tasks (None = all rows).
        max_steps: optimizer steps.
        batch_size: conversations per step (per device).
        grad_accum: gradient accumulation steps.
        lr: peak learning rate (cosine decay, linear warm-up).
        warmup_steps: warm-up steps.
        vision_lr_mult: learning-rate factor of the vision tower and projector (BRIEF §5: 3x
            made a from-scratch ViT learn to use the image).
        freeze_vision: keep the vision tower fixed.
        weight_decay: AdamW weight decay.
        max_length: longest token sequence (longer conversations are cut at a turn boundary).
    """

    name: str = "stage"
    data: list[str] = field(default_factory=list)
    tasks: list[str] | None = None
    max_steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-3
    warmup_steps: int = 100
    vision_lr_mult: float = 3.0
    freeze_vision: bool = False
    weight_decay: float = 0.0
    max_length: int = 768


@dataclass
class FinetuneConfig:
    """A fine-tuning run.

    Attributes:
        out: output folder (final model in ``<out>/model``).
        model: local model folder to start from; or ``init``.
        init: build a random-init tiny model ("default" or "test" preset) instead of ``model``.
        stages: the stages, in order.
        lora: train LoRA adapters (peft) on the language model instead of all weights; merged
            into the saved model. ``qlora`` loads the base in 4 bit (needs bitsandbytes + CUDA).
        lora_r, lora_alpha, lora_dropout: LoRA settings.
        seed: torch / data order seed.
        threads: CPU threads (0 = torch default).
        save_steps: checkpoint period (steps); checkpoints allow ``--resume``.
        save_dtype: dtype of the saved weights ("float32", "bfloat16", "float16").
        logging_steps: loss logging period.
        only: run only these stages (names), continuing ``model``; the other stages are taken
            as done in it (its metadata's ``stages`` are kept in the new model's).
    """

    out: str = "runs/default"
    model: str | None = None
    init: str | None = None
    stages: list[StageConfig] = field(default_factory=list)
    lora: bool = False
    qlora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    seed: int = 0
    threads: int = 0
    save_steps: int = 250
    save_dtype: str = "float32"
    logging_steps: int = 25
    only: list[str] | None = None

    def __post_init__(self) -> None:
        self.stages = [s if isinstance(s, StageConfig) else StageConfig(**s) for s in self.stages]
        self.init = self.init or None
        if self.only is not None:
            names = [s.name for s in self.stages]
            unknown = [n for n in self.only if n not in names]
            if unknown or not self.only:
                raise ConfigError(f"stages {unknown or self.only} not in the config's stages "
                                  f"{names}")
        if (self.model is None) == (self.init is None):
            raise ConfigError("give exactly one of --model DIR (local) or --init default|test")
        if not self.stages:
            raise ConfigError("no training stage: give --data or a config with stages")
        if self.save_dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"save_dtype={self.save_dtype!r}: float32, bfloat16 or float16")
        for s in self.stages:
            if not s.data:
                raise ConfigError(f"stage {s.name!r} has no data globs")
            if s.max_steps < 1 or s.batch_size < 1 or s.grad_accum < 1 or s.lr <= 0:
                raise ConfigError(f"stage {s.name!r}: steps, batch, accum >= 1 and lr > 0")


def load_config(path: str | Path, **overrides) -> FinetuneConfig:
    import yaml

    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(FinetuneConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    return FinetuneConfig(**raw)


# ----------------------------------------------------------------------------------------------
# Tokenization
# ----------------------------------------------------------------------------------------------


def _decode_image(cell) -> np.ndarray:
    from PIL import Image

    data = cell["bytes"] if isinstance(cell, dict) else cell
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


class ConversationEncoder:
    """Conversations -> (input_ids, labels, pixel_values) for a LLaVA-style processor."""

    def __init__(self, processor, max_length: int = 768) -> None:
        self.processor = processor
        self.tok = processor.tokenizer
        self.max_length = max_length

    def _text(self, msgs: list[dict], add_generation_prompt: bool) -> str:
        return self.processor.apply_chat_template(
            _chat(msgs), add_generation_prompt=add_generation_prompt, tokenize=False)

    def encode(self, image: np.ndarray, messages: list[dict]) -> dict:
        """Token ids with labels for every assistant answer (and its end-of-turn token)."""
        ids: list[int] = []
        labels: list[int] = []
        pixel_values = None
        done_text = ""
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            prompt = self._text(messages[:i], add_generation_prompt=True)
            piece = prompt[len(done_text):]
            if pixel_values is None:
                enc = self.processor(images=[image], text=[piece], return_tensors="pt")
                pixel_values = enc["pixel_values"][0]
                p_ids = enc["input_ids"][0].tolist()
            else:
                p_ids = self.tok(piece, add_special_tokens=False)["input_ids"]
            full = self._text(messages[: i + 1], add_generation_prompt=False)
            answer = full[len(prompt):]
            a_ids = self.tok(answer, add_special_tokens=False)["input_ids"]
            if len(ids) + len(p_ids) + len(a_ids) > self.max_length and ids:
                break  # cut at a turn boundary
            ids += p_ids + a_ids
            labels += [IGNORE] * len(p_ids) + a_ids
            done_text = full
        if pixel_values is None:
            raise ConfigError("conversation without an assistant turn")
        # The answer piece is " <answer></s>" plus the template's newline after it (trained too;
        # generation stops at </s>, so it never matters at inference).
        ids, labels = ids[: self.max_length], labels[: self.max_length]
        return {"input_ids": ids, "labels": labels, "pixel_values": pixel_values}

    def check_tokenization(self, image: np.ndarray, messages: list[dict]) -> None:
        """The piece-wise tokens equal the processor's tokens of the whole conversation."""
        enc = self.encode(image, messages)
        text = self._text(messages, add_generation_prompt=False)
        whole = self.processor(images=[image], text=[text], return_tensors="pt")["input_ids"][0]
        n = len(enc["input_ids"])
        if whole.tolist()[:n] != enc["input_ids"]:
            raise ConfigError("piece-wise tokenization differs from the chat template's: the "
                              "tokenizer merges across turn boundaries; training would not "
                              "match inference")


def _chat(msgs: list[dict]) -> list[dict]:
    out = []
    for m in msgs:
        parts = ([{"type": "image"}] if m.get("image") else []) + [
            {"type": "text", "text": m["content"]}]
        out.append({"role": m["role"], "content": parts})
    return out


class ConversationDataset:
    """Parquet rows -> encoded conversations (torch Dataset protocol)."""

    def __init__(self, patterns: list[str], encoder: ConversationEncoder,
                 tasks: list[str] | None = None) -> None:
        import pyarrow.parquet as pq

        files = sorted({f for p in patterns for f in glob.glob(p)})
        if not files:
            raise ConfigError(f"no parquet files match {patterns}; run training.generate_data")
        cols = ["id", "task", "image", "messages"]
        self.rows = []
        for f in files:
            for r in pq.read_table(f, columns=cols).to_pylist():
                if tasks is None or r["task"] in tasks:
                    self.rows.append(r)
        if not self.rows:
            raise ConfigError(f"no rows of tasks {tasks} in {files}")
        self.encoder = encoder

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        r = self.rows[i]
        return self.encoder.encode(_decode_image(r["image"]), json.loads(r["messages"]))


def collate(pad_id: int):
    import torch

    def fn(batch: list[dict]) -> dict:
        L = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), L), pad_id, dtype=torch.long)
        lab = torch.full((len(batch), L), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), L), dtype=torch.long)
        for k, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[k, :n] = torch.tensor(b["input_ids"])
            lab[k, :n] = torch.tensor(b["labels"])
            mask[k, :n] = 1
        return {"input_ids": ids, "labels": lab, "attention_mask": mask,
                "pixel_values": torch.stack([b["pixel_values"] for b in batch])}

    return fn


# ----------------------------------------------------------------------------------------------
# Model and trainer
# ----------------------------------------------------------------------------------------------


def _is_vision(name: str) -> bool:
    return "vision_tower" in name or "multi_modal_projector" in name


def load_model(cfg: FinetuneConfig, init_dir: Path):
    """(model, processor) from the config: a local folder or a freshly built tiny model."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if cfg.init:
        from spatial_ros.vlm.tiny import build_tiny_vlm

        if not (init_dir / "config.json").exists():
            build_tiny_vlm(init_dir, cfg.init, seed=cfg.seed)
        path = init_dir
    else:
        path = Path(cfg.model)
        if not (path / "config.json").exists():
            raise ConfigError(f"--model {path}: no config.json (a local model folder is needed; "
                              "nothing is downloaded)")
    kw: dict = {"local_files_only": True, "trust_remote_code": False}
    if cfg.qlora:
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError as e:
            raise ConfigError(f"--qlora needs bitsandbytes and a CUDA GPU ({e})") from None
        if not torch.cuda.is_available():
            raise ConfigError("--qlora needs a CUDA GPU")
        kw["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True,
                                                       bnb_4bit_compute_dtype=torch.bfloat16)
    processor = AutoProcessor.from_pretrained(path, **kw)
    model = AutoModelForImageTextToText.from_pretrained(path, use_safetensors=True,
                                                        dtype=torch.float32, **kw)
    return model, processor, path


def apply_lora(model, cfg: FinetuneConfig):
    from peft import LoraConfig, get_peft_model

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=r".*language_model.*\.(" + "|".join(targets) + ")",
                      modules_to_save=["multi_modal_projector"])
    return get_peft_model(model, lcfg)


def make_trainer(model, dataset, stage: StageConfig, out: Path, cfg: FinetuneConfig, pad_id):
    import torch
    from transformers import Trainer, TrainingArguments

    class _Trainer(Trainer):
        def create_optimizer(self):
            if self.optimizer is None:
                decay, base = stage.weight_decay, stage.lr
                groups = [
                    {"params": [p for n, p in model.named_parameters()
                                if p.requires_grad and not _is_vision(n)], "lr": base},
                    {"params": [p for n, p in model.named_parameters()
                                if p.requires_grad and _is_vision(n)],
                     "lr": base * stage.vision_lr_mult},
                ]
                groups = [g for g in groups if g["params"]]
                self.optimizer = torch.optim.AdamW(groups, weight_decay=decay,
                                                   betas=(0.9, 0.98))
            return self.optimizer

    args = TrainingArguments(
        output_dir=str(out),
        max_steps=stage.max_steps,
        per_device_train_batch_size=stage.batch_size,
        gradient_accumulation_steps=stage.grad_accum,
        learning_rate=stage.lr,
        lr_scheduler_type="cosine",
        warmup_steps=stage.warmup_steps,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to=[],
        seed=cfg.seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        disable_tqdm=False,
        max_grad_norm=1.0,
    )
    return _Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate(pad_id))


def _latest_checkpoint(d: Path) -> str | None:
    cks = sorted(d.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return str(cks[-1]) if cks else None


def save_model(model, processor, src: Path, dst: Path, dtype: str, meta_extra: dict) -> Path:
    """Save weights (safetensors, ``dtype``), processor and the spatial_ros metadata."""
    import torch

    from spatial_ros.vlm.tiny import META_FILE, read_meta
    from spatial_ros.vlm.weights_layout import write_vision_model_layout

    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model = model.to(getattr(torch, dtype))
    model.save_pretrained(tmp, safe_serialization=True)
    write_vision_model_layout(tmp)  # vision_tower.vision_model.*: vLLM serves it as saved
    processor.save_pretrained(tmp)
    meta = read_meta(src)
    meta.update(meta_extra)
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
    return dst


def _data_meta(patterns: list[str]) -> dict:
    """What the model must be run with, from the data's ``*_info.json``: the codec settings and
    whether candidate boxes carried colour names, size words and tags."""
    for p in patterns:
        for info in glob.glob(str(Path(p).parent / "*_info.json")):
            c = json.loads(Path(info).read_text())["config"]
            return {"codec": c["codec"],
                    "candidate_colours": bool(c["samples"].get("candidate_colours", False)),
                    "candidate_sizes": bool(c["samples"].get("candidate_sizes", False)),
                    "candidate_index": bool(c["samples"].get("candidate_index", False))}
    return {}


def finetune(cfg: FinetuneConfig, resume: bool = False) -> dict:
    """Run every stage; returns a summary (losses, wall time, model path)."""
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    model, processor, src = load_model(cfg, out / "init")
    if cfg.lora or cfg.qlora:
        model = apply_lora(model, cfg)
    pad_id = processor.tokenizer.pad_token_id
    summary: dict = {"stages": [], "config": dataclasses.asdict(cfg)}
    if cfg.only:
        from spatial_ros.vlm.tiny import read_meta

        # the stages the start model already went through (its card lists them too)
        summary["stages"] = [{**s, "prior": True} for s in read_meta(src).get("stages", [])]
    for stage in cfg.stages:
        if cfg.only and stage.name not in cfg.only:
            continue
        sdir = out / stage.name
        done_marker = sdir / "done.json"
        if resume and done_marker.exists():
            st = json.loads(done_marker.read_text())
            summary["stages"].append(st)
            if (sdir / "weights.safetensors").exists():
                from safetensors.torch import load_file

                model.load_state_dict(load_file(sdir / "weights.safetensors"), strict=False)
            continue
        for name, p in model.named_parameters():
            if "vision_tower" in name and not (cfg.lora or cfg.qlora):
                p.requires_grad_(not stage.freeze_vision)
        enc = ConversationEncoder(processor, stage.max_length)
        ds = ConversationDataset(stage.data, enc, stage.tasks)
        first = ds.rows[0]
        enc.check_tokenization(_decode_image(first["image"]), json.loads(first["messages"]))
        trainer = make_trainer(model, ds, stage, sdir, cfg, pad_id)
        ck = _latest_checkpoint(sdir) if resume else None
        if ck:
            # transformers 5 saves LLaVA checkpoints with converted key names that Trainer's
            # resume path does not map back (it would warn and keep the current weights), so
            # the weights are restored here; Trainer restores optimizer, scheduler and step.
            restored = type(model).from_pretrained(ck, local_files_only=True,
                                                   use_safetensors=True, dtype=torch.float32)
            model.load_state_dict(restored.state_dict())
            del restored
        result = trainer.train(resume_from_checkpoint=ck)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        st = {"name": stage.name, "rows": len(ds), "steps": trainer.state.global_step,
              "first_loss": losses[0] if losses else None,
              "final_loss": losses[-1] if losses else None,
              "train_runtime_s": result.metrics.get("train_runtime"), "losses": losses}
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, sdir / "weights.safetensors")
        done_marker.write_text(json.dumps(st, indent=2) + "\n")
        summary["stages"].append(st)
    wall = time.time() - t0
    meta = {"trained": True, "wall_time_s": round(wall, 1),
            "stages": [{k: v for k, v in s.items() if k != "losses"} for s in summary["stages"]],
            **_data_meta(cfg.stages[-1].data)}  # the last stage's format is the one learned
    model_dir = save_model(model, processor, src, out / "model", cfg.save_dtype, meta)
    summary.update(wall_time_s=wall, model=str(model_dir))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def export_checkpoint(cfg: FinetuneConfig, checkpoint: str | Path) -> Path:
    """Ship a Trainer checkpoint of a run as ``<out>/model`` (weights in ``save_dtype``, the
    processor and metadata of the run), e.g. when a run is stopped before its last step."""
    import torch

    ck = Path(checkpoint)
    out = Path(cfg.out)
    src = ck.parent.parent / "init" if cfg.init else Path(cfg.model)  # <run>/<stage>/<ck>
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(
        ck, local_files_only=True, use_safetensors=True, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(src, local_files_only=True)
    state = json.loads((ck / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    stage = {"name": ck.parent.name, "steps": state["global_step"],
             "planned_steps": next((s.max_steps for s in cfg.stages if s.name == ck.parent.name),
                                   None),
             "first_loss": losses[0] if losses else None,
             "final_loss": losses[-1] if losses else None, "losses": losses}
    wall = (ck.stat().st_mtime - src.stat().st_mtime) if cfg.init else None
    meta = {"trained": True, "exported_from": ck.name,
            "stages": [{k: v for k, v in stage.items() if k != "losses"}],
            **_data_meta(cfg.stages[-1].data)}  # the last stage's format is the one learned
    if wall:
        meta["wall_time_s"] = round(wall, 1)
    model_dir = save_model(model, processor, src, out / "model", cfg.save_dtype, meta)
    summary = {"stages": [stage], "config": dataclasses.asdict(cfg), "wall_time_s": wall,
               "model": str(model_dir), "exported_from": str(ck)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return model_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.finetune",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="YAML with FinetuneConfig keys (stages, ...)")
    ap.add_argument("--out", help="output folder")
    ap.add_argument("--model", help="local model folder to start from")
    ap.add_argument("--init", choices=["default", "test"], help="random-init tiny model preset")
    ap.add_argument("--data", action="append", help="parquet glob (single-stage runs)")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--lora", action="store_true")
    ap.add_argument("--qlora", action="store_true")
    ap.add_argument("--freeze-vision", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--save-dtype", default=None)
    ap.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    ap.add_argument("--stages", default=None,
                    help="NAME[,NAME]: run only these stages of --config, continuing --model "
                    "(e.g. --model models/default --stages refer)")
    ap.add_argument("--export", metavar="CHECKPOINT",
                    help="do not train: ship this checkpoint of the run as <out>/model")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        over = {"out": a.out, "model": a.model, "init": a.init, "threads": a.threads,
                "save_dtype": a.save_dtype, "lora": a.lora or None, "qlora": a.qlora or None,
                "only": a.stages.split(",") if a.stages else None}
        if a.config:
            if a.model and not a.init:
                over["init"] = ""  # --model replaces the config's random init
            cfg = load_config(a.config, **over)
        else:
            cfg = FinetuneConfig(**{k: v for k, v in over.items() if v is not None},
                                 stages=[StageConfig(name="stage", data=a.data or [])])
        for s in cfg.stages:
            if a.data:
                s.data = a.data
            if a.max_steps:
                s.max_steps = a.max_steps
            if a.batch_size:
                s.batch_size = a.batch_size
            if a.lr:
                s.lr = a.lr
            if a.freeze_vision:
                s.freeze_vision = True
        if a.export:
            print(f"model: {export_checkpoint(cfg, a.export)}")
            return 0
        summary = finetune(cfg, resume=a.resume)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in summary["stages"]:
        print(f"{s['name']}: {s['steps']} steps, loss {s['first_loss']} -> {s['final_loss']}")
    print(f"model: {summary['model']} ({summary['wall_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
