"""From model completions to predicted regions in original-image pixels.

This is the one place where parsed boxes meet coordinate frames; rewards and the scorer both go through it, so
the conversion rules (frame, clipping, out-of-frame counting) hold everywhere.

- :func:`parse_many` parses a batch of completions, with a bounded cache keyed by the completion text: in GRPO the
  format, spatial and semantic rewards see the same completions, and each is parsed only once.
- :func:`predicted_regions` converts every parsed answer box of a batch into original pixels in one vectorized call
  per distinct frame, clips it to the image and flags boxes that lay outside their declared frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from medground_eval.frames import Frame, get_frame
from medground_eval.parsing import completion_text, parse_completion
from medground_eval.types import ParsedCompletion

PARSE_CACHE_SIZE = 65_536


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse_text(text: str, dims: int | None) -> ParsedCompletion:
    return parse_completion(text, dims=dims)


def parse_many(completions: Sequence[object], dims: int | None = 2) -> list[ParsedCompletion]:
    """Parse each completion (string or chat messages); never raises. Identical texts are parsed once."""
    return [_parse_text(completion_text(c), dims) for c in completions]


@dataclass(frozen=True)
class PredictedRegions:
    """Per sample: the predicted boxes in original pixels (clipped), and what went wrong.

    - ``boxes[i]``: (K_i, 2d) array; K_i = 0 when nothing parsed.
    - ``parse_failed[i]``: no valid answer box was read.
    - ``out_of_frame[i]``: at least one answer box lay outside its declared frame before clipping.
    """

    boxes: list[np.ndarray]
    parse_failed: np.ndarray
    out_of_frame: np.ndarray


def _per_box(values: np.ndarray | None, owner: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[owner]


def predicted_regions(
    parsed: Sequence[ParsedCompletion],
    *,
    frames: Frame | str | Sequence[Frame | str],
    image_sizes: np.ndarray | Sequence[Sequence[float]] | None,
    input_sizes: np.ndarray | None = None,
    dims: int = 2,
) -> PredictedRegions:
    """Convert the answer boxes of a batch into original-image pixels.

    ``frames`` is one frame for the batch or one per sample. ``image_sizes`` is (n, d) ``[W, H(, D)]`` per sample;
    it may be None only when every frame is ``pixel``: boxes are then kept as written, negative coordinates clipped
    to 0 and flagged out of frame. ``input_sizes`` (n, 2) gives the model's resized input size per sample for the
    ``resized`` frame (NaN rows mean "compute it with smart_resize").
    """
    n = len(parsed)
    per_sample = [p.boxes(dims) for p in parsed]
    counts = np.fromiter((len(b) for b in per_sample), dtype=np.int64, count=n)
    flat = np.concatenate(per_sample) if n else np.zeros((0, 2 * dims))
    converted, out_of_frame = boxes_to_pixels(
        flat, counts, frames=frames, image_sizes=image_sizes, input_sizes=input_sizes, dims=dims
    )
    return PredictedRegions(
        boxes=np.split(converted, np.cumsum(counts)[:-1]) if n else [],
        parse_failed=counts == 0,
        out_of_frame=out_of_frame,
    )


def boxes_to_pixels(
    flat: np.ndarray,
    counts: np.ndarray,
    *,
    frames: Frame | str | Sequence[Frame | str],
    image_sizes: np.ndarray | Sequence[Sequence[float]] | None,
    input_sizes: np.ndarray | None = None,
    dims: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """The columnar core of :func:`predicted_regions`: ``flat`` (sum(counts), 2d) boxes, ``counts[i]`` of them for
    sample i, converted to original pixels (clipped); returns ``(converted flat boxes, out_of_frame per sample)``.
    ``frames``, ``image_sizes`` and ``input_sizes`` are per sample, as in :func:`predicted_regions`."""
    n = len(counts)
    owner = np.repeat(np.arange(n), counts)
    unique_frames, frame_codes = _frames_per_sample(frames, n)
    box_codes = frame_codes[owner]
    sizes = None if image_sizes is None else np.asarray(image_sizes, dtype=np.float64).reshape(n, dims)

    converted = np.empty_like(flat)
    box_out = np.zeros(len(flat), dtype=bool)
    for code, frame in enumerate(unique_frames):
        mask = box_codes == code
        if not mask.any():
            continue
        if sizes is None:
            if frame.kind != "pixel":
                raise ValueError(f"frame {frame.kind!r} needs the image size of every sample (column 'image_size')")
            converted[mask] = np.maximum(flat[mask], 0.0)
            box_out[mask] = (flat[mask] < 0).any(axis=1)
            continue
        result = frame.to_pixels(flat[mask], sizes[owner[mask]], input_size=_per_box(input_sizes, owner[mask]))
        converted[mask] = result.boxes
        box_out[mask] = result.out_of_frame

    out_of_frame = np.zeros(n, dtype=bool)
    np.logical_or.at(out_of_frame, owner, box_out)
    return converted, out_of_frame


def _frames_per_sample(frames: Frame | str | Sequence[Frame | str], n: int) -> tuple[list[Frame], np.ndarray]:
    """The distinct frames of a batch and, per sample, the index of its frame in that list."""
    if isinstance(frames, (Frame, str)):
        return [get_frame(frames)], np.zeros(n, dtype=np.int64)
    if len(frames) != n:
        raise ValueError(f"got {len(frames)} frames for {n} samples: expected one frame, or one per sample")
    unique = list(dict.fromkeys(frames))
    index = {spec: i for i, spec in enumerate(unique)}
    return [get_frame(spec) for spec in unique], np.fromiter((index[f] for f in frames), dtype=np.int64, count=n)
