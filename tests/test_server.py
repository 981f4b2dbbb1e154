"""The reward server over real HTTP on loopback: OpenRLHF's protocol, error statuses, the size limit."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
import uvicorn

from medground_eval.integrations.labels import label_columns, read_label
from medground_eval.integrations.openrlhf import response_text
from medground_eval.integrations.server import create_app
from medground_eval.rewards import SpatialSemanticReward

LIMIT = 4096
LABELS = [
    {"solution": [[100, 500, 300, 700]], "phrase": "left pleural effusion", "image_size": [1000, 800], "frame": "pixel"},
    {"solution": [[380, 280, 720, 640]], "phrase": "enlarged heart", "image_size": [1000, 800], "frame": "norm1000"},
]
RESPONSES = [
    '<think>dense base [100, 500, 300, 700]</think><answer>[{"bbox_2d": [100, 500, 300, 700], '
    '"label": "left pleural effusion"}]</answer>',
    "<answer>[400, 300, 700, 600]</answer>",
]
PROMPT = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Locate it.<|im_end|>\n<|im_start|>assistant\n"


def query(response: str) -> str:
    return PROMPT.replace("<|image_pad|>", "<|image_pad|>" * 40) + response + "<|im_end|>"


def payload() -> dict:
    return {"query": [query(r) for r in RESPONSES], "prompts": [PROMPT] * 2, "labels": [json.dumps(label) for label in LABELS]}


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def reward() -> SpatialSemanticReward:
    reward = SpatialSemanticReward(encoder="lexical", weights=(1, 2, 1))
    reward.semantic.text_encoder.encode(["warm up"])  # the first call imports scikit-learn: seconds on a busy machine
    return reward


@pytest.fixture(scope="module")
def url(reward):
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(create_app(reward, max_request_bytes=LIMIT), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_health(url):
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}


def test_get_reward_matches_core(url, reward):
    response = httpx.post(f"{url}/get_reward", json=payload())
    assert response.status_code == 200
    body = response.json()
    expected = reward.breakdown(RESPONSES, **label_columns([read_label(label) for label in LABELS]))
    # normalised as the reward file does: OpenRLHF's dynamic filtering range defaults to (0, 1)
    assert body["rewards"] == pytest.approx((expected.total / reward.max_total).tolist())
    assert body["scores"] == body["rewards"]
    assert set(body["extra_logs"]) == {"format", "iou", "spatial", "semantic", "anatomy", "total_raw"}
    assert body["extra_logs"]["total_raw"] == pytest.approx(expected.total.tolist())
    assert body["extra_logs"]["iou"] == pytest.approx(expected.iou.tolist())
    assert expected.format[0] == 1.0 and response_text(query(RESPONSES[0]), PROMPT) == RESPONSES[0]


def test_prompts_optional_and_labels_as_objects(url):
    body = {"query": [query(RESPONSES[0])], "labels": [LABELS[0]]}
    response = httpx.post(f"{url}/get_reward", json=body)
    assert response.status_code == 200 and len(response.json()["rewards"]) == 1


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"{not json", 400, "not JSON"),
        (b"\xff\xfe", 400, "not JSON"),
        (b"[" * 3000, 400, "not JSON"),
        (b"[1, 2]", 422, "expected a JSON object"),
        (json.dumps({"labels": []}).encode(), 422, "'query'"),
        (json.dumps({"query": "abc", "labels": ["x"]}).encode(), 422, "'query'"),
        (json.dumps({"query": [1], "labels": ["x"]}).encode(), 422, "'query'"),
        (json.dumps({"query": ["a"]}).encode(), 422, "'labels'"),
        (json.dumps({"query": ["a", "b"], "labels": ["{}"]}).encode(), 422, "one label per query"),
        (json.dumps({"query": ["a"], "prompts": ["p", "q"], "labels": ["{}"]}).encode(), 422, "'prompts'"),
        (json.dumps({"query": ["a"], "labels": ["{}"]}).encode(), 422, "'solution' missing"),
        (json.dumps({"query": ["a"], "labels": [{"solution": [[1, 2, 3]], "phrase": "x"}]}).encode(), 422, "'solution'"),
    ],
)
def test_malformed_requests_get_4xx_with_message(url, content, status, message, caplog):
    with caplog.at_level("WARNING", logger="medground_eval.integrations.server"):
        response = httpx.post(f"{url}/get_reward", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert message in response.json()["detail"]
    # OpenRLHF's client shows only the status line (agent.py _post_request): the server's log carries the reason
    assert any(f"answered {status}" in r.getMessage() and message in r.getMessage() for r in caplog.records)


def test_oversized_requests_are_refused(url):
    big = json.dumps({"query": ["x" * LIMIT], "labels": [LABELS[0]]}).encode()
    response = httpx.post(f"{url}/get_reward", content=big)
    assert response.status_code == 413 and f"at most {LIMIT} bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: the server must count while reading
        for _ in range(10):
            yield b" " * 1000

    response = httpx.post(f"{url}/get_reward", content=chunks())
    assert response.status_code == 413


def test_server_survives_errors(url):
    for _ in range(3):
        httpx.post(f"{url}/get_reward", content=b"garbage")
    assert httpx.post(f"{url}/get_reward", json=payload()).status_code == 200


@contextlib.contextmanager
def serve_command(*options: str):
    """``medground-eval serve`` in a subprocess with 2 workers and a lexical reward; yields its URL once healthy and
    always stops it."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    process = subprocess.Popen(
        [sys.executable, "-m", "medground_eval", "serve", "--port", str(port), "--workers", "2", "--log-level",
         "warning", *options],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


