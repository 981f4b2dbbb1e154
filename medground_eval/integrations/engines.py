"""`medground-eval train --backend openrlhf | verl | easyr1`: a run that starts as printed, on the stated GPUs.

:func:`launch_engine` (``--dry-run``: :func:`plan_engine` and print) does, in order:

1. The model's input geometry (:func:`engine_vision`): the frame its answers are in and how the engine's processor
   sizes an image (``smart_resize`` with factor ``patch_size * merge_size`` within ``min_pixels`` / ``max_pixels``),
   from the local checkpoint's own image processor (transformers), as the TRL backend reads it.
2. The prompt budget (:func:`prompt_budget`): the largest prompt of the training and held-out splits, in tokens:
   image tokens (resized pixels / factor², after EasyR1's own rescaling for ``easyr1``) plus the prompt text's UTF-8
   bytes (a byte-level tokenizer never makes more tokens than bytes) plus :data:`CHAT_TEMPLATE_TOKENS`, rounded up
   to 64. Every row fits: no engine filters or truncates one.
3. The data files under ``<output_dir>/data/<backend>/`` (labels validated when written, images at absolute paths),
   and ``<output_dir>/reward_config.json`` (reward settings, ``normalize = true``, the data files as
   ``label_files``: the adapter re-reads every label when the engine loads it).
4. The engine's command (:func:`engine_command`): GPUs and nodes mapped onto the engine's placement, colocated as
   in its own VLM examples; the rollout engine (vLLM) set; evaluation on the held-out split every ``eval_steps``;
   Hugging Face checkpoints under ``<output_dir>``; a logger that needs no account (console, TensorBoard / file).
5. Run it (the engine must be importable), then, when the run left a Hugging Face checkpoint, ``predict`` and
   ``score`` the held-out split with it (:func:`evaluate_checkpoint`), as the TRL backend does.

Engine flags without a :class:`TrainOptions` field go in ``options.extra["engine_args"]`` (a list of strings
appended to the command; for verl and EasyR1 an override of a key the command sets replaces it).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from medground_eval.frames import (
    MODEL_TYPE_FRAMES,
    Frame,
    preset_name,
    processor_pixel_limits,
    resolve_model_frame,
    smart_resize,
)
from medground_eval.integrations.convert import EASYR1_PIXELS, easyr1_image_size
from medground_eval.integrations.options import TrainOptions
from medground_eval.integrations.reward_config import (  # noqa: F401  (re-exported: the adapters' config)
    REWARD_CONFIG_ENV,
    load_reward,
    reward_from_config,
    reward_from_env,
)
from medground_eval.outputs import atomic_write_text

Backend = Literal["openrlhf", "verl", "easyr1"]

ENGINES: dict[str, dict[str, str]] = {
    "openrlhf": {"module": "openrlhf.cli.train_ppo_ray", "install": "pip install 'openrlhf[vllm]==0.11.*'",
                 "format": "openrlhf"},
    "verl": {"module": "verl.trainer.main_ppo", "install": "pip install 'verl[vllm]==0.9.*'", "format": "verl"},
    "easyr1": {"module": "verl.trainer.main", "format": "easyr1",
               "install": "git clone https://github.com/hiyouga/EasyR1 && pip install -e EasyR1"},
}
"""Per engine: the module the command runs, how to install it, the data format of `convert`."""

CHAT_TEMPLATE_TOKENS = 128
"""Tokens allowed for the chat template around the prompt text (Qwen's system turn, role markers, vision start /
end: about 30) and for the engine's own additions."""
DEFAULT_VISION = {"factor": 28, "min_pixels": 4 * 28 * 28, "max_pixels": 16384 * 28 * 28}
"""Qwen2.5-VL's processor defaults, used for a model given by hub name (no local processor to read)."""


@dataclass(frozen=True)
class EngineVision:
    """How the engine's processor sizes an image for this model, and the frame the model answers in."""

    frame: Frame
    frame_name: str
    factor: int
    min_pixels: int
    max_pixels: int
    source: str

    def image_tokens(self, width: int, height: int) -> int:
        """Image tokens of a ``width x height`` image: resized pixels / factor² (one token per merged patch)."""
        h, w = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        return (h * w) // (self.factor * self.factor)


