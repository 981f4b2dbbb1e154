"""The engines' launch commands: GPUs and nodes mapped onto each engine's placement (colocated as in its own VLM
examples), the rollout engine (vLLM) set, evaluation on the held-out split every ``eval_steps``, Hugging Face
checkpoints under the output folder, a logger that needs no account (console, TensorBoard / file).

Engine flags without a :class:`TrainOptions` field go in ``options.extra["engine_args"]`` (a list of strings
appended to the command; for verl and EasyR1 an override of a key the command sets replaces it).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Literal

from medground_eval.integrations.convert import EASYR1_PIXELS
from medground_eval.integrations.engine_vision import PromptBudget
from medground_eval.integrations.options import TrainOptions

Backend = Literal["openrlhf", "verl", "easyr1"]

ENGINES: dict[str, dict[str, str]] = {
    "openrlhf": {"module": "openrlhf.cli.train_ppo_ray", "install": "pip install 'openrlhf[vllm]==0.11.*'",
                 "format": "openrlhf"},
    "verl": {"module": "verl.trainer.main_ppo", "install": "pip install 'verl[vllm]==0.9.*'", "format": "verl"},
    "easyr1": {"module": "verl.trainer.main", "format": "easyr1",
               "install": "git clone https://github.com/hiyouga/EasyR1 && pip install -e EasyR1"},
}
"""Per engine: the module the command runs, how to install it, the data format of `convert`."""


def data_files(options: TrainOptions, backend: str) -> dict[str, Path]:
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
    """The engine's launch command for ``options`` (data files at their :func:`data_files` paths). ``budget``
    defaults to a placeholder of 1024 prompt tokens (for tests of the flags; :func:`plan_engine` sizes it)."""
    if backend not in COMMANDS:
        raise ValueError(f"backend = {backend!r}: expected one of {sorted(COMMANDS)}")
    if not options.model:
        raise ValueError("option 'model' is empty: expected a model name or path (--model)")
    budget = budget or PromptBudget(1024, "", (0, 0), 0, 1024)
    command = COMMANDS[backend](options, data_files(options, backend), budget, adapter_path(backend))
    return _with_engine_args(backend, command, options)


def ignored_options(backend: Backend, options: TrainOptions) -> list[str]:
    """The options set away from their default that ``backend``'s command does not use, as ``name = value``."""
    defaults = TrainOptions()
    return [
        f"{name} = {getattr(options, name)!r}"
        for name in UNUSED_OPTIONS.get(backend, ())
        if getattr(options, name) != getattr(defaults, name)
    ]
