"""`medground-eval predict`: run a model over a data set split and write the predictions file `score` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medground_eval.cli import app


@app.command("predict")
def predict_command(
    model: Annotated[Path, typer.Option(help="Local checkpoint directory (Qwen2-VL, Qwen2.5-VL, Qwen3-VL).")],
    dataset: Annotated[str, typer.Option(help="Data set loader name: jsonl, mscxr, chestxray8.")],
    data_dir: Annotated[Path, typer.Option(
        "--data-dir", "--annotations", help="The data set's annotation file or folder.")],
    output: Annotated[Path, typer.Option(help="Predictions file to write (JSON lines).")] = Path("preds.jsonl"),
    image_root: Annotated[Path | None, typer.Option(help="Folder the data set's image paths are relative to.")] = None,
    split: Annotated[str | None, typer.Option(help="Split to predict (default: every sample).")] = None,
    template: Annotated[str, typer.Option(help="Prompt template: chain-of-box or plain.")] = "chain-of-box",
    frame: Annotated[str, typer.Option(help="Box frame for model types not recognised (Qwen: from the model).")] = "pixel",
    batch_size: Annotated[int, typer.Option(help="Images per generation batch.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="Completion tokens.")] = 256,
    sample: Annotated[bool, typer.Option("--sample/--greedy", help="Sample at --temperature instead of greedy.")] = False,
    temperature: Annotated[float, typer.Option()] = 1.0,
    min_pixels: Annotated[int | None, typer.Option(help="Override the image processor's minimum pixels.")] = None,
    max_pixels: Annotated[int | None, typer.Option(help="Override the image processor's maximum pixels.")] = None,
    use_cpu: Annotated[bool, typer.Option("--use-cpu", help="Run on the CPU even when a GPU is present.")] = False,
) -> None:
    """Generate one completion per sample and write {"id", "completion", "frame", "image_size", "input_size"} lines."""
    from medground_eval.datasets import get_loader
    from medground_eval.frames import resolve_model_frame
    from medground_eval.inference import default_device, load_model_and_processor, local_model_dir, predict_samples

    try:
        local_model_dir(model)
        model_frame = resolve_model_frame(model, default=frame, min_pixels=min_pixels, max_pixels=max_pixels)
        samples = get_loader(dataset)(data_dir, split=split).samples
        device, bf16 = ("cpu", False) if use_cpu else default_device()
        loaded, processor = load_model_and_processor(
            model, device=device, bf16=bf16, min_pixels=min_pixels, max_pixels=max_pixels
        )
        written = predict_samples(
            loaded, processor, samples, output, image_root=image_root, template=template, frame=model_frame,
            batch_size=batch_size, max_new_tokens=max_new_tokens, do_sample=sample, temperature=temperature,
        )
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {len(samples)} predictions to {written}")
