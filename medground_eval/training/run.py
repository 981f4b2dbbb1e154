"""The training runs of the app layer: each trains, saves, then predicts and scores the held-out split.

- :func:`train`: ``train --backend trl``: the SFT stage (:func:`medground_eval.training.sft.train_sft`) or GRPO with
  TRL 1.16's ``GRPOTrainer`` (rewards, ``GRPOConfig`` and the checks before any weights load in
  :mod:`medground_eval.integrations.trl`). It loads the split(s), checks every image, trains (resumable), saves the
  final model in ``output_dir`` (LoRA merged into the weights), then predicts the held-out split and scores it with
  :func:`medground_eval.evaluation.scorer.score_files`: ``output_dir/eval_predictions.jsonl`` and
  ``eval_metrics.json``; curves and held-out scores during the run come from
  :class:`~medground_eval.training.monitor.RunMonitor`.
- :func:`launch_engine`: ``train --backend openrlhf | verl | easyr1``: the engine run of
  :func:`medground_eval.integrations.engines.run_engine`, then, when it left a Hugging Face checkpoint, ``predict``
  and ``score`` of the held-out split with it (:func:`evaluate_checkpoint`), the same files as the TRL run's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from medground_eval.extras import requires
from medground_eval.frames import resolve_model_frame
from medground_eval.integrations.engines import Backend, EnginePlan, complete_processor, hf_checkpoint, run_engine
from medground_eval.integrations.options import TrainOptions
from medground_eval.integrations.trl import (
    _Setup,
    _setup,
    grpo_config,
    load_split,
    lora_config,
    model_frame,
    resolve_init_from,
    reward_functions,
)
from medground_eval.outputs import atomic_write_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Where a run left its outputs: the final model, and the evaluation files (None when not evaluated); the
    warnings of the zero-variance guard, and the step it stopped the run at (None: it did not)."""

    output_dir: Path
    predictions: Path | None
    metrics: Path | None
    global_step: int
    messages: tuple[str, ...] = ()
    stopped_at: int | None = None


def _resume_argument(value: str | None) -> str | bool | None:
    if value is None or value == "":
        return None
    return True if value in ("last", "latest") else value


def run_monitor(options: TrainOptions, setup: _Setup, output_dir: Path):
    """The :class:`~medground_eval.training.monitor.RunMonitor` of a run (held-out split, curves in ``output_dir``)."""
    from medground_eval.training.monitor import RunMonitor

    return RunMonitor(
        output_dir, eval_samples=setup.eval_samples, dataset=options.dataset, annotations=options.data_dir,
        eval_split=options.eval_split, image_root=options.image_root, template=options.template,
        frame=model_frame(options), batch_size=int(setup.extra.get("eval_batch_size", 8)),
        max_new_tokens=options.max_completion_length,
    )


def final_evaluation(model, processor, options: TrainOptions, setup: _Setup, output_dir: Path, monitor,
                     step: int) -> tuple[Path | None, Path | None]:
    """Predict and score the held-out split with the final model (``eval_predictions.jsonl``, ``eval_metrics.json``
    with bootstrap intervals), add it to the curves and draw them; ``(None, None)`` without a held-out split."""
    if setup.eval_samples is None:
        monitor.plot()
        return None, None
    predictions = output_dir / "eval_predictions.jsonl"
    result = monitor.evaluate(model, processor, step, path=predictions, n_bootstrap=1000)
    metrics = output_dir / "eval_metrics.json"
    atomic_write_text(metrics, json.dumps(result.to_dict(), indent=2) + "\n")
    monitor.plot()
    return predictions, metrics


def _callback(monitor, guard, processor, eval_steps: int):
    """A ``TrainerCallback``: logged values to the curves and the guard, held-out evaluation every ``eval_steps``."""
    with requires("train", "train --backend trl"):
        from transformers import TrainerCallback

    class MonitorCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, model=None, **kwargs):
            if logs and state.is_world_process_zero:
                monitor.log_train(state.global_step, logs)
            if logs and guard.observe(state.global_step, logs):
                control.should_training_stop = True

        def on_step_end(self, args, state, control, model=None, **kwargs):
            last = state.global_step >= state.max_steps
            if eval_steps and state.global_step % eval_steps == 0 and not last and state.is_world_process_zero:
                monitor.evaluate(model, processor, state.global_step)

    return MonitorCallback()


