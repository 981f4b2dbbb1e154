"""`medground-eval serve`: the HTTP reward server for OpenRLHF (``--reward.remote_url http://HOST:PORT/get_reward``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medground_eval.cli import app


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on; 0.0.0.0 exposes the server.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 5000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes, each with its own reward.")] = 1,
    reward_config: Annotated[
        Path | None, typer.Option(help="Reward settings (.json/.toml); default: $MEDGROUND_REWARD_CONFIG.")
    ] = None,
    max_request_bytes: Annotated[int, typer.Option(min=1, help="Larger bodies are refused with 413.")] = 64 * 2**20,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the MedGround reward at POST /get_reward (OpenRLHF's remote reward protocol) and GET /health."""
    from medground_eval.integrations.server import serve

    try:
        serve(host=host, port=port, workers=workers, reward_config=reward_config,
              max_request_bytes=max_request_bytes, log_level=log_level)
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
