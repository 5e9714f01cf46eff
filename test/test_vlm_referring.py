"""The engine's check of the model's answers to queries the program left to it: an answer on a
listed candidate of another kind than the noun's is never returned."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.types import Box3D, CameraIntrinsics, Candidate, SensorFrame
from spatial_ros.vlm.backend import ScriptedBackend
from spatial_ros.vlm.engine import EngineConfig, SpatialEngine


def _street_frame():
    """A grey image with a walker 10 m ahead (left) and a car 12 m ahead (right), boxes in
    the optical frame (x right, y down, z forward): listed closest first, #1 walker, #2 car."""
    cam = CameraIntrinsics(400, 200, np.array([[200.0, 0, 200], [0, 200.0, 100], [0, 0, 1]]),
                           frame_id="cam")
    frame = SensorFrame(stamp_ns=0, image=np.full((200, 400, 3), 128, np.uint8), camera=cam)
    walker = Candidate(box=Box3D(np.array([-2.0, 0.4, 10.0]), np.array([0.6, 1.7, 0.5]),
                                 frame_id="cam"), source="lidar", label="pedestrian", id="w")
    car = Candidate(box=Box3D(np.array([2.5, 0.5, 12.0]), np.array([1.7, 1.5, 4.0]),
                              frame_id="cam"), source="lidar", label="car", id="c")
    return frame, [car, walker]


@pytest.fixture()
def engine_answering():
    def make(tag: str):
        eng = SpatialEngine(ScriptedBackend(lambda conv, image: tag),
                            EngineConfig(referring="program", candidate_index=True,
                                         name_scores=False))
        return eng
    return make


def _ground(engine_answering, tag: str, query: str, cands):
    """The engine whose model answers ``tag``, and its objects for ``query`` on the street
    frame with ``cands``."""
    frame, _ = _street_frame()
    eng = engine_answering(tag)
    return eng, eng.ground(frame, [query], cands, "cam")


def test_a_model_answer_of_another_kind_gives_way_to_the_programs_pick():
    """Unit level: the model's object on a car for "the pedestrian in orange" is replaced by
    the program's pick (a pedestrian whose colour read poorly); an admissible answer stands."""
    from types import SimpleNamespace

    from spatial_ros.vlm.engine_config import EngineStats
    from spatial_ros.vlm.referring import Fallback, kind_checked

    frame, (car, walker) = _street_frame()
    car_view = SimpleNamespace(candidate=car)
    eng = SimpleNamespace(_views={0: car_view}, _points={"q0": np.zeros((3, 3))},
                          stats=EngineStats())
    model_obj = SimpleNamespace(id="q0")
    pick = SimpleNamespace(id="q0", label="pedestrian")
    fb = Fallback("the orange pedestrian", {id(object())}, program=lambda: pick)
    assert kind_checked(eng, 0, model_obj, fb) is pick
    assert eng.stats.wrong_kind == 1 and "q0" not in eng._points
    eng._views[0] = car_view
    assert kind_checked(eng, 0, model_obj, Fallback("the car", {id(car_view)})) is model_obj
    assert kind_checked(eng, 0, model_obj, None) is model_obj
    assert eng.stats.wrong_kind == 1


def test_the_model_is_not_trusted_with_a_kind_the_candidates_lack(engine_answering):
    _, (car, walker) = _street_frame()
    # no orange anywhere (a grey image): the program leaves "the pedestrian in orange" to the
    # model, which names the car; the only pedestrian, closest in colour, stands instead
    eng, out = _ground(engine_answering, "#2", "the pedestrian in orange", [car, walker])
    assert eng.stats.program_fallbacks == 1 and eng.stats.wrong_kind == 1
    np.testing.assert_allclose(out[0].box.center, walker.box.center)
    assert out[0].explanation.startswith("no candidate reads as 'pedestrian in orange'")
    assert out[0].explanation.endswith("(the model named another kind)")
    assert out[0].score < 0.1
    # the model naming the walker: its answer stands
    eng, out = _ground(engine_answering, "#1", "the pedestrian in orange", [car, walker])
    assert eng.stats.wrong_kind == 0
    np.testing.assert_allclose(out[0].box.center, walker.box.center)


def test_a_model_answer_of_another_kind_with_nothing_of_that_kind_is_no_object(
        engine_answering):
    _, (car, walker) = _street_frame()
    eng, out = _ground(engine_answering, "#2", "the orange pole", [car, walker])
    assert out == []
    assert eng.stats.wrong_kind == 1
    assert eng.stats.failure_reasons["wrong kind"] == 1
    # the same boxes without a specialist class (tabletop clusters): the model's reading of
    # the image stands, whatever the box's shape suggests
    import dataclasses

    bare = [dataclasses.replace(c, label="") for c in (car, walker)]
    eng, out = _ground(engine_answering, "#2", "the orange pole", bare)
    assert eng.stats.wrong_kind == 0 and len(out) == 1
    np.testing.assert_allclose(out[0].box.center, car.box.center)


def test_a_model_answer_of_the_right_kind_stands(engine_answering):
    _, (car, walker) = _street_frame()
    eng, out = _ground(engine_answering, "#2", "the orange car", [car, walker])
    assert eng.stats.program_fallbacks == 1 and eng.stats.wrong_kind == 0
    np.testing.assert_allclose(out[0].box.center, car.box.center)
    assert out[0].source == "vlm+lidar"  # the model's answer, fused with the candidate
