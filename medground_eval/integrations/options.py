"""Training options shared by every backend (TRL, OpenRLHF, verl), with MedGround-R1's defaults.

Defaults follow the paper's setting: group size 8, KL beta 0.04, learning rate 1e-6, 2 epochs, completion length
256, temperature 1.0, the Chain-of-Box template, format + spatial + semantic rewards with equal weights.
A config file (TOML or YAML) sets any field; command-line flags override the file.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args, get_type_hints

from medground_eval.validation import is_number


@dataclass
class TrainOptions:
    """Everything a training run needs; field names are the config-file keys and the ``--flag`` names.

    ``gpus`` (per node), ``nodes`` and ``rollout_tensor_parallel`` (GPUs per vLLM engine) serve the OpenRLHF, verl and
    EasyR1 backends; there ``eval_steps = 0`` evaluates the held-out split at every checkpoint (``save_steps``).
    """

    stage: str = "grpo"
    init_from: str | None = None
    model: str = ""
    dataset: str = "jsonl"
    data_dir: str | None = None
    image_root: str | None = None
    output_dir: str = "runs/medground-r1"
    split: str | None = "train"
    eval_split: str | None = "test"
    template: str = "chain-of-box"
    frame: str = "qwen2.5-vl"
    num_generations: int = 8
    beta: float = 0.04
    learning_rate: float = 1e-6
    num_train_epochs: float = 2.0
    max_steps: int = -1
    max_completion_length: int = 256
    temperature: float = 1.0
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    reward_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    spatial_mode: str = "iou"
    semantic_encoder: str = "minilm"
    anatomy_weight: float = 0.5
    use_lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    save_steps: int = 500
    logging_steps: int = 1
    resume_from_checkpoint: str | None = None
    seed: int = 42
    eval_steps: int = 0
    stop_on_zero_gradient: int = 0
    use_cpu: bool = False
    gpus: int = 8
    nodes: int = 1
    rollout_tensor_parallel: int = 1
    extra: dict[str, object] = field(default_factory=dict)


def _read_config(path: Path) -> dict[str, object]:
    if not path.is_file():
        raise FileNotFoundError(f"config file {path}: not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"config file {path}: not valid TOML: {error}") from None
    elif path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"config file {path}: not valid YAML: {error}") from None
    else:
        raise ValueError(f"config file {path}: expected a .toml, .yaml or .yml file")
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: expected a table of options at the top level, got {type(data).__name__}")
    return data


_KINDS: dict[object, tuple[str, Callable[[object], bool]]] = {
    str: ("a string", lambda v: isinstance(v, str)),
    int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number (finite)", is_number),
    bool: ("true or false", lambda v: isinstance(v, bool)),
    tuple[float, float, float]: (
        "a list of three numbers [format, spatial, semantic]",
        lambda v: isinstance(v, (list, tuple)) and len(v) == 3 and all(is_number(w) for w in v),
    ),
    dict[str, object]: ("a table of options", lambda v: isinstance(v, dict)),
}


def _checked(name: str, value: object, source: str) -> object:
    """``value`` of option ``name`` converted to its field's type (float, tuple); raises ValueError naming
    ``source``, the option, the value and the expected type."""
    hint = get_type_hints(TrainOptions)[name]
    optional = type(None) in get_args(hint)
    if value is None and optional:
        return None
    kind = next(a for a in get_args(hint) if a is not type(None)) if optional else hint
    expected, accepts = _KINDS[kind]
    if not accepts(value):
        raise ValueError(f"{source}: option {name} = {value!r}: expected {expected}{' or null' if optional else ''}")
    if kind is float:
        return float(value)  # type: ignore[arg-type]
    if kind == tuple[float, float, float]:
        return tuple(float(w) for w in value)  # type: ignore[union-attr]
    return value


def load_options(config: str | Path | None = None, **overrides: object) -> TrainOptions:
    """Defaults, then the config file, then ``overrides`` (flags; None means "not given").

    Every value is checked against its field's type (an integer is a valid float; a float is not a valid integer);
    an unknown option or a wrong type is a ValueError naming the config file (or "flag"), the option and the value.
    """
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    values: dict[str, object] = {}
    if config is not None:
        data = _read_config(Path(config))
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"config file {config}: unknown option(s) {unknown}; expected some of {sorted(known)}")
        values.update({k: _checked(k, v, f"config file {config}") for k, v in data.items()})
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; expected some of {sorted(known)}")
    values.update({k: _checked(k, v, "flag") for k, v in given.items()})
    return TrainOptions(**values)  # type: ignore[arg-type]
