"""The frame options every command shares: ``--frame``, ``--model`` / ``--processor``, ``--min-pixels`` /
``--max-pixels``, resolved once by :func:`cli_frame` into one :class:`~medground_eval.frames.Frame`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medground_eval.frames import Frame, get_frame, resolve_model_frame

ModelOption = Annotated[Path | None, typer.Option(
    "--model", help="Local checkpoint folder: its config.json and preprocessor_config.json give the frame and the "
                    "pixel limits (Qwen2.5-VL: resized with its min/max_pixels; Qwen2-VL/Qwen3-VL: norm1000; "
                    "PaliGemma, Florence-2: their presets). --frame is used for a model it does not know.")]
ProcessorOption = Annotated[Path | None, typer.Option(
    "--processor", help="Local processor folder (preprocessor_config.json), read as --model; wins over --model's.")]
MinPixelsOption = Annotated[int | None, typer.Option(
    "--min-pixels", min=1, help="The image processor's min_pixels the model was run with (resized / qwen2.5-vl "
                                "frame).")]
MaxPixelsOption = Annotated[int | None, typer.Option(
    "--max-pixels", min=1, help="The image processor's max_pixels the model was run with (resized / qwen2.5-vl "
                                "frame; public GRPO scripts use 262144, 401408, 1003520, 1254400).")]


def resolve_frame(frame: str | Frame, model: Path | None = None, processor: Path | None = None,
                  min_pixels: int | None = None, max_pixels: int | None = None) -> Frame:
    """The run's frame: read from ``processor`` (else ``model``) when given, with ``--frame`` as the default of an
    unknown family, else ``frame``; ``min_pixels`` / ``max_pixels`` replace the processor's limits.

    Raises ValueError for an unknown frame, a folder that is not a checkpoint, or pixel limits given for a frame
    that is not ``resized`` (they would change nothing: a silent no-op is refused).
    """
    folder = processor if processor is not None else model
    if folder is not None and not Path(folder).is_dir():
        raise ValueError(f"--{'processor' if processor is not None else 'model'} {folder}: not a local folder; "
                         "expected a checkpoint or processor folder (config.json, preprocessor_config.json)")
    if folder is not None:
        resolved = resolve_model_frame(folder, default=frame, min_pixels=min_pixels, max_pixels=max_pixels)
    else:
        resolved = get_frame(frame)
        limits = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
        if limits and resolved.kind == "resized":
            resolved = get_frame(resolved, **limits)
        elif limits:
            names = " / ".join(f"--{k.replace('_', '-')}" for k in limits)
            raise ValueError(f"{names} given with --frame {frame}: pixel limits set the size of a resized input, "
                             "which only the 'resized' / 'qwen2.5-vl' frame uses; add --frame qwen2.5-vl, or drop "
                             f"{names}")
    return resolved


def cli_frame(frame: str, model: Path | None, processor: Path | None, min_pixels: int | None,
              max_pixels: int | None) -> str:
    """:func:`resolve_frame` for a command, as a frame text: ``frame`` itself when the options leave it as it is
    (the name the user gave, ``voxel``, ``qwen2.5-vl``), else the resolved frame's :attr:`~Frame.spec`. A bad option
    prints ``error: ...`` and exits 1."""
    try:
        resolved = resolve_frame(frame, model, processor, min_pixels, max_pixels)
        return frame.strip().lower() if resolved == get_frame(frame) else resolved.spec
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
