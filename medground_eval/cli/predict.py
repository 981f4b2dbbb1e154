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
    from medground_eval.cli.progress import progress
    from medground_eval.datasets import get_loader
    from medground_eval.frames import resolve_model_frame
    from medground_eval.inference import (
        default_device,
        generate_completions,
        load_model_and_processor,
        local_model_dir,
        prediction_records,
        write_predictions,
    )
    from medground_eval.integrations.hf_data import build_dataset

    try:
        local_model_dir(model)
        model_frame = resolve_model_frame(model, default=frame, min_pixels=min_pixels, max_pixels=max_pixels)
        with progress(f"predict: loading {dataset} from {data_dir}") as stage:  # the steps before the first batch
            samples = get_loader(dataset)(data_dir, split=split).samples
            stage.describe(f"predict: loading the model {model.name}")
            device, bf16 = ("cpu", False) if use_cpu else default_device()
            loaded, processor = load_model_and_processor(
                model, device=device, bf16=bf16, min_pixels=min_pixels, max_pixels=max_pixels
            )
            stage.describe(f"predict: reading {len(samples)} images")
            rows = build_dataset(samples, image_root=image_root, frame=model_frame, template=template)
        completions = generate_completions(  # its own bar: one step a batch
            loaded, processor, rows, batch_size=batch_size, max_new_tokens=max_new_tokens, do_sample=sample,
            temperature=temperature,
        )
        written = write_predictions(prediction_records(rows, completions, model_frame), output)
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {len(samples)} predictions to {written}")