def train(options: TrainOptions) -> TrainResult:
    """Run ``options.stage`` (GRPO here, SFT in :mod:`medground_eval.training.sft`) on ``options`` (see the module
    docstring); returns where the outputs are."""
    options = resolve_init_from(options)
    if options.stage == "sft":
        from medground_eval.training.sft import train_sft

        return train_sft(options)
    with requires("train", "train --backend trl"):
        from trl import GRPOTrainer

    from medground_eval.inference import load_model_and_processor
    from medground_eval.integrations.hf_data import build_dataset
    from medground_eval.training.monitor import ZeroVarianceGuard

    setup = _setup(options)
    guard = ZeroVarianceGuard(options.stop_on_zero_gradient)
    if setup.eval_samples is not None:
        from medground_eval.evaluation.scorer import score_files  # noqa: F401  (fail before training if it cannot load)

    model, processor = load_model_and_processor(
        options.model, bf16=setup.bf16, min_pixels=setup.extra.get("min_pixels"),
        max_pixels=setup.extra.get("max_pixels"),
    )
    frame = model_frame(options)
    train_dataset = build_dataset(
        setup.train_samples, image_root=options.image_root, frame=frame, template=options.template
    )
    functions, weights = reward_functions(options, frame)
    args = grpo_config(options, weights, bf16=setup.bf16)
    output_dir = Path(options.output_dir)
    monitor = run_monitor(options, setup, output_dir)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=functions,
        args=args,
        train_dataset=train_dataset,
        processing_class=processor,
        peft_config=lora_config(options),
        callbacks=[_callback(monitor, guard, processor, options.eval_steps)],
    )
    trainer.train(resume_from_checkpoint=_resume_argument(options.resume_from_checkpoint))

    final = trainer.model
    if options.use_lora:
        final = trainer.accelerator.unwrap_model(final).merge_and_unload()
        trainer.model = final
    trainer.save_model(str(output_dir))
    step = trainer.state.global_step
    if trainer.accelerator.is_main_process:
        run = {"stage": "grpo", "model": options.model, "template": options.template,
               "frame": dataclasses.asdict(frame), "global_step": step, "stopped_at": guard.stopped_at,
               "messages": guard.messages, "options": dataclasses.asdict(options)}
        atomic_write_text(output_dir / "run.json", json.dumps(run, indent=2) + "\n")
    predictions = metrics = None
    zero3 = getattr(args.deepspeed_plugin, "zero_stage", 0) == 3
    if setup.eval_samples is not None and zero3:
        logger.warning("ZeRO-3 shards the weights, no evaluation here: run `medground-eval predict` on %s", output_dir)
    elif trainer.accelerator.is_main_process:
        predictions, metrics = final_evaluation(
            trainer.accelerator.unwrap_model(final), processor, options, setup, output_dir, monitor, step
        )
    trainer.accelerator.wait_for_everyone()
    return TrainResult(output_dir, predictions, metrics, step, tuple(guard.messages), guard.stopped_at)


def evaluate_checkpoint(plan: EnginePlan, checkpoint: Path) -> tuple[Path, Path]:
    """``predict`` the held-out split with ``checkpoint`` and ``score`` it: ``eval_predictions.jsonl`` and
    ``eval_metrics.json`` in the output folder, as the TRL backend writes them."""
    from medground_eval.evaluation.scorer import score_files
    from medground_eval.inference import load_model_and_processor, predict_samples

    options = plan.options
    complete_processor(checkpoint, Path(options.model))
    model, processor = load_model_and_processor(checkpoint)
    out = Path(options.output_dir)
    predictions = predict_samples(
        model, processor, load_split(options, options.eval_split), out / "eval_predictions.jsonl",
        image_root=options.image_root, template=options.template,
        frame=resolve_model_frame(checkpoint, default=options.frame), max_new_tokens=options.max_completion_length,
    )
    result = score_files(predictions, dataset=options.dataset, annotations=options.data_dir, split=options.eval_split)
    metrics = out / "eval_metrics.json"
    atomic_write_text(metrics, json.dumps(result.to_dict(), indent=2) + "\n")
    return predictions, metrics


def launch_engine(backend: Backend, options: TrainOptions, *, dry_run: bool = False) -> int:
    """Plan, write the inputs, run the engine (:func:`~medground_eval.integrations.engines.run_engine`), evaluate its
    checkpoint; returns an exit code.

    ``dry_run``: print the plan and the command, write nothing, return 0. Engine not installed: write the inputs,
    print the command and the install line, return 2. Otherwise the engine's exit code (after the evaluation).
    """
    code, plan = run_engine(backend, options, dry_run=dry_run)
    if dry_run or code != 0:
        return code
    checkpoint = hf_checkpoint(plan)
    if plan.options.eval_split and checkpoint is None:
        print(f"note: no Hugging Face checkpoint under {plan.options.output_dir}: no held-out evaluation "
              "(save_steps > 0 leaves one)", file=sys.stderr)
    elif plan.options.eval_split:
        predictions, metrics = evaluate_checkpoint(plan, checkpoint)
        print(f"held-out predictions: {predictions}\nheld-out metrics: {metrics}")
    return 0
