"""HTTP reward server speaking OpenRLHF's remote reward protocol (FastAPI on uvicorn).

``POST /get_reward`` (the path of OpenRLHF's reference server; pass ``--reward.remote_url http://HOST:PORT/get_reward``)
with JSON ``{"query": [...], "prompts": [...], "labels": [...]}``: one query (prompt plus response, special tokens
kept), prompt and label (the JSON label of :mod:`medground_eval.integrations.labels`) per sample; ``prompts`` may be
omitted. The answer is ``{"rewards": [...], "scores": [...], "extra_logs": {"format": [...], "iou": [...],
"spatial": [...], "semantic": [...]}}``, computed exactly as the OpenRLHF reward file does
(:func:`medground_eval.integrations.openrlhf.score_queries`). ``GET /health`` answers ``{"status": "ok"}``.

Errors: a body that is not JSON is a 400; a request with missing, mistyped or mismatched fields, or a label the
reward cannot read, a 422; a body over ``max_request_bytes`` (by its Content-Length, or counted while reading a
chunked body) a 413. Each carries ``{"detail": message}``; the worker keeps serving. OpenRLHF's client shows only the
status line of a failed request (and retries it five times), so every 4xx is also logged here at WARNING with its
reason: the server's log says which label is broken and why.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from medground_eval.extras import requires

with requires("serve", "the reward server (medground-eval serve)"):
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

from medground_eval.integrations.labels import LabelError
from medground_eval.integrations.openrlhf import score_queries
from medground_eval.integrations.reward_config import (
    REWARD_CONFIG_ENV,
    EngineReward,
    load_engine_reward,
    reward_from_env,
)
from medground_eval.rewards import RewardInputError, SpatialSemanticReward

DEFAULT_MAX_REQUEST_BYTES = 64 * 2**20
"""64 MiB: a Qwen2.5-VL query with an expanded 1024x1024 image is about 20 kB, so some 3000 queries a request."""

MAX_BYTES_ENV = "MEDGROUND_SERVER_MAX_BYTES"

logger = logging.getLogger("medground_eval.integrations.server")


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


def parse_request(body: bytes) -> tuple[list[str], list[str], list[object]]:
    """``(queries, prompts, labels)`` of a request body; raises HTTPException 400 / 422 naming the field."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise HTTPException(
            400, f"request body is not JSON ({error}): expected an object with 'query' and 'labels'"
        ) from None
    if not isinstance(payload, dict):
        raise HTTPException(422, f"request body {payload!r:.200}: expected a JSON object with 'query' and 'labels'")
    queries = _strings(payload, "query")
    labels = payload.get("labels")
    if not isinstance(labels, list) or len(labels) != len(queries):
        raise HTTPException(422, f"field 'labels' = {labels!r:.200}: expected a list with one label per query "
                                 f"({len(queries)})")
    prompts = _strings(payload, "prompts") if payload.get("prompts") is not None else [""] * len(queries)
    if len(prompts) != len(queries):
        raise HTTPException(422, f"field 'prompts' has {len(prompts)} values: expected one per query ({len(queries)})")
    return queries, prompts, labels


def create_app(
    reward: EngineReward | SpatialSemanticReward, *, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
) -> FastAPI:
    """The ASGI app scoring with ``reward`` (scoring runs in the thread pool, off the event loop)."""
    app = FastAPI(title="medground-eval reward server")

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.post("/get_reward")
    async def get_reward(request: Request) -> JSONResponse:
        try:
            queries, prompts, labels = parse_request(await _read_body(request, max_request_bytes))
            try:
                total, components = await run_in_threadpool(score_queries, reward, queries, prompts, labels)
            except (LabelError, RewardInputError) as error:
                raise HTTPException(422, str(error)) from None
        except HTTPException as error:
            logger.warning("POST /get_reward answered %d: %s", error.status_code, error.detail)
            raise
        rewards = total.tolist()
        logs = {name: value.tolist() for name, value in components.items()}
        return JSONResponse({"rewards": rewards, "scores": rewards, "extra_logs": logs})

    return app


def create_app_from_env() -> FastAPI:
    """App factory for uvicorn workers: reward from ``$MEDGROUND_REWARD_CONFIG``, size limit from
    ``$MEDGROUND_SERVER_MAX_BYTES``."""
    limit = int(os.environ.get(MAX_BYTES_ENV, DEFAULT_MAX_REQUEST_BYTES))
    return create_app(reward_from_env(), max_request_bytes=limit)


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    reward_config: str | Path | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    log_level: str = "info",
) -> None:
    """Run the server until interrupted. The reward config (``reward_config``, else ``$MEDGROUND_REWARD_CONFIG``) is
    checked here, before any worker starts, and handed to the workers as an absolute path."""
    with requires("serve", "the reward server (medground-eval serve)"):
        import uvicorn

    if workers < 1:
        raise ValueError(f"workers = {workers}: expected at least 1")
    if max_request_bytes < 1:
        raise ValueError(f"max_request_bytes = {max_request_bytes}: expected a positive number of bytes")
    config = reward_config or os.environ.get(REWARD_CONFIG_ENV)
    if config:
        load_engine_reward(config)
        os.environ[REWARD_CONFIG_ENV] = str(Path(config).resolve())
    os.environ[MAX_BYTES_ENV] = str(max_request_bytes)
    uvicorn.run("medground_eval.integrations.server:create_app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level)
