"""HTTP reward server speaking OpenRLHF's remote reward protocol (FastAPI on uvicorn).

``POST /get_reward`` (the path of OpenRLHF's reference server; pass ``--reward.remote_url http://HOST:PORT/get_reward``)
with JSON ``{"query": [...], "prompts": [...], "labels": [...]}``: one query (prompt plus response, special tokens
kept), prompt and label (the JSON label of :mod:`medground_eval.integrations.labels`) per sample; ``prompts`` may be
omitted. The answer is ``{"rewards": [...], "scores": [...], "extra_logs": {"format": [...], "iou": [...],
"spatial": [...], "semantic": [...]}}``, computed exactly as the OpenRLHF reward file does
(:func:`medground_eval.integrations.openrlhf.score_queries`). ``GET /health`` answers ``{"status": "ok"}``.

Limits (:class:`ServerLimits`, ``medground-eval serve`` options) keep one request from stalling the others:

- ``max_request_bytes`` (64 MiB): a larger body is a 413, by its Content-Length or counted while reading a chunked
  body;
- ``max_queries`` (1024 queries, about 20 MB of Qwen2.5-VL queries; OpenRLHF sends a micro-batch per request): a
  request with more is a 413 naming the count and the limit, before any scoring;
- ``body_timeout`` (30 s): a body not received whole within it is a 408 (a slow client cannot hold a worker);
- ``chunk_queries`` (64): a request is scored in chunks, each a separate job of the thread pool, so the encoder is
  released between chunks and the chunks of concurrent requests interleave (a large request never holds the
  encoder for its whole length);
- ``time_budget`` (60 s): the chunks not started within it are not scored: their rewards are ``null`` and
  ``"unscored"`` gives the reason per item (``null`` for the scored ones). A chunk whose scoring raises an
  unexpected error is scored item by item: the items that still fail get ``null`` with their reason.

Errors: a body that is not JSON (or nested deeper than the JSON reader allows) is a 400; a request with missing,
mistyped or mismatched fields, or a label the reward cannot read, a 422. Each carries ``{"detail": message}``, never
a 500, and the keep-alive connection stays open; the worker keeps serving. A client that disconnects mid-body is
dropped without a traceback. OpenRLHF's client shows only the status line of a failed request (and retries it five
times), so every 4xx is also logged here at WARNING with its reason: the server's log says which label is broken
and why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from medground_eval.extras import requires

with requires("serve", "the reward server (medground-eval serve)"):
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect

from medground_eval.datasets.textfile import loads
from medground_eval.integrations.labels import LabelError
from medground_eval.integrations.openrlhf import score_queries
from medground_eval.integrations.reward_config import (
    REWARD_CONFIG_ENV,
    EngineReward,
    load_engine_reward,
    reward_from_env,
    with_frame,
)
from medground_eval.rewards import RewardInputError, SpatialSemanticReward

DEFAULT_MAX_REQUEST_BYTES = 64 * 2**20
"""64 MiB: a Qwen2.5-VL query with an expanded 1024x1024 image is about 20 kB, so some 3000 queries a request."""
DEFAULT_MAX_QUERIES = 1024
"""Queries per request; OpenRLHF posts one micro-batch per request, far fewer."""

LIMITS_ENV = "MEDGROUND_SERVER_LIMITS"
"""JSON of the :class:`ServerLimits` that ``serve`` hands to its uvicorn workers."""

logger = logging.getLogger("medground_eval.integrations.server")


@dataclass(frozen=True)
class ServerLimits:
    """What one request may cost (module docstring); every field is checked to be positive."""

    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_queries: int = DEFAULT_MAX_QUERIES
    body_timeout: float = 30.0
    time_budget: float = 60.0
    chunk_queries: int = 64

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise ValueError(f"server limit {field.name} = {value!r}: expected a positive number")
            if field.type == "int" and not isinstance(value, int):
                raise ValueError(f"server limit {field.name} = {value!r}: expected a positive integer")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, f"Content-Length = {declared!r}: expected a non-negative integer")
        if int(declared) > limit:
            raise HTTPException(413, f"request body of {declared} bytes: expected at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body over {limit} bytes: expected at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _strings(payload: dict, name: str) -> list[str]:
    values = payload.get(name)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise HTTPException(422, f"field {name!r} = {values!r:.200}: expected a list of strings")
    return values


def parse_request(body: bytes, max_queries: int = DEFAULT_MAX_QUERIES) -> tuple[list[str], list[str], list[object]]:
    """``(queries, prompts, labels)`` of a request body; raises HTTPException 400 / 413 / 422 naming the field."""
    try:
        payload = loads(body)
    except (ValueError, RecursionError) as error:
        raise HTTPException(
            400, f"request body is not JSON ({error}): expected an object with 'query' and 'labels'"
        ) from None
    if not isinstance(payload, dict):
        raise HTTPException(422, f"request body {payload!r:.200}: expected a JSON object with 'query' and 'labels'")
    queries = _strings(payload, "query")
    if len(queries) > max_queries:
        raise HTTPException(413, f"field 'query' has {len(queries)} queries: expected at most {max_queries} per "
                                 f"request (serve --max-queries); split the batch")
    labels = payload.get("labels")
    if not isinstance(labels, list) or len(labels) != len(queries):
        raise HTTPException(422, f"field 'labels' = {labels!r:.200}: expected a list with one label per query "
                                 f"({len(queries)})")
    prompts = _strings(payload, "prompts") if payload.get("prompts") is not None else [""] * len(queries)
    if len(prompts) != len(queries):
        raise HTTPException(422, f"field 'prompts' has {len(prompts)} values: expected one per query ({len(queries)})")
    return queries, prompts, labels


def _score_chunk(reward: EngineReward | SpatialSemanticReward, queries: list[str], prompts: list[str],
                 labels: list[object]) -> tuple[list[float | None], dict[str, list[float | None]], list[str | None]]:
    """``(rewards, extra logs, unscored reasons)`` of one chunk. Label and ground-truth errors propagate (a 422);
    any other error is isolated item by item: each item that fails alone is a None with its reason."""
    try:
        total, components = score_queries(reward, queries, prompts, labels)
        return total.tolist(), {k: v.tolist() for k, v in components.items()}, [None] * len(queries)
    except (LabelError, RewardInputError):
        raise
    except Exception as error:  # noqa: BLE001 - one bad item must not fail the request (nor be a 500)
        if len(queries) == 1:
            logger.exception("the reward failed on one query; it is answered null")
            return [None], {}, [f"scoring failed: {error!r:.300}"]
    rewards: list[float | None] = []
    logs: dict[str, list[float | None]] = {}
    reasons: list[str | None] = []
    for query, prompt, label in zip(queries, prompts, labels):
        one, parts, why = _score_chunk(reward, [query], [prompt], [label])
        _extend_logs(logs, parts, len(rewards), len(one))
        rewards += one
        reasons += why
    return rewards, logs, reasons


def _extend_logs(logs: dict[str, list[float | None]], part: dict[str, list[float | None]], before: int,
                 count: int) -> None:
    """Append a chunk's ``extra_logs`` (``count`` values per name) to ``logs`` (``before`` values per name); a name
    missing on either side is padded with None."""
    for name in part:
        logs.setdefault(name, [None] * before)
    for name, values in logs.items():
        values += part.get(name, [None] * count)


def create_app(reward: EngineReward | SpatialSemanticReward, *, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
               limits: ServerLimits | None = None) -> FastAPI:
    """The ASGI app scoring with ``reward``: parsing and scoring run in the thread pool, off the event loop, a
    request's queries in chunks (module docstring). ``limits`` defaults to ``ServerLimits(max_request_bytes)``."""
    limits = limits or ServerLimits(max_request_bytes=max_request_bytes)
    app = FastAPI(title="medground-eval reward server")

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.post("/get_reward")
    async def get_reward(request: Request) -> JSONResponse:
        try:
            answer = await _answer(request)
        except HTTPException as error:
            logger.warning("POST /get_reward answered %d: %s", error.status_code, error.detail)
            raise
        if answer.status_code >= 400:
            logger.warning("POST /get_reward answered %d: %s", answer.status_code, answer.body.decode()[:300])
        return answer

    async def _answer(request: Request) -> JSONResponse:
        started = time.monotonic()
        try:
            body = await asyncio.wait_for(_read_body(request, limits.max_request_bytes), limits.body_timeout)
        except asyncio.TimeoutError:
            return JSONResponse({"detail": f"request body not received within {limits.body_timeout:g} s"},
                                status_code=408, headers={"connection": "close"})
        except ClientDisconnect:
            return JSONResponse({"detail": "client disconnected"}, status_code=400)
        queries, prompts, labels = await run_in_threadpool(parse_request, body, limits.max_queries)
        rewards: list[float | None] = []
        logs: dict[str, list[float | None]] = {}
        unscored: list[str | None] = []
        step = limits.chunk_queries
        for lo in range(0, len(queries), step):
            hi = lo + step
            if time.monotonic() - started > limits.time_budget:
                reason = f"not scored: the request's time budget of {limits.time_budget:g} s ran out"
                count = len(queries[lo:])
                _extend_logs(logs, {}, len(rewards), count)
                rewards += [None] * count
                unscored += [reason] * count
                break
            try:
                part, part_logs, reasons = await run_in_threadpool(
                    _score_chunk, reward, queries[lo:hi], prompts[lo:hi], labels[lo:hi])
            except (LabelError, RewardInputError) as error:
                raise HTTPException(422, f"query {lo} onwards: {error}" if lo else str(error)) from None
            _extend_logs(logs, part_logs, len(rewards), len(part))
            rewards += part
            unscored += reasons
        answer: dict[str, object] = {"rewards": rewards, "scores": rewards, "extra_logs": logs}
        if any(reason is not None for reason in unscored):
            answer["unscored"] = unscored
        return JSONResponse(answer)

    return app


