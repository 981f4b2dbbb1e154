"""Distributed engines (OpenRLHF, verl): the adapters' reward configuration and `medground-eval train --backend`.

Reward configuration
--------------------
The adapters (``trainers/openrlhf.py``, ``trainers/verl.py``, ``trainers/easyr1.py``) and the reward server build
their :class:`~medground_eval.rewards.SpatialSemanticReward` from the file named by the environment variable
``MEDGROUND_REWARD_CONFIG`` (a ``.json`` or ``.toml`` file), read once per process on the first call. Its keys are
the keyword arguments of ``SpatialSemanticReward`` (``weights``, ``spatial_mode``, ``encoder``, ``frame``,
``semantic_policy`` ...), plus ``preset = "paper"`` for :meth:`SpatialSemanticReward.paper` with the other keys as
overrides. Variable unset: ``SpatialSemanticReward()`` defaults (weights 1/1/1, continuous IoU, MiniLM encoder).
The frame of each sample travels in its label, so the configured ``frame`` only serves labels without one.

Launching
---------
:func:`launch_engine` converts the training split (and the evaluation split, when set) into the engine's data
files under ``<output_dir>/data/<backend>/``, writes ``<output_dir>/reward_config.json`` from the options, builds
the engine's command with the adapter plugged in and the options mapped onto the engine's flags, and runs it when
the engine is importable; otherwise it prints the command and what to install, and returns 2. Engine flags that
have no :class:`TrainOptions` field (GPU counts, parallelism) go in ``options.extra["engine_args"]``, a list of
strings appended to the command (for verl, an override of a key the command already sets replaces it).
The frame written into the labels is the model's (:func:`model_frame`), as for the TRL backend: its preset name, and
for a ``resized`` frame each label's ``input_size`` computed with the checkpoint's processor pixel limits.
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
import threading
import tomllib
from collections.abc import Mapping
from inspect import signature
from pathlib import Path
from typing import Literal

from medground_eval.frames import Frame, preset_name, resolve_model_frame
from medground_eval.rewards import SpatialSemanticReward
from medground_eval.integrations.options import TrainOptions
from medground_eval.outputs import atomic_write_text

Backend = Literal["openrlhf", "verl"]

REWARD_CONFIG_ENV = "MEDGROUND_REWARD_CONFIG"

ENGINES: dict[str, dict[str, str]] = {
    "openrlhf": {"module": "openrlhf", "install": "pip install 'openrlhf[vllm]==0.11.*'", "format": "openrlhf"},
    "verl": {"module": "verl", "install": "pip install 'verl[vllm]==0.9.*'", "format": "verl"},
}

_REWARD_KEYS = frozenset(signature(SpatialSemanticReward.__init__).parameters) - {"self"}
_REWARDS: dict[str | None, SpatialSemanticReward] = {}
_REWARDS_LOCK = threading.Lock()


def reward_from_config(settings: Mapping[str, object], *, source: str = "reward config") -> SpatialSemanticReward:
    """A reward from a mapping of ``SpatialSemanticReward`` keyword arguments (plus ``preset``)."""
    settings = dict(settings)
    preset = settings.pop("preset", "default")
    if preset not in ("default", "paper"):
        raise ValueError(f"{source}: preset = {preset!r}: expected 'default' or 'paper'")
    unknown = sorted(set(settings) - _REWARD_KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; expected some of {sorted(_REWARD_KEYS | {'preset'})}")
    if "weights" in settings:
        weights = settings["weights"]
        if not isinstance(weights, list) or not all(isinstance(w, (int, float)) for w in weights):
            raise ValueError(
                f"{source}: weights = {weights!r}: expected a list of three numbers [format, spatial, semantic]"
            )
        settings["weights"] = tuple(weights)
    try:
        return SpatialSemanticReward.paper(**settings) if preset == "paper" else SpatialSemanticReward(**settings)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: {error}") from None


def load_reward(path: str | Path | None) -> SpatialSemanticReward:
    """The reward configured by a ``.json`` / ``.toml`` file; ``None`` gives the documented defaults."""
    if path is None:
        return SpatialSemanticReward()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reward config {path}: not found (named by ${REWARD_CONFIG_ENV} or --reward-config)")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            settings = tomllib.loads(text)
        elif path.suffix == ".json":
            settings = json.loads(text)
        else:
            raise ValueError(f"reward config {path}: expected a .json or .toml file")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"reward config {path}: not valid {path.suffix[1:].upper()}: {error}") from None
    if not isinstance(settings, dict):
        raise ValueError(f"reward config {path}: expected a table of reward settings, got {type(settings).__name__}")
    return reward_from_config(settings, source=f"reward config {path}")


def reward_from_env() -> SpatialSemanticReward:
    """The process's reward, built once from ``$MEDGROUND_REWARD_CONFIG`` (thread-safe)."""
    path = os.environ.get(REWARD_CONFIG_ENV) or None
    with _REWARDS_LOCK:
        if path not in _REWARDS:
            _REWARDS[path] = load_reward(path)
        return _REWARDS[path]


