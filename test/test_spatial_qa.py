"""SpatialVLM-style QA generation and the deterministic answerer."""

from __future__ import annotations

import math
import re
import string

import numpy as np
import pytest

from spatial_ros.errors import ConfigError, ParseError
from spatial_ros.spatial import predicates as P
from spatial_ros.spatial.answers import parse_choice, parse_clock, parse_quantity, parse_yes_no
from spatial_ros.spatial.predicates import SpatialObject, Viewpoint
from spatial_ros.spatial.qa import (
    QAConfig,
    answer_question,
    generate_qa,
    resolve_references,
)
from spatial_ros.spatial.templates import (
    QUALITATIVE_TYPES,
    QUANTITATIVE_TYPES,
    QUESTION_TYPES,
)
from spatial_ros.types import Box3D

VP = Viewpoint([0.0, 0.0, 1.2], [1.0, 0.0, -0.3])  # looks along +x, pitched down; left = +y


def obj(name, centre, size, yaw=0.0, id_=None):
    return SpatialObject(name, Box3D.from_yaw(centre, size, yaw), id=id_ or name)


def kitchen():
    """Seven distinct objects on and around a table (centres / full sizes in metres)."""
    return [
        obj("table", [2.0, 0.0, 0.375], [1.2, 0.8, 0.75]),
        obj("red mug", [1.8, 0.25, 0.80], [0.08, 0.08, 0.10]),
        obj("blue bowl", [2.2, -0.15, 0.785], [0.16, 0.16, 0.07]),
        obj("lamp", [2.5, 0.3, 1.05], [0.2, 0.2, 0.6]),
        obj("chair", [1.0, -1.0, 0.45], [0.6, 0.4, 0.9], math.pi / 2),
        obj("plant", [3.5, 1.2, 0.5], [0.4, 0.4, 1.0], 0.3),
        obj("shelf", [2.6, -0.6, 1.6], [0.8, 0.25, 0.03]),
    ]


def random_scene(rng, n):
    names = ["red mug", "bowl", "lamp", "chair", "laptop", "book", "plant", "box"]
    return [
        obj(names[k], rng.uniform([0.5, -2, 0], [5, 2, 1.5]), rng.uniform(0.05, 1.0, 3),
            rng.uniform(-3, 3))
        for k in range(n)
    ]


# ----------------------------------------------------------------------------------------------
# Templates
# ----------------------------------------------------------------------------------------------


def test_template_counts_and_placeholders():
    assert len(QUESTION_TYPES) >= 30
    assert len(QUALITATIVE_TYPES) == 24 and len(QUANTITATIVE_TYPES) == 14
    fields = {"A": "the mug", "B": "the bowl", "X": "the mug", "Y": "the bowl", "D": "1 m",
              "H": "3 o'clock", "dir": "left"}
    for name, qt in QUESTION_TYPES.items():
        assert len(set(qt.questions)) >= 10, name
        assert len(set(qt.answers)) >= 5, name
        if qt.kind == "predicate":
            assert len(set(qt.negative_answers)) >= 5, name
        for t in qt.questions + qt.answers + qt.negative_answers:
            used = {f for _, f, _, _ in string.Formatter().parse(t) if f}
            assert used <= set(fields), (name, t)
            assert not re.search(r"\d", t), (name, t)  # the value is the only number
            t.format(**fields)
        for q in qt.questions:
            assert "{A}" in q, (name, q)
            if qt.kind not in ("unary_length", "clock"):
                assert "{B}" in q, (name, q)
        for a in qt.answers:
            if qt.kind == "choice":
                assert "{X}" in a
            if qt.kind.endswith("length"):
                assert a.count("{D}") == 1
            if qt.kind.endswith("clock"):
                assert "{H}" in a


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------


def test_determinism_and_split():
    objs = kitchen()
    a = generate_qa(objs, VP, 7, 100)
    b = generate_qa(objs, VP, np.random.default_rng(7), 100)
    assert a == b and len(a) == 100
    assert generate_qa(objs, VP, 8, 100) != a
    assert sum(q.qualitative for q in a) == 50
    quarter = generate_qa(objs, VP, 1, 40, QAConfig(qualitative_fraction=0.25))
    assert sum(q.qualitative for q in quarter) == 10
    # distinct questions (type, subject, object) only
    keys = [(q.type, q.subject, q.object) for q in a]
    assert len(set(keys)) == len(keys)


