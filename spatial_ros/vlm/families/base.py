"""The model-family interface (``ModelAdapter``) and what a grounding answer parses to.

A family knows, for one kind of model (transformers ``model_type``): how a conversation becomes
the model's prompt text (its chat template, or a fallback for models without one), how to ask
for an object in the model's NATIVE grounding format, how to ask a set-of-marks question (the
specialist candidates drawn on the image as numbered ViP-LLaVA-style marks and listed in text),
how to read the answer back into pixels of the original image, and a few facts the backend needs
(1D or 3D rotary positions, a causal prompt whose prefix can be reused, encoder-decoder).

``ModelAdapter`` itself is our Cube-LLM text format (the default tiny model); every other family
subclasses it in its own module (``families/<name>.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from spatial_ros.vlm.codec import Box2DCode, Box3DCode, BoxCodec, ParseFailure, ParseResult
from spatial_ros.vlm.prompts import Conversation, PromptBuilder, Turn, normalize_tag


@dataclass(frozen=True)
class GroundingAnswer:
    """A parsed grounding answer in image terms.

    Attributes:
        box3d: the Cube-LLM 3D box code, when the answer is a 3D box.
        box_2d: (4,) x1, y1, x2, y2 in pixels of the ORIGINAL image, when known (2D answers).
        label: label given by the model ('' when none).
        candidate: the tag of the listed candidate the model selected ("red2", "#3"), when
            the answer is a tag (``prompts.candidate_tags``) or a set-of-marks number.
    """

    box3d: Box3DCode | None = None
    box_2d: np.ndarray | None = None
    label: str = ""
    candidate: str | None = None


# A set-of-marks answer: the mark's number, optionally as "[3]", "#3", "mark 3", "object 3".
_MARK = re.compile(
    r"^\W*(?:(?:the\s+)?(?:mark|object|box|number|region|candidate)\s*)?\[?#?\s*(\d{1,3})\s*\]?"
    r"\W*$", re.I)


def parse_mark(text: str) -> str | None:
    """The candidate tag ("#3") a set-of-marks answer names, or None."""
    m = _MARK.match(text) if isinstance(text, str) else None
    return f"#{int(m.group(1))}" if m else None


_NUM = r"[-+]?\d+(?:\.\d+)?"
_FOUR = re.compile(rf"[\[(]\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*[\])]")


def parse_four_numbers(text: str) -> np.ndarray | None:
    """The first ``[a, b, c, d]`` (or ``(a, b, c, d)``) in ``text`` as floats, or None."""
    m = _FOUR.search(text[:20000]) if isinstance(text, str) else None
    if not m:
        return None
    b = np.array([float(g) for g in m.groups()], dtype=np.float64)
    return b if np.all(np.isfinite(b)) else None


def to_image_box(box: np.ndarray, scale_xy: tuple[float, float], image_hw: tuple[int, int],
                 offset_xy: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """x1, y1, x2, y2 in model coordinates -> pixels of the original image (sorted, clipped):
    ``px = value * scale - offset``."""
    H, W = image_hw
    b = np.asarray(box, dtype=np.float64).reshape(4)
    sx, sy = scale_xy
    out = b * np.array([sx, sy, sx, sy]) - np.array([*offset_xy, *offset_xy])
    x1, x2 = sorted((out[0], out[2]))
    y1, y2 = sorted((out[1], out[3]))
    return np.clip(np.array([x1, y1, x2, y2]), 0, [W - 1, H - 1, W - 1, H - 1])


def box_result(px: np.ndarray, text: str, label: str = "") -> ParseResult | ParseFailure:
    """A 2D answer, or a ParseFailure when the box has no area."""
    if px[2] - px[0] <= 0 or px[3] - px[1] <= 0:
        return ParseFailure(f"degenerate box: {np.round(px, 1).tolist()} has zero area", text)
    return ParseResult(GroundingAnswer(box_2d=px, label=label), (0, len(text)))


MARKS_HEADER = ("The image shows numbered marks on these objects (mark: box x1, y1, x2, y2 in "
                "0..1000):")


class ModelAdapter:
    """Cube-LLM text format (LLaVA-style models, our default model) and the family interface.

    Class attributes (facts about the family the backend and engine use):
        family: the family's name (``FAMILIES`` key).
        model_types: config.json ``model_type`` values this family serves (``family: auto``).
        set_of_marks: the engine draws the listed candidates on the image as numbered marks
            and lists them in text (``marks_context``); answers name a mark ("3"). On for
            families without a trained box format.
        causal_prompt: every prompt token attends only to earlier ones, so the KV cache of a
            prefix shared by a frame's queries can be reused (False: PaliGemma's bidirectional
            prefix, encoder-decoder models).
        encoder_decoder: the prompt goes to an encoder, the answer comes from a decoder.
        rope_dims: 1 for plain positions, 3 for Qwen's multimodal rotary positions (M-RoPE).
        position_offset: first position id (PaliGemma counts from 1).
        attn_implementation: the attention kernel ``attn_implementation: auto`` picks.
        chat_template: the Jinja chat template used when the model directory has none.
        keep_tokens: regex of special tokens the answer keeps when decoded (location tokens).
    """

    family: ClassVar[str] = "cube-llm"
    model_types: ClassVar[tuple[str, ...]] = ()
    set_of_marks: bool = False
    causal_prompt: ClassVar[bool] = True
    encoder_decoder: ClassVar[bool] = False
    rope_dims: ClassVar[int] = 1
    position_offset: ClassVar[int] = 0
    attn_implementation: ClassVar[str] = "sdpa"
    chat_template: ClassVar[str | None] = None
    keep_tokens: ClassVar[str | None] = None

    def __init__(self, set_of_marks: bool | None = None) -> None:
        if set_of_marks is not None:
            self.set_of_marks = set_of_marks

    # -- prompt text -------------------------------------------------------------------------

    def messages(self, conversation: Conversation) -> list[dict[str, Any]]:
        """Turns -> transformers chat messages (image placeholder before the text)."""
        out = []
        for t in conversation:
            content: list[dict[str, Any]] = []
            if t.image:
                content.append({"type": "image"})
            content.append({"type": "text", "text": t.text})
            out.append({"role": t.role, "content": content})
        return out

    def chat_text(self, processor: Any, conversation: Conversation) -> str:
        """The prompt text of a conversation, ready for generation: the model's chat template,
        else the family's (``chat_template``)."""
        msgs = self.messages(conversation)
        template = getattr(processor, "chat_template", None) or self.chat_template
        if template is None:
            from spatial_ros.errors import ModelError

            raise ModelError(
                f"the model has no chat template and family {self.family!r} has no fallback; "
                "add chat_template.jinja to the model directory or set family"
            )
        kw = dict(add_generation_prompt=True, tokenize=False, chat_template=template)
        try:
            return processor.apply_chat_template(msgs, **kw)
        except AttributeError:  # e.g. SmolVLM's reads its (absent) video processor's settings
            return processor.tokenizer.apply_chat_template(msgs, **kw)

    def decode(self, tokenizer: Any, ids: list[int]) -> str:
        """Answer text of generated ids: special tokens removed, except ``keep_tokens``."""
        if self.keep_tokens is None:
            return tokenizer.decode(ids, skip_special_tokens=True)
        keep = re.compile(self.keep_tokens)
        drop = {i for i in tokenizer.all_special_ids}
        pieces = []
        for i in ids:
            tok = tokenizer.convert_ids_to_tokens(i)
            if i in drop and not (isinstance(tok, str) and keep.fullmatch(tok)):
                continue
            pieces.append(i)
        return tokenizer.decode(pieces, skip_special_tokens=False)

    # -- grounding ---------------------------------------------------------------------------

    def grounding_prompt(
        self, builder: PromptBuilder, caption: str, context: str | None
    ) -> Conversation:
        """The conversation asking where ``caption`` is (``context``: the candidate list, the
        Cube-LLM specialist block or, with ``set_of_marks``, ``marks_context``)."""
        return builder.box3d(caption, context)

    def marks_context(self, boxes_2d: list[np.ndarray], tags: list[str],
                      image_hw: tuple[int, int]) -> str:
        """Text listing the candidates drawn as numbered marks: one line per mark with its
        box in 0..1000 of the image (``tags`` are "#k"; the mark drawn is the number k)."""
        H, W = image_hw
        lines = [MARKS_HEADER]
        for b, t in zip(boxes_2d, tags, strict=True):
            n = np.clip(np.asarray(b, float) / [W, H, W, H] * 1000, 0, 1000).round().astype(int)
            lines.append(f"{t.lstrip('#')}: [{n[0]}, {n[1]}, {n[2]}, {n[3]}]")
        return "\n".join(lines)

    def marks_prompt(self, builder: PromptBuilder, caption: str, context: str) -> Conversation:
        """Set-of-marks question: which numbered mark is ``caption``."""
        text = (f"{context}\nWhich mark is {caption.strip()}? Answer with the mark's number "
                "only.")
        turns = [Turn("system", builder.system)] if builder.system else []
        return [*turns, Turn("user", text, image=True)]

    def parse_grounding(
        self,
        text: str,
        codec: BoxCodec,
        image_hw: tuple[int, int],
        model_image_hw: tuple[int, int] | None = None,
    ) -> ParseResult[GroundingAnswer] | ParseFailure:
        """A 3D box answer, or a candidate tag ("red2", "#3": models trained on tagged
        candidate lists; the engine resolves it against the prompt's tags); a 2D box answer is
        accepted as a fallback (lifted via candidates or depth by the engine). Never raises."""
        tag = normalize_tag(text)
        if tag:
            return ParseResult(GroundingAnswer(candidate=tag), (0, len(text)))
        r3 = codec.parse_box3d(text)
        if r3.ok:
            return ParseResult(GroundingAnswer(box3d=r3.value), r3.span)
        r2 = codec.parse_box2d(text)
        if r2.ok:
            c: Box2DCode = r2.value
            H, W = image_hw
            n = np.array([[c.x1, c.y1], [c.x2, c.y2]])
            px = codec.norm_to_pixels(n, W, H).reshape(4)
            return ParseResult(GroundingAnswer(box_2d=px), r2.span)
        return r3

    # -- model facts -------------------------------------------------------------------------

    def model_image_hw(self, image_inputs: dict[str, Any], processor: Any
                       ) -> tuple[int, int] | None:
        """(height, width) of the image as the model saw it, from the processor's outputs."""
        pv = image_inputs.get("pixel_values")
        if pv is not None and getattr(pv, "ndim", 0) == 4:
            return int(pv.shape[-2]), int(pv.shape[-1])
        return None

    def rope_positions(self, model: Any, ids: Any, mask: Any, token_inputs: dict[str, Any],
                       image_inputs: dict[str, Any]) -> Any:
        """(rope_dims, B, L) positions of a prompt batch with images, for rope_dims > 1."""
        raise NotImplementedError


class MarksAdapter(ModelAdapter):
    """Base of families without a trained box format: set-of-marks selection when candidates
    are listed; without candidates, a box in 0..1000 of the image (``[x1, y1, x2, y2]``)."""

    set_of_marks = True

    def grounding_prompt(self, builder, caption, context):
        if context:
            return self.marks_prompt(builder, caption, context)
        text = (f"Give the bounding box of {caption.strip()} in the image as [x1, y1, x2, y2] "
                "with coordinates from 0 to 1000.")
        turns = [Turn("system", builder.system)] if builder.system else []
        return [*turns, Turn("user", text, image=True)]

    def parse_grounding(self, text, codec, image_hw, model_image_hw=None):
        mark = parse_mark(text)
        if mark:
            return ParseResult(GroundingAnswer(candidate=mark), (0, len(text)))
        b = parse_four_numbers(text)
        if b is None:
            return ParseFailure(f"no mark number or [x1, y1, x2, y2] box in {text[:60]!r}", text)
        H, W = image_hw
        return box_result(to_image_box(b, (W / 1000.0, H / 1000.0), image_hw), text)