def create_app_from_env() -> FastAPI:
    """App factory for uvicorn workers: reward from ``$MEDGROUND_REWARD_CONFIG``, limits from
    ``$MEDGROUND_SERVER_LIMITS``."""
    limits = ServerLimits(**json.loads(os.environ.get(LIMITS_ENV, "{}")))
    return create_app(reward_from_env(), limits=limits)


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    reward_config: str | Path | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    limits: ServerLimits | None = None,
    log_level: str = "info",
    frame: str | None = None,
) -> None:
    """Run the server until interrupted. The reward config (``reward_config``, else ``$MEDGROUND_REWARD_CONFIG``) is
    checked here, before any worker starts, and handed to the workers as an absolute path; so are the limits.
    ``frame`` (a frame text, resolved by the CLI from ``--frame`` / ``--model`` / ``--max-pixels``) replaces the
    config's ``frame`` for every worker; a label's own ``frame`` still wins for its sample."""
    import tempfile

    with requires("serve", "the reward server (medground-eval serve)"):
        import uvicorn

    if workers < 1:
        raise ValueError(f"workers = {workers}: expected at least 1")
    limits = limits or ServerLimits(max_request_bytes=max_request_bytes)
    config = reward_config or os.environ.get(REWARD_CONFIG_ENV)
    if frame is not None:
        folder = tempfile.TemporaryDirectory(prefix="medground-serve-")
        config = with_frame(config, frame, Path(folder.name))
    if config:
        load_engine_reward(config)
        os.environ[REWARD_CONFIG_ENV] = str(Path(config).resolve())
    os.environ[LIMITS_ENV] = json.dumps(dataclasses.asdict(limits))
    uvicorn.run("medground_eval.integrations.server:create_app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level=log_level)
