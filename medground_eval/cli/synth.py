"""`medground-eval synth` and `medground-eval tiny-model`: a synthetic grounding task and a tiny model to train on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medground_eval.cli import app


@app.command("synth")
def synth_command(
    output: Annotated[Path, typer.Option(help="Folder to write images/ and data.jsonl in.")],
    n: Annotated[int, typer.Option(help="Samples (train + test).")] = 2000,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 224,
    seed: Annotated[int, typer.Option(help="The same seed writes the same files.")] = 0,
    n_test: Annotated[int, typer.Option(help="Samples of the 'test' split (the last ones).")] = 200,
    two_regions: Annotated[float, typer.Option(help="Share of samples with two regions for one phrase.")] = 0.0,
    laterality: Annotated[bool, typer.Option(
        "--laterality/--no-laterality", help="Name the side (radiological: patient's right = image left).")] = True,
    shape_words: Annotated[bool, typer.Option(
        "--shape-words/--plain-words", help="Name the shape (round / rectangular) or a plain finding word.")] = True,
) -> None:
    """Write a synthetic grounding data set: bright shapes on dark noise, phrases that name them, jsonl ground truth."""
    from medground_eval.synth import SynthOptions, synthesize

    options = SynthOptions(n=n, size=size, seed=seed, n_test=n_test, two_regions=two_regions,
                           laterality=laterality, shape_words=shape_words)
    try:
        annotations = synthesize(output, options)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {n - n_test} train and {n_test} test samples: {annotations} (images under {output / 'images'})")


@app.command("tiny-model")
def tiny_model_command(
    output: Annotated[Path, typer.Argument(help="Folder to save the checkpoint in.")],
    size: Annotated[str, typer.Option(help="learn (~1.5 M parameters, 112 px input) or test (tiny, 56 px).")] = "learn",
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
) -> None:
    """Save a tiny random-weight Qwen2.5-VL (byte-level tokenizer, no download) that every command can load."""
    from medground_eval.tiny_model import build_tiny_qwen

    try:
        build_tiny_qwen(output, size=size, seed=seed)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"saved a tiny Qwen2.5-VL ({size}) in {output}")