def test_all_types_appear_and_single_object_scenes():
    qa = generate_qa(kitchen(), VP, 0, 400)
    assert {q.type for q in qa} == set(QUESTION_TYPES)
    # One object: only single-object (quantitative) types exist; the split gives way.
    one = generate_qa(kitchen()[:1], VP, 0, 10)
    assert one and all(not q.qualitative and q.object is None for q in one)
    assert generate_qa([], VP, 0, 10) == []
    with pytest.raises(ConfigError, match="non-negative"):
        generate_qa(kitchen(), VP, 0, -1)
    only = generate_qa(kitchen(), VP, 0, 20, QAConfig(types=("height", "left_predicate")))
    assert {q.type for q in only} == {"height", "left_predicate"}
    with pytest.raises(ConfigError, match="unknown"):
        QAConfig(types=("nearness",))


def _check_pair(q, objs, cfg=None):
    """Recompute a generated pair's answer from the predicates and parse its answer text."""
    if cfg is None:
        cfg = QAConfig()
    by_id = {o.id: o for o in objs}
    a = by_id[q.subject_id]
    b = by_id.get(q.object_id)
    qt = QUESTION_TYPES[q.type]
    stem = q.type.rsplit("_", 1)[0]
    rel = {"front": "in_front_of", "closer": "closer_to_camera", "farther": "farther_from_camera",
           "left": "left_of", "right": "right_of"}.get(stem, stem)
    if qt.kind == "predicate":
        r = P.relation(rel, a, b, VP)
        assert not r.ambiguous and r.value == q.value
        assert parse_yes_no(q.answer) is q.value, q.answer
    elif qt.kind == "choice":
        r = P.relation(rel, a, b, VP)
        chosen = parse_choice(q.answer, [q.subject, q.object])
        assert chosen == (0 if r.value else 1), (q.question, q.answer)
        assert q.choice == [q.subject, q.object][chosen]
    elif qt.kind.endswith("clock"):
        c = P.clock_direction(a, VP, b if qt.kind == "pair_clock" else None)
        assert not c.ambiguous and q.value == c.hour == parse_clock(q.answer)
    else:
        expected = {
            "direct_distance": lambda: P.center_distance(a, b).value,
            "gap_distance": lambda: P.surface_distance(a, b).value,
            "horizontal_distance": lambda: P.horizontal_distance(a, b).value,
            "vertical_distance": lambda: P.vertical_distance(a, b).value,
            "width": lambda: P.width(a, VP).value,
            "height": lambda: P.height(a).value,
            "depth": lambda: P.depth(a, VP).value,
            "camera_distance": lambda: P.camera_distance(a, VP).value,
            "taller_by": lambda: P.height(a).value - P.height(b).value,
            "wider_by": lambda: P.width(a, VP).value - P.width(b, VP).value,
            "lateral_offset": lambda: abs(P.lateral_offset(a, b, VP).value),
            "behind_offset": lambda: P.depth_offset(a, b, VP).value,
        }[q.type]()
        assert q.value == pytest.approx(expected, abs=1e-12) and q.value > 0
        parsed = parse_quantity(q.answer)
        assert abs(parsed - q.value) <= q.tolerance, (q.answer, q.value)
        if q.type == "lateral_offset":
            side = "right" if P.lateral_offset(a, b, VP).value > 0 else "left"
            assert side in q.question


def test_answers_consistent_with_predicates():
    rng = np.random.default_rng(11)
    n_checked = 0
    for seed in range(12):
        objs = random_scene(rng, int(rng.integers(2, 8)))
        for q in generate_qa(objs, VP, seed, 60):
            _check_pair(q, objs)
            n_checked += 1
    assert n_checked > 500


