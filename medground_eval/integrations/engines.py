"""`medground-eval train --backend openrlhf | verl | easyr1`: a run that starts as printed, on the stated GPUs.

:func:`run_engine` (``--dry-run``: :func:`plan_engine` and print) does, in order:

1. The model's input geometry (:func:`~medground_eval.integrations.engine_vision.engine_vision`): the frame its
   answers are in and how the engine's processor sizes an image, from the local checkpoint's own image processor.
2. The prompt budget (:func:`~medground_eval.integrations.engine_vision.prompt_budget`): the largest prompt of the
   training and held-out splits, in tokens; every row fits, no engine filters or truncates one.
3. The data files under ``<output_dir>/data/<backend>/`` (labels validated when written, images at absolute paths),
   and ``<output_dir>/reward_config.json`` (reward settings, ``normalize = true``, the data files as
   ``label_files``: the adapter re-reads every label when the engine loads it).
4. The engine's command (:func:`~medground_eval.integrations.engine_commands.engine_command`).
5. Run it (the engine must be importable).

The whole run, which then predicts and scores the held-out split with the checkpoint the engine left (as the TRL
backend does), is :func:`medground_eval.training.run.launch_engine` (the app layer: scoring is not an integration's).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medground_eval.integrations.engine_commands import (  # noqa: F401  (re-exported: the public names of before)
    COMMANDS,
    ENGINES,
    UNUSED_OPTIONS,
    Backend,
    adapter_path,
    data_files,
    easyr1_command,
    engine_command,
    ignored_options,
    openrlhf_command,
    verl_command,
)
from medground_eval.integrations.engine_vision import (  # noqa: F401  (re-exported: the public names of before)
    CHAT_TEMPLATE_TOKENS,
    DEFAULT_VISION,
    EngineVision,
    PromptBudget,
    engine_vision,
    prompt_budget,
)
from medground_eval.integrations.options import TrainOptions
from medground_eval.integrations.reward_config import (  # noqa: F401  (re-exported: the adapters' config)
    REWARD_CONFIG_ENV,
    load_reward,
    reward_from_config,
    reward_from_env,
)
from medground_eval.outputs import atomic_write_text


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
    plan = EnginePlan(backend, options, vision, budget, data_files(options, backend), config, command, env)
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


def complete_processor(checkpoint: Path, base: Path) -> None:
    """Copy the processor files the engine did not save beside the weights from the trained-from ``base`` (the
    processor the run trained with: OpenRLHF saves only what its tokenizer object holds)."""
    import shutil

    if not base.is_dir() or any((checkpoint / name).is_file()
                                for name in ("preprocessor_config.json", "processor_config.json")):
        return
    for name in PROCESSOR_FILES:
        if (base / name).is_file() and not (checkpoint / name).exists():
            shutil.copy2(base / name, checkpoint / name)


def engine_installed(backend: str) -> bool:
    """Whether the module the engine's command runs can be found here."""
    try:
        return importlib.util.find_spec(ENGINES[backend]["module"]) is not None
    except ModuleNotFoundError:
        return False


def run_engine(backend: Backend, options: TrainOptions, *, dry_run: bool = False) -> tuple[int, EnginePlan]:
    """Plan, write the inputs, run the engine (module docstring); returns its exit code and the plan.

    ``dry_run``: print the plan and the command, write nothing, return 0. Engine not installed: write the inputs,
    print the command and the install line, return 2. Otherwise the engine's exit code.
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
        return 0, plan
    write_inputs(plan, datasets)
    print(plan.shown())
    if not engine_installed(backend):
        print(f"{backend} is not installed in {sys.executable}: install it ({ENGINES[backend]['install']}) and rerun, "
              "or run the command above where it is installed.", file=sys.stderr)
        return 2, plan
    return subprocess.run(plan.command, env={**os.environ, **plan.env}, check=False).returncode, plan
