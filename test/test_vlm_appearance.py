"""Candidate colour attributes: names from pixels, robust to shading; engine + prompt wiring."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.vlm.appearance import COLOUR_TERMS, colour_name, region_colour

BASIC = {"red": (210, 35, 35), "green": (40, 165, 60), "blue": (35, 80, 215),
         "yellow": (240, 205, 30), "orange": (245, 125, 25), "purple": (135, 55, 175),
         "white": (238, 238, 238), "black": (30, 30, 32), "pink": (245, 120, 170),
         "cyan": (40, 200, 210), "brown": (120, 72, 35), "gray": (128, 128, 128)}


@pytest.mark.parametrize("name", sorted(BASIC))
def test_basic_colours_keep_their_name_under_moderate_shading(name):
    rgb = np.array(BASIC[name], float)
    assert colour_name(rgb) == name
    if name not in ("white", "gray", "black", "orange", "brown"):
        assert colour_name(rgb * 0.75) == name  # a shaded side of the same surface


def test_region_colour_reads_the_centre_of_the_box_not_the_background():
    img = np.full((100, 100, 3), 128, np.uint8)  # gray table
    img[30:70, 40:60] = BASIC["red"]
    # the projected box is larger than the object: its corners are table
    assert region_colour(img, [30, 20, 70, 80]) == "red"
    assert region_colour(img, None) is None
    assert set(BASIC) == set(COLOUR_TERMS)


def test_simulated_objects_are_named_by_their_colour():
    from spatial_ros.sim import SimConfig
    from spatial_ros.sim.world import make_episode, render

    ok = n = 0
    for seed in range(6):
        ep = make_episode(SimConfig(seed=seed, vary_rig=True), 0)
        f = render(ep.scene, seed=seed, lidar=False)
        for o in f.truth.objects:
            if o.box_2d is None or o.visible_fraction < 0.3 or o.category == "gripper":
                continue
            n += 1
            ok += region_colour(f.image, o.box_2d) == o.colour
    assert n >= 20 and ok / n >= 0.9


def test_size_words_tell_the_tabletop_categories_apart():
    """Size words from true boxes (simulated truth): the categories with a distinctive shape
    always get their word, in any frame the box is expressed in."""
    from spatial_ros.sim import SimConfig
    from spatial_ros.sim.world import make_episode
    from spatial_ros.vlm.appearance import SIZE_TERMS, size_word

    expect = {"book": "flat", "bottle": "tall", "can": "slim", "cube": "small", "ball": "small",
              "bowl": "wide", "mug": "large"}
    yaw = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    to_optical = np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])  # base (x fwd, z up) -> optical
    hits: dict[str, list[bool]] = {k: [] for k in expect}
    for seed in range(12):
        for o in make_episode(SimConfig(seed=seed), 0).scene.objects:
            word = size_word(o.box)
            assert word in SIZE_TERMS
            T = np.eye(4)
            T[:3, :3] = to_optical @ yaw
            assert size_word(o.box.transformed(T, "cam")) == word  # own axes: z stays up
            if o.category in expect:
                hits[o.category].append(word == expect[o.category])
    for cat in ("book", "bottle", "can", "cube", "ball"):
        assert hits[cat] and all(hits[cat]), cat
    for cat in ("bowl", "mug"):  # small bowls / handle-less views can read "large" / "small"
        assert hits[cat] and np.mean(hits[cat]) >= 0.6, (cat, hits[cat])


def test_engine_lists_candidate_colours_when_asked():
    from spatial_ros.types import Box3D, CameraIntrinsics, Candidate, SensorFrame
    from spatial_ros.vlm.backend import ScriptedBackend
    from spatial_ros.vlm.engine import EngineConfig, SpatialEngine

    cam = CameraIntrinsics(200, 200, np.array([[100.0, 0, 100], [0, 100.0, 100], [0, 0, 1]]),
                           frame_id="cam")
    img = np.full((200, 200, 3), 128, np.uint8)
    img[80:120, 80:120] = BASIC["blue"]
    frame = SensorFrame(stamp_ns=0, image=img, camera=cam)
    cand = Candidate(box=Box3D(np.array([0.0, 0.0, 2.0]), np.array([0.4, 0.4, 0.4]),
                               frame_id="cam"), source="lidar", id="c0")
    seen = []
    backend = ScriptedBackend(lambda conv, image: seen.append(conv[-1].text) or "no box")
    for on in (False, True):
        SpatialEngine(backend, EngineConfig(referring="model", candidate_colours=on)).ground(
            frame, ["the blue box"], [cand], "cam")
    assert not seen[0].split("\n")[1].endswith("blue")
    assert seen[1].split("\n")[1].endswith("] blue")
    # with size words: "<size> <colour>" (a 0.4 m cube is "tall"), tagged with its rank
    SpatialEngine(backend, EngineConfig(referring="model", candidate_colours=True,
                                        candidate_sizes=True, candidate_index=True)).ground(
        frame, ["the blue box"], [cand], "cam")
    assert seen[2].split("\n")[1].endswith("] tall blue1")


def _two_candidate_frame():
    from spatial_ros.types import Box3D, CameraIntrinsics, Candidate, SensorFrame

    cam = CameraIntrinsics(200, 200, np.array([[100.0, 0, 100], [0, 100.0, 100], [0, 0, 1]]),
                           frame_id="cam")
    img = np.full((200, 200, 3), 128, np.uint8)
    frame = SensorFrame(stamp_ns=0, image=img, camera=cam)
    near = Candidate(box=Box3D(np.array([-0.5, 0.0, 2.0]), np.array([0.3, 0.3, 0.3]),
                               frame_id="cam"), source="lidar", id="near")
    far = Candidate(box=Box3D(np.array([0.6, 0.1, 3.0]), np.array([0.5, 0.4, 0.2]),
                              frame_id="cam"), source="lidar", id="far")
    return frame, [far, near]  # listed closest first: #1 = near, #2 = far


def test_engine_resolves_candidate_tags_to_the_listed_box():
    from spatial_ros.vlm.backend import ScriptedBackend
    from spatial_ros.vlm.engine import EngineConfig, SpatialEngine

    frame, cands = _two_candidate_frame()
    seen = []
    answers = {"the far box": "#2", "the near box": " #1 ", "a ghost": "#3", "junk": "#x",
               "the far one": "gray2", "a red one": "red1"}

    def script(conv, image):
        seen.append(conv[-1].text)
        return answers[conv[-1].text.rsplit(": ", 1)[1]]

    # colours on: tags are "gray1", "gray2" (the test image is gray): "#k" names nothing
    eng = SpatialEngine(ScriptedBackend(script),
                        EngineConfig(referring="model", candidate_index=True,
                                     candidate_colours=True))
    out = {o.query: o for o in eng.ground(frame, list(answers), cands, "cam")}
    lines = seen[0].split("\n")[1:3]
    assert lines[0].endswith("] gray1") and lines[1].endswith("] gray2")
    assert set(out) == {"the far one"}
    np.testing.assert_allclose(out["the far one"].box.center, cands[0].box.center)
    assert out["the far one"].source == "vlm+lidar"
    # tags the list does not hold, and a malformed answer: no object, counted as failures
    # (the four unknown tags are asked again without the list, and answer a tag again)
    assert eng.stats.parse_failures == 5
    assert eng.stats.failure_reasons["candidate tag"] == 4
    assert eng.stats.retries == 4
    # colours off: the list is tagged by position
    seen.clear()
    eng = SpatialEngine(ScriptedBackend(script),
                        EngineConfig(referring="model", candidate_index=True))
    out = {o.query: o for o in eng.ground(frame, list(answers), cands, "cam")}
    assert seen[0].split("\n")[1].endswith("] #1")
    assert set(out) == {"the far box", "the near box"}
    np.testing.assert_allclose(out["the far box"].box.center, cands[0].box.center)
    np.testing.assert_allclose(out["the near box"].box.size, cands[1].box.size)
    # without a listed prompt (specialist prompts off) a tag designates nothing
    eng2 = SpatialEngine(ScriptedBackend(lambda c, i: "#1"),
                         EngineConfig(referring="model", candidate_index=True,
                                      specialist_prompts=False))
    assert eng2.ground(frame, ["the near box"], cands, "cam") == []
    assert eng2.stats.parse_failures == 1


def test_unknown_tag_is_asked_again_without_the_list():
    """A tag the prompt does not hold that shares no word with a listed tag (an object the
    specialist missed) gets one more question without the candidate list; its box answer is
    used (unknown_tag=retry, and rank's fallback); drop gives no object."""
    from spatial_ros.types import Box3D
    from spatial_ros.vlm.backend import ScriptedBackend
    from spatial_ros.vlm.engine import EngineConfig, SpatialEngine

    frame, cands = _two_candidate_frame()
    missed = Box3D(np.array([0.2, -0.3, 1.5]), np.array([0.2, 0.2, 0.2]), frame_id="cam")
    prompts = []

    def script(conv, image):
        listed = "bounding boxes of all objects" in conv[-1].text
        prompts.append(listed)
        if not listed:
            return eng.codec.encode_box3d(missed, frame.camera)
        return "red1"  # the list holds gray1, gray2 only

    for mode in ("rank", "retry", "drop"):
        prompts.clear()
        eng = SpatialEngine(ScriptedBackend(script, choice_scores=lambda c, t: [0.0] * len(t)),
                            EngineConfig(referring="model", candidate_index=True,
                                         candidate_colours=True, unknown_tag=mode))
        out = eng.ground(frame, ["the red ball"], cands, "cam")
        if mode != "drop":
            assert prompts == [True, False] and eng.stats.retries == 1 and eng.stats.ranked == 0
            assert len(out) == 1 and out[0].source == "vlm"
            np.testing.assert_allclose(out[0].box.center, missed.center, atol=0.02)
            assert eng.stats.parse_failures == 0
        else:
            assert prompts == [True] and out == [] and eng.stats.parse_failures == 1


def test_unknown_tag_sharing_a_word_takes_the_likeliest_listed_tag():
    """"large gray1" is not listed (the list says gray1, gray2): the engine scores the listed
    tags sharing a word with the answer as the whole answer, and takes the likeliest one's
    candidate; without a backend that scores, it asks again without the list."""
    from spatial_ros.vlm.backend import ScriptedBackend
    from spatial_ros.vlm.engine import EngineConfig, SpatialEngine

    frame, cands = _two_candidate_frame()
    scored = []

    def scores(conv, tags):
        scored.append((conv[-1].text.rsplit(": ", 1)[1], tags))
        return [{"gray1": -3.0, "gray2": -0.5}[t] for t in tags]

    cfg = EngineConfig(referring="model", candidate_index=True, candidate_colours=True)
    eng = SpatialEngine(ScriptedBackend(lambda c, i: "large gray1", choice_scores=scores), cfg)
    (obj,) = eng.ground(frame, ["the far box"], cands, "cam")
    assert scored == [("the far box", ["gray1", "gray2"])]
    np.testing.assert_allclose(obj.box.center, cands[0].box.center)  # gray2: the far one
    assert obj.source == "vlm+lidar" and obj.raw_text == "large gray1 -> gray2"
    assert eng.stats.ranked == 1 and eng.stats.retries == 0 and eng.stats.parse_failures == 0
    # a backend that cannot score: the retry path (its answer is still an unknown tag)
    eng = SpatialEngine(ScriptedBackend(lambda c, i: "large gray1"), cfg)
    assert eng.ground(frame, ["the far box"], cands, "cam") == []
    assert eng.stats.retries == 1 and eng.stats.ranked == 0 and eng.stats.parse_failures == 1


def test_distinct_queries_that_take_one_candidate_get_the_likeliest_assignment():
    """A goal's target and reference are different objects: when both answers name gray1, each
    scores the listed tags and the assignment with the highest total log-probability wins."""
    from spatial_ros.vlm.backend import ScriptedBackend
    from spatial_ros.vlm.engine import EngineConfig, SpatialEngine

    frame, cands = _two_candidate_frame()  # gray1 = near = cands[1], gray2 = far = cands[0]
    logp = {"the near box": {"gray1": -0.1, "gray2": -5.0},
            "the far box": {"gray1": -0.2, "gray2": -1.0}}

    def scores(conv, tags):
        return [logp[conv[-1].text.rsplit(": ", 1)[1]][t] for t in tags]

    backend = ScriptedBackend(lambda c, i: "gray1", choice_scores=scores)
    cfg = EngineConfig(referring="model", candidate_index=True, candidate_colours=True)
    queries = ["the near box", "the far box"]
    same = SpatialEngine(backend, cfg).ground(frame, queries, cands, "cam")
    assert [o.box.center.tolist() for o in same] == [cands[1].box.center.tolist()] * 2
    eng = SpatialEngine(backend, cfg)
    near, far = eng.ground(frame, queries, cands, "cam", distinct=True)
    np.testing.assert_allclose(near.box.center, cands[1].box.center)
    np.testing.assert_allclose(far.box.center, cands[0].box.center)
    assert near.raw_text == "gray1" and far.raw_text == "gray1 -> gray2 (distinct objects)"
    assert eng.stats.reassigned == 1


def test_tags_name_candidates_by_colour_and_rank_among_that_colour():
    from spatial_ros.vlm.prompts import candidate_tags, normalize_tag

    assert candidate_tags(["red", "blue", "red", None, "red"]) == [
        "red1", "blue1", "red2", "#4", "red3"]
    assert candidate_tags(["small red", "red", "small red", "tall red"]) == [
        "small red1", "red1", "small red2", "tall red1"]
    assert normalize_tag("small red2") == "small red2"
    for text, tag in (("white3", "white3"), ("#12", "#12"), (" gray 7 ", "gray7"),
                      ("red02.", "red2")):
        assert normalize_tag(text) == tag
    for text in ("[1, 2, 3]", "3 m", "the white one", "white", "1.5", "#", None):
        assert normalize_tag(text) is None