def test_generated_questions_are_answered_identically():
    """answer_question parses every generated phrasing back to the same type and value."""
    rng = np.random.default_rng(2)
    for seed in range(6):
        objs = random_scene(rng, 5)
        objs.append(obj("red mug", rng.uniform([0.5, -2, 0], [5, 2, 1.5]), [0.1, 0.1, 0.1]))
        for q in generate_qa(objs, VP, seed, 60):
            a = answer_question(q.question, objs, VP)
            assert (a.type, a.subject, a.object, a.choice) == (
                q.type, q.subject, q.object, q.choice), q.question
            if isinstance(q.value, float):
                assert a.value == pytest.approx(q.value, abs=1e-12), q.question
            else:
                assert a.value == q.value, q.question


# ----------------------------------------------------------------------------------------------
# Ambiguity resolution
# ----------------------------------------------------------------------------------------------


def test_two_same_captions_get_lateral_qualifiers():
    objs = kitchen() + [obj("red mug", [2.1, -0.2, 0.80], [0.08, 0.08, 0.10], id_="mug2")]
    refs, dropped = resolve_references(objs, VP)
    assert dropped == []
    phrase = {r.index: r.phrase for r in refs}
    # The first mug is at y = 0.25 (left), the second at y = -0.2 (right).
    assert phrase[1] == "the red mug on the left" and phrase[7] == "the red mug on the right"
    qa = generate_qa(objs, VP, 3, 200)
    for q in qa:
        for text in (q.question, q.answer):
            for m in re.finditer(r"red mug", text):
                assert re.match(r"red mug on the (left|right)", text[m.start():]), text
    # Qualitative questions never compare the two mugs (the qualifier would give it away).
    assert not any(q.qualitative and {q.subject_id, q.object_id} == {"red mug", "mug2"}
                   for q in qa)
    every_pair = generate_qa(objs, VP, 0, 100, QAConfig(types=("direct_distance",)))
    assert len(every_pair) == 8 * 7
    mugs = [q for q in every_pair if {q.subject_id, q.object_id} == {"red mug", "mug2"}]
    assert len(mugs) == 2 and "the red mug on the right" in mugs[0].question


def test_depth_and_height_qualifiers_and_drops():
    same_lateral = [obj("cup", [1.0, 0.0, 0.8], [0.1, 0.1, 0.1], id_="c1"),
                    obj("cup", [2.0, 0.0, 0.8], [0.1, 0.1, 0.1], id_="c2")]
    refs, _ = resolve_references(same_lateral, VP)
    assert [r.phrase for r in refs] == ["the nearer cup", "the farther cup"]
    stacked = [obj("box", [2.0, 0.0, 1.0], [0.3, 0.3, 0.3], id_="b1"),
               obj("box", [2.0, 0.0, 0.5], [0.3, 0.3, 0.3], id_="b2")]
    refs, _ = resolve_references(stacked, VP)
    assert [r.phrase for r in refs] == ["the upper box", "the lower box"]
    clash = [obj("box", [2.0, 0.0, 0.5], [0.3, 0.3, 0.3], id_="b1"),
             obj("box", [2.01, 0.0, 0.5], [0.3, 0.3, 0.3], id_="b2")]
    assert resolve_references(clash, VP)[1] == [0, 1]
    three = kitchen() + [obj("lamp", [1.5, 1.0, 0.3], [0.2, 0.2, 0.6], id_="lamp2"),
                         obj("lamp", [3.0, -1.5, 0.3], [0.2, 0.2, 0.6], id_="lamp3")]
    refs, dropped = resolve_references(three, VP)
    assert dropped == [3, 7, 8]
    qa = generate_qa(three, VP, 0, 150)
    assert qa and not any("lamp" in q.question or "lamp" in q.answer for q in qa)


# ----------------------------------------------------------------------------------------------
# answer_question
# ----------------------------------------------------------------------------------------------