def engine_vision(options: TrainOptions) -> EngineVision:
    """The model's frame (:func:`~medground_eval.frames.resolve_model_frame`, the one resolver every backend uses) and
    the image geometry of its processor (:func:`~medground_eval.frames.processor_pixel_limits` of the checkpoint's
    ``preprocessor_config.json``, as transformers reads it), both json only.

    A hub name (no local ``config.json``) gets ``options.frame`` and Qwen2.5-VL's defaults (:data:`DEFAULT_VISION`),
    with ``source`` saying so. A local checkpoint must be a Qwen2-VL / Qwen2.5-VL / Qwen3-VL one with its processor
    file (the prompt budget needs its pixel limits). Pixel-limit overrides (``extra.min_pixels`` / ``max_pixels``)
    are refused: the engines' processors read the checkpoint's ``preprocessor_config.json`` and take no such flag.
    """
    for key in ("min_pixels", "max_pixels"):
        if options.extra.get(key) is not None:
            raise ValueError(
                f"option extra.{key} = {options.extra[key]!r}: OpenRLHF, verl and EasyR1 size images with the "
                f"checkpoint's own processor, which takes no {key} flag; set it in "
                f"{Path(options.model) / 'preprocessor_config.json'} instead (labels then follow it)"
            )
    folder = Path(options.model)
    frame = resolve_model_frame(folder, default=options.frame)
    if not (folder / "config.json").is_file():
        return EngineVision(frame, preset_name(frame, hint=options.frame), **DEFAULT_VISION,
                            source=f"defaults of Qwen2.5-VL (model {options.model!r} is not a local checkpoint: its "
                                   "processor cannot be read)")
    model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type not in MODEL_TYPE_FRAMES:
        raise ValueError(
            f"model {options.model}: model_type {model_type!r}: the engine backends size prompts for the Qwen-VL "
            f"checkpoints ({sorted(MODEL_TYPE_FRAMES)})"
        )
    processor = next((folder / name for name in ("preprocessor_config.json", "processor_config.json")
                      if (folder / name).is_file()), None)
    if processor is None:
        raise ValueError(f"model {options.model}: no preprocessor_config.json (or processor_config.json): the engines' "
                         "processor reads its pixel limits from there, and so does the prompt budget")
    limits = processor_pixel_limits(folder)
    return EngineVision(frame, preset_name(frame, hint=options.frame), **limits, source=f"image processor {processor}")


@dataclass(frozen=True)
class PromptBudget:
    """The longest prompt of the data in tokens (an upper bound), the sample that has it, and the budget set."""

    largest: int
    sample_id: str
    image_size: tuple[int, int]
    image_tokens: int
    max_prompt_length: int


def prompt_budget(samples: Sequence, image_sizes: Sequence[tuple[int, int]], vision: EngineVision, template: str,
                  *, easyr1: bool = False) -> PromptBudget:
    """The prompt length every sample fits in (module docstring, step 2). ``image_sizes``: ``(W, H)`` of each image
    file, in the order of ``samples``."""
    from medground_eval.prompts import render_prompt

    best = None
    for sample, size in zip(samples, image_sizes, strict=True):
        seen = easyr1_image_size(size) if easyr1 else size
        tokens = vision.image_tokens(*seen)
        text = len(render_prompt(sample.phrase, template).encode("utf-8"))
        total = tokens + text + CHAT_TEMPLATE_TOKENS
        if best is None or total > best[0]:
            best = (total, str(sample.id), tuple(size), tokens)
    if best is None:
        raise ValueError("no samples: nothing to size the prompt length from")
    return PromptBudget(best[0], best[1], best[2], best[3], 64 * math.ceil(best[0] / 64))


