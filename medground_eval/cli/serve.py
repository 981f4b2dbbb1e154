"""`medground-eval serve`: the HTTP reward server for OpenRLHF (``--reward.remote_url http://HOST:PORT/get_reward``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medground_eval.cli import app
from medground_eval.cli.frame_options import (
    MaxPixelsOption,
    MinPixelsOption,
    ModelOption,
    ProcessorOption,
    cli_frame,
)


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on; 0.0.0.0 exposes the server.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 5000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes, each with its own reward.")] = 1,
    reward_config: Annotated[
        Path | None, typer.Option(help="Reward settings (.json/.toml); default: $MEDGROUND_REWARD_CONFIG.")
    ] = None,
    max_request_bytes: Annotated[int, typer.Option(min=1, help="Larger bodies are refused with 413.")] = 64 * 2**20,
    max_queries: Annotated[int, typer.Option(min=1, help="More queries in one request are refused with 413.")]
    = 1024,
    body_timeout: Annotated[float, typer.Option(help="Seconds to receive a request body (else 408).")] = 30.0,
    time_budget: Annotated[float, typer.Option(
        help="Seconds of scoring per request; queries not reached get a null reward and a reason.")] = 60.0,
    chunk_queries: Annotated[int, typer.Option(
        min=1, help="Queries scored per thread-pool job (the encoder is released between chunks).")] = 64,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    frame: Annotated[str | None, typer.Option(help="Frame the model answers in (replaces the reward config's; a "
                                                   "label's own frame still wins).")] = None,
    model: ModelOption = None,
    processor: ProcessorOption = None,
    min_pixels: MinPixelsOption = None,
    max_pixels: MaxPixelsOption = None,
) -> None:
    """Serve the MedGround reward at POST /get_reward (OpenRLHF's remote reward protocol) and GET /health."""
    from medground_eval.integrations.server import ServerLimits, serve

    run_frame = None
    if frame is not None or any(v is not None for v in (model, processor, min_pixels, max_pixels)):
        run_frame = cli_frame(frame or "pixel", model, processor, min_pixels, max_pixels)

    try:
        limits = ServerLimits(max_request_bytes=max_request_bytes, max_queries=max_queries, body_timeout=body_timeout,
                              time_budget=time_budget, chunk_queries=chunk_queries)
        serve(host=host, port=port, workers=workers, reward_config=reward_config, limits=limits, log_level=log_level,
              frame=run_frame)
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
