"""`spatial-ros ask`: a spatial question about one frame of a bag -> answer text, value, unit.

The objects the question names are grounded in 3D with the perception pipeline (specialist
candidates + the VLM), then the question is answered from their boxes by the deterministic
spatial-QA answerer (``spatial_ros.spatial.qa_answer.answer_objects``), with the camera as
viewpoint.
The phrases to ground are the question's "the ..." noun phrases unless ``--query`` names them.
"""

from __future__ import annotations

import json
import re

from spatial_ros.commands.served_args import add_served_arguments, served_values

HELP = "answer a spatial question about one frame of a bag (grounds the objects it names)"

# Words that end a noun phrase ("the red mug FROM the bowl").
_STOP = {
    "from", "and", "than", "to", "of", "is", "are", "was", "in", "on", "at", "behind", "above",
    "below", "under", "over", "left", "right", "front", "closer", "farther", "further",
    "nearer", "taller", "shorter", "wider", "thinner", "bigger", "smaller", "larger", "higher",
    "lower", "or", "with", "between", "relative", "as", "seen", "by", "for", "it", "how",
    "what", "which", "where", "does", "do", "camera", "distance", "far", "apart", "tall",
    "wide", "high", "big", "much", "if", "o", "clock", "direction",
}


def add_arguments(parser) -> None:
    from spatial_ros.vlm.backends.options import add_model_arguments

    parser.add_argument("--bag", required=True, help="rosbag2 directory (MCAP or sqlite3)")
    parser.add_argument("--frame", type=int, default=0, help="synchronized frame index (0-based)")
    parser.add_argument("--question", required=True,
                        help='e.g. "How far is the red mug from the blue bowl?"')
    parser.add_argument("--model", default="",
                        help="local model directory (default: the embedded models/default)")
    parser.add_argument("--query", action="append", default=[],
                        help="phrase to ground (repeatable; default: taken from the question)")
    parser.add_argument("--unit", default="auto", help="auto, m, cm, in, ft")
    parser.add_argument("--output-frame", default="base_link", help="z-up frame of the boxes")
    parser.add_argument("--lidar-preset", choices=("auto", "tabletop", "street"), default="auto",
                        help="auto: chosen from the first cloud's ranges (logged)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    add_model_arguments(parser)
    parser.add_argument("--image-topic", default="/camera/image_raw")
    parser.add_argument("--info-topic", default="/camera/camera_info")
    parser.add_argument("--cloud-topic", default="/lidar/points")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    add_served_arguments(parser)


def phrases_in_question(question: str) -> list[str]:
    """The "the/a/an ..." noun phrases of a question, e.g. "How far is the red mug from the
    blue bowl?" -> ["the red mug", "the blue bowl"] (up to four words after the article,
    stopping at a relation or question word)."""
    words = re.findall(r"[a-z0-9']+", question.lower())
    out: list[str] = []
    i = 0
    while i < len(words):
        if words[i] in ("the", "a", "an"):
            j = i + 1
            while j < len(words) and j - i <= 4 and words[j] not in _STOP:
                j += 1
            if j > i + 1:
                phrase = " ".join(["the", *words[i + 1 : j]])
                if phrase not in out:
                    out.append(phrase)
            i = j
        else:
            i += 1
    return out


def run(args) -> int:
    from spatial_ros.bagio import frames_from_bag
    from spatial_ros.errors import ConfigError, DataError, ParseError
    from spatial_ros.perception import PerceptionConfig, PerceptionPipeline, normalize_queries
    from spatial_ros.spatial.qa_answer import answer_objects
    from spatial_ros.user_text import bounded_text
    from spatial_ros.vlm.backends.options import model_options_from_args

    if args.frame < 0:
        raise ConfigError(f"--frame {args.frame} must be >= 0")
    # bounded and cleaned before any parser reads it (the node's AskSpatial does the same)
    args.question = bounded_text(args.question, "question",
                                 PerceptionConfig().max_question_chars)
    queries = normalize_queries(args.query or phrases_in_question(args.question))
    if not queries:
        raise ParseError(
            f"found no object phrase in {args.question!r}; name the objects with --query"
        )
    frame = None
    for fr in frames_from_bag(args.bag, image_topic=args.image_topic,
                              info_topic=args.info_topic, cloud_topic=args.cloud_topic or None):
        if fr.index == args.frame:
            frame = fr
            break
    if frame is None:
        raise DataError(f"{args.bag} has no synchronized frame {args.frame}")
    cfg = PerceptionConfig(
        cloud_topic=args.cloud_topic, output_frame=args.output_frame, queries=queries,
        model_path=args.model, device=args.device, lidar_preset=args.lidar_preset,
        relation_pairs=[], **model_options_from_args(args), **served_values(args),
    )
    pipe = PerceptionPipeline(cfg)
    pipe.load()
    try:
        res = pipe.process(frame, queries)
    finally:
        pipe.unload()
    qa = answer_objects(args.question, res.objects, frame, unit=args.unit)
    value = qa.value
    if isinstance(value, float):
        value = round(value, 4)
    out = {
        "question": args.question,
        "answer": qa.answer,
        "value": value,
        "unit": qa.unit,
        "type": qa.type,
        "stamp_ns": frame.stamp_ns,
        "grounded": {o.query: [round(float(v), 3) for v in o.box.center] for o in res.objects},
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(qa.answer)
        print(f"value: {value} {qa.unit or ''}".rstrip())
    return 0