@dataclass(frozen=True)
class EnginePlan:
    """Everything a launch needs, computed before anything is written."""

    backend: str
    options: TrainOptions
    vision: EngineVision
    budget: PromptBudget
    files: dict[str, Path]
    reward_config: Path
    command: list[str]
    env: dict[str, str]

    def shown(self) -> str:
        """The command as a shell line, with the environment it needs."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return f"{env} {shlex.join(self.command)}"


def _paths(options: TrainOptions, backend: str) -> dict[str, Path]:
    out = Path(options.output_dir).resolve()
    suffix = ".parquet" if backend == "verl" else ".jsonl"
    files = {"train": out / "data" / backend / f"{options.split or 'all'}{suffix}"}
    if options.eval_split:
        files["eval"] = out / "data" / backend / f"{options.eval_split}{suffix}"
    return files


def _placement(options: TrainOptions) -> tuple[int, int, int]:
    """``(nodes, gpus per node, rollout tensor parallel size)``, checked."""
    nodes, gpus, tp = options.nodes, options.gpus, options.rollout_tensor_parallel
    if nodes < 1 or gpus < 1 or tp < 1:
        raise ValueError(f"nodes = {nodes}, gpus = {gpus}, rollout_tensor_parallel = {tp}: expected positive integers")
    if gpus % tp:
        raise ValueError(f"rollout_tensor_parallel = {tp} does not divide gpus = {gpus} (GPUs per node)")
    completions = _prompts_per_step(options) * options.num_generations
    if completions % (nodes * gpus):
        raise ValueError(
            f"{completions} completions per step (per_device_train_batch_size * gradient_accumulation_steps = "
            f"{_prompts_per_step(options)} prompts x num_generations = {options.num_generations}) do not divide over "
            f"{nodes * gpus} GPUs (nodes = {nodes} x gpus = {gpus}): the engines split each step evenly"
        )
    return nodes, gpus, tp


def _eval_steps(options: TrainOptions) -> int:
    """Steps between held-out evaluations: ``eval_steps``, or ``save_steps`` when it is 0 (TRL's "only at the end"
    would leave an engine run without any evaluation during training)."""
    steps = options.eval_steps if options.eval_steps > 0 else options.save_steps
    if steps <= 0:
        raise ValueError(f"eval_steps = {options.eval_steps}, save_steps = {options.save_steps}: expected a positive "
                         "number of steps between held-out evaluations")
    return steps


def _prompts_per_step(options: TrainOptions) -> int:
    """Prompts per rollout step (the engines count prompts; TRL's ``per_device_train_batch_size`` counts completions)."""
    return options.per_device_train_batch_size * options.gradient_accumulation_steps


def openrlhf_command(options: TrainOptions, files: dict[str, Path], budget: PromptBudget, adapter: Path) -> list[str]:
    """OpenRLHF 0.11 GRPO (``openrlhf/cli/train_ppo_ray.py``; placement as ``examples/scripts/
    train_vlm_math_hybrid_engine.sh``: actor, reference and vLLM engines colocated on every GPU, with sleep mode)."""
    if options.use_lora:
        raise ValueError(
            "option use_lora = True: OpenRLHF's Ray + vLLM PPO does not support LoRA (its --ds.lora.* flags serve "
            "SFT / RM / DPO only); train the full model, or use --backend trl, verl or easyr1 for LoRA"
        )
    nodes, gpus, tp = _placement(options)
    out = Path(options.output_dir).resolve()
    prompts = _prompts_per_step(options)
    command = [
        sys.executable, "-m", "openrlhf.cli.train_ppo_ray",
        "--actor.num_nodes", str(nodes), "--actor.num_gpus_per_node", str(gpus),
        "--ref.num_nodes", str(nodes), "--ref.num_gpus_per_node", str(gpus),
        "--vllm.num_engines", str(nodes * gpus // tp), "--vllm.tensor_parallel_size", str(tp),
        "--train.colocate_all", "--vllm.enable_sleep", "--ds.enable_sleep", "--vllm.gpu_memory_utilization", "0.6",
        "--actor.model_name_or_path", options.model,
        "--reward.remote_url", str(adapter),
        "--data.prompt_dataset", str(files["train"]),
        "--data.input_key", "prompt", "--data.label_key", "label", "--data.image_key", "images",
        "--data.max_images_per_prompt", "1", "--data.apply_chat_template",
        "--data.max_len", str(budget.max_prompt_length + options.max_completion_length),
        "--rollout.max_new_tokens", str(options.max_completion_length),
        "--algo.advantage.estimator", "group_norm",
        "--algo.kl.use_loss", "--algo.kl.estimator", "k3", "--algo.kl.init_coef", str(options.beta),
        "--rollout.n_samples_per_prompt", str(options.num_generations),
        "--rollout.temperature", str(options.temperature),
        "--rollout.batch_size", str(prompts),
        "--train.batch_size", str(prompts * options.num_generations),
        "--train.max_epochs", "1",
        "--train.num_episodes", str(math.ceil(options.num_train_epochs)),
        "--train.seed", str(options.seed),
        "--actor.adam.lr", str(options.learning_rate),
        "--actor.freeze_visual_encoder",
        "--ckpt.output_dir", str(out / "model"),
        "--ckpt.path", str(out / "checkpoints"),
        "--ckpt.save_hf",
        "--ckpt.save_steps", str(options.save_steps),
        "--logger.logging_steps", str(options.logging_steps),
        "--logger.tensorboard_dir", str(out / "tensorboard"),
    ]
    if "eval" in files:
        command += ["--eval.dataset", str(files["eval"]), "--eval.steps", str(_eval_steps(options)),
                    "--eval.temperature", "0", "--eval.n_samples_per_prompt", "1"]
    if options.resume_from_checkpoint not in (None, "", "last"):
        raise ValueError(f"option resume_from_checkpoint = {options.resume_from_checkpoint!r}: OpenRLHF resumes from "
                         f"the latest checkpoint of --ckpt.path only ({out / 'checkpoints'}): use 'last'")
    if options.resume_from_checkpoint:
        command.append("--ckpt.load_enable")
    return command


def verl_command(options: TrainOptions, files: dict[str, Path], budget: PromptBudget, adapter: Path) -> list[str]:
    """verl 0.9 GRPO (Hydra overrides of ``verl/trainer/config/ppo_trainer.yaml``; placement as
    ``examples/grpo_trainer/run_qwen2_5_vl-7b.sh``: actor, rollout and reference colocated in the hybrid engine).

    Besides the options it sets what verl has no usable default for: the rollout engine (``vllm``, mandatory), one
    PPO update per prompt batch (``ppo_mini_batch_size`` = the batch), micro-batches of one sequence per GPU
    (required), the prompt length of the data with ``filter_overlong_prompts=False`` and ``truncation=error`` (no
    row is dropped or cut), vLLM's ``max_num_batched_tokens`` at least one whole sequence, HF weights in every
    checkpoint (``save_contents`` with ``hf_model``) and console + TensorBoard logging.
    """
    nodes, gpus, tp = _placement(options)
    out = Path(options.output_dir).resolve()
    prompts = _prompts_per_step(options)
    sequence = budget.max_prompt_length + options.max_completion_length
    evaluate = "eval" in files
    command = [
        sys.executable, "-m", "verl.trainer.main_ppo",
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_in_reward=False",
        f"data.train_files={files['train']}",
        f"data.val_files={files['eval'] if evaluate else files['train']}",
        "data.prompt_key=prompt",
        "data.image_key=images",
        f"data.train_batch_size={prompts}",
        f"data.max_prompt_length={budget.max_prompt_length}",
        f"data.max_response_length={options.max_completion_length}",
        "data.filter_overlong_prompts=False",
        "data.truncation=error",
        f"data.seed={options.seed}",
        f"actor_rollout_ref.model.path={options.model}",
        f"actor_rollout_ref.actor.optim.lr={options.learning_rate}",
        "actor_rollout_ref.actor.use_kl_loss=True",
        f"actor_rollout_ref.actor.kl_loss_coef={options.beta}",
        "actor_rollout_ref.actor.kl_loss_type=low_var_kl",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={prompts}",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=1",
        "actor_rollout_ref.ref.fsdp_config.param_offload=True",
        "actor_rollout_ref.rollout.name=vllm",
        f"actor_rollout_ref.rollout.tensor_model_parallel_size={tp}",
        "actor_rollout_ref.rollout.gpu_memory_utilization=0.6",
        f"actor_rollout_ref.rollout.max_num_batched_tokens={max(8192, sequence)}",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1",
        f"actor_rollout_ref.rollout.n={options.num_generations}",
        f"actor_rollout_ref.rollout.temperature={options.temperature}",
        f"reward.custom_reward_function.path={adapter}",
        "reward.custom_reward_function.name=compute_score",
        f"trainer.nnodes={nodes}",
        f"trainer.n_gpus_per_node={gpus}",
        f"trainer.total_epochs={math.ceil(options.num_train_epochs)}",
        f"trainer.default_local_dir={out / 'checkpoints'}",
        f"trainer.save_freq={options.save_steps}",
        f"trainer.test_freq={_eval_steps(options) if evaluate else -1}",
        f"trainer.val_before_train={evaluate}",
        "trainer.logger=[console,tensorboard]",
        "trainer.project_name=medground",
        f"trainer.experiment_name={out.name}",
    ]
    if options.max_steps > 0:
        command.append(f"trainer.total_training_steps={options.max_steps}")
    if options.use_lora:
        command += [f"actor_rollout_ref.model.lora_rank={options.lora_r}",
                    f"actor_rollout_ref.model.lora_alpha={options.lora_alpha}"]
    resume = options.resume_from_checkpoint
    if not resume:
        command.append("trainer.resume_mode=disable")  # verl's default 'auto' would resume a former run silently
    elif resume == "last":
        command.append("trainer.resume_mode=auto")
    else:
        command += ["trainer.resume_mode=resume_path", f"trainer.resume_from_path={Path(resume).resolve()}"]
    return command


def easyr1_command(options: TrainOptions, files: dict[str, Path], budget: PromptBudget, adapter: Path) -> list[str]:
    """EasyR1 GRPO (OmegaConf dotlist over its ``PPOConfig`` dataclasses, ``verl/trainer/config.py``; placement as
    ``examples/qwen2_5_vl_7b_geo3k_grpo.sh``: the hybrid engine colocates actor, rollout and reference).

    No ``config=examples/config.yaml``: it sets ``format_prompt: math.jinja`` (a ``\\boxed{}`` instruction that
    contradicts our answer format) and ``logger: [file, wandb]``; every key it would set is set here. The reward
    file declares ``REWARD_TYPE = "batch"`` (there is no ``worker.reward.reward_type`` since EasyR1 b637de85,
    2025-11-16).
    """
    nodes, gpus, tp = _placement(options)
    out = Path(options.output_dir).resolve()
    prompts = _prompts_per_step(options)
    sequence = budget.max_prompt_length + options.max_completion_length
    evaluate = "eval" in files
    command = [
        sys.executable, "-m", "verl.trainer.main",
        f"data.train_files={files['train']}",
        f"data.val_files={files['eval'] if evaluate else files['train']}",
        "data.prompt_key=problem",
        "data.answer_key=answer",
        "data.image_key=images",
        "data.format_prompt=null",
        f"data.max_prompt_length={budget.max_prompt_length}",
        f"data.max_response_length={options.max_completion_length}",
        f"data.rollout_batch_size={prompts}",
        f"data.min_pixels={EASYR1_PIXELS[0]}",
        f"data.max_pixels={EASYR1_PIXELS[1]}",
        "data.filter_overlong_prompts=false",
        f"data.seed={options.seed}",
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_loss=true",
        "algorithm.kl_penalty=low_var_kl",
        f"algorithm.kl_coef={options.beta}",
        f"worker.actor.global_batch_size={prompts}",
        "worker.actor.micro_batch_size_per_device_for_update=1",
        "worker.actor.micro_batch_size_per_device_for_experience=1",
        f"worker.actor.model.model_path={options.model}",
        "worker.actor.model.freeze_vision_tower=true",
        f"worker.actor.optim.lr={options.learning_rate}",
        f"worker.rollout.n={options.num_generations}",
        f"worker.rollout.temperature={options.temperature}",
        "worker.rollout.limit_images=1",
        f"worker.rollout.tensor_parallel_size={tp}",
        "worker.rollout.gpu_memory_utilization=0.6",
        f"worker.rollout.max_num_batched_tokens={max(8192, sequence)}",
        "worker.rollout.val_override_config.temperature=0.0",
        "worker.rollout.val_override_config.n=1",
        f"worker.reward.reward_function={adapter}:compute_score",
        f"trainer.total_epochs={math.ceil(options.num_train_epochs)}",
        "trainer.project_name=medground",
        f"trainer.experiment_name={out.name}",
        "trainer.logger=[console,file]",
        f"trainer.nnodes={nodes}",
        f"trainer.n_gpus_per_node={gpus}",
        f"trainer.val_freq={_eval_steps(options) if evaluate else -1}",
        f"trainer.val_before_train={str(evaluate).lower()}",
        f"trainer.save_freq={options.save_steps}",
        f"trainer.save_checkpoint_path={out / 'checkpoints'}",
        f"trainer.find_last_checkpoint={str(options.resume_from_checkpoint == 'last').lower()}",
    ]
    if options.resume_from_checkpoint not in (None, "", "last"):
        command.append(f"trainer.load_checkpoint_path={Path(options.resume_from_checkpoint).resolve()}")
    if options.max_steps > 0:
        command.append(f"trainer.max_steps={options.max_steps}")
    if options.use_lora:
        command += [f"worker.actor.model.lora.rank={options.lora_r}",
                    f"worker.actor.model.lora.alpha={options.lora_alpha}"]
    return command


COMMANDS = {"openrlhf": openrlhf_command, "verl": verl_command, "easyr1": easyr1_command}

UNUSED_OPTIONS: dict[str, tuple[str, ...]] = {
    "openrlhf": ("max_steps", "use_cpu"),
    "verl": ("use_cpu",),
    "easyr1": ("use_cpu",),
}
"""Options the engine's command does not carry (set them through ``extra.engine_args`` in the engine's terms)."""


def adapter_path(backend: str) -> Path:
    """The file of the adapter module an engine loads by path (absolute)."""
    return Path(__file__).with_name(f"{backend}.py").resolve()


def _with_engine_args(backend: str, command: list[str], options: TrainOptions) -> list[str]:
    extra = options.extra.get("engine_args", [])
    if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
        raise ValueError(f"option extra.engine_args = {extra!r}: expected a list of strings")
    if backend == "openrlhf":
        return command + extra  # argparse: the last value of a flag wins
    replaced = {arg.split("=", 1)[0].lstrip("+~") for arg in extra}
    return [arg for arg in command if arg.split("=", 1)[0] not in replaced] + extra


def engine_command(backend: Backend, options: TrainOptions, budget: PromptBudget | None = None) -> list[str]:
    """The engine's launch command for ``options`` (data files at their :func:`launch_engine` paths). ``budget``
    defaults to a placeholder of 1024 prompt tokens (for tests of the flags; :func:`plan_engine` sizes it)."""
    if backend not in COMMANDS:
        raise ValueError(f"backend = {backend!r}: expected one of {sorted(COMMANDS)}")
    if not options.model:
        raise ValueError("option 'model' is empty: expected a model name or path (--model)")
    budget = budget or PromptBudget(1024, "", (0, 0), 0, 1024)
    command = COMMANDS[backend](options, _paths(options, backend), budget, adapter_path(backend))
    return _with_engine_args(backend, command, options)


def _absolute_options(options: TrainOptions) -> TrainOptions:
    """Local paths made absolute (the engines' Ray workers do not share the launcher's working directory)."""
    changes = {name: str(Path(getattr(options, name)).resolve())
               for name in ("output_dir", "data_dir", "image_root") if getattr(options, name)}
    if Path(options.model).exists():
        changes["model"] = str(Path(options.model).resolve())
    return dataclasses.replace(options, **changes)


def _load_splits(options: TrainOptions) -> dict[str, object]:
    from medground_eval.datasets import get_loader

    if options.data_dir is None:
        raise ValueError("option 'data_dir' is None: expected the data set's annotations path (--data-dir)")
    load = get_loader(options.dataset)
    splits = {"train": options.split} | ({"eval": options.eval_split} if options.eval_split else {})
    datasets = {role: load(options.data_dir, split=split) for role, split in splits.items()}
    for role, dataset in datasets.items():
        if not dataset.samples:
            raise ValueError(f"data set {options.dataset!r} at {options.data_dir}: no samples in split {splits[role]!r}")
    return datasets


def _image_sizes(samples: Sequence, image_root: str | None) -> list[tuple[int, int]]:
    from medground_eval.integrations.hf_data import image_file_size, image_path

    return [image_file_size(sample, image_path(sample, image_root)) for sample in samples]


def plan_engine(backend: Backend, options: TrainOptions) -> tuple[EnginePlan, dict[str, object]]:
    """The launch plan and the loaded splits; reads the model's processor and the images' headers, writes nothing."""
    if options.init_from:
        raise ValueError(f"option init_from = {options.init_from!r}: the engine backends train --model; pass the "
                         "previous run's model folder as --model")
    options = _absolute_options(options)
    vision = engine_vision(options)
    options = dataclasses.replace(options, frame=vision.frame_name)
    datasets = _load_splits(options)
    samples = [s for dataset in datasets.values() for s in dataset.samples]
    budget = prompt_budget(samples, _image_sizes(samples, options.image_root), vision, options.template,
                           easyr1=backend == "easyr1")
    command = engine_command(backend, options, budget)
    out = Path(options.output_dir)
    config = out / "reward_config.json"
    env = {REWARD_CONFIG_ENV: str(config)}
    if backend == "verl":
        env["TENSORBOARD_DIR"] = str(out / "tensorboard")  # verl/utils/tracking.py reads it
    plan = EnginePlan(backend, options, vision, budget, _paths(options, backend), config, command, env)
    return plan, datasets


def reward_settings(options: TrainOptions, label_files: Sequence[Path] = ()) -> dict[str, object]:
    """The reward configuration the training options ask for (written to ``reward_config.json``)."""
    return {
        "weights": list(options.reward_weights),
        "spatial_mode": options.spatial_mode,
        "encoder": options.semantic_encoder,
        "anatomy_weight": options.anatomy_weight,
        "frame": options.frame,
        "normalize": True,
        "label_files": [str(path) for path in label_files],
    }


def write_inputs(plan: EnginePlan, datasets: dict[str, object]) -> None:
    """Convert the splits into the engine's files (labels validated as written), write the reward config and
    validate it with every label, as the adapter will when the engine loads it."""
    from medground_eval.integrations.convert import convert_dataset
    from medground_eval.integrations.reward_config import load_engine_reward

    options = plan.options
    for role, dataset in datasets.items():
        convert_dataset(
            dataset, ENGINES[plan.backend]["format"], plan.files[role], image_root=options.image_root,
            frame=plan.vision.frame, pixel_limits=(plan.vision.min_pixels, plan.vision.max_pixels), template=options.template,
            split=options.split if role == "train" else options.eval_split,
        )
    text = json.dumps(reward_settings(options, list(plan.files.values())), indent=2) + "\n"
    atomic_write_text(plan.reward_config, text)
    load_engine_reward(plan.reward_config)


def ignored_options(backend: Backend, options: TrainOptions) -> list[str]:
    """The options set away from their default that ``backend``'s command does not use, as ``name = value``."""
    defaults = TrainOptions()
    return [
        f"{name} = {getattr(options, name)!r}"
        for name in UNUSED_OPTIONS.get(backend, ())
        if getattr(options, name) != getattr(defaults, name)
    ]


def describe(plan: EnginePlan) -> str:
    """What the plan sets and why, printed before the command."""
    b, o = plan.budget, plan.options
    lines = [
        f"# model frame: {plan.vision.frame_name}; image sizing from the {plan.vision.source}: factor "
        f"{plan.vision.factor}, pixels {plan.vision.min_pixels}..{plan.vision.max_pixels}",
        f"# prompt length {b.max_prompt_length} tokens: largest prompt <= {b.largest} (sample {b.sample_id!r}, image "
        f"{b.image_size[0]}x{b.image_size[1]}: {b.image_tokens} image tokens + text bytes + {CHAT_TEMPLATE_TOKENS}); "
        "no row is filtered or truncated",
        f"# placement: {o.nodes} node(s) x {o.gpus} GPU(s), actor / rollout / reference colocated, rollout tensor "
        f"parallel {o.rollout_tensor_parallel}",
        "# reward: score = (format + spatial + semantic + anatomy, weighted) / max_total, in [0, 1]; logged "
        "components format, iou, spatial, semantic, anatomy in [0, 1] and total_raw in [0, max_total]",
        f"# outputs under {o.output_dir}: data/, reward_config.json, checkpoints/ (Hugging Face format), tensorboard/"
        + (f"; then predict + score of split {o.eval_split!r}" if o.eval_split else ""),
    ]
    return "\n".join(lines)


def hf_checkpoint(plan: EnginePlan) -> Path | None:
    """The Hugging Face checkpoint a finished run left (``config.json`` and weights), newest first; for EasyR1 the
    actor of the last step is merged first (its ``scripts/model_merger.py``)."""
    out = Path(plan.options.output_dir)
    if plan.backend == "openrlhf":
        candidates = [out / "model"]
    else:
        steps = sorted((out / "checkpoints").glob("global_step_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
        candidates = [step / "actor" / "huggingface" for step in reversed(steps)]
        if plan.backend == "easyr1" and steps:
            _easyr1_merge(steps[-1] / "actor")
    for path in candidates:
        if (path / "config.json").is_file() and any(path.glob("*.safetensors")):
            return path
    return None


def _easyr1_merge(actor: Path) -> None:
    """Run EasyR1's ``scripts/model_merger.py --local_dir <actor>`` (it writes ``<actor>/huggingface``)."""
    if any((actor / "huggingface").glob("*.safetensors")):
        return
    spec = importlib.util.find_spec("verl")
    script = Path(spec.origin).parent.parent / "scripts" / "model_merger.py" if spec and spec.origin else None
    if script is None or not script.is_file():
        print(f"note: EasyR1's scripts/model_merger.py not found beside the installed verl package: merge {actor} "
              "yourself (python3 scripts/model_merger.py --local_dir ...) and run predict + score", file=sys.stderr)
        return
    subprocess.run([sys.executable, str(script), "--local_dir", str(actor)], check=True)


PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "chat_template.jinja", "chat_template.json",
                   "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")
"""The processor and tokenizer files a checkpoint needs beside its weights to be predicted with."""


def _complete_processor(checkpoint: Path, base: Path) -> None:
    """Copy the processor files the engine did not save beside the weights from the trained-from ``base`` (the
    processor the run trained with: OpenRLHF saves only what its tokenizer object holds)."""
    import shutil

    if not base.is_dir() or any((checkpoint / name).is_file()
                                for name in ("preprocessor_config.json", "processor_config.json")):
        return
    for name in PROCESSOR_FILES:
        if (base / name).is_file() and not (checkpoint / name).exists():
            shutil.copy2(base / name, checkpoint / name)


def evaluate_checkpoint(plan: EnginePlan, checkpoint: Path) -> tuple[Path, Path]:
    """``predict`` the held-out split with ``checkpoint`` and ``score`` it: ``eval_predictions.jsonl`` and
    ``eval_metrics.json`` in the output folder, as the TRL backend writes them."""
    from medground_eval.evaluation.scorer import score_files
    from medground_eval.inference import load_model_and_processor, predict_samples
    from medground_eval.integrations.trl import load_split

    options = plan.options
    _complete_processor(checkpoint, Path(options.model))
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


def engine_installed(backend: str) -> bool:
    """Whether the module the engine's command runs can be found here."""
    try:
        return importlib.util.find_spec(ENGINES[backend]["module"]) is not None
    except ModuleNotFoundError:
        return False


def launch_engine(backend: Backend, options: TrainOptions, *, dry_run: bool = False) -> int:
    """Plan, write the inputs, run the engine, evaluate its checkpoint (module docstring); returns an exit code.

    ``dry_run``: print the plan and the command, write nothing, return 0. Engine not installed: write the inputs,
    print the command and the install line, return 2. Otherwise the engine's exit code (after the evaluation).
    """
    if backend not in COMMANDS:
        raise ValueError(f"backend = {backend!r}: expected one of {sorted(COMMANDS)}")
    plan, datasets = plan_engine(backend, options)
    for ignored in ignored_options(backend, plan.options):
        print(f"note: {backend} does not take option {ignored}; pass it in the engine's terms through "
              "extra.engine_args", file=sys.stderr)
    print(describe(plan))
    if dry_run:
        print(plan.shown())
        return 0
    write_inputs(plan, datasets)
    print(plan.shown())
    if not engine_installed(backend):
        print(f"{backend} is not installed in {sys.executable}: install it ({ENGINES[backend]['install']}) and rerun, "
              "or run the command above where it is installed.", file=sys.stderr)
        return 2
    code = subprocess.run(plan.command, env={**os.environ, **plan.env}, check=False).returncode
    if code != 0:
        return code
    checkpoint = hf_checkpoint(plan)
    if plan.options.eval_split and checkpoint is None:
        print(f"note: no Hugging Face checkpoint under {plan.options.output_dir}: no held-out evaluation "
              "(save_steps > 0 leaves one)", file=sys.stderr)
    elif plan.options.eval_split:
        predictions, metrics = evaluate_checkpoint(plan, checkpoint)
        print(f"held-out predictions: {predictions}\nheld-out metrics: {metrics}")
    return 0
