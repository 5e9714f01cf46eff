"""PerceptionPipeline without ROS: VLM mode with an oracle backend on a simulated tabletop frame
(exact answers -> fused LiDAR boxes), pair distances from SpatialEngine.distance (closest
points of the fused candidates), a raising backend -> ModelError, unload, and the scorer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spatial_ros.errors import ConfigError, ModelError
from spatial_ros.evaluation.replay import sensor_origins
from spatial_ros.perception import PerceptionConfig, PerceptionPipeline
from spatial_ros.perception_metrics import candidate_recall, grounding_queries, score_outputs
from spatial_ros.vlm.backend import ScriptedBackend
from spatial_ros.vlm.codec import BoxCodec
from spatial_ros.vlm.lifting import points_distance


def oracle_backend(sim_frame) -> ScriptedBackend:
    """Answers every grounding question with the exact truth box of the caption it names (the
    caption ends the question: '...describes: the red mug'); unknown captions get no box."""
    frame, truth = sim_frame.sensor_frame(), sim_frame.truth
    codec = BoxCodec()
    T = frame.transforms.lookup(frame.camera.frame_id, "base_link")
    boxes = {o.caption: o.box.transformed(T, frame.camera.frame_id) for o in truth.objects}

    def answer(conv, image):
        caption = conv[-1].text.rsplit(": ", 1)[-1].strip()
        box = boxes.get(caption)
        return "I cannot find it." if box is None else codec.encode_box3d(box, frame.camera)

    return ScriptedBackend(answer)


@pytest.fixture(scope="module")
def sim():
    from spatial_ros.sim import SimConfig, iter_frames

    frames = iter_frames(SimConfig("tabletop", seed=104, frames=1))
    return next(iter(frames))


def _pipeline(queries, pairs, backend, **kw) -> PerceptionPipeline:
    cfg = PerceptionConfig(queries=queries, relation_pairs=pairs, **kw)
    pipe = PerceptionPipeline(cfg, backend=backend)
    pipe.load()
    return pipe


def test_vlm_mode_fuses_and_measures_pairs_from_candidate_points(sim):
    frame, truth = sim.sensor_frame(), sim.truth
    queries = grounding_queries(truth)
    assert len(queries) >= 3
    a, b = queries[0], queries[1]
    pipe = _pipeline(queries + ["the invisible unicorn"], [f"{a} | {b}"], oracle_backend(sim))
    res = pipe.process(frame, queries + ["the invisible unicorn"])
    assert res.stamp_ns == frame.stamp_ns and res.frame_id == "base_link"
    assert res.parse_failures == 1  # the unicorn: no box in the answer, counted, no object
    assert {o.query for o in res.objects} == set(queries)

    score = score_outputs([(res.objects, res.relations, res.stamp_ns, truth)], queries,
                          sensor_origins(frame, "base_link"))
    assert score.n == len(queries) and score.grounding.missing == 0
    # exact answers: fused with the LiDAR candidate where one matches, the answer box otherwise
    assert {o.source for o in res.objects} == {"vlm+lidar"}
    assert score.accuracy(0.25) >= 0.9
    assert score.distance_within(0.10) == 1.0  # from the camera, as published

    # the pair relations: centre-to-centre and closest surface, from SpatialEngine.distance
    rels = {r.predicate: r for r in res.relations if r.subject_id != "sensor"}
    oa = next(o for o in res.objects if o.query == a)
    ob = next(o for o in res.objects if o.query == b)
    assert set(rels) == {"distance", "surface_distance"}
    assert (rels["distance"].subject_id, rels["distance"].object_id) == (oa.id, ob.id)
    assert rels["distance"].value == pytest.approx(np.linalg.norm(oa.box.center - ob.box.center))
    assert len(score.pair_errors) == 1 and score.pair_within(0.10) == 1.0
    want = pipe.engine.distance(oa, ob)
    assert rels["surface_distance"].value == pytest.approx(want["surface"])
    # both fused on this seed: the closest LiDAR points of their candidates, not the boxes
    assert oa.source == ob.source == "vlm+lidar"
    assert want["method"] == "points" and "closest points" in rels["surface_distance"].answer
    assert all(c.box.frame_id == "base_link" for c in res.candidates)
    ca = next(c for c in res.candidates if np.allclose(c.box.center, oa.box.center, atol=1e-9))
    cb = next(c for c in res.candidates if np.allclose(c.box.center, ob.box.center, atol=1e-9))
    surface = points_distance(ca.points[:, :3], cb.points[:, :3])
    assert rels["surface_distance"].value == pytest.approx(surface, abs=1e-6)
    assert surface < rels["distance"].value
    # sensor relations: one per object, equal to the published distance
    sens = {r.object_id: r.value for r in res.relations if r.subject_id == "sensor"}
    assert sens == {o.id: pytest.approx(o.distance) for o in res.objects}


def test_pairs_skip_missing_queries_and_sensor_relations_can_be_off(sim):
    frame = sim.sensor_frame()
    q = grounding_queries(sim.truth)[0]
    pipe = _pipeline([q], [f"{q} | the invisible unicorn"], oracle_backend(sim),
                     sensor_distances=False)
    res = pipe.process(frame, [q])
    assert len(res.objects) == 1 and res.relations == []


def test_backend_that_raises_is_a_model_error_and_pipeline_recovers(sim):
    frame = sim.sensor_frame()
    q = grounding_queries(sim.truth)[0]
    calls = []

    def flaky(conv, image):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return oracle_backend(sim)._answer(conv, image)

    pipe = _pipeline([q], [], ScriptedBackend(flaky), referring="model")
    with pytest.raises(ModelError, match="VLM backend failed.*RuntimeError.*out of memory"):
        pipe.process(frame, [q])
    res = pipe.process(frame, [q])  # the next frame works
    assert [o.query for o in res.objects] == [q]


def test_unload_drops_the_model_and_process_then_refuses(sim):
    closed = []

    class Owned(ScriptedBackend):
        def close(self):
            closed.append(True)

    pipe = PerceptionPipeline(PerceptionConfig(queries=[]), backend=None)
    pipe._backend, pipe._owns_backend = Owned(["-"]), True  # as if load() had built it
    pipe.load()
    assert pipe.loaded
    pipe.unload()
    pipe.unload()  # idempotent
    assert closed == [True] and pipe.engine is None and not pipe.loaded
    with pytest.raises(ConfigError, match="before load"):
        pipe.process(sim.sensor_frame(), [])
    injected = ScriptedBackend(["-"])
    pipe2 = _pipeline([], [], injected)
    pipe2.unload()
    assert pipe2._backend is injected  # not ours to close


def test_specialists_only_recall_and_lidar_distances(sim):
    frame = sim.sensor_frame()
    pipe = _pipeline([], [], None, use_vlm=False)
    res = pipe.process(frame, [])
    assert res.objects and all(o.source == "lidar" and o.query == "" for o in res.objects)
    det = candidate_recall([(res.objects, res.stamp_ns, sim.truth)])
    assert det.n_truth >= 3 and det.recall >= 0.9
    lidar = np.asarray(sensor_origins(frame, "base_link")["lidar"])
    for o in res.objects:
        assert o.distance == pytest.approx(np.linalg.norm(o.box.center - lidar), abs=1e-6)


def test_config_validation_names_values():
    with pytest.raises(ConfigError, match=r"time_jump \(0.01 s\) must be > slop \(0.05 s\)"):
        PerceptionConfig(time_jump=0.01)
    with pytest.raises(ConfigError, match="time_jump must be > 0"):
        PerceptionConfig(time_jump=math.nan)
    with pytest.raises(ConfigError, match="relation pair 'a b'"):
        PerceptionConfig(relation_pairs=["a b"])
