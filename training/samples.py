"""Training conversations from a :class:`~training.scenes.TrainingFrame`.

Four tasks, all written with the runtime's own PromptBuilder and BoxCodec (so the model sees in
training exactly the phrasings and number formats the engine sends):

- ``ground``: Cube-LLM specialist prompting. The system turn, the image, then "Here is the list
  of 3D bounding boxes of all objects around the camera:" with candidate boxes (ground truth in
  training, closest first like the engine lists them; on some frames the LiDAR specialist's
  boxes with their real errors), then up to ``max_turns`` caption -> box3D questions. The answer
  is the listed box of that object (a *candidate-selection target*: the model learns to pick a
  candidate and copy it exactly), or the true box when no listed box matches it.
- ``lv3d``: LV3D multi-turn QA without candidates: each question names an object by its caption
  and asks another attribute (box2D, point2D, depth, point3D, box3D); VCoT pairs ask box2D, then
  the 3D box "of this region" in the next turn.
- ``vqa``: SpatialVLM-style spatial questions and answers (``spatial_ros.spatial.qa``: 38
  question types, ambiguity resolution, human-like rounding and units).
- ``vip``: ViP-LLaVA visual prompts: a mark (rectangle, ellipse, arrow, ...) drawn around one
  object, its 3D box asked for "the object within the red rectangle".
- ``refer``: referring expressions (``training.refqueries``, on this frame's truth): the tagged
  candidate list as in ``ground``, then questions of every kind — the caption, paraphrases
  (colour / noun synonyms, word order, casual phrasing), viewer-relative ("the box on the
  left", "the closest mug"), ordinals, comparatives, relations to another object — plus
  category-only and colour-only phrases ("the mug", "the red one") where exactly one object in
  view fits. Each is answered with the tag of the listed candidate that matches the expected
  object (3D IoU >= 0.25, and that object is the candidate's best match); questions whose
  object is not listed, and ambiguous ones, are not asked. Kinds are drawn evenly.

Listed boxes are tagged with the colour of their own pixels, read exactly as the engine reads a
candidate's (``TrainingFrame.colours``: ``vlm.appearance.object_colours`` with the specialist
cluster's points, else the frame's depth image inside the box, else the 2D box centre).

A sample is a dict with JSON-able fields; ``messages`` is a list of {role, content, image}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.geometry.iou import iou_3d_matrix
from spatial_ros.spatial.predicates import SpatialObject, Viewpoint
from spatial_ros.spatial.qa import QAConfig, generate_qa
from spatial_ros.types import Box3D
from spatial_ros.vlm.appearance import candidate_attribute
from spatial_ros.vlm.codec import BoxCodec, CodecConfig
from spatial_ros.vlm.lifting import project_box
from spatial_ros.vlm.prompts import TASKS, VCOT_FOLLOW_UP, PromptBuilder, Turn, candidate_tags
from spatial_ros.vlm.visual_prompts import KINDS, draw_visual_prompt
from training.scenes import TrainingFrame

TASK_NAMES = ("ground", "lv3d", "vqa", "vip", "refer")


@dataclass(frozen=True)
class SampleConfig:
    """What conversations to make from a frame.

    Attributes:
        task_weights: relative frequency of each task (``TASK_NAMES`` order; four weights
            mean no ``refer``).
        max_turns: most QA pairs per conversation (Cube-LLM uses up to 30; CPU training keeps
            sequences short).
        max_candidates: most boxes listed in the specialist prompt (closest first).
        specialist_prob: share of ``ground`` samples listing the specialist's boxes (when the
            frame has them) instead of the true boxes.
        drop_prob: probability that each true box is left out of the list (the model must then
            answer from the image).
        vcot_prob: share of ``lv3d`` questions asked as a VCoT pair.
        candidate_colours: append each listed box's colour name (``vlm.appearance``, read from
            the image exactly as the engine does with ``candidate_colours``).
        candidate_sizes: put a size word from each listed box's extents before its colour
            (``vlm.appearance.size_word``; the engine's ``candidate_sizes``).
        candidate_index: tag the listed boxes (their words + rank among boxes with the same
            words: ``red2``, ``small red1``; ``#k`` without words) and answer a question whose
            object is listed with its tag instead of a copy of the box (the engine's
            ``candidate_index``); objects not listed are still answered with their box.
        list_size: (lo, hi) for a *curriculum* of short lists: each ``ground`` conversation
            lists a random lo..hi of the frame's boxes (closest first) and asks only about
            objects that are listed. None: the closest ``max_candidates`` boxes, every
            object asked.
        same_words_prob: curriculum only: share of lists built around tag words (a colour, or
            size + colour) that two or more of the frame's boxes share, asking only about the
            boxes with those words, so that the tag's rank must be chosen from the boxes'
            sizes and places rather than from the words alone.
    """

    task_weights: tuple[float, ...] = (0.6, 0.15, 0.15, 0.1)
    max_turns: int = 3
    max_candidates: int = 8
    specialist_prob: float = 0.3
    drop_prob: float = 0.05
    vcot_prob: float = 0.3
    candidate_colours: bool = True
    candidate_sizes: bool = False
    candidate_index: bool = False
    list_size: tuple[int, int] | None = None
    same_words_prob: float = 0.0

    def __post_init__(self) -> None:
        w = np.asarray(self.task_weights, float)
        if w.shape not in ((4,), (5,)) or np.any(w < 0) or w.sum() <= 0:
            raise ConfigError(f"SampleConfig.task_weights={self.task_weights}: 4 or 5 weights "
                              f"(ground, lv3d, vqa, vip[, refer]) >= 0, not all 0")
        if w.shape == (4,):
            object.__setattr__(self, "task_weights", (*map(float, w), 0.0))
        if self.max_turns < 1 or self.max_candidates < 1:
            raise ConfigError(
                f"SampleConfig: max_turns={self.max_turns}, max_candidates="
                f"{self.max_candidates} must be >= 1"
            )
        if self.list_size is not None and not 1 <= self.list_size[0] <= self.list_size[1]:
            raise ConfigError(f"SampleConfig.list_size={self.list_size}: need 1 <= lo <= hi")
        for name in ("specialist_prob", "drop_prob", "vcot_prob", "same_words_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"SampleConfig.{name}={getattr(self, name)} must be in [0, 1]")


def _unique(frame: TrainingFrame) -> list[int]:
    """Indices of objects whose caption no other object in view shares."""
    caps = [o.caption for o in frame.objects]
    return [i for i, c in enumerate(caps) if caps.count(c) == 1]


def _turns(builder: PromptBuilder, context: str | None, qa: list[tuple[str, str]]) -> list[Turn]:
    """System + image + context + the first question, then alternating answers/questions."""
    q0, a0 = qa[0]
    turns = [*builder._first_user(q0, context), Turn("assistant", a0)]
    for q, a in qa[1:]:
        turns += [Turn("user", q), Turn("assistant", a)]
    return turns


def _box_words(frame: TrainingFrame, box: Box3D, cfg: SampleConfig) -> str | None:
    """The words a listed box is tagged with (the engine's ``candidate_attribute``, with the
    colour of the box's own pixels read as the engine reads it)."""
    colours = frame.colours(box) if cfg.candidate_colours else None
    return candidate_attribute(frame.image, box, project_box(box, frame.camera),
                               cfg.candidate_colours, cfg.candidate_sizes, colours)


def _listed_boxes(frame: TrainingFrame, rng, cfg: SampleConfig
                  ) -> tuple[list[Box3D], str, str | None]:
    """(listed boxes closest first, "truth" or "specialist", the tag words a same-words
    curriculum list is built around or None)."""
    use_spec = frame.specialist_boxes is not None and rng.random() < cfg.specialist_prob
    if use_spec:
        boxes, kind = list(frame.specialist_boxes), "specialist"
    else:
        boxes = [o.box_optical for o in frame.objects if rng.random() >= cfg.drop_prob]
        kind = "truth"
    boxes = [b for b in boxes if b.center[2] > 0]
    focus = None
    if cfg.list_size is not None and boxes:
        lo, hi = cfg.list_size
        k = int(rng.integers(min(lo, len(boxes)), min(hi, len(boxes)) + 1))
        order = [int(i) for i in rng.choice(len(boxes), k, replace=False)]
        if cfg.same_words_prob and rng.random() < cfg.same_words_prob:
            words = [_box_words(frame, b, cfg) for b in boxes]
            shared = sorted({w for w in words if w and words.count(w) >= 2})
            if shared:
                focus = shared[int(rng.integers(len(shared)))]
                group = [i for i in rng.permutation(len(boxes)) if words[i] == focus][:hi]
                order = group + [i for i in order if i not in group][: max(0, k - len(group))]
        boxes = [boxes[i] for i in order]
    boxes.sort(key=lambda b: float(np.linalg.norm(b.center)))
    return boxes[: cfg.max_candidates], kind, focus


def _context(frame, listed: list[Box3D], builder: PromptBuilder, cfg: SampleConfig):
    """(specialist block or None, the listed boxes' attributes or None, their tags or None)."""
    if not listed:
        return None, None, None
    attrs = None
    if cfg.candidate_colours or cfg.candidate_sizes:
        attrs = [_box_words(frame, b, cfg) for b in listed]
    tags = candidate_tags(attrs if attrs else [None] * len(listed)) if cfg.candidate_index \
        else None
    block = builder.specialist_block(listed, frame.camera, tags or attrs)
    return block, attrs, tags


def _listed_match(objects, listed: list[Box3D]) -> list[int | None]:
    """For each object, the index of the listed box that matches it best (3D IoU >= 0.25), or
    None when no listed box does."""
    if not listed:
        return [None] * len(objects)
    M = iou_3d_matrix([o.box_optical for o in objects], listed)
    best = M.argmax(axis=1)
    return [int(j) if M[k, j] >= 0.25 else None for k, j in enumerate(best)]


def _box_answers(frame, objects, matches: list[int | None], listed: list[Box3D],
                 tags: list[str] | None, codec: BoxCodec):
    """The target answer for each object: its matching listed box (``matches``; the box's tag
    when the list is tagged, else a copy of the box) or, when none matches, the object's true
    box."""
    def answer(o, j):
        if j is None:
            return codec.encode_box3d(o.box_optical, frame.camera)
        return tags[j] if tags else codec.encode_box3d(listed[j], frame.camera)

    return [answer(o, j) for o, j in zip(objects, matches, strict=True)]


def ground_sample(frame, rng, codec: BoxCodec, builder: PromptBuilder, cfg: SampleConfig):
    idx = _unique(frame)
    if not idx:
        return None
    listed, kind, focus = _listed_boxes(frame, rng, cfg)
    context, attrs, tags = _context(frame, listed, builder, cfg)
    matches = _listed_match([frame.objects[i] for i in idx], listed)
    if cfg.list_size is not None:  # curriculum: ask only listed objects (with the focus words)
        keep = [k for k, j in enumerate(matches)
                if j is not None and (focus is None or (attrs and attrs[j] == focus))]
        if not keep:
            return None
        idx, matches = [idx[k] for k in keep], [matches[k] for k in keep]
    picks = rng.permutation(len(idx))[: cfg.max_turns]
    objs = [frame.objects[idx[k]] for k in picks]
    answers = _box_answers(frame, objs, [matches[k] for k in picks], listed, tags, codec)
    qa = [(TASKS["box3d"] + o.caption, a) for o, a in zip(objs, answers, strict=True)]
    return _turns(builder, context, qa), {"candidates": kind, "listed": len(listed)}


def _attribute(kind: str, o, frame, codec: BoxCodec) -> str:
    cam = frame.camera
    if kind == "box2d":
        return codec.encode_box2d(o.box_2d, cam.width, cam.height)
    if kind == "point2d":
        b = o.box_2d
        return codec.encode_point2d(np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]),
                                    cam.width, cam.height)
    if kind == "depth":
        return codec.encode_depth(float(o.box_optical.center[2]), cam)
    if kind == "point3d":
        return codec.encode_point3d(o.box_optical.center, cam)
    return codec.encode_box3d(o.box_optical, cam)


def lv3d_sample(frame, rng, codec: BoxCodec, builder: PromptBuilder, cfg: SampleConfig):
    idx = _unique(frame)
    if not idx:
        return None
    qa: list[tuple[str, str]] = []
    kinds = list(TASKS)
    for k in rng.permutation(len(idx)):
        if len(qa) >= cfg.max_turns:
            break
        o = frame.objects[idx[k]]
        if rng.random() < cfg.vcot_prob and len(qa) + 2 <= cfg.max_turns:
            qa.append((TASKS["box2d"] + o.caption, _attribute("box2d", o, frame, codec)))
            qa.append((VCOT_FOLLOW_UP, _attribute("box3d", o, frame, codec)))
        else:
            kind = kinds[int(rng.integers(len(kinds)))]
            qa.append((TASKS[kind] + o.caption, _attribute(kind, o, frame, codec)))
    return _turns(builder, None, qa), {}


def vqa_sample(frame, rng, codec: BoxCodec, builder: PromptBuilder, cfg: SampleConfig,
               qa_config: QAConfig | None = None):
    if len(frame.objects) < 2:
        return None
    objs = [SpatialObject(o.caption.removeprefix("the "), o.box_base, id=str(i))
            for i, o in enumerate(frame.objects)]
    vp = Viewpoint.from_camera_pose(frame.T_base_from_optical)
    pairs = generate_qa(objs, vp, rng, cfg.max_turns, qa_config)
    if not pairs:
        return None
    qa = [(p.question, p.answer) for p in pairs]
    return _turns(builder, None, qa), {"types": [p.type for p in pairs]}


def vip_sample(frame, rng, codec: BoxCodec, builder: PromptBuilder, cfg: SampleConfig):
    if not frame.objects:
        return None
    o = frame.objects[int(rng.integers(len(frame.objects)))]
    kind = KINDS[int(rng.integers(len(KINDS)))]
    vp = draw_visual_prompt(frame.image, kind, o.box_2d, rng=rng)
    listed, _, _ = _listed_boxes(frame, rng, cfg)
    context, _, tags = _context(frame, listed, builder, cfg)
    answer = _box_answers(frame, [o], _listed_match([o], listed), listed, tags, codec)[0]
    qa = [(TASKS["box3d"] + vp.query(), answer)]
    return _turns(builder, context, qa), {"mark": kind, "image": vp.image}


def refer_sample(frame, rng, codec: BoxCodec, builder: PromptBuilder, cfg: SampleConfig):
    from training.refer_samples import refer_questions

    if not frame.truth:
        return None  # real frames: no per-object truth to phrase queries from
    listed, kind, _ = _listed_boxes(frame, rng, cfg)
    if not listed:
        return None
    context, _, tags = _context(frame, listed, builder, cfg)
    picked = refer_questions(frame, listed, rng, cfg.max_turns)
    if not picked:
        return None
    qa = [(TASKS["box3d"] + q, tags[j] if tags else codec.encode_box3d(listed[j], frame.camera))
          for q, _, j, _ in picked]
    return _turns(builder, context, qa), {"candidates": kind, "listed": len(listed),
                                          "kinds": [p[1] for p in picked],
                                          "expected": [p[3] for p in picked]}


BUILDERS = {"ground": ground_sample, "lv3d": lv3d_sample, "vqa": vqa_sample, "vip": vip_sample,
            "refer": refer_sample}
# what a conversation falls back to when its task finds nothing to ask on a frame
FALLBACKS = {"refer": ("ground", "lv3d", "vip")}


def frame_samples(
    frame: TrainingFrame,
    rng: np.random.Generator,
    codec_config: CodecConfig,
    config: SampleConfig,
    n: int = 1,
) -> list[dict]:
    """``n`` conversations about one frame, tasks drawn by ``config.task_weights``.

    Returns dicts: task, image (uint8 RGB, with the mark drawn for ``vip``), messages
    ([{role, content, image}]), extra (task details)."""
    codec = BoxCodec(codec_config)
    builder = PromptBuilder(codec)
    w = np.asarray(config.task_weights, float)
    out = []
    for _ in range(n):
        # (a zero refer weight draws exactly as the four-task weights did)
        task = TASK_NAMES[int(rng.choice(len(w), p=w / w.sum()))]
        made = BUILDERS[task](frame, rng, codec, builder, config)
        for fallback in FALLBACKS.get(task, ("lv3d", "vip")):  # e.g. frames whose objects
            # all share one caption
            if made is not None:
                break
            task, made = fallback, BUILDERS[fallback](frame, rng, codec, builder, config)
        if made is None:
            continue
        turns, extra = made
        image = extra.pop("image", frame.image)
        out.append({
            "task": task,
            "image": image,
            "messages": [{"role": t.role, "content": t.text, "image": t.image} for t in turns],
            "extra": extra,
        })
    return out

