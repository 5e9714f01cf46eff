"""SpatialEngine: natural-language queries + a sensor frame + specialist candidates -> metric
3D objects in an output frame.

Per frame: candidates are brought into the camera optical frame and listed in the prompt
(Cube-LLM specialist box prompts, closest first); every query becomes one conversation; all of
them run as ONE backend batch (the shared image/candidate prefix is encoded once); each answer
is parsed (failures are logged and counted, that query yields no object — never an exception),
lifted to a metric box, fused with the candidate it designates, and moved to the output frame.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.language.grounding import view_colours
from spatial_ros.types import Box3D, Candidate, GroundedObject, SensorFrame
from spatial_ros.vlm.answers import make_distinct, ranked
from spatial_ros.vlm.appearance import candidate_attribute
from spatial_ros.vlm.backend import GenerationResult, GroundingAnswer, VLMBackend
from spatial_ros.vlm.codec import BoxCodec, CodecConfig, ParseFailure
from spatial_ros.vlm.engine_config import (  # noqa: F401 - re-exported
    REFERRING,
    UNKNOWN_TAG,
    EngineConfig,
    EngineStats,
    Query,
)
from spatial_ros.vlm.lifting import (
    CandidateView,
    candidate_views,
    lift_box2d_with_depth,
    lift_box3d,
    match_candidate,
    project_box,
    project_points,
    surface_distance,
)
from spatial_ros.vlm.prompts import PromptBuilder, candidate_tags
from spatial_ros.vlm.referring import kind_checked
from spatial_ros.vlm.visual_prompts import draw_marks, draw_visual_prompt

log = logging.getLogger(__name__)

__all__ = ["REFERRING", "UNKNOWN_TAG", "EngineConfig", "EngineStats", "Query", "SpatialEngine"]

@dataclass
class _Lifted:
    box_optical: Box3D
    box_2d: np.ndarray | None
    source: str
    label: str
    points_optical: np.ndarray | None = None
    view: CandidateView | None = None  # the candidate it was fused with


class SpatialEngine:
    """Grounds natural-language queries in a sensor frame.

    Args:
        backend: any VLMBackend (transformers model, or a ScriptedBackend in tests).
        config: EngineConfig.
        codec: the box codec; default: the one recorded with the model
            (``spatial_ros_vlm.json``) when the backend has a model directory, else defaults.
    """

    def __init__(
        self,
        backend: VLMBackend,
        config: EngineConfig | None = None,
        codec: BoxCodec | CodecConfig | None = None,
    ) -> None:
        self.backend = backend
        self.config = config or EngineConfig()
        model_dir = getattr(backend, "info", {}).get("model_dir")
        meta: dict = {}
        if model_dir:
            from spatial_ros.vlm.tiny import read_meta

            meta = read_meta(model_dir)
        if codec is None and model_dir:
            from spatial_ros.vlm.tiny import codec_config_for

            codec = codec_config_for(model_dir)
        self.candidate_colours = bool(self.config.candidate_colours
                                      or meta.get("candidate_colours", False))
        self.candidate_sizes = bool(self.config.candidate_sizes
                                    or meta.get("candidate_sizes", False))
        self.candidate_index = bool(self.config.candidate_index
                                    or meta.get("candidate_index", False))
        self.codec = codec if isinstance(codec, BoxCodec) else BoxCodec(codec)
        self.prompts = PromptBuilder(self.codec, self.config.system_prompt or None)
        self.stats = EngineStats()
        self._points: dict[str, np.ndarray] = {}

    # -- public API ----------------------------------------------------------------------

    def ground(
        self,
        frame: SensorFrame,
        queries: list[str | Query],
        candidates: list[Candidate] | None = None,
        output_frame: str = "base_link",
        distinct: bool = False,
    ) -> list[GroundedObject]:
        """Ground every query in ``frame``.

        Args:
            frame: the synchronized sensor frame (image, camera, depth, transforms).
            queries: phrases, or Query objects (with an image region for visual prompts).
            candidates: specialist proposals (boxes in z-up frames named by box.frame_id).
            output_frame: frame of the returned boxes (must be connected to the camera's
                optical frame in ``frame.transforms``).
            distinct: the queries name different objects (a goal's target and reference):
                when answers land on the same listed candidate, the colliding queries are
                given different candidates, the assignment the model finds likeliest
                (needs a tagged list and a backend that scores answers).

        Returns:
            One GroundedObject per query whose answer parsed and lifted, in query order
            (ids "q<index>"). Parse failures are logged and counted in ``stats``.

        Raises:
            CalibrationError: the output frame or a candidate's frame is not connected to the
                camera (a set-up error, not a model error).
        """
        t0 = time.perf_counter()
        cam = frame.camera
        cfg = self.config
        qs = [q if isinstance(q, Query) else Query(text=str(q)) for q in queries]
        T_out = self._lookup(frame, output_frame, cam.frame_id)
        views = candidate_views(list(candidates or []), cam, frame.transforms)
        visible = self._visible(views)  # the program considers all; the prompt lists the closest
        listed = visible[: cfg.max_candidates]
        context = None
        tags: list[str] = []  # the listed candidates' tags, when the list is numbered
        use_program = cfg.referring == "program" and bool(qs)
        colours = view_colours(frame, visible if use_program else listed) if listed else []
        adapter = self.backend.adapter
        # Set-of-marks families: the candidates drawn as numbered marks and listed; answers "#k".
        marks = bool(getattr(adapter, "set_of_marks", False) and cfg.specialist_prompts
                     and listed)
        if marks:
            tags = candidate_tags([None] * len(listed))
            context = adapter.marks_context([v.box_2d for v in listed], tags,
                                            frame.image.shape[:2])
        elif cfg.specialist_prompts and listed:
            words = None
            if self.candidate_colours or self.candidate_sizes:
                words = [candidate_attribute(frame.image, v.box_optical, v.box_2d,
                                             self.candidate_colours, self.candidate_sizes, col)
                         for v, col in zip(listed, colours[: len(listed)], strict=True)]
            if self.candidate_index:
                words = tags = candidate_tags(words if words else [None] * len(listed))
            context = self.prompts.specialist_block([v.box_optical for v in listed], cam, words)
        self.stats.frames += 1
        self.stats.queries += len(qs)
        self._points = {}
        self._views: dict[int, CandidateView | None] = {}  # query -> the candidate it took
        if not qs:
            self.stats.last_frame_ms = (time.perf_counter() - t0) * 1e3
            self.stats.total_ms += self.stats.last_frame_ms
            return []

        images, texts = self._images_and_texts(frame, qs, listed, marks)
        found: dict[int, GroundedObject] = {}
        fallbacks: dict = {}  # query -> referring.Fallback: its model answer's kind is checked
        todo = list(range(len(qs)))
        if cfg.referring == "program" and listed:
            from spatial_ros.vlm.referring import program_objects

            found, refused, canonical, fallbacks = program_objects(
                self, frame, qs, visible, colours, tags, context, images[0], T_out,
                output_frame, distinct)
            todo = [i for i in todo if i not in found and i not in refused]
            for i, text in canonical.items():  # the model knows the canonical wording best
                if not (qs[i].region_2d is not None or qs[i].mask is not None):
                    texts[i] = text
        if not todo:
            return self._done(found, t0)
        if cfg.vcot and adapter.family == "cube-llm":
            first = [self.prompts.box2d(texts[i], context) for i in todo]
            r1 = self._generate(self._subset(images, todo), first)
            convs = [self.prompts.vcot_second(c, r.text) for c, r in zip(first, r1, strict=True)]
        else:
            convs = [adapter.grounding_prompt(self.prompts, texts[i], context) for i in todo]
        results = self._generate(self._subset(images, todo), convs)
        convs = dict(zip(todo, convs, strict=True))
        results = dict(zip(todo, results, strict=True))

        retry: list[int] = []  # answers naming a tag the prompt did not hold
        for i in todo:
            q, text, res = qs[i], texts[i], results[i]
            got = self._object(i, q, text, res, frame, views, listed, tags, T_out, output_frame)
            if isinstance(got, ParseFailure) and got.kind == "candidate tag" and context:
                if cfg.unknown_tag == "rank":
                    img = images[0] if len(images) == 1 else images[i]
                    got = ranked(self, i, q, text, res, convs[i], img, frame, views, listed,
                                 tags, T_out, output_frame) or got
                if isinstance(got, ParseFailure) and cfg.unknown_tag != "drop":
                    retry.append(i)
                    continue
            if not isinstance(got, ParseFailure):
                got = kind_checked(self, i, got, fallbacks.get(i))
            if not isinstance(got, ParseFailure):
                found[i] = got
            else:
                self._fail(i, text, got, res.text)
        if retry:
            # The model pointed at a candidate the list does not hold (e.g. an object the
            # specialist missed): ask once more without the list, for a box answer.
            self.stats.retries += len(retry)
            again = [adapter.grounding_prompt(self.prompts, texts[i], None) for i in retry]
            imgs = images if len(images) == 1 else [images[i] for i in retry]
            for i, res in zip(retry, self._generate(imgs, again), strict=True):
                got = self._object(i, qs[i], texts[i], res, frame, views, listed, [], T_out,
                                   output_frame)
                if not isinstance(got, ParseFailure):
                    got = kind_checked(self, i, got, fallbacks.get(i))
                if isinstance(got, ParseFailure):
                    self._fail(i, texts[i], got, res.text)
                else:
                    found[i] = got
        if distinct and tags and len(todo) == len(qs):
            make_distinct(self, found, qs, texts, results, convs, images, frame, views, listed,
                          tags, T_out, output_frame, fallbacks)
        return self._done(found, t0)

    @staticmethod
    def _subset(images: list, idx: list[int]) -> list:
        return images if len(images) == 1 else [images[i] for i in idx]

    def _done(self, found: dict[int, GroundedObject], t0: float) -> list[GroundedObject]:
        out = [found[i] for i in sorted(found)]
        self.stats.objects += len(out)
        self.stats.last_frame_ms = (time.perf_counter() - t0) * 1e3
        self.stats.total_ms += self.stats.last_frame_ms
        return out

    def _object(self, i: int, q: Query, text: str, res: GenerationResult, frame: SensorFrame,
                views: list[CandidateView], listed: list[CandidateView], tags: list[str],
                T_out: np.ndarray, output_frame: str) -> GroundedObject | ParseFailure:
        """The GroundedObject of query ``i``'s answer (its points kept for ``points``), or why
        there is none."""
        H, W = frame.image.shape[:2]
        adapter = self.backend.adapter
        parsed = adapter.parse_grounding(res.text, self.codec, (H, W), res.model_image_hw)
        if not parsed.ok:
            return parsed
        lifted = self._lift(parsed.value, frame, views, listed, tags, res.text)
        if isinstance(lifted, ParseFailure):
            return lifted
        score = res.score if np.isfinite(res.score) else self.config.default_score
        box_out = lifted.box_optical.transformed(T_out, output_frame)
        obj = GroundedObject(
            id=f"q{i}",
            query=q.text or text,
            label=lifted.label,
            score=float(np.clip(score, 0.0, 1.0)),
            box=box_out,
            box_2d=lifted.box_2d,
            distance=float(np.linalg.norm(lifted.box_optical.center)),
            source=lifted.source,
            raw_text=res.text,
        )
        if lifted.points_optical is not None:
            P = lifted.points_optical
            self._points[obj.id] = P @ T_out[:3, :3].T + T_out[:3, 3]
        self._views[i] = lifted.view
        return obj

    def specialist_objects(
        self, frame: SensorFrame, candidates: list[Candidate], output_frame: str = "base_link"
    ) -> list[GroundedObject]:
        """Every candidate as a GroundedObject in ``output_frame`` (specialists-only mode:
        no model), with its distance from the camera and its 2D projection."""
        cam = frame.camera
        T_out = self._lookup(frame, output_frame, cam.frame_id)
        out = []
        for k, v in enumerate(candidate_views(candidates, cam, frame.transforms)):
            c = v.candidate
            out.append(
                GroundedObject(
                    id=c.id or f"{c.source}_{k}",
                    query="",
                    label=c.label,
                    score=float(c.score),
                    box=v.box_optical.transformed(T_out, output_frame),
                    box_2d=v.box_2d,
                    distance=float(np.linalg.norm(v.box_optical.center)),
                    source=c.source,
                )
            )
        return out

    def distance(self, a: GroundedObject, b: GroundedObject) -> dict:
        """Distances between two objects of the LAST ground() call (same output frame):
        ``center`` (m), ``surface`` (m, closest surfaces: from the fused candidates' points
        when both have them, else between the boxes) and ``method`` ("points"/"boxes")."""
        if a.box.frame_id != b.box.frame_id:
            raise ConfigError(
                f"objects are in different frames ({a.box.frame_id!r}, {b.box.frame_id!r})"
            )
        surf, method = surface_distance(a.box, b.box, self._points.get(a.id),
                                        self._points.get(b.id))
        return {
            "center": float(np.linalg.norm(a.box.center - b.box.center)),
            "surface": surf,
            "method": method,
        }

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _lookup(frame: SensorFrame, target: str, source: str) -> np.ndarray:
        if target == source:
            return np.eye(4)
        if frame.transforms is None:
            from spatial_ros.errors import CalibrationError

            raise CalibrationError(
                f"no transforms in the frame to reach output frame {target!r} from {source!r}"
            )
        return frame.transforms.lookup(target, source)

    def _listed(self, views: list[CandidateView]) -> list[CandidateView]:
        """Candidates worth listing in the prompt: the ``max_candidates`` closest visible."""
        return self._visible(views)[: self.config.max_candidates]

    @staticmethod
    def _visible(views: list[CandidateView]) -> list[CandidateView]:
        """Candidates in front of the camera and in the image, closest first."""
        vis = [v for v in views if v.box_optical.center[2] > 0 and v.box_2d is not None]
        vis.sort(key=lambda v: float(np.linalg.norm(v.box_optical.center)))
        return vis

    def _images_and_texts(self, frame: SensorFrame, qs: list[Query], listed: list[CandidateView],
                          marks: bool = False):
        cfg = self.config
        base = frame.image
        if marks:  # numbered set-of-marks tags, once on the shared image
            base = draw_marks(base, [v.box_2d for v in listed], color=cfg.visual_prompt_color)
        elif cfg.visual_prompts and listed:
            # Mark every listed candidate once on the shared image (the prefix stays shared).
            for v in listed:
                base = draw_visual_prompt(base, "rectangle", v.box_2d,
                                          color=cfg.visual_prompt_color).image
        images: list[np.ndarray] = []
        texts: list[str] = []
        any_region = any(q.region_2d is not None or q.mask is not None for q in qs)
        for q in qs:
            if q.region_2d is None and q.mask is None:
                images.append(base)
                texts.append(q.text)
                continue
            vp = draw_visual_prompt(
                base,
                q.visual_prompt or cfg.visual_prompt_kind,
                None if q.region_2d is None else np.asarray(q.region_2d, float),
                q.mask,
                color=cfg.visual_prompt_color,
            )
            images.append(vp.image)
            texts.append(f"{q.text} {vp.phrase}".strip() if q.text else vp.query())
        if not any_region:
            images = [base]  # one shared image: the backend can reuse its prefix
        return images, texts

    def _generate(self, images, convs) -> list[GenerationResult]:
        res = self.backend.generate(images, convs, self.config.max_new_tokens)
        if res:
            # prefill/decode times are per batch: count each batch once.
            seen = set()
            for r in res:
                key = (r.prefill_ms, r.decode_ms, r.batch_size)
                if key not in seen:
                    seen.add(key)
                    self.stats.generate_ms += r.prefill_ms + r.decode_ms
                self.stats.new_tokens += r.new_tokens
        return res

    def _fail(self, i: int, text: str, failure: ParseFailure, raw: str) -> None:
        self.stats.parse_failures += 1
        self.stats.failure_reasons[failure.kind] += 1
        n = self.stats.parse_failures
        # The first 20 failures at WARNING, then every 100th (a bad model at 10 Hz would flood
        # the log); all of them at DEBUG. ``stats.failure_reasons`` counts every one.
        level = logging.WARNING if n <= 20 or n % 100 == 0 else logging.DEBUG
        log.log(level, "query %d %r: no object (%s); model said %r [%d parse failures so far]",
                i, text, failure.reason, raw[:120], n)

    def _lift(self, ans: GroundingAnswer, frame: SensorFrame, views: list[CandidateView],
              listed: list[CandidateView], tags: list[str], raw: str):
        cam = frame.camera
        fcfg = self.config.fusion
        if ans.candidate is not None:  # a tag of the prompt's numbered list ("red2")
            if ans.candidate not in tags:
                return ParseFailure(
                    f"candidate tag: {raw.strip()!r} designates no candidate (the prompt "
                    f"listed {', '.join(tags) or 'no numbered candidates'})"
                )
            return self._fused(listed[tags.index(ans.candidate)], ans)
        if ans.box3d is not None:
            box = lift_box3d(ans.box3d, cam, self.codec)
            if box.center[2] <= 0:
                return ParseFailure("behind camera: lifted box has z <= 0")
            b2 = project_box(box, cam)
            cuv = project_points(box.center[None], cam)[0]
            m = None
            if self.config.fuse and views:
                m = match_candidate(b2, cuv, float(box.center[2]), views, cam, fcfg)
            if m is None:
                return _Lifted(box, b2, "vlm", ans.label)
            return self._fused(views[m.index], ans)
        # 2D-only answer: a candidate, else the depth image, lifts it.
        b2 = np.asarray(ans.box_2d, dtype=np.float64)
        cuv = np.array([(b2[0] + b2[2]) / 2, (b2[1] + b2[3]) / 2])
        if views:
            m = match_candidate(b2, cuv, None, views, cam, fcfg)
            if m is not None:
                return self._fused(views[m.index], ans)
        if frame.depth is not None:
            box = lift_box2d_with_depth(b2, cam, frame.depth)
            if box is not None:
                self.stats.lifted_2d += 1
                return _Lifted(box, b2, "vlm+depth", ans.label)
        return ParseFailure(
            "unliftable: a 2D-only answer matched no candidate and the frame has no usable depth"
        )

    def _fused(self, v: CandidateView, ans: GroundingAnswer) -> _Lifted:
        self.stats.fused += 1
        c = v.candidate
        pts = None
        if c.points is not None and len(c.points):
            pts = np.asarray(c.points, dtype=np.float64)[:, :3]
            pts = pts @ v.T_cam_from_cand[:3, :3].T + v.T_cam_from_cand[:3, 3]  # -> optical
        lifted = _Lifted(v.box_optical, v.box_2d, f"vlm+{c.source}", ans.label or c.label)
        lifted.points_optical = pts
        lifted.view = v
        return lifted