def test_answer_question_hand_cases():
    objs = kitchen()
    # red mug (1.8, 0.25, 0.8), blue bowl (2.2, -0.15, 0.785): centres (0.4, -0.4, 0.015) apart.
    a = answer_question("How far is the red mug from the blue bowl?", objs, VP)
    assert a.type == "direct_distance" and a.value == pytest.approx(math.sqrt(0.320225))
    assert a.answer == "The red mug and the blue bowl are 57 cm apart."
    assert a.subject_id == "red mug" and a.object_id == "blue bowl"
    a = answer_question("is the red mug to the left of the blue bowl", objs, VP)
    assert a.value is True and a.answer.startswith("Yes")
    a = answer_question("Is the blue bowl left of the red mug?", objs, VP)
    assert a.value is False and a.answer.startswith("No")
    a = answer_question("Which is taller, the lamp or the table?", objs, VP)
    assert a.choice == "the table" and a.answer == "The table is taller."
    a = answer_question("How tall is the lamp?", objs, VP, unit="in")
    assert a.answer == "The lamp is 24 inches tall." and a.value == pytest.approx(0.6)
    a = answer_question("What is the height of the chair?", objs, VP, unit="m")
    assert a.value == pytest.approx(0.9)
    a = answer_question("Where is the chair as a clock direction?", objs, VP)
    # chair (1, -1): forward 1, right 1 -> 45 deg, exactly between two hours.
    assert a.ambiguous and a.value is None
    a = answer_question("At what clock direction is the plant?", objs, VP)
    assert a.value == 11.0 and "11 o'clock" in a.answer  # atan2(-1.2, 3.5) = -18.9 deg
    # fuzzy captions and signed answers in the asked direction
    a = answer_question("How far to the right of the red mugg is the blu bowl?", objs, VP)
    assert a.type == "lateral_offset" and a.value == pytest.approx(0.4)
    a = answer_question("How far to the left of the red mug is the blue bowl?", objs, VP)
    assert a.value == pytest.approx(-0.4) and "not to the left" in a.answer
    a = answer_question("How much taller is the red mug than the lamp?", objs, VP)
    assert a.value == pytest.approx(-0.5) and "50 cm shorter" in a.answer
    # near tie -> "not clearly", no guess
    twins = [obj("cup", [2.0, 0.0, 0.8], [0.1, 0.1, 0.1]), obj("vase", [2.0, 0.01, 0.9],
                                                                  [0.1, 0.1, 0.1])]
    a = answer_question("Is the cup left of the vase?", twins, VP)
    assert a.ambiguous and a.value is None and a.answer.startswith("Not clearly")


def test_answer_question_same_captions():
    objs = kitchen() + [obj("red mug", [2.1, -0.2, 0.80], [0.08, 0.08, 0.10], id_="mug2")]
    a = answer_question("How far is the red mug on the right from the lamp?", objs, VP)
    assert a.subject_id == "mug2"
    a = answer_question("Is the left red mug taller than the chair?", objs, VP)
    assert a.subject_id == "red mug" and a.value is False
    with pytest.raises(ParseError, match="could mean any of 2 objects; say 'the red mug on"):
        answer_question("How far is the red mug from the lamp?", objs, VP)
    # Three same captions: dropped from generation, but ordinal phrases work when asking.
    cups = [obj("cup", [2.0, y, 0.8], [0.1, 0.1, 0.1], id_=f"cup{k}")
            for k, y in enumerate([0.5, 0.0, -0.5])]
    a = answer_question("How tall is the second cup from the left?", cups + kitchen(), VP)
    assert a.subject_id == "cup1"
    a = answer_question("Is the rightmost cup behind the table?", cups + kitchen(), VP)
    assert a.subject_id == "cup2"


@pytest.mark.parametrize(
    ("question", "match"),
    [
        ("How far is the spaceship from the bowl?", "no known object"),
        ("Is the red mug nice?", "one object found"),
        ("Is the red mug friendly with the lamp?", "no spatial relation"),
        ("Which is prettier, the red mug or the lamp?", "no comparison word"),
        ("", "empty"),
        ("How far are the red mug, the lamp and the chair from the plant?", "names 4 objects"),
    ],
)
def test_answer_question_errors(question, match):
    with pytest.raises(ParseError, match=match):
        answer_question(question, kitchen(), VP)