def lexical_config(tmp_path) -> str:
    config = tmp_path / "reward.toml"
    config.write_text('encoder = "lexical"\n')
    return str(config)


def test_serve_command_with_workers(tmp_path):
    with serve_command("--reward-config", lexical_config(tmp_path)) as server:
        answers = [httpx.post(f"{server}/get_reward", json=payload(), timeout=60).json()
                   for _ in range(4)]  # a loaded 2-core machine answers the first request slowly
    assert all(a == answers[0] for a in answers) and len(answers[0]["rewards"]) == 2


def test_serve_command_rejects_bad_config(tmp_path):
    config = tmp_path / "reward.json"
    config.write_text('{"encoder": "lexical", "weights": "heavy"}')
    result = subprocess.run([sys.executable, "-m", "medground_eval", "serve", "--reward-config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "reward.json" in result.stderr


def test_serve_checks_the_environment_config_before_starting_workers(tmp_path, monkeypatch):
    """With --workers > 1 a broken $MEDGROUND_REWARD_CONFIG killed each worker at start and uvicorn restarted them
    forever; the parent must refuse it first, as it does for --reward-config."""
    from medground_eval.integrations.engines import REWARD_CONFIG_ENV
    from medground_eval.integrations.server import serve

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: started.append(kwargs))
    monkeypatch.setenv(REWARD_CONFIG_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(FileNotFoundError, match="missing.json: not found"):
        serve(workers=2)
    assert started == []
    config = tmp_path / "reward.json"
    config.write_text('{"encoder": "lexical"}')
    monkeypatch.setenv(REWARD_CONFIG_ENV, "reward.json")
    monkeypatch.chdir(tmp_path)
    serve(workers=2)
    assert started[0]["workers"] == 2 and os.environ[REWARD_CONFIG_ENV] == str(config.resolve())


class _Flaky:
    """A reward wrapper that raises an unexpected error on completions containing 'BOOM' and sleeps on 'SLOW'."""

    def __init__(self, inner):
        from medground_eval.integrations.reward_config import EngineReward

        self.inner = EngineReward(inner)

    def score(self, completions, labels):
        if any("BOOM" in c for c in completions):
            raise ValueError("boom")
        if any("SLOW" in c for c in completions):
            time.sleep(0.3)
        return self.inner.score(completions, labels)


def _serve(app):
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    return server, thread, sock


@pytest.fixture(scope="module")
def limited_url(reward):
    from medground_eval.integrations.server import ServerLimits

    limits = ServerLimits(max_request_bytes=2**20, max_queries=8, body_timeout=1.0, time_budget=0.5, chunk_queries=1)
    server, thread, sock = _serve(create_app(_Flaky(reward), limits=limits))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def _many(n: int, response: str = RESPONSES[1]) -> dict:
    return {"query": [query(response)] * n, "labels": [json.dumps(LABELS[1])] * n}


def test_too_many_queries_is_a_413_naming_the_cap(limited_url):
    """Issue 13 case 4: one request of 10,000 queries held the worker for 54 s."""
    response = httpx.post(f"{limited_url}/get_reward", json=_many(9))
    assert response.status_code == 413
    assert "9 queries: expected at most 8" in response.json()["detail"]
    assert httpx.post(f"{limited_url}/get_reward", json=_many(8)).status_code == 200


def test_an_unexpected_error_is_a_null_reward_of_that_item_never_a_500(limited_url):
    body = {"query": [query(RESPONSES[1]), query("<answer>BOOM</answer>"), query(RESPONSES[0])],
            "labels": [json.dumps(LABELS[1]), json.dumps(LABELS[1]), json.dumps(LABELS[0])]}
    answer = httpx.post(f"{limited_url}/get_reward", json=body).json()
    assert answer["rewards"][1] is None and answer["rewards"][0] is not None and answer["rewards"][2] is not None
    assert answer["unscored"][0] is None and "scoring failed: ValueError('boom')" in answer["unscored"][1]
    assert answer["extra_logs"]["iou"][1] is None


def test_the_time_budget_leaves_the_rest_unscored_with_a_reason(limited_url):
    answer = httpx.post(f"{limited_url}/get_reward", json=_many(8, "<answer>SLOW [1, 2, 3, 4]</answer>"),
                        timeout=30).json()
    rewards = answer["rewards"]
    assert 1 <= sum(r is not None for r in rewards) < 8 and rewards[-1] is None
    assert "time budget of 0.5 s ran out" in answer["unscored"][-1]


def test_a_slow_body_is_a_408_and_frees_the_worker(limited_url):
    host, port = limited_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(b"POST /get_reward HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"query\"")
        begin = time.monotonic()
        answer = b""
        while b"}" not in answer:
            chunk = slow.recv(65536)
            assert chunk, answer
            answer += chunk
        answer = answer.decode()
        assert answer.startswith("HTTP/1.1 408") and "not received within 1 s" in answer
        assert time.monotonic() - begin < 5
    assert httpx.post(f"{limited_url}/get_reward", json=_many(1)).status_code == 200


def test_a_keep_alive_connection_survives_bad_requests(limited_url):
    """Every error answer leaves the client's connection open: the next request goes over the same socket."""
    host, port = limited_url.removeprefix("http://").split(":")
    bad_bodies = [b"garbage", b"[" * 100_000, json.dumps(_many(9)).encode(), json.dumps({"query": ["a"]}).encode(),
                  json.dumps({"query": ["a"], "labels": ["{}"]}).encode(),
                  json.dumps({"query": [query("<answer>BOOM</answer>")], "labels": [json.dumps(LABELS[0])]}).encode(),
                  b"\xff\xfe\x00"]
    good = json.dumps(_many(1)).encode()
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        stream = conn.makefile("rb")
        for body in [*bad_bodies, good]:
            conn.sendall(b"POST /get_reward HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status = stream.readline().decode()
            headers = {}
            while (line := stream.readline().decode().strip()):
                name, _, value = line.partition(":")
                headers[name.lower()] = value.strip()
            payload = json.loads(stream.read(int(headers["content-length"])))
            assert status.split()[1] in {"200", "400", "413", "422"}, (status, payload)
            assert headers.get("connection") != "close"
            assert status.split()[1] == "200" or "detail" in payload
        assert status.split()[1] == "200" and payload["rewards"][0] is not None


def test_serve_frame_options_reach_every_worker(tmp_path):
    # Issue 12: serve had no option for the pixel limits; a label without its own frame was read in the pixel frame
    # whatever the reward config said. With --frame qwen2.5-vl --max-pixels 1003520 the server scores like the core
    # reward in that frame, and unlike the default limits.
    import numpy as np

    from medground_eval.frames import get_frame

    label = {"solution": [[400, 500, 1200, 1500]], "phrase": "opacity", "image_size": [2048, 2500]}
    box = get_frame("resized:max_pixels=1003520").from_pixels(np.array([[400.0, 500, 1200, 1500]]), (2048, 2500))
    answer = f'<think>x</think><answer>{{"bbox_2d": {[int(round(v)) for v in box[0]]}}}</answer>'
    body = {"query": [query(answer)], "prompts": [PROMPT], "labels": [json.dumps(label)]}
    with serve_command("--reward-config", lexical_config(tmp_path), "--frame", "qwen2.5-vl", "--max-pixels",
                       "1003520") as server:
        served = httpx.post(f"{server}/get_reward", json=body, timeout=60).json()
    columns = {k: [v] for k, v in label.items()}
    limited = SpatialSemanticReward(encoder="lexical", frame="resized:max_pixels=1003520").breakdown([answer],
                                                                                                     **columns)
    default = SpatialSemanticReward(encoder="lexical", frame="qwen2.5-vl").breakdown([answer], **columns)
    assert limited.iou[0] > 0.9 > 0.5 > default.iou[0]
    assert served["extra_logs"]["iou"][0] == pytest.approx(limited.iou[0])
