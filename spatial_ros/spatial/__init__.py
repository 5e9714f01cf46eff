"""Spatial predicates, human-like answers and SpatialVLM-style spatial QA (ROS-free).

Shared by the perception node's ``ask`` service, the reward annotator and ``training/``:

- :mod:`.objects`: the inputs (SpatialObject, Viewpoint, PredicateConfig) and results
  (Relation, Measurement, ClockDirection); :mod:`.box_geometry`: exact oriented-box geometry.
- :mod:`.predicates`: precise relations (left_of, behind, taller, ...) and measurements
  (distances, height, width, depth, clock direction) over boxes in a gravity-aligned z-up frame.
- :mod:`.answers`: human-like rounding and units, and parsers for answers (lengths, yes/no,
  which-object, clock hours).
- :mod:`.qa`: the QA generator (``generate_qa``); :mod:`.qa_answer`: the deterministic
  answerer (``answer_question``).
"""

from spatial_ros.spatial.answers import (
    format_length,
    parse_choice,
    parse_clock,
    parse_quantity,
    parse_yes_no,
    rounding_tolerance,
)
from spatial_ros.spatial.objects import (
    ClockDirection,
    Measurement,
    PredicateConfig,
    Relation,
    SpatialObject,
    Viewpoint,
    reorient,
)
from spatial_ros.spatial.predicates import RELATIONS, clock_direction
from spatial_ros.spatial.qa import QAConfig, QAPair, generate_qa
from spatial_ros.spatial.qa_answer import answer_objects, answer_question

__all__ = [
    "RELATIONS",
    "answer_objects",
    "ClockDirection",
    "Measurement",
    "PredicateConfig",
    "QAConfig",
    "QAPair",
    "Relation",
    "SpatialObject",
    "Viewpoint",
    "answer_question",
    "clock_direction",
    "format_length",
    "generate_qa",
    "parse_choice",
    "parse_clock",
    "parse_quantity",
    "parse_yes_no",
    "reorient",
    "rounding_tolerance",
]
