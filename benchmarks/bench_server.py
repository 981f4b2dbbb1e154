"""Bounded load test of the reward server on loopback: OpenRLHF-style valid requests mixed with hostile ones.

Starts ``medground-eval serve`` on 127.0.0.1 in a subprocess (waiting for ``/health`` with a deadline, and always
stopping it, whatever happens), then for ``--seconds`` (default 60) ``--clients`` threads (default 32), each with one
keep-alive ``http.client`` connection, post requests: mostly valid ones (a Qwen2.5-VL query with an expanded image,
1296 ``<|image_pad|>`` tokens, ~20 kB, and its label, from a pool of 64 samples), and every ``--bad-every``-th
request a malformed one (not JSON, invalid UTF-8, 100,000 nested ``[``, missing or mistyped fields, mismatched
lengths, an unreadable label, absurd numbers ``1e300`` / ``2e154`` / ``inf`` in the answer). Beside them: one
request of ``--big-queries`` (default 10,000) queries, ~10 MB, sent once a second into the run (the server is
started with ``--max-queries`` equal to it, so the request is scored, in chunks, while the small ones go on), and
``--slow-clients`` (default 4) connections that dribble a body and never finish it (the server's
``--body-timeout`` is 5 s here).

Every valid answer is checked against the value computed in this process. Reported: requests per second, p50 / p99
latency of the valid small requests, statuses, the big request's latency, and the ratio of the server's throughput
to a reference measured in the same run (the same requests scored in-process by one thread, no HTTP). PASS/FAIL:
p99 of valid small requests < 2 s, zero 5xx, zero lost keep-alive connections (a connection the server closed, or
that failed, after any request but a slow body's), every valid answer correct, server memory flat (RSS at the end
within 10% or 20 MiB of RSS at half time, when the big request is done). Linux only (reads /proc). Run:
``python benchmarks/bench_server.py [--seconds 60] [--clients 32] [--workers 1] [--encoder minilm|lexical]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from medground_eval.integrations.engines import load_reward
from medground_eval.integrations.openrlhf import score_queries

PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>{pads}"
    "<|vision_end|>Locate the region described by: \"{phrase}\".<|im_end|>\n<|im_start|>assistant\n"
)
FINDINGS = ["left apical pneumothorax", "right lower lobe consolidation", "cardiomegaly", "left pleural effusion"]
HOST = "127.0.0.1"


def requests_pool(n: int = 64, seed: int = 0, pads: int = 1296) -> list[dict]:
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
        query = PROMPT.format(pads="<|image_pad|>" * pads, phrase=finding) + response + "<|im_end|>"
        label = {"id": str(i), "solution": [truth], "phrase": finding, "image_size": [1024, 1024], "frame": "pixel"}
        pool.append({"query": [query], "prompts": [PROMPT.format(pads="<|image_pad|>", phrase=finding)],
                     "labels": [json.dumps(label)]})
    return pool


def malformed_bodies(pool: list[dict]) -> list[bytes]:
    """Hostile request bodies: each must get a 4xx (or a 200 for a valid request with a garbage answer)."""
    good = pool[0]
    absurd = [dict(good, query=[good["prompts"][0] + f"<answer>[0, 0, {n}, {n}]</answer><|im_end|>"])
              for n in ("1e300", "2e154", "inf")]
    return [
        b"{not json", b"\xff\xfe\xfa", b"[" * 100_000, b"[1, 2]", json.dumps({"labels": []}).encode(),
        json.dumps({"query": "abc", "labels": ["x"]}).encode(),
        json.dumps({"query": ["a", "b"], "labels": ["{}"]}).encode(),
        json.dumps({"query": ["a"], "labels": ["{}"]}).encode(),
        json.dumps({"query": ["a"], "labels": ["[" * 5000]}).encode(),
        json.dumps({"query": ["a"], "labels": [{"solution": [[1, 2, 3]], "phrase": "x"}]}).encode(),
        *(json.dumps(body).encode() for body in absurd),
    ]


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


class Connection:
    """One keep-alive HTTP/1.1 connection; ``lost`` counts the times the server closed it or it failed."""

    def __init__(self, port: int, timeout: float = 120.0):
        self.port, self.timeout, self.lost = port, timeout, 0
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)

    def post(self, body: bytes, path: str = "/get_reward") -> tuple[int, bytes]:
        """``(status, body)``; status 0 for a transport failure (then the connection is counted lost)."""
        try:
            self.conn.request("POST", path, body=body, headers={"content-type": "application/json"})
            response = self.conn.getresponse()
            data = response.read()
            if response.will_close:
                self._reconnect()
            return response.status, data
        except (OSError, http.client.HTTPException):
            self._reconnect()
            return 0, b""

    def get(self, path: str) -> int:
        try:
            self.conn.request("GET", path)
            response = self.conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            return 0

    def _reconnect(self) -> None:
        self.lost += 1
        self.conn.close()
        self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)


def start_server(port: int, workers: int, config: Path, max_queries: int, wait_s: float = 300.0) -> subprocess.Popen:
    """``medground-eval serve`` on loopback; returns once ``/health`` answers, within ``wait_s`` (the caller stops
    the process, whatever happens)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "medground_eval", "serve", "--host", HOST, "--port", str(port), "--workers",
         str(workers), "--reward-config", str(config), "--log-level", "warning", "--max-queries", str(max_queries),
         "--body-timeout", "5"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + wait_s
    probe = Connection(port, timeout=10)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering /health")
        if probe.get("/health") == 200:
            return process
        time.sleep(0.2)
    raise RuntimeError(f"server did not answer /health within {wait_s:g} s")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def slow_client(port: int, until: float, counts: dict, lock: threading.Lock) -> None:
    """Open a connection, send headers and half a body, then stall; repeat until ``until``."""
    while time.monotonic() < until:
        try:
            with socket.create_connection((HOST, port), timeout=30) as sock:
                sock.sendall(b"POST /get_reward HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n{\"query\": [")
                answer = sock.recv(4096)
            status = int(answer.split()[1]) if answer.startswith(b"HTTP/1.1") else 0
        except (OSError, ValueError, IndexError):
            status = 0
        with lock:
            counts["slow"][status] = counts["slow"].get(status, 0) + 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--encoder", default="minilm", choices=["minilm", "lexical"])
    parser.add_argument("--bad-every", type=int, default=10, help="every n-th request of a client is malformed")
    parser.add_argument("--big-queries", type=int, default=10_000)
    parser.add_argument("--slow-clients", type=int, default=4)
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

    bodies = [json.dumps(p).encode() for p in pool]
    bad = malformed_bodies(pool)
    short = requests_pool(pads=1)  # ~1 kB queries: 10,000 of them are a ~10 MB body, as in the issue
    picked = [short[k % len(short)] for k in range(args.big_queries)]
    big = json.dumps({key: [p[key][0] for p in picked] for key in ("query", "prompts", "labels")}).encode()
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    server = start_server(port, args.workers, config, max_queries=max(args.big_queries, 1024))
    try:
        return run_load(args, port, server, bodies, bad, big, expected, reference_rps)
    finally:
        stop_server(server)


