"""`medground-eval train`: MedGround-R1 GRPO with TRL or OpenRLHF / verl / EasyR1 (the runs: ``training.run``;
their TRL and engine parts: ``integrations.trl``, ``integrations.engines``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medground_eval.cli import app

BACKENDS = ("trl", "openrlhf", "verl", "easyr1")
ENGINE_OPTIONS = ("gpus", "nodes", "rollout_tensor_parallel")
"""Options only the engine backends read (reported, not dropped, under --backend trl)."""


def _weights(text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        weights = tuple(float(part) for part in text.split(","))
    except ValueError:
        weights = ()
    if len(weights) != 3:
        raise typer.BadParameter(f"{text!r}: expected three comma-separated numbers (format,spatial,semantic)")
    return weights  # type: ignore[return-value]


@app.command("train")
def train_command(
    backend: Annotated[str, typer.Option(help="Training engine: trl, openrlhf, verl or easyr1.")] = "trl",
    stage: Annotated[str | None, typer.Option(
        help="sft (supervised warm-start on the true boxes, in the model's frame) or grpo (default).")] = None,
    init_from: Annotated[str | None, typer.Option(
        help="Start from a previous run's output folder (its model, e.g. the SFT stage), instead of --model.")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML or YAML file of options; flags override it.")] = None,
    model: Annotated[str | None, typer.Option(help="Local checkpoint directory (Qwen2-VL, Qwen2.5-VL, Qwen3-VL).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Data set loader name: jsonl, mscxr, chestxray8.")] = None,
    data_dir: Annotated[str | None, typer.Option(
        "--data-dir", "--annotations", help="The data set's annotation file or folder.")] = None,
    image_root: Annotated[str | None, typer.Option(help="Folder the data set's image paths are relative to.")] = None,
    output_dir: Annotated[str | None, typer.Option(help="Checkpoints, final model and evaluation go here.")] = None,
    split: Annotated[str | None, typer.Option(help="Training split (default: train).")] = None,
    eval_split: Annotated[str | None, typer.Option(help="Held-out split scored at the end (default: test).")] = None,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Skip the final evaluation.")] = False,
    template: Annotated[str | None, typer.Option(help="Prompt template: chain-of-box (default) or plain.")] = None,
    frame: Annotated[str | None, typer.Option(help="Box frame for model types not recognised (Qwen: from the model).")] = None,
    num_generations: Annotated[int | None, typer.Option(help="GRPO group size (default: 8).")] = None,
    beta: Annotated[float | None, typer.Option(help="KL coefficient (default: 0.04).")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Learning rate (default: 1e-6).")] = None,
    num_train_epochs: Annotated[float | None, typer.Option(help="Epochs (default: 2).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps (overrides epochs).")] = None,
    max_completion_length: Annotated[int | None, typer.Option(help="Completion tokens (default: 256).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (default: 1.0).")] = None,
    per_device_train_batch_size: Annotated[int | None, typer.Option(help="Completions per device per step.")] = None,
    gradient_accumulation_steps: Annotated[int | None, typer.Option()] = None,
    reward_weights: Annotated[str | None, typer.Option(help="format,spatial,semantic weights (default: 1,1,1).")] = None,
    spatial_mode: Annotated[str | None, typer.Option(help="iou (default), threshold or giou.")] = None,
    semantic_encoder: Annotated[str | None, typer.Option(help="minilm (default), lexical or a model path.")] = None,
    use_lora: Annotated[bool | None, typer.Option("--use-lora/--no-use-lora", help="Train LoRA adapters (peft).")] = None,
    lora_r: Annotated[int | None, typer.Option()] = None,
    lora_alpha: Annotated[int | None, typer.Option()] = None,
    save_steps: Annotated[int | None, typer.Option(help="Save a checkpoint every N steps (default: 500).")] = None,
    logging_steps: Annotated[int | None, typer.Option()] = None,
    resume_from_checkpoint: Annotated[
        str | None, typer.Option(help="A checkpoint folder, or 'last' for the latest in --output-dir.")
    ] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    eval_steps: Annotated[int | None, typer.Option(
        help="Predict and score the held-out split every N steps (curves.png, curves.jsonl); 0: only at the end "
             "(engines: 0 evaluates at every checkpoint, --save-steps).")] = None,
    stop_on_zero_gradient: Annotated[int | None, typer.Option(
        help="GRPO: stop after N steps in which every group had identical rewards (no gradient); 0: never.")] = None,
    use_cpu: Annotated[bool | None, typer.Option("--use-cpu/--no-use-cpu", help="Train on the CPU.")] = None,
    gpus: Annotated[int | None, typer.Option(help="Engines: GPUs per node (default: 8).")] = None,
    nodes: Annotated[int | None, typer.Option(help="Engines: nodes (default: 1).")] = None,
    rollout_tensor_parallel: Annotated[int | None, typer.Option(
        help="Engines: GPUs per vLLM rollout engine (default: 1).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the setup and print the plan; do not train.")] = False,
) -> None:
    """Train a vision-language model (SFT warm-start or GRPO) on a grounding data set, then score the held-out split."""
    flags = {k: v for k, v in locals().items() if k not in ("backend", "config", "no_eval", "dry_run")}
    from medground_eval.integrations.options import TrainOptions, load_options

    if backend not in BACKENDS:
        typer.echo(f"error: --backend {backend!r}: expected one of {', '.join(BACKENDS)}", err=True)
        raise typer.Exit(2)
    flags["reward_weights"] = _weights(reward_weights)
    try:
        options = load_options(config, **flags)
        if no_eval:
            options.eval_split = None
        if backend != "trl" and options.stage != "grpo":
            raise ValueError(f"--stage {options.stage}: only the trl backend runs it; run it with --backend trl and "
                             f"pass its output to --backend {backend} as --model")
        if backend != "trl":
            from medground_eval.training.run import launch_engine

            raise typer.Exit(launch_engine(backend, options, dry_run=dry_run))
        from medground_eval.integrations import trl
        from medground_eval.training import run
        engine_only = [f"--{name.replace('_', '-')}" for name in ENGINE_OPTIONS
                       if getattr(options, name) != getattr(TrainOptions(), name)]
        if engine_only:
            typer.echo(f"note: {', '.join(engine_only)} serve the engine backends; --backend trl runs on the devices "
                       "its launcher (accelerate / torchrun) gives it", err=True)

        if dry_run:
            typer.echo(json.dumps(trl.check_run(options), indent=2))
            return
        result = run.train(options)
    except (FileNotFoundError, ValueError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    for message in result.messages:
        typer.echo(f"warning: {message}", err=True)
    typer.echo(f"trained {result.global_step} steps; model saved in {result.output_dir}")
    if result.metrics is not None:
        typer.echo(f"held-out predictions: {result.predictions}\nheld-out metrics: {result.metrics}")
