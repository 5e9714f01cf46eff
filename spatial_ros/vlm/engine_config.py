"""The engine's configuration and per-call types: EngineConfig (YAML / ROS parameters via
``config.from_dict``), Query (a phrase, optionally with an image region), EngineStats (counters
since the engine was created)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from spatial_ros.config import param
from spatial_ros.errors import ConfigError
from spatial_ros.vlm.lifting import FusionConfig
from spatial_ros.vlm.prompts import DEFAULT_SYSTEM
from spatial_ros.vlm.visual_prompts import COLORS, KINDS

UNKNOWN_TAG = ("rank", "retry", "drop")
REFERRING = ("program", "model")


@dataclass(frozen=True)
class EngineConfig:
    """Behaviour of the SpatialEngine (fills from YAML / ROS parameters via config.from_dict)."""

    specialist_prompts: bool = param(True, "list specialist candidate boxes in the prompt")
    max_candidates: int = param(20, "most candidates listed in a prompt (closest first)")
    candidate_colours: bool = param(
        False, "append each listed candidate's colour name (from the image) to its box; also on "
        "when the model was trained with it (its spatial_ros_vlm.json says so)"
    )
    candidate_sizes: bool = param(
        False, "put a size word from each listed candidate's box (flat, tall, wide, small, "
        "slim, large) before its colour; also on when the model was trained with it"
    )
    candidate_index: bool = param(
        False, "tag the listed candidates (their words + rank among candidates with the same "
        "words: red1, red2, small red1; #k without words) so the model can answer with a tag; "
        "also on when the model was trained with it (its spatial_ros_vlm.json says so)"
    )
    vcot: bool = param(False, "visual chain of thought: ask the 2D box first, then the 3D box")
    visual_prompts: bool = param(
        False, "draw the listed candidates' 2D boxes on the image (ViP-LLaVA-style marks)"
    )
    visual_prompt_kind: str = param(
        "rectangle", "mark drawn for queries that come with an image region (ViP-LLaVA kinds)"
    )
    visual_prompt_color: str = param("red", "colour of the marks")
    max_new_tokens: int = param(64, "longest answer, tokens")
    fuse: bool = param(True, "replace the model's geometry by the matching candidate's")
    fusion_iou_2d: float = param(0.3, "2D IoU with a candidate that counts as a match")
    fusion_center_fraction: float = param(
        0.06, "or: centres closer than this fraction of the image diagonal"
    )
    fusion_depth_log_tol: float = param(0.35, "and: |ln(z_answer / z_candidate)| at most this")
    system_prompt: str = param(DEFAULT_SYSTEM, "system prompt ('' for none)")
    default_score: float = param(1.0, "score of an answer when the backend gives none, [0, 1]")
    unknown_tag: str = param(
        "rank", "an answer naming a candidate tag the prompt does not hold (a misread size or "
        "colour word, or an object the specialist missed): rank (of the listed tags sharing a "
        "word with it, take the one the model finds likeliest as its answer; retry when none "
        "shares a word or the backend cannot score) | retry (ask once more without the list, "
        "for a box answer) | drop"
    )

    referring: str = param(
        "program", "how a query is understood: program (parse the referring expression; score "
        "every listed candidate for each noun phrase by category, colour and the model's tag "
        "scores; evaluate spatial words such as left, closest, second, bigger, next to, "
        "between in 3D) | model (the whole query goes to the model)"
    )
    name_scores: bool = param(
        True, "program: the model scores every listed tag for each noun phrase (off: names "
        "from category shape and colour alone)"
    )
    min_membership: float = param(
        0.08, "program: a noun phrase whose best candidate fits worse than this (0..1) is "
        "asked to the model directly (the object may be missing from the list)"
    )

    def __post_init__(self) -> None:
        bad = []
        if self.referring not in REFERRING:
            bad.append(f"referring={self.referring!r} (one of {', '.join(REFERRING)})")
        if not 0.0 <= self.min_membership <= 1.0:
            bad.append(f"min_membership={self.min_membership} (must be in [0, 1])")
        if self.max_candidates < 0:
            bad.append(f"max_candidates={self.max_candidates} (must be >= 0)")
        if self.visual_prompt_kind not in KINDS:
            bad.append(
                f"visual_prompt_kind={self.visual_prompt_kind!r} (one of {', '.join(KINDS)})"
            )
        if self.visual_prompt_color not in COLORS:
            bad.append(
                f"visual_prompt_color={self.visual_prompt_color!r} (one of {', '.join(COLORS)})"
            )
        if self.max_new_tokens < 1:
            bad.append(f"max_new_tokens={self.max_new_tokens} (must be >= 1)")
        if self.unknown_tag not in UNKNOWN_TAG:
            bad.append(f"unknown_tag={self.unknown_tag!r} (one of {', '.join(UNKNOWN_TAG)})")
        if not 0.0 <= self.default_score <= 1.0:
            bad.append(f"default_score={self.default_score} (must be in [0, 1])")
        if bad:
            raise ConfigError("invalid EngineConfig: " + "; ".join(bad))
        _ = self.fusion  # validates the fusion thresholds

    @property
    def fusion(self) -> FusionConfig:
        return FusionConfig(
            self.fusion_iou_2d, self.fusion_center_fraction, self.fusion_depth_log_tol
        )


@dataclass(frozen=True)
class Query:
    """A grounding query: text, optionally with an image region it refers to.

    Attributes:
        text: the phrase ("the red mug"); with a region and empty text, the engine asks about
            "the object <mark phrase>" ("the object within the red rectangle").
        region_2d: (4,) x1, y1, x2, y2 px of the referred region, or None.
        mask: (H, W) bool mask of the referred region, or None.
        visual_prompt: mark kind for this query (None: the engine's default).
    """

    text: str = ""
    region_2d: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = field(default=None, compare=False)
    visual_prompt: str | None = None


@dataclass
class EngineStats:
    """Counters since the engine was created (``reset()`` clears them)."""

    frames: int = 0
    queries: int = 0
    objects: int = 0
    parse_failures: int = 0
    failure_reasons: Counter = field(default_factory=Counter)
    fused: int = 0
    lifted_2d: int = 0
    retries: int = 0
    ranked: int = 0
    reassigned: int = 0
    program: int = 0  # queries the referring-expression program answered
    ambiguous: int = 0  # ... of them marked ambiguous
    program_fallbacks: int = 0  # queries it left to the model
    unmatched: int = 0  # queries whose spatial words no candidate satisfies (no object)
    wrong_kind: int = 0  # model answers on a candidate of another kind than the noun's
    total_ms: float = 0.0
    generate_ms: float = 0.0
    new_tokens: int = 0
    last_frame_ms: float = 0.0

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    @property
    def parse_failure_rate(self) -> float:
        return self.parse_failures / self.queries if self.queries else 0.0

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "failure_reasons"}
        d["failure_reasons"] = dict(self.failure_reasons)
        d["parse_failure_rate"] = self.parse_failure_rate
        return d
