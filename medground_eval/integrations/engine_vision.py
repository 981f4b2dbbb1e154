"""How an engine's processor sizes an image for a model, and the prompt length every sample fits in.

- :func:`engine_vision`: the model's frame and its processor's image geometry (``smart_resize`` with factor
  ``patch_size * merge_size`` within ``min_pixels`` / ``max_pixels``), from the local checkpoint's own image
  processor files (json only), as the TRL backend reads it.
- :func:`prompt_budget`: the largest prompt of the data in tokens: image tokens (resized pixels / factor², after
  EasyR1's own rescaling for ``easyr1``) plus the prompt text's UTF-8 bytes (a byte-level tokenizer never makes more
  tokens than bytes) plus :data:`CHAT_TEMPLATE_TOKENS`, rounded up to 64. Every row fits: no engine filters or
  truncates one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medground_eval.frames import (
    Frame,
    preset_name,
    processor_pixel_limits,
    resolve_model_frame,
    smart_resize,
)
from medground_eval.inference import QWEN_PROCESSORS
from medground_eval.integrations.convert import easyr1_image_size
from medground_eval.integrations.options import TrainOptions

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
    if model_type not in QWEN_PROCESSORS:  # the image tokens below are Qwen's smart_resize; others size differently
        raise ValueError(
            f"model {options.model}: model_type {model_type!r}: the engine backends size prompts for the Qwen-VL "
            f"checkpoints ({sorted(QWEN_PROCESSORS)})"
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
