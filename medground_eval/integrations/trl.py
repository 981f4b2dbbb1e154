"""MedGround-R1 GRPO with TRL 1.16's ``GRPOTrainer``: reward functions, configuration and the checks before a run.

- Rewards: one TRL reward function per component (``format``, ``spatial``, ``semantic``), each a core reward from
  :mod:`medground_eval.rewards`, weighted by ``GRPOConfig.reward_weights``; TRL logs ``rewards/<name>/mean``. The
  spatial one (:class:`~medground_eval.rewards.SpatialReward` itself) also logs ``grounding/mean_iou``,
  ``grounding/parse_failure_rate`` and ``grounding/out_of_frame_rate`` through TRL's ``log_metric`` callback. A
  component of weight 0 is left out.
- Frame: the model's own (:func:`medground_eval.frames.resolve_model_frame`, as for every backend): Qwen2.5-VL boxes
  are read in its resized input (the processor's pixel limits), Qwen2-VL / Qwen3-VL in 0-1000; rewards compare boxes
  in original pixels.
- Options: :class:`~medground_eval.integrations.options.TrainOptions`; its ``extra`` table holds the keys of
  :data:`EXTRA_KEYS` and any other ``GRPOConfig`` field (passed through, e.g. ``report_to``, ``gradient_checkpointing``,
  ``deepspeed``).
- Before any weights load (:func:`check_run`, ``--dry-run``): options, splits, every image, the model's config and
  processor, the rewards and the ``GRPOConfig``.

The run itself (train, save, score the held-out split) is :func:`medground_eval.training.run.train`, in the app
layer: an integration imports only the core.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from medground_eval.datasets import get_loader
from medground_eval.extras import requires
from medground_eval.frames import Frame, resolve_model_frame
from medground_eval.inference import local_model_dir
from medground_eval.integrations.options import TrainOptions
from medground_eval.rewards import AnatomyReward, FormatReward, SemanticReward, SpatialReward
from medground_eval.structures import Sample

EXTRA_KEYS = {
    "extra_rewards": 'reward functions added to the three components, as "module:attribute" import paths (weight 1)',
    "lora_target_modules": 'LoRA target modules (default "all-linear")',
    "min_pixels": "the image processor's minimum pixels per image (default: the checkpoint's)",
    "max_pixels": "the image processor's maximum pixels per image (default: the checkpoint's)",
    "eval_batch_size": "generation batch size of the final evaluation (default 8)",
}
"""Keys of ``TrainOptions.extra`` read here; any other key must be a ``GRPOConfig`` field."""

STAGES = ("sft", "grpo")
"""Training stages: supervised fine-tuning on the ground-truth boxes, then GRPO with the rewards."""


def model_frame(options: TrainOptions) -> Frame:
    """The frame of ``options.model`` with the run's pixel limits (``extra.min_pixels`` / ``extra.max_pixels``), the
    same :func:`~medground_eval.frames.resolve_model_frame` the engine backends, ``predict`` and ``convert`` use."""
    return resolve_model_frame(
        options.model, default=options.frame,
        min_pixels=options.extra.get("min_pixels"), max_pixels=options.extra.get("max_pixels"),
    )


def _import_reward(spec: str) -> Callable:
    module, _, attribute = spec.partition(":")
    if not module or not attribute:
        raise ValueError(f'extra.extra_rewards item {spec!r}: expected "module:attribute"')
    try:
        function = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"extra.extra_rewards item {spec!r}: cannot import it ({error})") from None
    if not callable(function):
        kind = type(function).__name__
        raise ValueError(f"extra.extra_rewards item {spec!r}: expected a callable reward, got a {kind}")
    return function


def reward_functions(options: TrainOptions, frame: Frame) -> tuple[list[Callable], list[float]]:
    """The reward functions and their weights: format, spatial, semantic, anatomy (weight > 0 only), then extra
    rewards."""
    w_format, w_spatial, w_semantic = options.reward_weights
    candidates = [
        (FormatReward(name="format"), w_format),
        (SpatialReward(mode=options.spatial_mode, frame=frame, name="spatial"), w_spatial),
        (SemanticReward(encoder=options.semantic_encoder, frame=frame, name="semantic"), w_semantic),
        (AnatomyReward(frame=frame, name="anatomy"), options.anatomy_weight),
    ]
    candidates += [(_import_reward(spec), 1.0) for spec in options.extra.get("extra_rewards", [])]
    kept = [(function, weight) for function, weight in candidates if weight > 0]
    if not kept:
        raise ValueError(f"reward_weights = {list(options.reward_weights)}: expected at least one positive weight")
    return [f for f, _ in kept], [w for _, w in kept]


def _split_extra(extra: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """``(ours, grpo)``: the keys of :data:`EXTRA_KEYS` and the ``GRPOConfig`` fields; anything else is an error."""
    with requires("train", "train --backend trl"):
        from trl import GRPOConfig

    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    unknown = sorted(k for k in extra if k not in EXTRA_KEYS and k not in fields)
    if unknown:
        raise ValueError(f"extra option(s) {unknown}: expected keys of {sorted(EXTRA_KEYS)} or GRPOConfig fields")
    return {k: v for k, v in extra.items() if k in EXTRA_KEYS}, {k: v for k, v in extra.items() if k not in EXTRA_KEYS}


def grpo_config(options: TrainOptions, reward_weights: Sequence[float], *, bf16: bool):
    """The ``GRPOConfig`` of a run: the options' fields, then ``extra``'s ``GRPOConfig`` fields over them."""
    with requires("train", "train --backend trl"):
        from trl import GRPOConfig

    _, passthrough = _split_extra(options.extra)
    settings: dict[str, object] = dict(
        output_dir=options.output_dir,
        num_generations=options.num_generations,
        beta=options.beta,
        learning_rate=options.learning_rate,
        num_train_epochs=options.num_train_epochs,
        max_steps=options.max_steps,
        max_completion_length=options.max_completion_length,
        temperature=options.temperature,
        per_device_train_batch_size=options.per_device_train_batch_size,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        reward_weights=list(reward_weights),
        save_steps=options.save_steps,
        logging_steps=options.logging_steps,
        seed=options.seed,
        use_cpu=options.use_cpu,
        bf16=bf16,
    )
    settings.update(passthrough)
    return GRPOConfig(**settings)


def lora_config(options: TrainOptions):
    """A peft ``LoraConfig`` (r, alpha, target modules) when ``use_lora``, else None."""
    if not options.use_lora:
        return None
    with requires("train", "train --backend trl"):
        from peft import LoraConfig

    targets = options.extra.get("lora_target_modules", "all-linear")
    return LoraConfig(r=options.lora_r, lora_alpha=options.lora_alpha, target_modules=targets, task_type="CAUSAL_LM")


def load_split(options: TrainOptions, split: str | None) -> list[Sample]:
    """The samples of ``split`` from ``options.dataset`` at ``options.data_dir`` (errors name file, line, field)."""
    if not options.data_dir:
        raise ValueError(f"--data-dir is required: the annotation file or folder of data set {options.dataset!r}")
    samples = get_loader(options.dataset)(options.data_dir, split=split).samples
    if not samples:
        raise ValueError(f"data set {options.dataset!r} at {options.data_dir!r}: no samples in split {split!r}")
    return samples


@dataclass(frozen=True)
class _Setup:
    """What a run reads before loading weights: the ``extra`` keys of ours, the samples, the precision."""

    extra: dict[str, object]
    train_samples: list[Sample]
    eval_samples: list[Sample] | None
    bf16: bool


def resolve_init_from(options: TrainOptions) -> TrainOptions:
    """``options`` with ``model`` set to the run folder ``init_from`` (a previous stage's output: its final model,
    processor and ``run.json``); its template must be this run's (the model learned that answer layout)."""
    if not options.init_from:
        return options
    run = Path(options.init_from)
    if options.model and Path(options.model) != run:
        raise ValueError(f"--model {options.model!r} and --init-from {options.init_from!r}: give one of them")
    if not (run / "config.json").is_file():
        raise FileNotFoundError(f"--init-from {options.init_from!r}: expected a run folder holding a saved model "
                                "(config.json and weights), as `train` leaves in its --output-dir")
    info = run / "run.json"
    if info.is_file():
        trained = json.loads(info.read_text(encoding="utf-8")).get("template")
        if trained is not None and trained != options.template:
            raise ValueError(f"--init-from {options.init_from!r} was trained with --template {trained!r}; this run "
                             f"uses {options.template!r}: pass --template {trained!r}")
    return dataclasses.replace(options, model=str(run))


