"""The data of a report: which samples it shows, their boxes in original pixels, parse-failure reasons, curves.

Nothing here draws or writes: :mod:`.plots` draws, :mod:`.render` writes the report's files.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from medground_eval.datasets.base import RowErrors, get_loader
from medground_eval.datasets.jsonl import sample_from_record
from medground_eval.datasets.textfile import loads, text_lines
from medground_eval.frames import Frame, get_frame
from medground_eval.metrics import GroundingReport, SampleScores
from medground_eval.parsing import completion_text, think_boxes
from medground_eval.regions import boxes_to_pixels, parse_many
from medground_eval.structures import ParsedCompletion, Sample


class ScoredRun(Protocol):
    """What the report needs from a scored run; ``medground_eval.evaluation.scorer.ScoreResult`` has it: ``problems[i]`` is
    the parser's problems with sample i's prediction, joined by "; " ("" when none); ``config`` the run's settings
    and join counts (``ScoreResult.config``; the report's "Run" section shows them)."""

    report: GroundingReport
    per_sample: SampleScores
    problems: Sequence[str]
    config: Mapping[str, object]


@dataclass(frozen=True)
class SampleView:
    """The boxes an overlay shows for one sample, all in original-image pixels.

    - ``true_boxes``: the ground truth, (K, 2d).
    - ``pred_boxes``: the predicted answer boxes, converted and clipped like the scorer does, (P, 2d); P = 0 when
      nothing parsed.
    - ``think_boxes``: the 2d-number boxes written inside ``<think>`` (Chain-of-Box steps), in order, converted in
      the same frame as the answer, (R, 2d).
    - ``image_size``: the annotated image size ``(W, H)`` the boxes refer to (None: unknown, taken as the stored
      file's); an overlay on a file stored at another size scales the boxes to it.
    - ``labels``: what the model named each predicted box (None where it named none; empty for ``pred_boxes``
      records); ``completion``: the completion's text (None for a ``pred_boxes`` record or no record).
    """

    id: str
    phrase: str
    image: str | None
    true_boxes: np.ndarray
    pred_boxes: np.ndarray
    think_boxes: np.ndarray
    image_size: tuple[int, ...] | None = None
    labels: tuple[str | None, ...] = ()
    completion: str | None = None
    category: str | None = None


def sample_views(
    records: Sequence[Mapping[str, object]], samples: Sequence[Sample], *, frame: str | Frame = "pixel",
    answer_tag: str = "required",
) -> dict[str, SampleView]:
    """One :class:`SampleView` per ground-truth sample, keyed by id.

    ``records`` are prediction records as in a predictions file: ``{"id", "completion"}`` or ``{"id", "pred_boxes"}``,
    each optionally with ``frame``, ``image_size`` (used when the sample has none, as the scorer does) and
    ``input_size``. Records whose id is not a sample are ignored (the scorer reports them); a sample without a record
    gets no predicted box. Completions are parsed with ``answer_tag`` (as the scorer did). Raises
    ``ValueError`` naming the id when a ``pred_boxes`` value is not a list of boxes of the samples' dimensionality.
    """
    if not samples:
        return {}
    by_id = {str(r["id"]): r for r in records}
    rows = [by_id.get(s.id, {}) for s in samples]
    dims = samples[0].dims
    width = 2 * dims
    texts = [i for i, row in enumerate(rows) if "completion" in row]
    parsed = dict(zip(texts, parse_many([rows[i]["completion"] for i in texts], dims=dims, answer_tag=answer_tag)))
    answers = [parsed[i].boxes(dims) if i in parsed else _given_boxes(s.id, row, width)
               for i, (s, row) in enumerate(zip(samples, rows))]
    thinks = [_think_boxes(parsed[i], width) if i in parsed else np.empty((0, width)) for i in range(len(rows))]
    frames = [get_frame(row.get("frame") or frame) for row in rows]
    sizes = [row.get("image_size") if s.image_size is None else s.image_size for s, row in zip(samples, rows)]
    if all(size is not None for size in sizes):
        image_sizes = np.asarray(sizes, dtype=np.float64)
    elif all(f.kind == "pixel" for f in frames):
        image_sizes = None
    else:
        missing = next(s.id for s, size in zip(samples, sizes) if size is None)
        raise ValueError(f"sample {missing!r} has no image_size; expected one for a frame other than 'pixel'")
    input_sizes = np.array([row.get("input_size") or [np.nan, np.nan] for row in rows], dtype=np.float64)
    convert = {"frames": frames, "image_sizes": image_sizes, "dims": dims,
               "input_sizes": input_sizes if np.isfinite(input_sizes).any() else None}
    pred = _to_pixels(answers, convert)
    think = _to_pixels(thinks, convert)
    labels = [tuple(b.label for b in parsed[i].answer_boxes if len(b.coords) == width) if i in parsed else ()
              for i in range(len(rows))]
    texts_of = [completion_text(row["completion"]) if "completion" in row else None for row in rows]
    return {
        s.id: SampleView(s.id, s.phrase, s.image, s.boxes, pred[i], think[i], s.image_size, labels[i], texts_of[i],
                         s.category)
        for i, s in enumerate(samples)
    }


def read_samples(
    predictions_path: str | Path,
    ids: Iterable[str],
    *,
    dataset: str,
    annotations: str | Path | None = None,
    split: str | None = None,
) -> dict[str, Sample]:
    """The ground-truth samples of ``ids`` for a run scored with these options, keyed by id (absent ids left out).

    ``jsonl`` without ``annotations`` reads them from the prediction lines that carry them; any other data set
    through its loader (``on_error="skip"``: the scorer has already reported bad rows).
    """
    wanted = set(ids)
    if dataset == "jsonl" and annotations is None:
        records = _prediction_lines(Path(predictions_path), wanted)
        return {i: sample_from_record(r, path=predictions_path, line=None) for i, r in records.items()}
    loaded = get_loader(dataset)(annotations, split=split, on_error="skip")
    return {s.id: s for s in loaded.samples if s.id in wanted}


def _prediction_lines(path: Path, ids: set[str]) -> dict[str, dict[str, object]]:
    """``{id: record}`` of the prediction lines whose id is in ``ids`` (first occurrence); non-JSON lines are
    passed over (the scorer reports them)."""
    found: dict[str, dict[str, object]] = {}
    for text in text_lines(path, RowErrors("skip")):
        try:
            record = loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and str(record.get("id")) in ids:
            found.setdefault(str(record["id"]), record)
    return found


def _to_pixels(per_sample: list[np.ndarray], convert: dict[str, object]) -> list[np.ndarray]:
    """Per-sample boxes in the record's frame -> per-sample boxes in original pixels, via ``boxes_to_pixels``."""
    counts = np.array([len(b) for b in per_sample], dtype=np.int64)
    converted, _ = boxes_to_pixels(np.concatenate(per_sample), counts, **convert)
    return np.split(converted, np.cumsum(counts)[:-1])


def _think_boxes(parsed: ParsedCompletion, width: int) -> np.ndarray:
    """The reasoning boxes with ``width`` numbers, in order, as a (R, width) array."""
    rows = [b.coords for b in think_boxes(parsed) if len(b.coords) == width]
    return np.array(rows, dtype=np.float64).reshape(len(rows), width)


def _given_boxes(sample_id: str, record: Mapping[str, object], width: int) -> np.ndarray:
    """A record's ``pred_boxes`` (one box, a list of boxes, or absent) as a (P, width) array."""
    value = record.get("pred_boxes")
    try:
        array = np.asarray([] if value is None else value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is not None and array.ndim == 1 and array.size == width:
        array = array[None, :]
    if array is None or (array.size and (array.ndim != 2 or array.shape[1] != width)):
        raise ValueError(f"record {sample_id!r}: pred_boxes = {value!r:.120}; expected a list of {width}-number boxes")
    return array.reshape(-1, width)


def failure_reasons(per_sample: SampleScores, problems: Sequence[str]) -> Counter[str]:
    """For the samples scored as parse failures: how many samples show each problem of ``problems[i]``
    ("; "-joined, as in ``ScoreResult.problems``).

    The box number is dropped ("box 2 has 3 numbers (expected 4)" counts as "a box has 3 numbers (expected 4)"),
    each reason counts once per sample, and a failure without a recorded problem counts as "no predicted box".
    """
    counts: Counter[str] = Counter()
    for i in np.flatnonzero(per_sample.parse_failed):
        reasons = {re.sub(r"^box \d+", "a box", p.strip()) for p in problems[i].split("; ") if p.strip()}
        counts.update(reasons or {"no predicted box"})
    return counts


def example_ids(per_sample: SampleScores, per_group: int = 3,
                eligible: np.ndarray | None = None) -> dict[str, list[str]]:
    """Ids of the ``per_group`` best, median and worst samples by IoU, no sample in two groups.

    Only samples where ``eligible`` is True are ranked (default: all); :func:`parsed_answers` gives the mask of
    samples whose answer was read (the worst *answers*, not parse failures shown as IoU 0). Order:
    ``np.argsort(iou, kind="stable")`` (ties keep file order). Best: the last ``per_group`` reversed (highest
    IoU first); worst: the first ``per_group``; median: ``per_group`` samples centred on position ``n // 2``.
    With fewer than ``3 * per_group`` samples, best is filled first, then worst, then median.
    """
    keep = np.ones(len(per_sample), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    positions = np.flatnonzero(keep)
    order = [str(per_sample.ids[i]) for i in positions[np.argsort(per_sample.iou[positions], kind="stable")]]
    n = len(order)
    start = max(0, min(n - per_group, n // 2 - per_group // 2))
    groups = {"best": order[::-1][:per_group], "worst": order[:per_group], "median": order[start:start + per_group]}
    used: set[str] = set()
    picked: dict[str, list[str]] = {}
    for name in ("best", "worst", "median"):
        picked[name] = [i for i in groups[name] if i not in used]
        used.update(picked[name])
    return {name: picked[name] for name in ("best", "median", "worst")}


def parsed_answers(per_sample: SampleScores, problems: Sequence[str]) -> np.ndarray:
    """Per sample: a prediction was found and its answer parsed (not a parse failure, not "no prediction")."""
    missing = np.fromiter((p == "no prediction" for p in problems), dtype=bool, count=len(per_sample))
    return ~per_sample.parse_failed & ~missing


def failure_ids(per_sample: SampleScores, limit: int) -> list[str]:
    """The first ``limit`` parse failures, in the scorer's sample order."""
    return [str(per_sample.ids[i]) for i in np.flatnonzero(per_sample.parse_failed)[:limit]]


def accuracy_curve(iou: np.ndarray, thresholds: np.ndarray, inclusive: bool) -> np.ndarray:
    """Acc at each threshold t: fraction of samples with IoU >= t (``inclusive``) or IoU > t; NaN when empty."""
    iou = np.asarray(iou, dtype=np.float64)
    if iou.size == 0:
        return np.full(len(thresholds), np.nan)
    ordered = np.sort(iou)
    side = "left" if inclusive else "right"
    return 1.0 - np.searchsorted(ordered, thresholds, side=side) / iou.size


def headline_threshold(report: GroundingReport) -> str:
    """The Acc key shown per category: "0.5" when reported, else the middle reported threshold."""
    keys = list(report.acc)
    return "0.5" if "0.5" in keys else keys[len(keys) // 2]