def run_load(args, port: int, server: subprocess.Popen, bodies: list[bytes], bad: list[bytes], big: bytes,
             expected: list[float], reference_rps: float) -> int:
    warm = Connection(port)
    for body in bodies * 2:  # warm every worker's encoder cache before measuring
        warm.post(body)

    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"sent": 0, "ok": 0, "wrong": 0, "lost": 0, "statuses": {}, "bad_statuses": {}, "slow": {}}
    big_result: dict[str, object] = {}
    rss_samples: dict[str, int] = {}
    t0 = time.monotonic()
    deadline = t0 + args.seconds

    def client(index: int) -> None:
        connection = Connection(port)
        local, statuses, bad_statuses, sent, ok, wrong = [], {}, {}, 0, 0, 0
        i = index
        while time.monotonic() < deadline:
            if args.bad_every and i % args.bad_every == args.bad_every - 1:
                status, _ = connection.post(bad[(i // args.bad_every) % len(bad)])
                bad_statuses[status] = bad_statuses.get(status, 0) + 1
            else:
                sent += 1
                begin = time.perf_counter()
                status, data = connection.post(bodies[i % len(bodies)])
                local.append(time.perf_counter() - begin)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    ok += 1
                    wrong += abs(json.loads(data)["rewards"][0] - expected[i % len(bodies)]) > 1e-6
            i += 1
        with lock:
            latencies.extend(local)
            counts["sent"] += sent
            counts["ok"] += ok
            counts["wrong"] += wrong
            counts["lost"] += connection.lost
            for key, mine in (("statuses", statuses), ("bad_statuses", bad_statuses)):
                for status, n in mine.items():
                    counts[key][status] = counts[key].get(status, 0) + n

    def big_request() -> None:
        time.sleep(min(1.0, args.seconds / 10))
        connection = Connection(port, timeout=args.seconds * 4)
        begin = time.perf_counter()
        status, data = connection.post(big)
        big_result.update(status=status, seconds=time.perf_counter() - begin, lost=connection.lost,
                          n=len(json.loads(data)["rewards"]) if status == 200 else 0)

    def sample_memory() -> None:
        time.sleep(args.seconds / 2)
        rss_samples["half"] = rss_bytes(server.pid)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    threads += [threading.Thread(target=slow_client, args=(port, deadline, counts, lock))
                for _ in range(args.slow_clients)]
    threads += [threading.Thread(target=big_request), threading.Thread(target=sample_memory)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - t0
    rss_end = rss_bytes(server.pid)

    rps = counts["ok"] / elapsed
    lat = np.array(latencies) * 1000 if latencies else np.zeros(1)
    p99 = float(np.percentile(lat, 99))
    all_statuses = [*counts["statuses"], *counts["bad_statuses"], big_result.get("status", 0)]
    server_errors = sum(n for key in ("statuses", "bad_statuses") for s, n in counts[key].items() if s >= 500)
    server_errors += int(big_result.get("status", 0) >= 500)
    lost = counts["lost"] + int(big_result.get("lost", 0))
    growth = rss_end - rss_samples["half"]
    print(f"{args.clients} clients + {args.slow_clients} slow, {args.workers} worker(s), {args.encoder} encoder, "
          f"{elapsed:.1f} s, {os.cpu_count()} CPUs")
    print(f"valid small requests: sent {counts['sent']}, answered 200 {counts['ok']}, statuses {counts['statuses']}")
    print(f"malformed requests: statuses {counts['bad_statuses']}; slow bodies: statuses {counts['slow']}")
    print(f"big request ({args.big_queries} queries): status {big_result.get('status')}, {big_result.get('n')} "
          f"rewards in {big_result.get('seconds', float('nan')):.1f} s")
    print(f"throughput: {rps:.0f} req/s; valid small latency p50 {np.percentile(lat, 50):.1f} ms, p99 {p99:.1f} ms, "
          f"max {lat.max():.1f} ms")
    print(f"reference (in-process, one thread, no HTTP): {reference_rps:.0f} req/s; server / reference = "
          f"{rps / reference_rps:.2f}x")
    print(f"server RSS: {rss_samples['half'] / 2**20:.1f} MiB after half the run, {rss_end / 2**20:.1f} MiB "
          f"at the end ({growth / 2**20:+.1f} MiB); lost keep-alive connections: {lost}")
    checks = {
        "p99 of valid small requests < 2 s": p99 < 2000,
        "zero 5xx": server_errors == 0 and 0 not in all_statuses,
        "every valid small request answered 200": counts["ok"] == counts["sent"] > 0,
        "every malformed request a 4xx or 200": all(400 <= s < 500 or s == 200 for s in counts["bad_statuses"]),
        "the big request scored whole": big_result.get("status") == 200 and big_result.get("n") == args.big_queries,
        "slow bodies answered 408": set(counts["slow"]) <= {408} and bool(counts["slow"]) or not args.slow_clients,
        "zero lost keep-alive connections": lost == 0,
        "every answer equals the in-process reward": counts["wrong"] == 0,
        "memory flat (growth <= max(10%, 20 MiB))": growth <= max(0.10 * rss_samples["half"], 20 * 2**20),
    }
    for name, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}: {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