def _setup(options: TrainOptions) -> _Setup:
    """Check the options, load the split(s) and check every image (train and held-out) before any weights load."""
    with requires("train", "train --backend trl"):
        import torch

    from medground_eval.integrations.hf_data import image_file_size, image_path

    if options.stage not in STAGES:
        raise ValueError(f"--stage {options.stage!r}: expected one of {', '.join(STAGES)}")
    if options.eval_steps < 0:
        raise ValueError(f"--eval-steps {options.eval_steps}: expected 0 (only at the end) or a positive number")
    local_model_dir(options.model)  # before any data or weights: a hub id is a one-line error, never a download
    ours, _ = _split_extra(options.extra)
    train_samples = load_split(options, options.split)
    eval_samples = load_split(options, options.eval_split) if options.eval_split else None
    for sample in train_samples + (eval_samples or []):
        image_file_size(sample, image_path(sample, options.image_root))
    bf16 = torch.cuda.is_available() and not options.use_cpu and torch.cuda.is_bf16_supported()
    return _Setup(ours, train_samples, eval_samples, bf16)


def check_run(options: TrainOptions) -> dict[str, object]:
    """What :func:`train` checks before loading weights (``--dry-run``): options, splits, every image, the model's
    config and processor, the rewards and the ``GRPOConfig``. Returns the plan as a JSON-ready dict."""
    with requires("train", "train --backend trl"):
        from transformers import AutoConfig

    from medground_eval.inference import load_processor

    options = resolve_init_from(options)
    setup = _setup(options)
    model_type = AutoConfig.from_pretrained(local_model_dir(options.model), local_files_only=True).model_type
    load_processor(options.model, min_pixels=setup.extra.get("min_pixels"), max_pixels=setup.extra.get("max_pixels"))
    frame = model_frame(options)
    functions, weights = reward_functions(options, frame)
    args = grpo_config(options, weights, bf16=setup.bf16)
    samples = {str(options.split): len(setup.train_samples)}
    if setup.eval_samples is not None:
        samples[str(options.eval_split)] = len(setup.eval_samples)
    return {
        "stage": options.stage,
        "model": options.model,
        "model_type": model_type,
        "frame": dataclasses.asdict(frame),
        "samples": samples,
        "rewards": dict(zip((getattr(f, "__name__", repr(f)) for f in functions), weights)),
        "grpo": {k: getattr(args, k) for k in ("num_generations", "beta", "learning_rate", "num_train_epochs",
                                              "max_steps", "max_completion_length", "temperature", "bf16")},
        "lora": options.use_lora,
        "output_dir": options.output_dir,
    }
