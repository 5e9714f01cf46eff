"""The served-model backend (spatial_ros.vlm.served) against a real HTTP server on 127.0.0.1
(spatial_ros.vlm.fake_openai_server): concurrency, images as data URLs, timeouts, retries,
server down then up, malformed replies, the API key, log-probability scoring, family parsing,
and the perception pipeline / `spatial-ros ground` answering from the served model."""

from __future__ import annotations

import itertools
import json
import logging
import threading

import cv2
import numpy as np
import pytest

from spatial_ros.errors import ConfigError, ModelError
from spatial_ros.perception import DEFAULT_MODEL_DIR, PerceptionConfig, PerceptionPipeline
from spatial_ros.vlm import served as served_mod
from spatial_ros.vlm.codec import BoxCodec
from spatial_ros.vlm.fake_openai_server import (
    FakeOpenAIServer,
    Reply,
    request_images,
    request_text,
)
from spatial_ros.vlm.prompts import Turn
from spatial_ros.vlm.served import (
    ServedBackend,
    ServerRejected,
    ServerUnavailable,
    choice_logprobs,
    served_adapter,
)
from spatial_ros.vlm.served_config import ServedConfig
from spatial_ros.vlm.tiny import codec_config_for

IMG = np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8)


@pytest.fixture()
def fast_backoff(monkeypatch):
    monkeypatch.setattr(served_mod, "BACKOFF_S", 0.01)


def backend_for(server: FakeOpenAIServer, **kw) -> ServedBackend:
    return ServedBackend(ServedConfig(server_url=server.url, **kw))


# ---- requests -----------------------------------------------------------------------------------


