"""The model-frame resolver: the frame a model answers in, read from its local checkpoint (or processor) folder.

One rule in one place: every backend (TRL, OpenRLHF, verl, EasyR1), ``predict``, ``convert`` and the labels resolve a
model's frame with :func:`resolve_model_frame` (``config.json``'s ``model_type``, the image processor's pixel limits
of ``preprocessor_config.json`` / ``processor_config.json``), json only, no transformers.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from medground_eval.frames.conversions import FRAME_PRESETS, Frame, get_frame

MODEL_TYPE_FRAMES: dict[str, str] = {
    "qwen2_5_vl": "qwen2.5-vl",
    "qwen2_vl": "norm1000",
    "qwen3_vl": "norm1000",
    "qwen3_vl_moe": "norm1000",
    "internvl": "internvl",
    "internvl_chat": "internvl",
    "paligemma": "paligemma",
    "florence2": "florence-2",
}
"""The frame preset each known ``config.json`` ``model_type`` answers in (Qwen2.5-VL: pixels of its resized input;
Qwen2-VL / Qwen3-VL / InternVL: 0-1000; PaliGemma: y-first loc tokens of 1024 bins; Florence-2: ``<loc_N>`` of 1000
bins)."""
PROCESSOR_MODEL_TYPES: dict[str, str] = {
    "Qwen2_5_VLProcessor": "qwen2_5_vl", "Qwen2VLProcessor": "qwen2_vl", "Qwen3VLProcessor": "qwen3_vl",
    "PaliGemmaProcessor": "paligemma", "Florence2Processor": "florence2",
}
"""The model type of a processor folder without ``config.json`` (``--processor PATH``), from the
``processor_class`` that ``save_pretrained`` writes into ``preprocessor_config.json``."""

PROCESSOR_DEFAULTS: dict[str, int] = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 1280, "patch_size": 14,
                                      "merge_size": 2}
"""transformers' ``Qwen2VLImageProcessor`` class defaults (``size = {"shortest_edge": 56 * 56, "longest_edge":
28 * 28 * 1280}``, patch 14, merge 2), used for a key its ``preprocessor_config.json`` does not set."""


def _json_object(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _positive_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or value <= 0:
        raise ValueError(f"{where} = {value!r}: expected a positive integer")
    return int(value)


def processor_pixel_limits(folder: str | Path) -> dict[str, int]:
    """``factor``, ``min_pixels`` and ``max_pixels`` of the Qwen image processor saved in ``folder``.

    Read as transformers reads ``preprocessor_config.json``: ``size.shortest_edge`` / ``size.longest_edge``, which
    top-level ``min_pixels`` / ``max_pixels`` override; ``factor = patch_size * merge_size``; a key not set takes the
    class default (:data:`PROCESSOR_DEFAULTS`). Without ``preprocessor_config.json`` the ``image_processor`` object of
    ``processor_config.json`` is read the same way: transformers 5's ``ProcessorMixin.save_pretrained`` (a processor
    saved by a trainer, e.g. TRL's checkpoints and ``train --stage sft``) writes the image processor there and no
    ``preprocessor_config.json``; reading neither gave the default limits, a wrong frame and near-zero IoU.
    Neither file: an empty dict (the preset's limits stand). Raises ValueError naming the file and field for a
    malformed value.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "preprocessor_config.json").write_text('{"max_pixels": 1003520, "size": {"shortest_edge": 3136}}')
    >>> processor_pixel_limits(folder)
    {'factor': 28, 'min_pixels': 3136, 'max_pixels': 1003520}
    """
    path = Path(folder) / "preprocessor_config.json"
    if path.is_file():
        config = _json_object(path)
    else:
        path = Path(folder) / "processor_config.json"
        if not path.is_file() or _json_object(path).get("image_processor") is None:
            return {}
        config = _json_object(path)["image_processor"]
        if not isinstance(config, dict):
            raise ValueError(f"{path}: field 'image_processor' = {config!r}: expected an object")
    size = config.get("size") or {}
    if not isinstance(size, dict):
        raise ValueError(f"{path}: field 'size' = {size!r}: expected an object with shortest_edge / longest_edge")
    found = {
        "min_pixels": (config.get("min_pixels"), "min_pixels") if config.get("min_pixels") is not None
        else (size.get("shortest_edge"), "size.shortest_edge"),
        "max_pixels": (config.get("max_pixels"), "max_pixels") if config.get("max_pixels") is not None
        else (size.get("longest_edge"), "size.longest_edge"),
        "patch_size": (config.get("patch_size"), "patch_size"),
        "merge_size": (config.get("merge_size"), "merge_size"),
    }
    values = {
        name: PROCESSOR_DEFAULTS[name] if value is None else _positive_int(value, f"{path}: field {field!r}")
        for name, (value, field) in found.items()
    }
    return {"factor": values["patch_size"] * values["merge_size"], "min_pixels": values["min_pixels"],
            "max_pixels": values["max_pixels"]}


def resolve_model_frame(
    model_or_processor_dir: str | Path,
    *,
    default: str | Frame = "pixel",
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> Frame:
    """The frame a model answers in, from its local checkpoint (or processor) folder; json only, no transformers.

    The ``model_type`` of ``config.json`` (of a processor folder without it: the ``processor_class`` of
    ``preprocessor_config.json``, :data:`PROCESSOR_MODEL_TYPES`) picks the preset (:data:`MODEL_TYPE_FRAMES`); a
    folder without one, a model type not listed, or a path that is no local folder (a hub name) gives ``default``. A
    ``"resized"`` frame then takes the pixel limits and factor of the folder's ``preprocessor_config.json``
    (:func:`processor_pixel_limits`), and ``min_pixels`` / ``max_pixels``, when given, override them (as they
    override the processor's). Every backend, ``predict``, ``convert`` and the labels resolve the model's frame
    here, so their boxes agree.

    Raises ValueError naming the file for a malformed config, and for limits a :class:`Frame` refuses.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    >>> _ = (folder / "preprocessor_config.json").write_text('{"min_pixels": 3136, "max_pixels": 1003520}')
    >>> frame = resolve_model_frame(folder)
    >>> frame.kind, frame.factor, frame.min_pixels, frame.max_pixels
    ('resized', 28, 3136, 1003520)
    >>> resolve_model_frame(folder, max_pixels=200704).max_pixels
    200704
    >>> resolve_model_frame("Qwen/Qwen2-VL-7B-Instruct", default="norm1000").kind  # not a local folder
    'norm1000'
    """
    folder = Path(model_or_processor_dir)
    frame = get_frame(default)
    config = folder / "config.json"
    processors = [p for p in (folder / "preprocessor_config.json", folder / "processor_config.json") if p.is_file()]
    model_type = None
    if folder.is_dir() and config.is_file():
        model_type = _json_object(config).get("model_type")
    elif folder.is_dir() and processors:  # a processor folder: its processor class names the family
        model_type = PROCESSOR_MODEL_TYPES.get(str(_json_object(processors[0]).get("processor_class")))
    if model_type in MODEL_TYPE_FRAMES:
        frame = get_frame(MODEL_TYPE_FRAMES[model_type])
    if frame.kind != "resized":
        return frame
    overrides = processor_pixel_limits(folder) if folder.is_dir() else {}
    for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if value is not None:
            overrides[name] = _positive_int(value, name)
    if overrides.get("min_pixels", frame.min_pixels) > overrides.get("max_pixels", frame.max_pixels):
        raise ValueError(
            f"model {str(folder)!r}: min_pixels = {overrides.get('min_pixels', frame.min_pixels)} exceeds max_pixels ="
            f" {overrides.get('max_pixels', frame.max_pixels)} (preprocessor_config.json, or the override)"
        )
    return dataclasses.replace(frame, **overrides)


def preset_name(frame: Frame, hint: str | None = None) -> str:
    """A preset name for ``frame`` to write in a label: ``hint`` when that preset is ``frame`` up to the pixel limits
    (which a label carries as its ``input_size``), else the first such preset of :data:`MODEL_TYPE_FRAMES`, then of
    :data:`FRAME_PRESETS`.

    >>> preset_name(get_frame("resized", max_pixels=1003520))
    'qwen2.5-vl'
    >>> preset_name(get_frame("qwen2.5-vl"), hint="resized")
    'resized'
    >>> preset_name(get_frame("qwen2-vl"))
    'norm1000'
    """
    def same(name: str) -> bool:
        preset = FRAME_PRESETS[name]
        limits = {k: getattr(frame, k) for k in ("factor", "min_pixels", "max_pixels")}
        return dataclasses.replace(preset, **limits) == frame

    if hint is not None and hint.strip().lower() in FRAME_PRESETS and same(hint.strip().lower()):
        return hint
    for name in dict.fromkeys([*MODEL_TYPE_FRAMES.values(), *FRAME_PRESETS]):
        if same(name):
            return name
    raise ValueError(f"frame {frame!r} matches no preset of {', '.join(FRAME_PRESETS)}")
