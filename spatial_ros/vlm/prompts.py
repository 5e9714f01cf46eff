"""Prompt builder: Cube-LLM grounding questions, VCoT, specialist box prompts, spatial questions.

A conversation is a list of :class:`Turn` (system / user / assistant). The first user turn
carries the image (``image=True``); backends turn conversations into the model family's chat
format. Everything that is the same for all queries of a frame (system text, image, specialist
candidate list, the fixed part of the question) comes FIRST, so a batch of queries over one frame
shares a long common token prefix that the backend encodes once (prefix KV reuse).

Training data (``training/``) uses the same builder and codec, so the model sees at inference
exactly the phrasings and number formats it was trained on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from spatial_ros.errors import ConfigError
from spatial_ros.types import Box3D, CameraIntrinsics
from spatial_ros.vlm.codec import BoxCodec

SPECIALIST_PREFIX = "Here is the list of 3D bounding boxes of all objects around the camera:"
# Tags of the listed candidates when the list is numbered: the candidate's attribute words (its
# colour name, optionally preceded by a size word: ``vlm.appearance``) with its rank among the
# listed candidates with the same words ("red1", "red2", "blue1", "small red1", "tall red1"), or
# "#k" (list position) for one without words. An answer that is just a tag selects that candidate
# (set-of-marks style selection: the box then comes from the specialist exactly instead of being
# copied digit by digit). Tags are made of words so that a small model can select an object by
# reading its caption (colour from the colour word, size word from the noun) and needs the boxes
# only to tell apart objects that share both words.
CANDIDATE_TAG = re.compile(r"^\s*(#|[A-Za-z]+(?: [A-Za-z]+)?) ?(\d{1,3})\s*\.?\s*$")


def candidate_tags(attributes: Sequence[str | None]) -> list[str]:
    """The tag of each listed candidate, in list order (see ``CANDIDATE_TAG``)."""
    seen: dict[str, int] = {}
    tags = []
    for k, a in enumerate(attributes):
        if a:
            seen[a] = seen.get(a, 0) + 1
            tags.append(f"{a}{seen[a]}")
        else:
            tags.append(f"#{k + 1}")
    return tags


def normalize_tag(text: str) -> str | None:
    """The tag an answer names ("red 2." -> "red2"), or None when it is not a tag."""
    m = CANDIDATE_TAG.match(text) if isinstance(text, str) else None
    return f"{m.group(1)}{int(m.group(2))}" if m else None


DEFAULT_SYSTEM = "You are a spatial assistant. Answer with boxes in the requested format."

# Cube-LLM task phrasings ("Provide the 3D bounding box of the region this sentence describes:
# <caption>"), one per answer kind; the caption always comes last.
TASKS = {
    "box2d": "Provide the 2D bounding box of the region this sentence describes: ",
    "box3d": "Provide the 3D bounding box of the region this sentence describes: ",
    "depth": "Provide the depth of the region this sentence describes: ",
    "point2d": "Provide the 2D point of the region this sentence describes: ",
    "point3d": "Provide the 3D point of the region this sentence describes: ",
}
# Second VCoT turn: the model's own 2D answer is in context, ask for the 3D box of "it".
VCOT_FOLLOW_UP = "Provide the 3D bounding box of this region."

# Spatial questions asked to the VLM directly (the `ask` path answers from grounded boxes with
# spatial_ros.spatial.qa instead; these serve models fine-tuned on SpatialVLM-style QA).
SPATIAL_QUESTIONS = {
    "distance": "How far is {a} from {b}?",
    "left_right": "Is {a} to the left or to the right of {b}?",
    "above_below": "Is {a} above or below {b}?",
    "behind_front": "Is {a} behind or in front of {b}?",
    "taller": "Is {a} taller than {b}?",
    "wider": "Is {a} wider than {b}?",
    "bigger": "Is {a} bigger than {b}?",
    "depth": "How far is {a} from the camera?",
    "width": "How wide is {a}?",
    "height": "How tall is {a}?",
    "horizontal_distance": "What is the horizontal distance between {a} and {b}?",
    "vertical_distance": "What is the vertical distance between {a} and {b}?",
    "clock": "At what clock direction is {a} from the camera?",
}


@dataclass(frozen=True)
class Turn:
    """One message of a conversation.

    Attributes:
        role: "system", "user" or "assistant".
        text: the message text.
        image: True when the frame's image is attached to this (user) turn, before the text.
    """

    role: str
    text: str
    image: bool = False

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant"):
            raise ConfigError(f"Turn.role={self.role!r}: must be system, user or assistant")


Conversation = list[Turn]


class PromptBuilder:
    """Builds the conversations the engine sends and the training data uses.

    Args:
        codec: the box codec (formats of candidate boxes and of answers).
        system: system prompt, or None for none.
    """

    def __init__(self, codec: BoxCodec | None = None, system: str | None = DEFAULT_SYSTEM):
        self.codec = codec or BoxCodec()
        self.system = system

    # -- pieces ---------------------------------------------------------------------------

    def specialist_block(
        self,
        boxes_optical: Sequence[Box3D],
        camera: CameraIntrinsics,
        words: Sequence[str | None] | None = None,
    ) -> str:
        """The specialist box prompt: the fixed sentence, then one encoded 3D box per line
        (boxes in the camera optical frame; boxes with centres behind the camera are skipped),
        each followed by its word(s) when ``words`` (one per box) gives some: an attribute
        ("white") or, for a tagged list, its tag (``candidate_tags``, computed once by the
        caller, who resolves answers against the same list):
        ``[356, 645, 232, 0.12, 0.10, 0.12, 0.8] white1``."""
        lines = [SPECIALIST_PREFIX]
        for k, b in enumerate(boxes_optical):
            if b.center[2] > 0:
                line = self.codec.encode_box3d(b, camera)
                w = words[k] if words is not None else None
                lines.append(f"{line} {w}" if w else line)
        return "\n".join(lines)

    def _first_user(self, text: str, context: str | None) -> list[Turn]:
        turns = [Turn("system", self.system)] if self.system else []
        body = f"{context}\n{text}" if context else text
        turns.append(Turn("user", body, image=True))
        return turns

    # -- grounding questions --------------------------------------------------------------

    def ask(self, kind: str, caption: str, context: str | None = None) -> Conversation:
        """Single-turn question of ``kind`` (box2d, box3d, depth, point2d, point3d) about
        ``caption``; ``context`` (e.g. the specialist block) goes before the question."""
        if kind not in TASKS:
            raise ConfigError(f"unknown question kind {kind!r}; known: {', '.join(TASKS)}")
        return self._first_user(TASKS[kind] + caption.strip(), context)

    def box2d(self, caption: str, context: str | None = None) -> Conversation:
        return self.ask("box2d", caption, context)

    def box3d(self, caption: str, context: str | None = None) -> Conversation:
        return self.ask("box3d", caption, context)

    def depth(self, caption: str, context: str | None = None) -> Conversation:
        return self.ask("depth", caption, context)

    def vcot_second(self, first: Conversation, box2d_answer: str) -> Conversation:
        """VCoT turn 2: the first (box2d) conversation, the model's own 2D answer as the
        assistant turn, then the request for the 3D box."""
        return [*first, Turn("assistant", box2d_answer.strip()), Turn("user", VCOT_FOLLOW_UP)]

    def spatial_question(
        self, kind: str, a: str, b: str | None = None, context: str | None = None
    ) -> Conversation:
        """A spatial question about caption ``a`` (and ``b``) — see SPATIAL_QUESTIONS."""
        if kind not in SPATIAL_QUESTIONS:
            raise ConfigError(
                f"unknown spatial question {kind!r}; known: {', '.join(SPATIAL_QUESTIONS)}"
            )
        tmpl = SPATIAL_QUESTIONS[kind]
        if "{b}" in tmpl and not b:
            raise ConfigError(f"spatial question {kind!r} needs two objects")
        return self._first_user(tmpl.format(a=a.strip(), b=(b or "").strip()), context)

    @staticmethod
    def with_answer(conversation: Conversation, answer: str) -> Conversation:
        """The conversation plus the assistant's answer (a training example)."""
        return [*conversation, Turn("assistant", answer)]


def conversation_text(conversation: Conversation, image_token: str = "<image>") -> str:
    """Plain text rendering of a conversation (for logs and the scripted backend)."""
    out = []
    for t in conversation:
        body = f"{image_token}\n{t.text}" if t.image else t.text
        out.append(f"{t.role.upper()}: {body}")
    return "\n".join(out)
