"""Data types shared by the core: parsed completions and ground-truth samples.

Boxes are numpy arrays of shape ``(N, 2 * d)`` in corner form: ``[x1, y1, x2, y2]`` for 2D (``d = 2``)
and ``[x1, y1, z1, x2, y2, z2]`` for 3D (``d = 3``). Every type here is immutable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np


def _frozen_array(values: object, width: int | None = None) -> np.ndarray:
    """A read-only float64 array of shape (N, width); an empty input gives shape (0, width or 4)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        array = array.reshape(0, width or 4)
    array = np.atleast_2d(array).copy()
    array.setflags(write=False)
    return array


MAX_COORDINATE = 1e6
"""Largest coordinate magnitude read from a model's answer or a ground-truth box, in any frame. No image of this field
has a side near a million pixels, so a larger number (``1e300``, ``2e154``) is a model's garbage, not a box: the
parser rejects it as a problem of that completion (like ``inf`` / ``nan``), which keeps every area, IoU and GIoU
finite (``2e154 ** 2`` overflows to inf, and inf - inf is NaN)."""

_set = object.__setattr__
"""Sets a slot of a frozen instance (their own ``__setattr__`` refuses)."""


@dataclass(frozen=True, slots=True)
class ParsedBox:
    """One box as the model wrote it, before any frame conversion.

    ``coords`` has 4 numbers (2D corners) or 6 (3D corners), already ordered so that each lower
    corner is <= the upper one (a swapped pair is reordered and reported by the parser).
    ``label`` is what the model named the box (JSON ``label``, ``<ref>`` or object-ref text), or None.
    ``axes`` is the axis order the dialect documents: ``"xy"`` (x first, nearly every model) or ``"yx"``
    (Gemini's ``box_2d``, PaliGemma's ``<locYYYY><locXXXX>`` tokens). The parser never swaps; a y-first frame
    preset does, once.
    """

    coords: tuple[float, ...]
    label: str | None = None
    axes: str = "xy"


@dataclass(frozen=True, slots=True)
class ParsedCompletion:
    """What :func:`medground_eval.parsing.parse_completion` read from one completion: plain frozen data.

    - ``text``: the completion text; ``think`` / ``answer``: the text inside the tags, None when the tag is absent.
    - ``answer_boxes``: the valid boxes of the answer, in order.
    - ``strict_format``: ``<think>`` non-empty, then ``<answer>...</answer>`` holding at least one valid
      box, nothing but whitespace after ``</answer>`` and no problem in ``problems``.
    - ``problems``: a human-readable reason for every problem found ("missing </answer>",
      "box 2 has 3 numbers", "box 1: x2 < x1, corners swapped"). Empty when nothing was wrong.
    - ``dims``: the box dimensionality the text was read for (2, 3, or None for either).

    The Chain-of-Box steps written inside ``<think>`` are read on request by
    :func:`medground_eval.parsing.think_boxes` (the rewards rarely need them, and reading them is most of the
    parser's work, so a caller who never asks never pays).

    >>> from medground_eval.parsing import parse_completion
    >>> parsed = parse_completion("<think>Left apex [1, 2, 3, 4].</think><answer>[1, 2, 3, 4]</answer>")
    >>> parsed.strict_format, parsed.boxes().tolist(), parsed.labels
    (True, [[1.0, 2.0, 3.0, 4.0]], (None,))
    """

    text: str
    think: str | None
    answer: str | None
    answer_boxes: tuple[ParsedBox, ...]
    strict_format: bool
    problems: tuple[str, ...]
    dims: int | None = None

    @property
    def has_answer_box(self) -> bool:
        return bool(self.answer_boxes)

    def boxes(self, dims: int = 2) -> np.ndarray:
        """Answer boxes with ``2 * dims`` numbers as a read-only (N, 2 * dims) float array (others are left out).

        >>> ParsedCompletion("", None, "[1, 2, 3, 4]", (ParsedBox((1, 2, 3, 4)),), False, ()).boxes().shape
        (1, 4)
        """
        width = 2 * dims
        return _frozen_array([b.coords for b in self.answer_boxes if len(b.coords) == width], width)

    @property
    def labels(self) -> tuple[str | None, ...]:
        return tuple(b.label for b in self.answer_boxes)


@dataclass(frozen=True)
class Sample:
    """One grounding query: a phrase and the true region it refers to.

    - ``boxes``: (K, 4) or (K, 6) corner boxes in original-image pixels (voxels for 3D); several boxes
      form one region (their union).
    - ``image_size``: ``(W, H)`` for 2D or ``(W, H, D)`` for 3D, in pixels / voxels, or None if unknown.
    - ``image``: the image path as written in the data set (relative to an image root), or None.
    - ``extra``: any other data-set-specific fields (read-only).
    """

    id: str
    phrase: str
    boxes: np.ndarray
    image_size: tuple[int, ...] | None = None
    category: str | None = None
    image: str | None = None
    split: str | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", _frozen_array(self.boxes))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))

    @property
    def dims(self) -> int:
        return self.boxes.shape[1] // 2
