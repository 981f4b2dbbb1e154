"""Bounded load test of the reward server on loopback, as OpenRLHF drives it (one sample per request).

Starts ``medground-eval serve`` in a subprocess, then ``--clients`` threads (default 32), each with a keep-alive
connection, post OpenRLHF requests for ``--seconds`` (default 20): a Qwen2.5-VL query with an expanded image
(1296 ``<|image_pad|>`` tokens, ~20 kB) and its label, drawn from a pool of 64 distinct samples. Every answer is
checked against the value computed in this process.

Reports requests per second, p50 / p99 latency, and the ratio of the server's throughput to a reference measured in
the same run: the same requests scored in-process by one thread (``score_queries``, no HTTP). PASS/FAIL lines:
zero errors, zero lost responses (every request sent got one answer), every answer correct, server memory flat
(RSS of the server and its workers at the end within 10% or 20 MiB of RSS after the first quarter of the run).
Linux only (reads /proc). Run: ``python benchmarks/bench_server.py [--seconds 20] [--clients 32] [--workers 1]
[--encoder minilm|lexical]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from medground_eval.integrations.engines import load_reward
from medground_eval.integrations.openrlhf import score_queries

PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>{pads}"
    "<|vision_end|>Locate the region described by: \"{phrase}\".<|im_end|>\n<|im_start|>assistant\n"
)
FINDINGS = ["left apical pneumothorax", "right lower lobe consolidation", "cardiomegaly", "left pleural effusion"]


def requests_pool(n: int = 64, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    pool = []
    for i in range(n):
        x1, y1 = rng.integers(0, 600, 2)
        w, h = rng.integers(40, 300, 2)
        truth = [int(x1), int(y1), int(x1 + w), int(y1 + h)]
        pred = [v + int(rng.integers(-20, 20)) for v in truth]
        pred = [min(pred[0], pred[2]), min(pred[1], pred[3]), max(pred[0], pred[2]), max(pred[1], pred[3])]
        finding = FINDINGS[i % len(FINDINGS)]
        response = (f"<think>The {finding} is seen at {pred}; the other side is clear.</think>\n"
                    f'<answer>[{{"bbox_2d": {pred}, "label": "{FINDINGS[(i + i // 4) % len(FINDINGS)]}"}}]</answer>')
        query = PROMPT.format(pads="<|image_pad|>" * 1296, phrase=finding) + response + "<|im_end|>"
        label = {"id": str(i), "solution": [truth], "phrase": finding, "image_size": [1024, 1024], "frame": "pixel"}
        pool.append({"query": [query], "prompts": [PROMPT.format(pads="<|image_pad|>", phrase=finding)],
                     "labels": [json.dumps(label)]})
    return pool


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (uvicorn workers)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def start_server(port: int, workers: int, config: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "medground_eval", "serve", "--port", str(port), "--workers", str(workers),
         "--reward-config", str(config), "--log-level", "warning"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return process
        except httpx.TransportError:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode}") from None
            time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not start within 120 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--encoder", default="minilm", choices=["minilm", "lexical"])
    args = parser.parse_args()

    config = Path(tempfile.mkdtemp()) / "reward.json"
    config.write_text(json.dumps({"encoder": args.encoder}))
    reward = load_reward(config)
    pool = requests_pool()
    expected = [score_queries(reward, p["query"], p["prompts"], p["labels"])[0][0] for p in pool]

    start = time.perf_counter()  # reference: the same requests scored in-process, one thread, no HTTP
    reference_count = 0
    while time.perf_counter() - start < min(5.0, args.seconds / 4) or reference_count < len(pool):
        p = pool[reference_count % len(pool)]
        score_queries(reward, p["query"], p["prompts"], p["labels"])
        reference_count += 1
    reference_rps = reference_count / (time.perf_counter() - start)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = start_server(port, args.workers, config)
    url = f"http://127.0.0.1:{port}/get_reward"
    bodies = [json.dumps(p).encode() for p in pool]
    with httpx.Client() as warm:  # warm every worker's encoder cache before measuring
        for body in bodies * 2:
            warm.post(url, content=body, headers={"content-type": "application/json"})

    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"sent": 0, "ok": 0, "errors": 0, "wrong": 0}
    rss_samples: dict[str, int] = {}
    t0 = time.perf_counter()
    deadline = t0 + args.seconds

    def client(index: int) -> None:
        local, sent, ok, errors, wrong = [], 0, 0, 0, 0
        with httpx.Client(timeout=60) as session:
            i = index
            while time.perf_counter() < deadline:
                sent += 1
                begin = time.perf_counter()
                try:
                    response = session.post(url, content=bodies[i % len(bodies)],
                                            headers={"content-type": "application/json"})
                    local.append(time.perf_counter() - begin)
                    if response.status_code != 200:
                        errors += 1
                    else:
                        ok += 1
                        wrong += abs(response.json()["rewards"][0] - expected[i % len(bodies)]) > 1e-6
                except httpx.HTTPError:
                    errors += 1
                i += 1
        with lock:
            latencies.extend(local)
            for key, value in zip(("sent", "ok", "errors", "wrong"), (sent, ok, errors, wrong)):
                counts[key] += value

    def sample_memory() -> None:
        time.sleep(args.seconds / 4)
        rss_samples["quarter"] = rss_bytes(server.pid)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    sampler = threading.Thread(target=sample_memory)
    for thread in [*threads, sampler]:
        thread.start()
    for thread in [*threads, sampler]:
        thread.join()
    elapsed = time.perf_counter() - t0
    rss_end = rss_bytes(server.pid)
    server.terminate()
    server.wait(30)

    rps = counts["ok"] / elapsed
    lat = np.array(latencies) * 1000
    lost = counts["sent"] - counts["ok"] - counts["errors"]
    growth = rss_end - rss_samples["quarter"]
    print(f"{args.clients} clients, {args.workers} worker(s), {args.encoder} encoder, {elapsed:.1f} s, "
          f"{os.cpu_count()} CPUs")
    print(f"requests: sent {counts['sent']}, answered {counts['ok']}, errors {counts['errors']}, lost {lost}")
    print(f"throughput: {rps:.0f} req/s; latency p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms")
    print(f"reference (in-process, one thread, no HTTP): {reference_rps:.0f} req/s; server / reference = "
          f"{rps / reference_rps:.2f}x")
    print(f"server RSS: {rss_samples['quarter'] / 2**20:.1f} MiB after 1/4 of the run, {rss_end / 2**20:.1f} MiB "
          f"at the end ({growth / 2**20:+.1f} MiB)")
    checks = {
        "zero errors": counts["errors"] == 0,
        "zero lost responses": lost == 0 and counts["sent"] > 0,
        "every answer equals the in-process reward": counts["wrong"] == 0,
        "memory flat (growth <= max(10%, 20 MiB))": growth <= max(0.10 * rss_samples["quarter"], 20 * 2**20),
    }
    for name, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}: {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