def test_queries_are_in_flight_together_and_answered_in_order():
    # answers arrive out of order (later queries answer sooner); results keep query order
    def answer(body):
        i = int(request_text(body)[1:])
        return Reply(f"answer {i}", delay_s=0.05 * (8 - i))

    with FakeOpenAIServer(answer, model="m1") as server:
        b = backend_for(server)
        prompts = [f"q{i}" for i in range(8)]
        res = b.generate([IMG], prompts, 16)
        assert [r.text for r in res] == [f"answer {i}" for i in range(8)]
        assert server.max_in_flight == 8  # all eight requests overlapped at the server
        chats = server.chat_requests()
        assert len(chats) == 8 and len(server.requests) == 9  # + one GET /v1/models
        for r in chats:
            assert r.body["model"] == "m1" and r.body["temperature"] == 0.0
            assert r.body["max_tokens"] == 16 and r.body["logprobs"] is True
        assert len({json.dumps(r.body["messages"][-1]["content"][0]) for r in chats}) == 1
        assert res[0].batch_size == 8 and res[0].decode_ms == res[7].decode_ms  # one batch

        server.max_in_flight = 0
        b3 = backend_for(server, concurrency=3, served_model="m1")
        b3.generate([IMG], prompts)
        assert server.max_in_flight == 3  # bounded
        server.max_in_flight = 0
        b.generate([IMG], prompts, mode="sequential")
        assert server.max_in_flight == 1
        b.close()
        b3.close()


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_images_go_as_resized_data_urls(fmt):
    with FakeOpenAIServer(lambda body: "ok") as server:
        b = backend_for(server, image_max_side=100, image_format=fmt, jpeg_quality=95)
        b.generate([IMG], [[Turn("system", "be brief"),
                            Turn("user", "where?", image=True)]])
        body = server.chat_requests()[0].body
        assert body["messages"][0] == {"role": "system", "content": "be brief"}
        parts = body["messages"][1]["content"]
        assert parts[0]["type"] == "image_url" and parts[1] == {"type": "text", "text": "where?"}
        assert parts[0]["image_url"]["url"].startswith(f"data:image/{fmt};base64,")
        (got,) = request_images(body)
        want = cv2.resize(IMG, (100, 60), interpolation=cv2.INTER_AREA)  # aspect kept
        assert got.shape == (60, 100, 3)
        if fmt == "jpeg":  # what a JPEG of that size at quality 95 decodes to
            ok, buf = cv2.imencode(".jpg", want[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            want = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
        np.testing.assert_array_equal(got, want)  # PNG: lossless
        b.close()


# ---- failures -----------------------------------------------------------------------------------


def test_a_timeout_is_reported_and_not_retried():
    with FakeOpenAIServer(lambda body: Reply("late", delay_s=1.0), model="m") as server:
        b = backend_for(server, timeout_s=0.2, served_model="m")
        with pytest.raises(ServerUnavailable, match="timeout_s=0.2") as e:
            b.generate([IMG], ["where?"])
        assert isinstance(e.value, ModelError)
        assert len(server.chat_requests()) == 1  # the server may still be working: no retry
        st = b.status()
        assert st["state"] == "unreachable" and st["last_error"] == "ReadTimeout"
        assert st["timeouts"] == 1 and st["retries"] == 0
        b.close()


def test_5xx_and_429_are_retried_4xx_is_not(fast_backoff):
    script = iter([Reply("busy", status=503), Reply("slow down", status=429,
                                                    headers={"Retry-After": "0"}),
                   Reply("fine")])
    with FakeOpenAIServer(lambda body: next(script), model="m") as server:
        b = backend_for(server, retries=2, served_model="m")
        assert b.generate([IMG], ["q"])[0].text == "fine"
        assert len(server.chat_requests()) == 3 and b.status()["retries"] == 2
        assert b.status()["state"] == "ok"

        server.answer = lambda body: Reply("image too large for this model", status=400)
        with pytest.raises(ServerRejected, match="HTTP 400: image too large") as e:
            b.generate([IMG], ["q"])
        assert "image_max_side" in str(e.value)  # says what to change
        assert len(server.chat_requests()) == 4  # not retried
        assert b.status()["state"] == "rejected" and b.status()["last_error"] == "HTTP 400"

        server.answer = lambda body: Reply("still busy", status=500)
        with pytest.raises(ServerUnavailable, match="HTTP 500 after 3 attempts"):
            b.generate([IMG], ["q"])
        assert len(server.chat_requests()) == 7
        b.close()


def test_a_wrong_url_names_the_fix():
    with FakeOpenAIServer(lambda body: "x") as server:
        b = ServedBackend(ServedConfig(server_url=server.url.replace("/v1", "/v2"),
                                       served_model="m"))
        with pytest.raises(ServerRejected, match="HTTP 404.*check server_url"):
            b.generate([IMG], ["q"])
        b.close()


@pytest.fixture(scope="module")
def sim():
    from spatial_ros.sim import SimConfig, iter_frames

    return next(iter(iter_frames(SimConfig("tabletop", seed=104, frames=1))))


def oracle(frame, truth, codec: BoxCodec):
    """A perfect served model: the true box of the caption the question ends with."""
    T = frame.transforms.lookup(frame.camera.frame_id, "base_link")
    boxes = {o.caption: o.box.transformed(T, frame.camera.frame_id) for o in truth.objects}

    def answer(body):
        caption = request_text(body).rsplit(": ", 1)[-1].strip()
        box = boxes.get(caption)
        return "I cannot find it." if box is None else codec.encode_box3d(box, frame.camera)

    return answer


def served_pipeline(server, queries, **kw) -> PerceptionPipeline:
    cfg = PerceptionConfig(queries=queries, relation_pairs=[], backend="openai", referring="model",
                           server_url=server.url, **kw)
    pipe = PerceptionPipeline(cfg)
    pipe.load()
    return pipe


def test_pipeline_survives_the_server_going_down_and_recovers(sim, fast_backoff):
    from spatial_ros.perception_metrics import grounding_queries

    frame, truth = sim.sensor_frame(), sim.truth
    queries = grounding_queries(truth)[:3]
    codec = BoxCodec(codec_config_for(DEFAULT_MODEL_DIR))
    server = FakeOpenAIServer(oracle(frame, truth, codec)).start()
    pipe = served_pipeline(server, queries, retries=2)
    try:
        assert pipe.backend_status()["state"] == "idle"  # nothing sent at load
        res = pipe.process(frame, queries)
        assert [o.query for o in res.objects] == queries and res.parse_failures == 0
        assert pipe.backend_status()["state"] == "ok"

        server.stop()
        with pytest.raises(ModelError, match="unreachable .*ConnectError after 3 attempts"):
            pipe.process(frame, queries)
        st = pipe.backend_status()
        assert st["state"] == "unreachable" and st["last_error"] == "ConnectError"
        assert st["consecutive_failures"] == 3 and st["retries"] == 6
        # while down, a frame costs one attempt per query (no backoff): recovery is prompt
        with pytest.raises(ModelError, match="after 1 attempt;"):
            pipe.process(frame, queries)
        st = pipe.backend_status()
        assert st["consecutive_failures"] == 6 and st["retries"] == 6
        assert pipe.loaded  # the pipeline (and the node over it) is still up

        server.start()  # same port
        res = pipe.process(frame, queries)
        assert [o.query for o in res.objects] == queries
        st = pipe.backend_status()
        assert st["state"] == "ok" and st["consecutive_failures"] == 0
        assert st["failed_requests"] == 6
    finally:
        pipe.unload()
        server.stop()


def test_malformed_replies_are_counted_parse_failures(sim):
    replies = {"the a": Reply(body=b"<html>502 Bad Gateway</html>"),
               "the b": Reply(body=b'{"choices": []}'),
               "the c": Reply(body=b'{"choices": [{"message": {"role": "assistant"}}]}'),
               "the d": Reply("I cannot see it in this picture.")}

    def answer(body):
        return replies[request_text(body).rsplit(": ", 1)[-1].strip()]

    frame = sim.sensor_frame()
    with FakeOpenAIServer(answer) as server:
        pipe = served_pipeline(server, list(replies))
        res = pipe.process(frame, list(replies))  # no exception
        assert res.objects == [] and res.parse_failures == 4
        st = pipe.backend_status()
        assert st["malformed_responses"] == 3 and st["state"] == "ok"
        assert pipe.engine.stats.parse_failures == 4
        pipe.unload()


def test_api_key_is_sent_from_the_environment_and_never_logged(monkeypatch, caplog):
    key = "sk-test-7f3a9c2e51"
    monkeypatch.setenv("MY_VLM_KEY", key)
    caplog.set_level(logging.DEBUG)  # every logger, httpx/httpcore included
    for name in ("httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    with FakeOpenAIServer(lambda body: "ok", api_key=key) as server:
        b = backend_for(server, api_key_env="MY_VLM_KEY")
        assert b.generate([IMG], ["q"])[0].text == "ok"
        assert all(r.headers["Authorization"] == f"Bearer {key}" for r in server.requests)

        monkeypatch.setenv("MY_VLM_KEY", "sk-wrong-000")
        with pytest.raises(ServerRejected) as e:
            b.generate([IMG], ["q"])
        assert "HTTP 401" in str(e.value) and "'MY_VLM_KEY'" in str(e.value)
        # a server that echoes the key in its error text: redacted
        monkeypatch.setenv("MY_VLM_KEY", key)
        server.answer = lambda body: Reply(f"bad request from key {key}", status=400)
        with pytest.raises(ServerRejected) as e2:
            b.generate([IMG], ["q"])
        assert key not in str(e2.value) and "***" in str(e2.value)
        for text in (str(e.value), json.dumps(b.status()), repr(b.config), json.dumps(b.info),
                     caplog.text):
            assert key not in text and "sk-wrong-000" not in text
        b.close()

    monkeypatch.delenv("MY_VLM_KEY")
    with FakeOpenAIServer(lambda body: "ok") as server:
        b = backend_for(server, api_key_env="MY_VLM_KEY")
        b.generate([IMG], ["q"])
        assert all("Authorization" not in r.headers for r in server.requests)
        b.close()


# ---- log-probabilities --------------------------------------------------------------------------

# The greedy answer "red2" and its top alternatives (natural logs).
STEPS = [("red", -0.1, [("red", -0.1), (" blue", -2.5), ("small", -3.0)]),
         ("2", -0.2, [("2", -0.2), ("1", -1.9), ("12", -4.0)])]


def test_choice_logprobs_by_hand():
    got = choice_logprobs(STEPS, ["red2", "red1", "blue1", "green1", "red12", "red"])
    assert got[0] == pytest.approx(-0.3)  # the greedy answer: exact
    assert got[1] == pytest.approx(-2.0)  # leaves it at its last token: exact
    assert got[2] == pytest.approx(-2.5)  # " blue" then unknown: bound by P(blue)
    assert got[3] == pytest.approx(-3.0)  # first token not listed: bound by the 3rd's
    assert got[4] == pytest.approx(-4.1)  # "red" + "12"
    assert got[5] == pytest.approx(-0.1)  # a prefix of the answer (the end is not scored)
    assert np.argsort(got[:4]).tolist() == [3, 2, 1, 0]


def test_score_choices_reads_top_logprobs_from_the_server():
    with FakeOpenAIServer(lambda body: Reply("red2", logprobs=STEPS), model="m") as server:
        b = backend_for(server, top_logprobs=5, served_model="m")
        got = b.score_choices(IMG, "which one?", ["red1", "red2"])
        assert got == pytest.approx([-2.0, -0.3])
        body = server.chat_requests()[0].body
        assert body["logprobs"] is True and body["top_logprobs"] == 5
        res = b.generate([IMG], ["which one?"])
        assert res[0].score == pytest.approx(np.exp(-0.15))  # geometric mean probability
        b.close()


def test_score_choices_without_logprobs_is_not_implemented():
    with FakeOpenAIServer(lambda body: Reply("red2"), model="m") as server:
        b = backend_for(server, served_model="m")
        with pytest.raises(NotImplementedError, match="no token log-probabilities"):
            b.score_choices(IMG, "which one?", ["red1", "red2"])
        n = len(server.chat_requests())
        with pytest.raises(NotImplementedError):  # known now: no second request
            b.score_choices(IMG, "which one?", ["red1"])
        assert len(server.chat_requests()) == n
        assert np.isnan(b.generate([IMG], ["q"])[0].score)
        b.close()
        b0 = backend_for(server, served_model="m", top_logprobs=0)
        with pytest.raises(NotImplementedError, match="top_logprobs=0"):
            b0.score_choices(IMG, "q", ["a"])
        b0.generate([IMG], ["q"])
        assert "logprobs" not in server.chat_requests()[-1].body
        b0.close()


# ---- families and configuration -----------------------------------------------------------------


def test_family_from_config_or_the_served_name():
    assert served_adapter("auto", "").family == "cube-llm"
    assert served_adapter("auto", "spatial-ros-default").family == "cube-llm"
    q25 = served_adapter("auto", "Qwen/Qwen2.5-VL-7B-Instruct")
    q3 = served_adapter("auto", "qwen3-vl-8b")
    assert (q25.family, q3.family) == ("qwen2.5-vl", "qwen3-vl")  # the Qwen JSON answer format
    assert (q25.coord_mode, q3.coord_mode) == ("resized_pixels", "relative_1000")
    assert served_adapter("qwen2_5_vl").coord_mode == "resized_pixels"
    assert served_adapter("cube-llm", "Qwen2.5-VL").family == "cube-llm"  # explicit wins
    with pytest.raises(ConfigError, match="family='qwen25'"):
        served_adapter("qwen25")


def test_a_qwen_answer_in_resized_pixels_maps_to_the_original_image():
    # 480x640 frame sent at 240x320; Qwen2.5-VL answers in pixels of ITS resize of that
    image = np.zeros((480, 640, 3), np.uint8)
    mh, mw = 252, 308  # Qwen's resize of 240x320: sides rounded to multiples of 28
    truth = np.array([128.0, 96.0, 384.0, 288.0])  # px of the 480x640 frame
    box = truth * np.array([mw / 640, mh / 480, mw / 640, mh / 480])
    text = json.dumps([{"bbox_2d": [round(v) for v in box], "label": "mug"}])
    with FakeOpenAIServer(lambda body: text) as server:
        b = backend_for(server, image_max_side=320, served_model="Qwen2.5-VL-3B-Instruct")
        (res,) = b.generate([image], ["the mug"])
        assert res.model_image_hw == (mh, mw)
        parsed = b.adapter.parse_grounding(res.text, BoxCodec(), (480, 640), res.model_image_hw)
        assert parsed.ok and parsed.value.label == "mug"
        np.testing.assert_allclose(parsed.value.box_2d, truth, atol=640 / mw)  # one model px
        b.close()


def test_settings_from_yaml_values_and_validation():
    from spatial_ros.config import from_dict
    from spatial_ros.reward.annotator import RewardAnnotatorConfig
    from spatial_ros.vlm.served_config import served_config_from

    cfg = from_dict(PerceptionConfig, {"backend": "openai", "server_url": "http://gpu:8000",
                                       "concurrency": 4, "timeout_s": 12, "family": "cube-llm"})
    s = served_config_from(cfg)
    assert (s.concurrency, s.timeout_s, s.base_url) == (4, 12.0, "http://gpu:8000/v1")
    assert ServedConfig(server_url="http://h:1/v1/").base_url == "http://h:1/v1"
    for bad, msg in [({"backend": "vllm"}, "backend must be"),
                     ({"server_url": "gpu:8000"}, "server_url"),
                     ({"api_key_env": "sk-abc-123"}, "NAME, not the key"),
                     ({"concurrency": 0}, "concurrency"), ({"jpeg_quality": 0}, "jpeg_quality"),
                     ({"image_format": "webp"}, "image_format")]:
        with pytest.raises(ConfigError, match=msg):
            PerceptionConfig(**bad)
    rc = RewardAnnotatorConfig(backend="openai", server_url="http://h:9/v1", concurrency=2)
    p = rc.perception(["the red cube"])
    assert (p.backend, p.server_url, p.concurrency) == ("openai", "http://h:9/v1", 2)


def test_cli_options_select_the_served_backend():
    import argparse

    from spatial_ros.commands import ground
    from spatial_ros.commands.served_args import served_values

    ap = argparse.ArgumentParser()
    ground.add_arguments(ap)
    args = ap.parse_args(["--bag", "b", "--out", "o", "--backend", "openai", "--server-url",
                          "http://h:1/v1", "--concurrency", "4", "--timeout", "9.5",
                          "--image-format", "png"])
    assert served_values(args) == {"backend": "openai", "server_url": "http://h:1/v1",
                                   "concurrency": 4, "timeout_s": 9.5, "image_format": "png"}
    assert served_values(ap.parse_args(["--bag", "b", "--out", "o"])) == {}


# ---- end to end ---------------------------------------------------------------------------------


def test_ground_command_answers_from_a_served_model(tmp_path):
    from spatial_ros.bagio import frames_from_bag
    from spatial_ros.boxfile import read_box_file
    from spatial_ros.cli import main
    from spatial_ros.types import Box3D

    sim_dir = tmp_path / "sim"
    assert main(["sim", "--scenario", "tabletop", "--seed", "0", "--frames", "4",
                 "--out", str(sim_dir), "--no-progress"]) == 0
    truth, captions = {}, {}
    for k, line in enumerate((sim_dir / "truth_detail.jsonl").read_text().splitlines()):
        for o in json.loads(line)["objects"]:
            captions[o["caption"]] = captions.get(o["caption"], 0) + (k == 0)
            b = o["box"]
            truth[o["caption"]] = Box3D.from_yaw(b["center"], b["size"], b["yaw"], "base_link")
    frame = next(iter(frames_from_bag(sim_dir / "bag")))
    T = frame.transforms.lookup(frame.camera.frame_id, "base_link")
    codec = BoxCodec(codec_config_for(DEFAULT_MODEL_DIR))
    lock, seen_lists = threading.Lock(), []

    def answer(body):
        text = request_text(body)
        with lock:
            seen_lists.append("Here is the list of 3D bounding boxes" in text)
        b = truth[text.rsplit(": ", 1)[-1].strip()].transformed(T, frame.camera.frame_id)
        return Reply(codec.encode_box3d(b, frame.camera), delay_s=0.05)  # requests overlap

    queries = sorted(c for c, n in captions.items() if n == 1)[:4]  # unambiguous captions
    assert len(queries) == 4
    with FakeOpenAIServer(answer, model="spatial-ros-default") as server:
        pred = tmp_path / "pred.jsonl"
        args = ["ground", "--bag", str(sim_dir / "bag"), "--out", str(pred),
                "--backend", "openai", "--server-url", server.url, "--concurrency", "4",
                "--referring", "model"]  # every query to the served model
        args += list(itertools.chain.from_iterable(("--query", q) for q in queries))
        assert main(args) == 0
        assert server.max_in_flight >= 2
    frames = read_box_file(pred)
    assert len(frames) == 2
    for f in frames:
        assert [o.query for o in f.objects] == queries
        for o in f.objects:
            assert o.extra["source"] == "vlm+lidar"
            assert np.linalg.norm(o.box.center - truth[o.query].center) < 0.03
    assert seen_lists and all(seen_lists)  # the specialist candidates went to the server


def test_bench_served_reports_both_modes(tmp_path, capsys):
    from spatial_ros.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "served", "--queries", "4", "--delay", "0.05", "--frames", "1",
                 "--width", "320", "--height", "240", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["concurrent"]["max_in_flight"] == 4 and got["sequential"]["max_in_flight"] == 1
    assert got["sequential"]["ms_per_frame"] >= 4 * 50  # four 50 ms answers, one at a time
    assert "speed-up" in capsys.readouterr().out