def reward_settings(options: TrainOptions) -> dict[str, object]:
    """The reward configuration the training options ask for (written to ``reward_config.json``)."""
    return {
        "weights": list(options.reward_weights),
        "spatial_mode": options.spatial_mode,
        "encoder": options.semantic_encoder,
        "anatomy_weight": options.anatomy_weight,
        "frame": options.frame,
    }


def model_frame(options: TrainOptions) -> Frame:
    """The frame the model answers in: :func:`~medground_eval.frames.resolve_model_frame` of ``options.model`` (its
    ``config.json`` model type and ``preprocessor_config.json`` pixel limits, as the engine's processor reads them),
    ``options.frame`` for a hub name or a model type not known there. The same resolver serves TRL and ``predict``."""
    return resolve_model_frame(options.model, default=options.frame)


def adapter_path(backend: str) -> Path:
    """The file of the adapter module an engine loads by path."""
    return Path(__file__).with_name(f"{backend}.py")


def _data_file(options: TrainOptions, backend: str, split: str | None) -> Path:
    suffix = ".parquet" if backend == "verl" else ".jsonl"
    return Path(options.output_dir) / "data" / backend / f"{split or 'all'}{suffix}"


def _splits(options: TrainOptions) -> list[str | None]:
    return [options.split] + ([options.eval_split] if options.eval_split else [])


def openrlhf_command(options: TrainOptions, train_file: Path, eval_file: Path | None) -> list[str]:
    """OpenRLHF 0.11 (dotted flags) GRPO command: group-normalised advantages, k3 KL loss, our reward file.

    ``use_lora`` is refused: OpenRLHF's ``--ds.lora.*`` serves SFT / RM / DPO only, Ray + vLLM PPO does not support it.
    """
    if options.use_lora:
        raise ValueError(
            "option use_lora = True: OpenRLHF's Ray + vLLM PPO does not support LoRA (its --ds.lora.* flags serve "
            "SFT / RM / DPO only); train the full model, or use --backend trl or verl for LoRA"
        )
    prompts_per_step = options.per_device_train_batch_size * options.gradient_accumulation_steps
    command = [
        sys.executable, "-m", "openrlhf.cli.train_ppo_ray",
        "--actor.model_name_or_path", options.model,
        "--reward.remote_url", str(adapter_path("openrlhf")),
        "--data.prompt_dataset", str(train_file),
        "--data.input_key", "prompt",
        "--data.label_key", "label",
        "--data.image_key", "images",
        "--data.max_images_per_prompt", "1",
        "--data.apply_chat_template",
        "--algo.advantage.estimator", "group_norm",
        "--algo.kl.use_loss",
        "--algo.kl.estimator", "k3",
        "--algo.kl.init_coef", str(options.beta),
        "--rollout.n_samples_per_prompt", str(options.num_generations),
        "--rollout.max_new_tokens", str(options.max_completion_length),
        "--rollout.temperature", str(options.temperature),
        "--rollout.batch_size", str(prompts_per_step),
        "--train.batch_size", str(prompts_per_step * options.num_generations),
        "--train.max_epochs", "1",
        "--train.num_episodes", str(math.ceil(options.num_train_epochs)),
        "--train.seed", str(options.seed),
        "--actor.adam.lr", str(options.learning_rate),
        "--actor.freeze_visual_encoder",
        "--ckpt.output_dir", options.output_dir,
        "--ckpt.save_steps", str(options.save_steps),
        "--logger.logging_steps", str(options.logging_steps),
    ]
    if eval_file is not None:
        command += ["--eval.dataset", str(eval_file)]
    return command


def verl_command(options: TrainOptions, train_file: Path, eval_file: Path | None) -> list[str]:
    """verl 0.9 GRPO command (Hydra overrides): low-variance KL loss, our ``compute_score``.

    Besides the options it sets what verl has no usable default for: the rollout engine (``vllm``; the key is
    mandatory), one PPO update per prompt batch (``ppo_mini_batch_size`` = the batch: verl's default 256 exceeds a
    smaller batch and is refused), and micro-batches of one sequence per GPU for the update and the log-prob passes
    (verl requires them; 1 divides every batch on any GPU count; raise them through ``extra.engine_args``).
    """
    prompts_per_step = options.per_device_train_batch_size * options.gradient_accumulation_steps
    command = [
        sys.executable, "-m", "verl.trainer.main_ppo",
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_in_reward=False",
        f"data.train_files={train_file}",
        f"data.val_files={eval_file or train_file}",
        "data.prompt_key=prompt",
        "data.image_key=images",
        f"data.train_batch_size={prompts_per_step}",
        f"data.max_response_length={options.max_completion_length}",
        f"data.seed={options.seed}",
        f"actor_rollout_ref.model.path={options.model}",
        f"actor_rollout_ref.actor.optim.lr={options.learning_rate}",
        "actor_rollout_ref.actor.use_kl_loss=True",
        f"actor_rollout_ref.actor.kl_loss_coef={options.beta}",
        "actor_rollout_ref.actor.kl_loss_type=low_var_kl",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={prompts_per_step}",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=1",
        "actor_rollout_ref.rollout.name=vllm",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1",
        f"actor_rollout_ref.rollout.n={options.num_generations}",
        f"actor_rollout_ref.rollout.temperature={options.temperature}",
        f"reward.custom_reward_function.path={adapter_path('verl')}",
        "reward.custom_reward_function.name=compute_score",
        f"trainer.total_epochs={math.ceil(options.num_train_epochs)}",
        f"trainer.default_local_dir={options.output_dir}",
        f"trainer.save_freq={options.save_steps}",
    ]
    if options.max_steps > 0:
        command.append(f"trainer.total_training_steps={options.max_steps}")
    if options.use_lora:
        command += [f"actor_rollout_ref.model.lora_rank={options.lora_r}",
                    f"actor_rollout_ref.model.lora_alpha={options.lora_alpha}"]
    return command


