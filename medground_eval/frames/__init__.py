"""Coordinate frames: how a model writes box coordinates, and the conversion to original-image pixels.

- :mod:`medground_eval.frames.conversions`: the frame kinds and presets (:class:`Frame`, :data:`FRAME_PRESETS`,
  :func:`get_frame`), Qwen's :func:`smart_resize`, and the conversions to and from original pixels (the kinds, the
  axis order and the ``m3d-npy`` volume frame are described there).
- :mod:`medground_eval.frames.resolver`: the one model-frame resolver (:func:`resolve_model_frame`, from a
  checkpoint's ``config.json`` and its processor's pixel limits) and the preset name a label records.

Every name is importable from ``medground_eval.frames`` itself.
"""

from medground_eval.frames.conversions import (
    AXES,
    FRAME_KINDS,
    FRAME_PRESETS,
    M3D_NPY_AXES,
    M3D_NPY_SHAPE,
    Frame,
    FrameConversion,
    FrameKind,
    get_frame,
    smart_resize,
)
from medground_eval.frames.resolver import (
    MODEL_TYPE_FRAMES,
    PROCESSOR_DEFAULTS,
    PROCESSOR_MODEL_TYPES,
    preset_name,
    processor_pixel_limits,
    resolve_model_frame,
)

__all__ = [
    "AXES", "FRAME_KINDS", "FRAME_PRESETS", "M3D_NPY_AXES", "M3D_NPY_SHAPE", "Frame", "FrameConversion", "FrameKind",
    "get_frame", "smart_resize",
    "MODEL_TYPE_FRAMES", "PROCESSOR_DEFAULTS", "PROCESSOR_MODEL_TYPES", "preset_name", "processor_pixel_limits",
    "resolve_model_frame",
]