def test_answer_question_no_objects():
    with pytest.raises(ParseError, match="nothing was grounded"):
        answer_question("How far is the mug?", [], VP)


def test_sunrgbd_labels(sunrgbd_dir):
    """Real SUN RGB-D labels (upright depth frame, camera looking along Rtilt @ +y): every
    object is in view (11, 12 or 1 o'clock), left/right follows the labelled x, and generated
    answers agree with the predicates."""
    rtilt = np.array(sunrgbd_dir.joinpath("calib.txt").read_text().split("\n")[0].split(),
                     float).reshape(3, 3)
    vp = Viewpoint([0, 0, 0], rtilt @ [0.0, 1.0, 0.0])
    objs = []
    for line in sunrgbd_dir.joinpath("label.txt").read_text().splitlines():
        f = line.split()
        c = np.array(f[5:8], float)
        half = np.array(f[8:11], float)
        yaw = math.atan2(float(f[12]), float(f[11]))
        objs.append(SpatialObject(f[0].replace("_", " "), Box3D.from_yaw(c, 2 * half, yaw),
                                  id=f[0]))
    assert len(objs) == 6
    for o in objs:
        assert P.clock_direction(o, vp).hour in (11, 12, 1)
        assert P.height(o).value == pytest.approx(2 * float(o.box.size[2]) / 2)
    lamp = next(o for o in objs if o.id == "lamp")
    dresser = next(o for o in objs if o.id == "dresser")
    assert P.right_of(lamp, dresser, vp).value  # lamp x 2.57 vs dresser x -1.09
    for q in generate_qa(objs, vp, 0, 60):
        _check_pair_real(q, objs, vp)


def _check_pair_real(q, objs, vp):
    by_id = {o.id: o for o in objs}
    a, b = by_id[q.subject_id], by_id.get(q.object_id)
    if q.type == "height":
        assert q.value == pytest.approx(P.height(a).value)
    if q.type == "left_predicate":
        assert q.value == P.left_of(a, b, vp).value
    if not q.qualitative and q.unit == "m":
        assert abs(parse_quantity(q.answer) - abs(q.value)) <= q.tolerance


def test_answer_objects_from_a_sensor_frame():
    """The ask-service path: grounded boxes in base_link, the camera placed by the frame's
    transforms (camera 1 m up, turned 90 deg left: it looks along base_link +y, so its right
    is +x)."""
    from spatial_ros.errors import CalibrationError
    from spatial_ros.geometry.transforms import R_BODY_FROM_OPTICAL, TransformTree, make_transform
    from spatial_ros.spatial.qa import answer_objects
    from spatial_ros.types import CameraIntrinsics, GroundedObject, SensorFrame, yaw_to_matrix

    tree = TransformTree()
    tree.set("base_link", "camera_link", make_transform(yaw_to_matrix(math.pi / 2), [0, 0, 1]))
    tree.set("camera_link", "camera_optical_frame", make_transform(R_BODY_FROM_OPTICAL))
    cam = CameraIntrinsics.from_fov(64, 48, 90.0)
    frame = SensorFrame(0, np.zeros((48, 64, 3), np.uint8), cam, transforms=tree)
    mug = GroundedObject("0", "the mug", "mug", 0.9,
                         Box3D([0.5, 2.0, 0.05], [0.1, 0.1, 0.1], frame_id="base_link"))
    bowl = GroundedObject("1", "the bowl", "bowl", 0.9,
                          Box3D([-0.3, 2.0, 0.05], [0.2, 0.2, 0.1], frame_id="base_link"))
    a = answer_objects("Is the mug to the right of the bowl?", [mug, bowl], frame)
    assert a.value is True and a.text == a.answer and (a.subject_id, a.object_id) == ("0", "1")
    a = answer_objects("How far is the mug from the bowl?", [mug, bowl], frame)
    assert a.value == pytest.approx(0.8) and a.unit == "m"
    with pytest.raises(CalibrationError, match="share one named"):
        bowl.box.frame_id = "odom"
        answer_objects("Is the mug to the right of the bowl?", [mug, bowl], frame)
