"""`medground-eval convert`: write a data set as the training files of TRL, OpenRLHF, verl or EasyR1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medground_eval.cli import app
from medground_eval.cli.frame_options import MaxPixelsOption, MinPixelsOption, ProcessorOption


@app.command("convert")
def convert_command(
    dataset: Annotated[str, typer.Option(help="Data set loader name (jsonl, mscxr, chestxray8, m3d-refseg).")],
    annotations: Annotated[Path, typer.Option(
        "--annotations", "--data-dir", help="The data set's annotation file or directory.")],
    fmt: Annotated[str, typer.Option("--format", help="trl, openrlhf, verl or easyr1.")],
    output: Annotated[Path, typer.Option(help="Output directory; the split is written as <split><suffix>.")],
    split: Annotated[str | None, typer.Option(help="Keep this split only (default: the loader's default).")] = None,
    image_root: Annotated[Path | None, typer.Option(help="Directory the image paths are relative to.")] = None,
    frame: Annotated[str, typer.Option(
        help="Frame the model answers in (written in each label); with --model, only for a model type not known.")
    ] = "qwen2.5-vl",
    model: Annotated[Path | None, typer.Option(
        help="Local checkpoint folder: the frame and pixel limits come from its config / preprocessor_config.")
    ] = None,
    processor: ProcessorOption = None,
    min_pixels: MinPixelsOption = None,
    max_pixels: MaxPixelsOption = None,
    template: Annotated[str, typer.Option(help="chain-of-box, plain, or a string with {phrase}.")] = "chain-of-box",
) -> None:
    """Convert a data set into an engine's training file, with the Chain-of-Box prompt and the reward's label."""
    from medground_eval.cli.frame_options import resolve_frame
    from medground_eval.cli.progress import progress
    from medground_eval.datasets import get_loader
    from medground_eval.frames import get_frame
    from medground_eval.integrations.convert import FORMATS, convert_dataset, output_path

    if fmt not in FORMATS:
        typer.echo(f"error: --format {fmt!r}: expected one of {', '.join(FORMATS)}", err=True)
        raise typer.Exit(2)
    try:
        spec = resolve_frame(frame, model, processor, min_pixels, max_pixels)
        if spec == get_frame(frame):
            spec = frame  # the preset name the user gave goes into the labels
        load = get_loader(dataset)
        with progress(f"convert: loading {dataset} from {annotations}") as stage:
            data = load(annotations, split=split) if split is not None else load(annotations)
            stage.describe(f"convert: writing {len(data)} samples as {fmt}")
            written = convert_dataset(data, fmt, output_path(output, fmt, split), image_root=image_root, frame=spec,
                                      template=template, split=split)
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {len(data)} samples to {written}")
