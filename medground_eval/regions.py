"""From model completions to predicted regions in original-image pixels.

This is the one place where parsed boxes meet coordinate frames; rewards and the scorer both go through it, so
the conversion rules (frame, clipping, out-of-frame counting) hold everywhere.

- :func:`parse_batch` parses a batch of completions into columns (:class:`ParsedBatch`: flat answer boxes, counts,
  strict-format flags), the ParsedCompletion objects made only when asked for. Texts of the (near-)canonical
  Qwen2.5-VL shapes are read by :mod:`medground_eval.fastparse` (same result as the parser, proven by tests), the
  rest by :func:`~medground_eval.parsing.parse_completion`. Nothing is cached between calls: a caller that wants
  several rewards to share one parse (the combined reward) passes the batch to them.
  :func:`parse_many` is the same as a list of ParsedCompletion.
- :func:`predicted_regions` converts every parsed answer box of a batch into original pixels in one vectorized call
  per distinct frame, clips it to the image and flags boxes that lay outside their declared frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from medground_eval.fastparse import canonical_boxes, fast_parse
from medground_eval.frames import Frame, get_frame
from medground_eval.parsing import ANSWER_TAGS, completion_text, parse_completion, think_boxes
from medground_eval.structures import ParsedCompletion


@dataclass(frozen=True, eq=False)
class ParsedBatch:
    """A parsed batch in columns (read-only arrays); ``parsed`` holds one ParsedCompletion per text, made on first
    access.

    - ``flat``: (M, 2 * box_dims) answer boxes of all texts in order, ``box_dims = dims or 2`` (as
      ``ParsedCompletion.boxes(box_dims)``: boxes of another width are left out); ``counts[i]`` of them are text i's.
    - ``strict_format[i]``: ``parsed[i].strict_format``.
    - ``canonical[i]``: text i was read by the fast path (:func:`~medground_eval.fastparse.fast_parse`); the others
      by the parser, with ``answer_tag`` (a text of the fast path has its ``<answer>`` tag: both settings read it
      alike).
    - ``fast_labels[i]``: the label of text i's one answer box as the fast path read it (None when blank, and for the
      texts of the parser).
    """

    texts: list[str]
    dims: int | None
    answer_tag: str
    flat: np.ndarray
    counts: np.ndarray
    strict_format: np.ndarray
    canonical: np.ndarray
    fast_labels: list[str | None]
    _fast_problems: dict[int, tuple[str, ...]]
    _full: dict[int, ParsedCompletion]

    @property
    def box_dims(self) -> int:
        return self.dims or 2

    def completion(self, i: int) -> ParsedCompletion:
        """``parsed[i]``, made alone (a hot path that needs a few rows need not make them all)."""
        return fast_parse(self.texts[i], self.dims) if self.canonical[i] else self._full[i]

    def problems(self, i: int) -> tuple[str, ...]:
        """``parsed[i].problems``, without making the ParsedCompletion of a text of the fast path."""
        if self.canonical[i]:
            return self._fast_problems.get(i, ())
        return self._full[i].problems

    @cached_property
    def parsed(self) -> list[ParsedCompletion]:
        return [self.completion(i) for i in range(len(self.texts))]

    @cached_property
    def has_think_box(self) -> np.ndarray:
        """Per text: at least one box written inside ``<think>`` (``bool(think_boxes(parsed[i]))``)."""
        return np.fromiter((bool(think_boxes(p)) for p in self.parsed), dtype=bool, count=len(self.texts))


def completion_texts(completions: Sequence[object]) -> list[str]:
    """The text of each completion (strings as they are, chat messages by
    :func:`~medground_eval.parsing.completion_text`).

    >>> completion_texts(["a", [{"role": "assistant", "content": "b"}]])
    ['a', 'b']
    """
    if all(type(c) is str for c in completions):
        return list(completions)
    return [_one_reply(c) for c in completions]


def _one_reply(completion: object) -> str:
    """``completion_text(completion)``; TRL's conversational completion, one assistant message with string
    content, is read without the general walk."""
    if type(completion) is list and len(completion) == 1:
        message = completion[0]
        if type(message) is dict and type(message.get("role")) is str and message["role"] == "assistant":
            content = message.get("content")
            if type(content) is str:
                return content
    return completion_text(completion)


def parse_batch(completions: Sequence[object], dims: int | None = 2, *, answer_tag: str = "required") -> ParsedBatch:
    """Parse each completion (string or chat messages) into a :class:`ParsedBatch`; never raises on a completion.

    ``answer_tag`` is :func:`~medground_eval.parsing.parse_completion`'s (ValueError when not in ``ANSWER_TAGS``).

    >>> batch = parse_batch(["<think>a</think><answer>[1, 2, 3, 4]</answer>", "junk"])
    >>> batch.counts.tolist(), batch.strict_format.tolist()
    ([1, 0], [True, False])
    """
    if answer_tag not in ANSWER_TAGS:
        raise ValueError(f"parse_batch: answer_tag must be one of {', '.join(ANSWER_TAGS)}, got {answer_tag!r}")
    texts = completion_texts(completions)
    n = len(texts)
    width = 2 * (dims or 2)
    canonical = np.zeros(n, dtype=bool)
    fast_labels: list[str | None] = [None] * n
    fast_problems: dict[int, tuple[str, ...]] = {}
    if width == 4:
        fast = canonical_boxes(texts)
        fast_index, fast_boxes = fast.index, fast.boxes
        for i, label, problems in zip(fast_index.tolist(), fast.labels, fast.problems):
            fast_labels[i] = label
            if problems:
                fast_problems[i] = problems
    else:
        fast_index, fast_boxes = np.zeros(0, np.int64), np.zeros((0, width))
    canonical[fast_index] = True
    full = {int(i): parse_completion(texts[i], dims=dims, answer_tag=answer_tag) for i in np.flatnonzero(~canonical)}
    full_boxes = {i: p.boxes(width // 2) for i, p in full.items()}
    counts = canonical.astype(np.int64)
    strict = canonical.copy()
    if fast_problems:
        strict[list(fast_problems)] = False
    for i, p in full.items():
        counts[i] = len(full_boxes[i])
        strict[i] = p.strict_format
    flat = fast_boxes
    if full:
        flat = np.empty((int(counts.sum()), width))
        starts = np.cumsum(counts) - counts
        flat[starts[fast_index]] = fast_boxes
        for i, boxes in full_boxes.items():
            flat[starts[i] : starts[i] + len(boxes)] = boxes
    for array in (flat, counts, strict, canonical):
        array.setflags(write=False)
    return ParsedBatch(texts, dims, answer_tag, flat, counts, strict, canonical, fast_labels, fast_problems, full)


def parse_many(
    completions: Sequence[object], dims: int | None = 2, *, answer_tag: str = "required"
) -> list[ParsedCompletion]:
    """Parse each completion (string or chat messages); never raises on a completion. See :func:`parse_batch`.

    >>> [p.strict_format for p in parse_many(["<think>a</think><answer>[1, 2, 3, 4]</answer>", "junk"])]
    [True, False]
    """
    return list(parse_batch(completions, dims, answer_tag=answer_tag).parsed)


@dataclass(frozen=True)
class PredictedRegions:
    """Per sample: the predicted boxes in original pixels (clipped), and what went wrong.

    - ``flat``: (M, 2d) boxes of all samples in order, ``counts[i]`` of them sample i's; ``boxes[i]``: the same
      as a (K_i, 2d) array per sample (made on first access); K_i = 0 when nothing parsed.
    - ``parse_failed[i]``: no valid answer box was read.
    - ``out_of_frame[i]``: at least one answer box lay outside its declared frame before clipping.
    """

    flat: np.ndarray
    counts: np.ndarray
    parse_failed: np.ndarray
    out_of_frame: np.ndarray

    @cached_property
    def boxes(self) -> list[np.ndarray]:
        return np.split(self.flat, np.cumsum(self.counts)[:-1]) if len(self.counts) else []


def _per_box(values: np.ndarray | None, owner: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[owner]


def predicted_regions(
    parsed: Sequence[ParsedCompletion] | ParsedBatch,
    *,
    frames: Frame | str | Sequence[Frame | str],
    image_sizes: np.ndarray | Sequence[Sequence[float]] | None,
    input_sizes: np.ndarray | None = None,
    dims: int = 2,
) -> PredictedRegions:
    """Convert the answer boxes of a batch (ParsedCompletion objects or a :class:`ParsedBatch`) to original pixels.

    ``frames`` is one frame for the batch or one per sample. ``image_sizes`` is (n, d) ``[W, H(, D)]`` per sample;
    it may be None only when every frame is ``pixel``: boxes are then kept as written, negative coordinates clipped
    to 0 and flagged out of frame. ``input_sizes`` (n, 2) gives the model's resized input size per sample for the
    ``resized`` frame (NaN rows mean "compute it with smart_resize").

    >>> regions = predicted_regions(parse_batch(["<answer>[0, 0, 500, 500]</answer>"]), frames="norm1000",
    ...                             image_sizes=[[200, 100]])
    >>> regions.flat.tolist(), regions.parse_failed.tolist()
    ([[0.0, 0.0, 100.0, 50.0]], [False])
    """
    if isinstance(parsed, ParsedBatch) and parsed.box_dims == dims:
        flat, counts = parsed.flat, parsed.counts
    else:
        if isinstance(parsed, ParsedBatch):
            parsed = parsed.parsed
        per_sample = [p.boxes(dims) for p in parsed]
        counts = np.fromiter((len(b) for b in per_sample), dtype=np.int64, count=len(per_sample))
        flat = np.concatenate(per_sample) if per_sample else np.zeros((0, 2 * dims))
    converted, out_of_frame = boxes_to_pixels(
        flat, counts, frames=frames, image_sizes=image_sizes, input_sizes=input_sizes, dims=dims
    )
    return PredictedRegions(converted, counts, counts == 0, out_of_frame)


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
    ``frames``, ``image_sizes`` and ``input_sizes`` are per sample, as in :func:`predicted_regions`.

    >>> boxes, out = boxes_to_pixels(np.array([[0., 0, 1200, 500]]), np.array([1]), frames="norm1000",
    ...                              image_sizes=[[200, 100]])
    >>> boxes.tolist(), out.tolist()
    ([[0.0, 0.0, 200.0, 50.0]], [True])
    """
    n = len(counts)
    owner = np.repeat(np.arange(n), counts)
    unique_frames, frame_codes = _frames_per_sample(frames, n)
    box_codes = frame_codes[owner]
    sizes = None if image_sizes is None else np.asarray(image_sizes, dtype=np.float64).reshape(n, dims)

    converted = np.empty_like(flat)
    box_out = np.zeros(len(flat), dtype=bool)
    size_unknown = np.ones(len(flat), dtype=bool) if sizes is None else np.isnan(sizes).any(axis=1)[owner]
    for code, frame in enumerate(unique_frames):
        mask = box_codes == code
        unknown = mask & size_unknown
        if unknown.any():  # pixel boxes of an image of unknown size: kept as written, negatives clipped to 0
            if frame.kind != "pixel":
                raise ValueError(f"frame {frame.kind!r} needs the image size of every sample (column 'image_size')")
            converted[unknown] = np.maximum(flat[unknown], 0.0)
            box_out[unknown] = (flat[unknown] < 0).any(axis=1)
        known = mask & ~size_unknown
        if known.any():
            result = frame.to_pixels(flat[known], sizes[owner[known]], input_size=_per_box(input_sizes, owner[known]))
            converted[known] = result.boxes
            box_out[known] = result.out_of_frame

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
