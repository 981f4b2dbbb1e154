"""The reward an engine adapter scores with: built once per process from ``$MEDGROUND_REWARD_CONFIG``.

The adapters (``integrations/openrlhf.py``, ``verl.py``, ``easyr1.py``) and the reward server build their
:class:`EngineReward` from the file named by the environment variable ``MEDGROUND_REWARD_CONFIG`` (``.json`` or
``.toml``), read once per process. Its keys are the keyword arguments of
:class:`~medground_eval.rewards.SpatialSemanticReward` (``weights``, ``spatial_mode``, ``encoder``, ``frame`` ...),
``preset = "paper"`` for :meth:`SpatialSemanticReward.paper` with the other keys as overrides, and two keys of the
engines' own:

- ``normalize`` (default true): the score handed to the engine is ``total / max_total``, in [0, 1] (OpenRLHF's
  dynamic filtering range defaults to (0, 1), EasyR1's online filtering keeps groups with a mean ``overall`` in
  (0.01, 0.99)); false hands over the raw weighted total in [0, ``max_total``]. The components are in [0, 1] either
  way, and the raw total is always logged as ``total_raw``.
- ``label_files`` (default none): data files whose every label is read (:func:`validate_label_files`) when the
  reward is built, so a broken label stops the run when the engine loads the reward, before the first rollout.

Variable unset: ``SpatialSemanticReward()`` defaults, normalised. The frame of each sample travels in its label, so
the configured ``frame`` only serves labels without one.
"""

from __future__ import annotations

import json
import os
import threading
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from inspect import signature
from pathlib import Path

import numpy as np

from medground_eval.integrations.labels import COMPONENTS, score_labels, validate_label_files
from medground_eval.rewards import SpatialSemanticReward

REWARD_CONFIG_ENV = "MEDGROUND_REWARD_CONFIG"
ENGINE_KEYS = frozenset({"normalize", "label_files"})
"""Keys of the reward config that configure the adapters, not :class:`SpatialSemanticReward`."""

_REWARD_KEYS = frozenset(signature(SpatialSemanticReward.__init__).parameters) - {"self"}
_REWARDS: dict[str | None, EngineReward] = {}
_REWARDS_LOCK = threading.Lock()


@dataclass(frozen=True)
class EngineScores:
    """Per completion: ``score`` (what the engine trains on: normalised or raw total) and the logged components
    (``format``, ``iou``, ``spatial``, ``semantic``, ``anatomy`` in [0, 1]; ``total_raw`` in [0, ``max_total``])."""

    score: np.ndarray
    components: dict[str, np.ndarray]


@dataclass(frozen=True)
class EngineReward:
    """A :class:`SpatialSemanticReward` and whether the engine gets its total divided by ``max_total``."""

    reward: SpatialSemanticReward
    normalize: bool = True

    def score(self, completions: Sequence[str], labels: Sequence[object]) -> EngineScores:
        """Read every label (:class:`~medground_eval.integrations.labels.LabelError` on a broken one) and score."""
        breakdown = score_labels(self.reward, completions, labels)
        scale = self.reward.max_total if self.normalize and self.reward.max_total > 0 else 1.0
        components = {name: getattr(breakdown, name) for name in COMPONENTS}
        components["total_raw"] = breakdown.total
        return EngineScores(breakdown.total / scale, components)


def reward_from_config(settings: Mapping[str, object], *, source: str = "reward config") -> SpatialSemanticReward:
    """A reward from a mapping of ``SpatialSemanticReward`` keyword arguments (plus ``preset``)."""
    settings = dict(settings)
    preset = settings.pop("preset", "default")
    if preset not in ("default", "paper"):
        raise ValueError(f"{source}: preset = {preset!r}: expected 'default' or 'paper'")
    unknown = sorted(set(settings) - _REWARD_KEYS)
    if unknown:
        expected = sorted(_REWARD_KEYS | ENGINE_KEYS | {"preset"})
        raise ValueError(f"{source}: unknown key(s) {unknown}; expected some of {expected}")
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


def _read_settings(path: Path) -> dict[str, object]:
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
    return settings


def load_engine_reward(path: str | Path | None) -> EngineReward:
    """The :class:`EngineReward` configured by a ``.json`` / ``.toml`` file (module docstring); ``None`` gives the
    defaults. The ``label_files`` are validated here: a broken label raises LabelError naming file, row and field."""
    if path is None:
        return EngineReward(SpatialSemanticReward())
    path = Path(path)
    settings = _read_settings(path)
    source = f"reward config {path}"
    normalize = settings.pop("normalize", True)
    if not isinstance(normalize, bool):
        raise ValueError(f"{source}: normalize = {normalize!r}: expected true or false")
    label_files = settings.pop("label_files", [])
    if not isinstance(label_files, list) or not all(isinstance(f, str) for f in label_files):
        raise ValueError(f"{source}: label_files = {label_files!r}: expected a list of file paths")
    reward = reward_from_config(settings, source=source)
    validate_label_files(label_files)
    return EngineReward(reward, normalize)


def with_frame(path: str | Path | None, frame: str, folder: Path) -> Path:
    """A reward config file in ``folder``: the settings of ``path`` (none: the defaults) with ``frame`` replacing
    theirs (a :attr:`~medground_eval.frames.Frame.spec` text, e.g. ``resized:max_pixels=1003520``). The server uses
    it to hand a frame resolved from ``--model`` / ``--max-pixels`` to every worker."""
    settings = {} if path is None else _read_settings(Path(path))
    settings["frame"] = frame
    out = Path(folder) / "reward_config.json"
    out.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    load_engine_reward(out)  # checked before any worker starts, as the user's own file
    return out


def load_reward(path: str | Path | None) -> SpatialSemanticReward:
    """The :class:`SpatialSemanticReward` configured by a file (see :func:`load_engine_reward`)."""
    return load_engine_reward(path).reward


def reward_from_env() -> EngineReward:
    """The process's reward, built once from ``$MEDGROUND_REWARD_CONFIG`` (thread-safe)."""
    path = os.environ.get(REWARD_CONFIG_ENV) or None
    with _REWARDS_LOCK:
        if path not in _REWARDS:
            _REWARDS[path] = load_engine_reward(path)
        return _REWARDS[path]