def engine_command(backend: Backend, options: TrainOptions) -> list[str]:
    """The engine's launch command for ``options`` (data files at their :func:`launch_engine` paths)."""
    if backend not in ENGINES:
        raise ValueError(f"backend = {backend!r}: expected one of {sorted(ENGINES)}")
    if not options.model:
        raise ValueError("option 'model' is empty: expected a model name or path (--model)")
    train_file = _data_file(options, backend, options.split)
    eval_file = _data_file(options, backend, options.eval_split) if options.eval_split else None
    extra = options.extra.get("engine_args", [])
    if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
        raise ValueError(f"option extra.engine_args = {extra!r}: expected a list of strings")
    if backend == "openrlhf":
        return openrlhf_command(options, train_file, eval_file) + extra  # argparse: the last value of a flag wins
    replaced = {arg.split("=", 1)[0].lstrip("+~") for arg in extra}
    return [arg for arg in verl_command(options, train_file, eval_file) if arg.split("=", 1)[0] not in replaced] + extra


def _write_inputs(backend: Backend, options: TrainOptions, frame: Frame) -> Path:
    """Convert the splits into the engine's files (labels in ``frame``) and write the reward config; returns the
    config path."""
    from medground_eval.integrations.convert import convert_dataset
    from medground_eval.datasets import get_loader

    if options.data_dir is None:
        raise ValueError("option 'data_dir' is None: expected the data set's annotations path (--data-dir)")
    load = get_loader(options.dataset)
    for split in _splits(options):
        dataset = load(options.data_dir, split=split)
        convert_dataset(
            dataset, ENGINES[backend]["format"], _data_file(options, backend, split),
            image_root=options.image_root, frame=frame, template=options.template, split=split,
        )
    config = Path(options.output_dir) / "reward_config.json"
    atomic_write_text(config, json.dumps(reward_settings(options), indent=2) + "\n")
    return config


UNUSED_OPTIONS: dict[str, tuple[str, ...]] = {
    "openrlhf": ("max_steps", "resume_from_checkpoint", "use_cpu"),
    "verl": ("resume_from_checkpoint", "use_cpu"),
}
"""Options the engine's command does not carry (set them through ``extra.engine_args`` in the engine's terms)."""


def ignored_options(backend: Backend, options: TrainOptions) -> list[str]:
    """The options set away from their default that ``backend``'s command does not use, as ``name = value``."""
    defaults = TrainOptions()
    return [
        f"{name} = {getattr(options, name)!r}"
        for name in UNUSED_OPTIONS.get(backend, ())
        if getattr(options, name) != getattr(defaults, name)
    ]


def launch_engine(backend: Backend, options: TrainOptions, *, dry_run: bool = False) -> int:
    """Write the data and reward config, then run the engine (or print its command); returns an exit code.

    ``dry_run``: print the command (and the files it reads), write nothing, return 0. Engine not installed: print
    the command and the install line to stderr, return 2. Otherwise the engine's own exit code.
    """
    frame = model_frame(options)
    options = dataclasses.replace(options, frame=preset_name(frame, hint=options.frame))
    command = engine_command(backend, options)
    config = Path(options.output_dir) / "reward_config.json"
    shown = f"{REWARD_CONFIG_ENV}={shlex.quote(str(config))} {shlex.join(command)}"
    for ignored in ignored_options(backend, options):
        print(f"note: {backend} does not take option {ignored}; pass it in the engine's terms through "
              "extra.engine_args", file=sys.stderr)
    if dry_run:
        print(shown)
        return 0
    _write_inputs(backend, options, frame)
    if importlib.util.find_spec(ENGINES[backend]["module"]) is None:
        print(shown)
        print(
            f"{backend} is not installed in {sys.executable}: install it ({ENGINES[backend]['install']}) and rerun, "
            "or run the command above where it is installed.",
            file=sys.stderr,
        )
        return 2
    return subprocess.run(command, env={**os.environ, REWARD_CONFIG_ENV: str(config)}, check=False).returncode
