"""Training options shared by every backend (TRL, OpenRLHF, verl), with MedGround-R1's defaults.

Defaults follow the paper's setting: group size 8, KL beta 0.04, learning rate 1e-6, 2 epochs, completion length
256, temperature 1.0, the Chain-of-Box template, format + spatial + semantic rewards with equal weights.
A config file (TOML or YAML) sets any field; command-line flags override the file.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainOptions:
    """Everything a training run needs; field names are the config-file keys and the ``--flag`` names."""

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
    use_lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    save_steps: int = 500
    logging_steps: int = 1
    resume_from_checkpoint: str | None = None
    seed: int = 42
    use_cpu: bool = False
    extra: dict[str, object] = field(default_factory=dict)


def _read_config(path: Path) -> dict[str, object]:
    if not path.is_file():
        raise FileNotFoundError(f"config file {path}: not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        data = tomllib.loads(text)
    elif path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        raise ValueError(f"config file {path}: expected a .toml, .yaml or .yml file")
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: expected a table of options at the top level, got {type(data).__name__}")
    return data


def load_options(config: str | Path | None = None, **overrides: object) -> TrainOptions:
    """Defaults, then the config file, then ``overrides`` (flags; None means "not given")."""
    known = {f.name: f for f in dataclasses.fields(TrainOptions)}
    values: dict[str, object] = {}
    if config is not None:
        data = _read_config(Path(config))
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"config file {config}: unknown option(s) {unknown}; expected some of {sorted(known)}")
        values.update(data)
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; expected some of {sorted(known)}")
    if "reward_weights" in values:
        values["reward_weights"] = tuple(float(w) for w in values["reward_weights"])  # type: ignore[union-attr]
    return TrainOptions(**values)  # type: ignore[arg-type]
