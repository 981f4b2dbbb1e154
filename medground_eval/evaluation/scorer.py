"""Score a predictions file against a data set's ground truth: the engine of ``medground-eval score``.

Predictions are JSON lines, one per sample::

    {"id": "case-7", "completion": "<think>...</think><answer>...</answer>"}    # text or chat messages
    {"id": "case-8", "pred_boxes": [[10, 20, 110, 220]], "frame": "norm1000"}  # boxes already extracted

- ``frame`` (optional, per line) overrides the run's frame; ``image_size`` ``[W, H(, D)]`` (optional) is used when
  the data set lacks it (``resized`` needs the original size). ``input_size`` (optional) is the frame's second
  size: ``[w, h]`` of the model input for ``resized``; for ``m3d-npy`` the crop box ``[x1, y1, z1, x2, y2, z2]`` in
  original voxels, by default the sample's ``extra["npy_crop_box"]`` (M3D-RefSeg loaded with ``npy_crop=True``,
  which :func:`score_files` does when the run's frame is ``m3d-npy``).
- ``pred_boxes`` is a list of boxes (or one box) in the line's frame; ``[]`` means no prediction (a parse failure).
- With ``dataset="jsonl"`` and no ``annotations``, each prediction line also carries its ground truth
  (``phrase``, ``boxes``, ... as in :mod:`medground_eval.datasets.jsonl`).
- ``view`` (M3D-RefSeg): ``volume`` scores 3D boxes against the 3D ground truth; ``slice`` / ``projection`` score
  2D boxes ``[x1, y1, x2, y2]`` against the 2D view of each sample
  (:func:`medground_eval.datasets.m3d_refseg.view_sample`), image size ``[X, Y]``.

Joining: a ground-truth sample with no prediction scores as a miss (IoU 0, counted in ``missing_predictions``,
not a parse failure); a prediction whose id is not in the ground truth is left out and counted in
``unmatched_predictions``; a repeated prediction id is an error. A bad line raises
:class:`~medground_eval.datasets.DataError` naming the file, line, field and value, or under ``on_error="skip"``
is left out and counted in ``skipped_lines``. A line that carries valid ground truth and a bad prediction keeps
its ground truth: the sample is a miss, as with a separate annotations file.

Completions without an ``<answer>`` tag (zero-shot baselines answering plain JSON or ``<ref>..</ref><box>..</box>``)
are parse failures by default; ``answer_tag="optional"`` (``--answer-tag optional``) reads their boxes from the text
after ``</think>`` (or the whole text) as :func:`~medground_eval.parsing.parse_completion` documents; the run's
``config`` records the setting, and it cannot be combined with a ``compat`` preset (which has its own parse rules).

The path from completion to pixels is the one of the rewards: :func:`medground_eval.regions.parse_batch` (with its
canonical Qwen2.5-VL fast path) and :func:`medground_eval.regions.boxes_to_pixels`. Large files are read in blocks
of whole lines by several processes (decode, validate, parse); the parent joins the blocks in file order, so
results and error order do not depend on the number of workers.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medground_eval import boxes as geometry
from medground_eval.evaluation.compat import (
    CompatPreset,
    enclosing_box,
    get_compat,
    vlm_r1_extract,
    vlm_r1_overlap,
    vlm_r1_problem,
)
from medground_eval.datasets._rows import split_error
from medground_eval.datasets.base import DataError, LoadedDataset, OnError, RowErrors, SkippedRow, get_loader
from medground_eval.datasets.jsonl import sample_from_record
from medground_eval.datasets.m3d_refseg import VIEWS, view_sample
from medground_eval.frames import FRAME_PRESETS, get_frame
from medground_eval.metrics import DEFAULT_THRESHOLDS, GroundingReport, SampleScores, grounding_report, iou_hits
from medground_eval.parsing import ANSWER_TAGS, completion_text
from medground_eval.regions import boxes_to_pixels, parse_batch, parse_many
from medground_eval.structures import Sample

DEFAULT_PARSE_RULES = (
    "medground-eval Chain-of-Box parser: <think>/<answer> read leniently (missing closing tags tolerated), every "
    "valid box of the answer in JSON, list, Qwen2 token or <ref><box> dialects, swapped corners reordered; boxes "
    "converted from the frame to original pixels and clipped; multi-box regions scored as unions"
)
UNTAGGED_PARSE_RULES = (
    "; --answer-tag optional: a completion without <answer> is read from its text after </think> (or its whole text) "
    "by the same rules, and still has the problem 'missing <answer>'"
)
"""Appended to :data:`DEFAULT_PARSE_RULES` in a run scored with ``answer_tag="optional"``."""
CHUNK_BYTES = 4 << 20
"""Bytes of whole lines read, decoded and parsed as one unit (by one worker process)."""
PARALLEL_MIN_BYTES = 32 << 20
"""Files at least this large are read by several processes by default."""
RECORDS = "<records>"
"""The file name errors give for in-memory prediction records."""
EXAMPLES_KEPT = 10
"""Ids (or reasons) listed in ``config`` for unmatched predictions, missing predictions and skipped lines."""

TruthRow = tuple[str, list[float], int, tuple[int, ...] | None, str | None, str | None]
"""A validated ground-truth line: id, box coordinates (flat), box count, image size, category, split."""
PredRow = tuple[str, list[float], int, str, list[float] | None, list[float] | None, str]
"""A validated prediction line: id, raw box coordinates (flat, in its frame), box count, frame name, image size,
input size, problems ("; "-joined)."""


@dataclass
class _Truth:
    """Ground truth in columns: ids, box coordinates (flat floats, ``counts[i]`` boxes per sample), image sizes
    (None: unknown), categories, splits; ``index`` maps an id to its row, ``first_line`` to its line, ``crops`` a
    row to its sample's ``extra["npy_crop_box"]`` (the ``m3d-npy`` frame's default ``input_size``)."""

    dims: int | None = None
    ids: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    first_line: dict[str, int] = field(default_factory=dict)
    flat: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    sizes: list[tuple[float, ...] | None] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
    crops: dict[int, list[float]] = field(default_factory=dict)

    def add(self, sample_id: str, coords: list[float], count: int, size: tuple[float, ...] | None,
            category: str | None, split: str | None, line: int | None) -> None:
        self.index[sample_id] = len(self.ids)
        if line is not None:
            self.first_line[sample_id] = line
        self.ids.append(sample_id)
        self.flat.extend(coords)
        self.counts.append(count)
        self.sizes.append(size)
        self.categories.append(category)
        self.splits.append(split)

    def add_sample(self, sample: Sample, line: int | None = None) -> None:
        dims = sample.dims
        if self.dims is None:
            self.dims = dims
        elif dims != self.dims:
            raise DataError(None, line, "boxes", sample.boxes.tolist(), f"{2 * self.dims} numbers per box like the "
                            "other samples of the data set")
        crop = sample.extra.get("npy_crop_box")
        if crop is not None:
            self.crops[len(self.ids)] = [float(v) for v in crop]
        self.add(sample.id, sample.boxes.ravel().tolist(), len(sample.boxes), sample.image_size, sample.category,
                 sample.split, line)


def _truth_fast(record: object) -> TruthRow | None:
    """The :data:`TruthRow` of a jsonl ground-truth record in the common shape, or None.

    Accepts only records that :func:`~medground_eval.datasets.jsonl.sample_from_record` accepts with the same values
    (ints or floats, finite, valid corners inside the image); anything else is None, and the caller defers to it.
    """
    if type(record) is not dict:
        return None
    sample_id, phrase, size = record.get("id"), record.get("phrase"), record.get("image_size")
    category, split, image = record.get("category"), record.get("split"), record.get("image")
    if not ((type(sample_id) is str and sample_id) or type(sample_id) is int) or type(phrase) is not str:
        return None
    if not phrase.strip() or any(v is not None and type(v) is not str for v in (category, split, image)):
        return None
    width = height = math.inf
    if size is not None:
        if type(size) is not list or len(size) != 2 or type(size[0]) is not int or type(size[1]) is not int:
            return None
        width, height = size
        if width <= 0 or height <= 0:
            return None
    boxes = record.get("boxes")
    if type(boxes) is not list or not boxes:
        return None
    coords: list[float] = []
    for box in boxes:
        if type(box) is not list or len(box) != 4:
            return None
        x1, y1, x2, y2 = box
        if not all(type(v) is int or type(v) is float for v in box):
            return None
        # NaN fails every comparison; inf fails the strict upper bound.
        if not (0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height and x2 < math.inf and y2 < math.inf):
            return None
        coords += box
    return str(sample_id), coords, len(boxes), None if size is None else (width, height), category, split




def _truth_row(record: object, path: Path | None, line: int | None) -> TruthRow:
    """Validate one jsonl ground-truth record (DataError when bad)."""
    fast = _truth_fast(record)
    if fast is not None:
        return fast
    sample = sample_from_record(record, path=path, line=line)
    return sample.id, sample.boxes.ravel().tolist(), len(sample.boxes), sample.image_size, sample.category, sample.split


def _add_truth(truth: _Truth, row: TruthRow, path: Path | None, line: int | None) -> None:
    """Add a validated ground-truth line; a repeated id is a DataError (the first one is kept)."""
    if row[0] in truth.index:
        raise DataError(path, line, "id", row[0], f"a unique id (already used on line {truth.first_line.get(row[0])})")
    truth.add(*row, line=line)


def _keep_split(truth: _Truth, split: str | None, path: Path | None) -> _Truth:
    """``truth`` restricted to ``split`` (the jsonl loader's rule: a split that matches nothing is an error)."""
    if split is None:
        return truth
    kept = _Truth(dims=truth.dims)
    width = 2 * (truth.dims or 2)
    start = 0
    for i, sample_id in enumerate(truth.ids):
        end = start + truth.counts[i] * width
        if truth.splits[i] == split:
            kept.add(sample_id, truth.flat[start:end], truth.counts[i], truth.sizes[i], truth.categories[i],
                     truth.splits[i], truth.first_line.get(sample_id))
        start = end
    if not kept.ids:
        raise split_error(split, truth.splits, path=path)
    return kept


def _is_number(value: object) -> bool:
    return (type(value) is int or type(value) is float) and math.isfinite(value)


def _size_field(record: Mapping[str, Any], name: str, count: int, path: Path | None, line: int) -> list[float] | None:
    value = record.get(name)
    if value is None:
        return None
    if type(value) is not list or len(value) != count or not all(_is_number(v) and v > 0 for v in value):
        axes = "[W, H, D]" if count == 3 else "[W, H]"
        raise DataError(path, line, name, value, f"{axes}: {count} positive numbers of pixels")
    return [float(v) for v in value]


def _input_field(record: Mapping[str, Any], frame: str, path: Path | None, line: int) -> list[float] | None:
    """A line's ``input_size``: the crop box (6 numbers) under the ``m3d-npy`` frame, else ``[w, h]``."""
    if FRAME_PRESETS[frame].kind != "m3d-npy":
        return _size_field(record, "input_size", 2, path, line)
    value = record.get("input_size")
    if value is None:
        return None
    if type(value) is not list or len(value) != 6 or not all(_is_number(v) for v in value) \
            or not all(0 <= value[a] < value[a + 3] for a in range(3)):
        raise DataError(path, line, "input_size", value, "the crop box [x1, y1, z1, x2, y2, z2] of frame 'm3d-npy': "
                        "6 finite numbers of original voxels with 0 <= x1 < x2, 0 <= y1 < y2, 0 <= z1 < z2")
    return [float(v) for v in value]


def _frame_dims_problem(frame: str, dims: int) -> str | None:
    """Why the preset ``frame`` cannot write ``dims``-D boxes, or None."""
    kind = FRAME_PRESETS[frame].kind
    if kind == "m3d-npy" and dims != 3:
        return "a 2D frame ('m3d-npy' is 3D only: M3D's preprocessed volumes, with --view volume)"
    if kind == "resized" and dims != 2:
        return "a 3D frame ('resized' is 2D only): voxel, norm1000, norm1 or m3d-npy"
    return None


def _pred_boxes(value: object, dims: int, path: Path | None, line: int) -> tuple[list[float], int]:
    """Flat coordinates and count of a ``pred_boxes`` field: a list of corner boxes or one box."""
    width = 2 * dims
    if type(value) is list and len(value) == width and all(_is_number(v) for v in value):
        value = [value]
    if type(value) is not list:
        raise DataError(path, line, "pred_boxes", value, f"a list of boxes of {width} numbers (or one box)")
    for index, box in enumerate(value):
        if type(box) is not list or len(box) != width or not all(_is_number(v) for v in box):
            raise DataError(path, line, f"pred_boxes[{index}]", box, f"{width} finite numbers (corner form)")
        if any(box[a] > box[a + dims] for a in range(dims)):
            raise DataError(path, line, f"pred_boxes[{index}]", box, "corner form: each lower corner <= upper corner")
    return [v for box in value for v in box], len(value)


@dataclass(frozen=True)
class _Task:
    """What a line holds and how to read it: ``kind`` "truth", "prediction" or "both" (jsonl without annotations)."""

    kind: str
    dims: int
    frame: str
    compat: str | None
    split: str | None = None
    answer_tag: str = "required"


def _frame_field(record: Mapping[str, Any], task: _Task, path: Path | None, line: int) -> str:
    value = record.get("frame")
    if value is None:
        return task.frame
    name = value.strip().lower() if type(value) is str else None
    if name not in FRAME_PRESETS:
        raise DataError(path, line, "frame", value, f"one of {', '.join(FRAME_PRESETS)}")
    if task.compat is not None and FRAME_PRESETS[name].kind != "pixel":
        raise DataError(path, line, "frame", value, f"'pixel' under --compat {task.compat} (it compares raw "
                        "coordinates with the ground truth, no rescaling)")
    problem = _frame_dims_problem(name, task.dims)
    if problem is not None:
        raise DataError(path, line, "frame", value, problem)
    return name


def _parse_texts(texts: list[str], dims: int, answer_tag: str) -> list[tuple[list[float], int, str]]:
    """Per completion text: raw answer box coordinates (flat), the box count, and the parser's problems joined by
    "; " ("" when none), read by :func:`medground_eval.regions.parse_batch` (its canonical fast path included)."""
    batch = parse_batch(texts, dims, answer_tag=answer_tag)
    width = 2 * dims
    flat = batch.flat.ravel().tolist()
    out = []
    offset = 0
    for text, count, strict in zip(texts, batch.counts.tolist(), batch.strict_format.tolist()):
        end = offset + count * width
        # strict_format is "no problem" (parsing.py); only the others need their parse's reasons.
        problems = "" if strict else "; ".join(parse_many([text], dims, answer_tag=answer_tag)[0].problems)
        out.append((flat[offset:end], count, problems))
        offset = end
    return out


_TO_PARSE = -1
"""Box count of a :data:`PredRow` whose coordinates field still holds the completion text (parsed per block)."""


def _prediction_row(record: object, task: _Task, path: Path | None, line: int) -> PredRow:
    """Validate one prediction record (DataError when bad); a completion's text is left for :func:`_parse_texts`
    (count :data:`_TO_PARSE`) except under a compat preset, whose own extraction runs here."""
    if not isinstance(record, Mapping):
        raise DataError(path, line, None, record, "a JSON object with id and completion (or pred_boxes)")
    sample_id = record.get("id")
    if isinstance(sample_id, bool) or not isinstance(sample_id, (str, int)) or sample_id == "":
        raise DataError(path, line, "id", sample_id, "a non-empty string or an integer")
    has_completion, has_boxes = "completion" in record, "pred_boxes" in record
    if has_completion == has_boxes:
        raise DataError(path, line, "completion", None if not has_completion else "(and pred_boxes)",
                        "exactly one of 'completion' (text or chat messages) and 'pred_boxes'")
    frame = _frame_field(record, task, path, line)
    image_size = _size_field(record, "image_size", task.dims, path, line)
    input_size = _input_field(record, frame, path, line)
    if has_completion:
        completion = record["completion"]
        if not isinstance(completion, (str, list, dict)):
            raise DataError(path, line, "completion", completion, "a string or a list of chat messages")
        text = completion if type(completion) is str else completion_text(completion)
        if task.compat is None:
            return str(sample_id), text, _TO_PARSE, frame, image_size, input_size, ""
        box = vlm_r1_extract(text)
        coords, count, problems = ([], 0, vlm_r1_problem(text) or "") if box is None else (list(box), 1, "")
    else:
        if task.compat is not None:
            raise DataError(path, line, "pred_boxes", record["pred_boxes"], f"a 'completion': --compat {task.compat} "
                            "applies its own parser to the model's text")
        coords, count = _pred_boxes(record["pred_boxes"], task.dims, path, line)
        problems = "" if count else "no box in pred_boxes"
    return str(sample_id), coords, count, frame, image_size, input_size, problems


class _Columns:
    """Rows of one kind (:data:`TruthRow` or :data:`PredRow`) stored as columns, coordinates flattened: cheap to pass
    between processes. ``row(i, offset)`` rebuilds row i whose coordinates start at ``offset``."""

    def __init__(self, width: int):
        self.coords: list[float] = []
        self.columns: list[list] = [[] for _ in range(width - 1)]

    def __len__(self) -> int:
        return len(self.columns[0])

    def append(self, row: tuple) -> None:
        self.coords.extend(row[1])
        for column, value in zip(self.columns, row[:1] + row[2:]):
            column.append(value)

    def row(self, i: int, offset: int, width: int) -> tuple[tuple, int]:
        """Row i and the offset of the next row's coordinates (``width`` numbers per box)."""
        values = [column[i] for column in self.columns]
        end = offset + values[1] * width
        return (values[0], self.coords[offset:end], *values[1:]), end


@dataclass
class _Lines:
    """Validated lines of one block: ``lines`` holds the line number of every non-blank line kept, ``errors`` maps
    a position in ``lines`` to its DataError's fields (``pred_errors``: a line whose ground truth is valid, kept in
    ``truth``, and whose prediction is bad), ``truth`` / ``preds`` the valid rows in order."""

    lines: list[int] = field(default_factory=list)
    errors: dict[int, tuple] = field(default_factory=dict)
    pred_errors: dict[int, tuple] = field(default_factory=dict)
    truth: _Columns = field(default_factory=lambda: _Columns(6))
    preds: _Columns = field(default_factory=lambda: _Columns(7))
    pending: list[PredRow] = field(default_factory=list)

    def add(self, record: object, task: _Task, path: Path | None, line: int) -> None:
        """Validate one decoded record for ``task`` (a carried-truth line outside the split is left out)."""
        truth_row = pred_row = None
        try:
            if isinstance(record, DataError):
                raise record
            if task.kind == "both" and task.split is not None and isinstance(record, Mapping) \
                    and record.get("split") != task.split:
                return
            if task.kind != "prediction":
                truth_row = _truth_row(record, path, line)
            if task.kind != "truth":
                pred_row = _prediction_row(record, task, path, line)
        except DataError as error:
            fields = (error.path, error.line, error.field, error.value, error.expected)
            if truth_row is not None:
                self.pred_errors[len(self.lines)] = fields
                self.truth.append(truth_row)
            else:
                self.errors[len(self.lines)] = fields
            self.lines.append(line)
            return
        self.lines.append(line)
        if truth_row is not None:
            self.truth.append(truth_row)
        if pred_row is not None:
            self.pending.append(pred_row)

    def finish(self, task: _Task) -> _Lines:
        """Parse the block's completion texts in one batch and store the prediction rows in columns."""
        texts = [row[1] for row in self.pending if row[2] == _TO_PARSE]
        parsed = iter(_parse_texts(texts, task.dims, task.answer_tag) if texts else [])
        for row in self.pending:
            if row[2] == _TO_PARSE:
                coords, count, problems = next(parsed)
                row = (row[0], coords, count, *row[3:6], problems)
            self.preds.append(row)
        self.pending = []
        return self


def _read_lines(data: bytes, first_line: int, path: Path, task: _Task) -> _Lines:
    """Decode and validate the JSON lines of ``data`` (whole lines of ``path`` from line ``first_line``)."""
    out = _Lines()
    for line, text in enumerate(data.decode("utf-8").split("\n"), start=first_line):
        try:
            record: object = json.loads(text)
        except json.JSONDecodeError as error:
            if not text.strip():
                continue
            record = DataError(path, line, None, text.strip(), f"a JSON object ({error.msg}, column {error.colno})")
        out.add(record, task, path, line)
    return out.finish(task)


def _chunks(path: Path, size: int) -> Iterator[tuple[int, bytes]]:
    """``(first line number, bytes)`` of consecutive blocks of about ``size`` bytes, each ending at a line end."""
    line = 1
    with path.open("rb") as handle:
        while True:
            data = handle.read(size)
            if not data:
                return
            data += handle.readline()
            yield line, data
            line += data.count(b"\n")


def _blocks(path: Path, task: _Task, workers: int, progress: Callable[[int], None] | None) -> Iterator[_Lines]:
    """Every line of ``path`` read by :func:`_read_lines`, in file order, by ``workers`` processes (1: this one)."""
    if workers <= 1:
        for first_line, data in _chunks(path, CHUNK_BYTES):
            yield _read_lines(data, first_line, path, task)
            if progress is not None:
                progress(len(data))
        return
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: deque = deque()
        for first_line, data in _chunks(path, CHUNK_BYTES):
            pending.append((len(data), pool.submit(_read_lines, data, first_line, path, task)))
            if len(pending) > 2 * workers:
                yield _finish(pending.popleft(), progress)
        while pending:
            yield _finish(pending.popleft(), progress)


def _finish(entry: tuple[int, Any], progress: Callable[[int], None] | None) -> _Lines:
    size, future = entry
    items = future.result()
    if progress is not None:
        progress(size)
    return items


@dataclass
class _Predictions:
    """Per prediction line kept: which truth row it answers, its raw boxes (flat), frame, sizes and problems."""

    truth_rows: list[int] = field(default_factory=list)
    flat: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    image_sizes: list[list[float] | None] = field(default_factory=list)
    input_sizes: list[list[float] | None] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)

    def add(self, row: PredRow, truth: _Truth, path: Path | None, line: int, truth_row: int | None = None) -> None:
        """Join a validated prediction with the ground truth: a repeated id is a DataError, an unknown id is counted
        as unmatched, a non-pixel frame without any image size is a DataError, and so is an ``m3d-npy`` line
        without a crop box (its own or the sample's) or with one that leaves the volume."""
        sample_id, coords, count, frame, image_size, input_size, problems = row
        if sample_id in self.seen:
            raise DataError(path, line, "id", sample_id, f"a unique prediction id (already used on line "
                            f"{self.seen[sample_id]})")
        index = truth.index.get(sample_id) if truth_row is None else truth_row
        if index is None:
            self.seen[sample_id] = line
            self.unmatched.append(sample_id)
            return
        if image_size is None and truth.sizes[index] is None and FRAME_PRESETS[frame].kind != "pixel":
            raise DataError(path, line, "image_size", None, f"the original image size (frame {frame!r} needs it and "
                            f"the ground truth of id {sample_id!r} has none)")
        if FRAME_PRESETS[frame].kind == "m3d-npy":
            _check_crop(input_size, truth.crops.get(index), truth.sizes[index] or image_size, sample_id, path, line)
        self.seen[sample_id] = line
        self.truth_rows.append(index)
        self.flat.extend(coords)
        self.counts.append(count)
        self.frames.append(frame)
        self.image_sizes.append(image_size)
        self.input_sizes.append(input_size)
        self.problems.append(problems)


def _check_crop(crop: list[float] | None, default: list[float] | None, size: Sequence[float] | None,
                sample_id: str, path: Path | None, line: int) -> None:
    """DataError unless an ``m3d-npy`` line has a crop box (``crop``, else the sample's ``default``) inside the
    volume of ``size`` voxels."""
    if crop is None and default is None:
        raise DataError(path, line, "input_size", None, f"the crop box [x1, y1, z1, x2, y2, z2] of id {sample_id!r} "
                        "(frame 'm3d-npy' needs it; --dataset m3d-refseg with --frame m3d-npy computes it from the CT)")
    if crop is not None and size is not None and any(hi > n for hi, n in zip(crop[3:], size)):
        raise DataError(path, line, "input_size", crop, f"a crop box inside the volume {list(size)} of id "
                        f"{sample_id!r}")


def _consume(blocks: Iterable[_Lines], truth: _Truth, preds: _Predictions | None, errors: RowErrors,
             path: Path | None, dims: int) -> None:
    """Add validated lines in file order: truth rows to ``truth``, prediction rows to ``preds``, errors to
    ``errors``."""
    width = 2 * dims
    for block in blocks:
        if not block.errors and not block.pred_errors and _extend(block, truth, preds):
            continue
        truth_index = pred_index = truth_offset = pred_offset = 0
        for position, line in enumerate(block.lines):
            try:
                if position in block.errors:
                    raise DataError(*block.errors[position])
                truth_row = pred_row = None
                if len(block.truth):
                    truth_row, truth_offset = block.truth.row(truth_index, truth_offset, width)
                    truth_index += 1
                if len(block.preds) and position not in block.pred_errors:
                    pred_row, pred_offset = block.preds.row(pred_index, pred_offset, width)
                    pred_index += 1
                if truth_row is not None:
                    _add_truth(truth, truth_row, path, line)
                if position in block.pred_errors:
                    raise DataError(*block.pred_errors[position])
                if pred_row is not None:
                    preds.add(pred_row, truth, path, line, truth_row=len(truth.ids) - 1 if truth_row else None)
            except DataError as error:
                errors.handle(error)


def _extend(block: _Lines, truth: _Truth, preds: _Predictions | None) -> bool:
    """Add a block without errors in bulk when every line is simply kept: its ids are new and unique, every prediction
    matches a ground-truth row, no non-pixel frame lacks an image size and no line is in the ``m3d-npy`` frame
    (checked line by line). False (nothing added) otherwise."""
    truth_ids = block.truth.columns[0] if len(block.truth) else []
    if truth_ids and (len(set(truth_ids)) != len(truth_ids) or not truth.index.keys().isdisjoint(truth_ids)):
        return False
    rows: list[int] = []
    if len(block.preds):
        pred_ids = block.preds.columns[0]
        if len(set(pred_ids)) != len(pred_ids) or not preds.seen.keys().isdisjoint(pred_ids):
            return False
        if truth_ids:
            rows = list(range(len(truth.ids), len(truth.ids) + len(truth_ids)))
        else:
            rows = [truth.index.get(sample_id, -1) for sample_id in pred_ids]
            if -1 in rows:
                return False
        frames, image_sizes = block.preds.columns[2], block.preds.columns[3]
        if truth.dims == 3 and "m3d-npy" in frames:
            return False
        sizes = block.truth.columns[2] if truth_ids else [truth.sizes[row] for row in rows]
        if None in sizes and any(size is None and line_size is None and FRAME_PRESETS[frame].kind != "pixel"
                                 for size, line_size, frame in zip(sizes, image_sizes, frames)):
            return False
    if truth_ids:
        start = len(truth.ids)
        truth.index.update(zip(truth_ids, range(start, start + len(truth_ids))))
        truth.first_line.update(zip(truth_ids, block.lines))
        truth.ids.extend(truth_ids)
        truth.flat.extend(block.truth.coords)
        for target, column in zip((truth.counts, truth.sizes, truth.categories, truth.splits),
                                  block.truth.columns[1:]):
            target.extend(column)
    if rows:
        preds.seen.update(zip(block.preds.columns[0], block.lines))
        preds.truth_rows.extend(rows)
        preds.flat.extend(block.preds.coords)
        for target, column in zip((preds.counts, preds.frames, preds.image_sizes, preds.input_sizes, preds.problems),
                                  block.preds.columns[1:]):
            target.extend(column)
    return True


@dataclass(frozen=True)
class ScoreResult:
    """A scored run: the summary ``report``, the ``per_sample`` scores (ground-truth order), each sample's parser
    ``problems`` ("; "-joined, "no prediction" for a missing one) and the run's ``config``."""

    report: GroundingReport
    per_sample: SampleScores
    problems: list[str]
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The metrics JSON: :meth:`GroundingReport.to_dict` keys plus ``config``."""
        return {**self.report.to_dict(), "config": self.config}

    def hits(self, threshold: float = 0.5) -> np.ndarray:
        """Per sample, IoU >= threshold (or > under a strict rule such as the vlm-r1 preset)."""
        iou = self.per_sample.iou
        return iou_hits(iou, threshold, self.report.inclusive)

    def write_per_sample(self, path: str | Path) -> None:
        """CSV with columns id, iou, hit@0.5, pointing, parse_failed, out_of_frame, category, problems."""
        import pandas as pd

        scores = self.per_sample
        frame = pd.DataFrame({
            "id": scores.ids, "iou": scores.iou, "hit@0.5": self.hits(0.5), "pointing": scores.pointing,
            "parse_failed": scores.parse_failed, "out_of_frame": scores.out_of_frame,
            "category": scores.category, "problems": self.problems,
        })
        frame.to_csv(path, index=False)


def join_notes(config: Mapping[str, Any]) -> list[str]:
    """A run's non-zero join counts as sentences: unmatched and missing predictions, skipped lines."""
    labels = (("unmatched_predictions", "predictions with an id not in the ground truth (left out)"),
              ("missing_predictions", "ground-truth samples without a prediction (scored as misses)"),
              ("skipped_lines", "lines skipped (--on-error skip)"))
    return [f"{config[key]} {label}" for key, label in labels if config.get(key)]


def _check_run(frame: str, compat: str | None, on_error: str, view: str,
               answer_tag: str) -> tuple[str, CompatPreset | None]:
    """The frame's preset name (lower case) and the compat preset; ValueError for a bad option."""
    get_frame(frame)
    frame = frame.strip().lower()
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error = {on_error!r}: expected 'raise' or 'skip'")
    if answer_tag not in ANSWER_TAGS:
        raise ValueError(f"--answer-tag {answer_tag!r}: expected one of {', '.join(ANSWER_TAGS)}")
    if answer_tag != "required" and compat is not None:
        raise ValueError(f"--answer-tag {answer_tag} with --compat {compat}: the compat preset has its own parse "
                         "rules; drop --answer-tag, or drop --compat to score untagged answers")
    if view not in VIEWS:
        raise ValueError(f"--view {view!r}: expected one of {', '.join(VIEWS)}")
    if view != "volume" and FRAME_PRESETS[frame].kind == "m3d-npy":
        raise ValueError(f"--frame m3d-npy with --view {view}: the frame writes 3D boxes; the {view} view scores 2D "
                         "boxes (use --view volume, or a 2D frame such as voxel or norm1000)")
    preset = None if compat is None else get_compat(compat)
    if preset is not None and get_frame(frame).kind != "pixel":
        raise ValueError(f"--frame {frame!r} with --compat {preset.name}: the preset compares raw coordinates with the "
                         "ground truth (no rescaling); use --frame pixel")
    return frame, preset


def _truth_from_dataset(dataset: LoadedDataset, view: str) -> _Truth:
    """The samples' ground truth, or that of their 2D ``view`` (ValueError when the data set has none)."""
    if view != "volume" and any(sample.dims != 3 for sample in dataset.samples):
        raise ValueError(f"--view {view}: data set {dataset.name} has 2D boxes; the views (slice, projection) are "
                         "2D views of 3D samples (m3d-refseg)")
    truth = _Truth()
    for sample in dataset.samples:
        truth.add_sample(view_sample(sample, view))
    return truth


def _check_frame_dims(frame: str, truth: _Truth) -> None:
    """ValueError when the run's frame cannot write the ground truth's boxes."""
    problem = None if truth.dims is None else _frame_dims_problem(frame, truth.dims)
    if problem is not None:
        raise ValueError(f"--frame {frame}: the ground truth has {truth.dims}D boxes; expected {problem}")


def score_files(
    predictions_path: str | Path,
    *,
    dataset: str,
    annotations: str | Path | None = None,
    split: str | None = None,
    frame: str = "pixel",
    compat: str | None = None,
    on_error: OnError = "raise",
    thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
    inclusive: bool = True,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    view: str = "volume",
    answer_tag: str = "required",
) -> ScoreResult:
    """Score the predictions file against ``dataset`` (a loader name) read from ``annotations``.

    ``dataset="jsonl"`` reads ``annotations`` as jsonl ground truth, or, when it is None, the ground-truth fields
    of the prediction lines themselves; other data sets need ``annotations`` (their loader's path). ``frame`` is
    the default frame of the predictions (a :data:`~medground_eval.frames.FRAME_PRESETS` name); ``compat`` a
    :mod:`medground_eval.evaluation.compat` preset name, which then decides parsing, IoU and the hit rule (``inclusive`` is
    ignored). Lines are decoded and parsed by ``workers`` processes (default: one per CPU, up to 8, for files of
    :data:`PARALLEL_MIN_BYTES` or more); results do not depend on it. ``progress`` is called with the bytes of
    prediction lines read. ``view`` picks the target of 3D samples (``volume``, ``slice``, ``projection``; see the
    module doc); under the ``m3d-npy`` frame, ``m3d-refseg`` is loaded with ``npy_crop=True``. ``answer_tag``:
    "required" (default) or "optional" (read completions without ``<answer>``; not with ``compat``). Raises DataError
    for a bad line (unless ``on_error="skip"``), ValueError for a bad option, FileNotFoundError for a missing file.
    """
    frame, preset = _check_run(frame, compat, on_error, view, answer_tag)
    if view != "volume" and dataset == "jsonl":
        raise ValueError(f"--view {view}: data set jsonl has 2D boxes; the views (slice, projection) are 2D views of "
                         "3D samples (m3d-refseg)")
    predictions_path = Path(predictions_path)
    if not predictions_path.is_file():
        raise FileNotFoundError(f"{predictions_path}: no such predictions file")
    carried = dataset == "jsonl" and annotations is None
    truth = _Truth(dims=2 if dataset == "jsonl" else None)
    truth_errors = RowErrors(on_error)
    if dataset == "jsonl" and annotations is not None:
        annotations = Path(annotations)
        if not annotations.is_file():
            raise FileNotFoundError(f"{annotations}: no such jsonl ground-truth file")
        task = _Task("truth", 2, frame, None)
        _consume(_blocks(annotations, task, _workers(workers, annotations), None), truth, None, truth_errors,
                 annotations, 2)
        truth = _keep_split(truth, split, annotations)
    elif not carried:
        if annotations is None:
            raise ValueError(f"--dataset {dataset} needs --annotations (alias --data-dir): the data set's file or "
                             "folder")
        # The m3d-npy frame's default input_size is each CT's crop box, which only reading the CT data gives.
        options = {"npy_crop": True} if dataset == "m3d-refseg" and FRAME_PRESETS[frame].kind == "m3d-npy" else {}
        loaded = get_loader(dataset)(annotations, split=split, on_error=on_error, **options)
        truth = _truth_from_dataset(loaded, view)
        truth_errors.skipped.extend(loaded.skipped)
    _check_frame_dims(frame, truth)

    errors = RowErrors(on_error)
    preds = _Predictions()
    task = _Task("both" if carried else "prediction", truth.dims or 2, frame, compat, split if carried else None,
                 answer_tag)
    blocks = _blocks(predictions_path, task, _workers(workers, predictions_path), progress)
    _consume(blocks, truth, preds, errors, predictions_path, task.dims)
    if carried and split is not None and not truth.ids:
        raise DataError(predictions_path, None, "split", split, "a split that some prediction line has")
    return _score(truth, preds, _config(
        dataset=dataset, annotations=annotations, predictions=predictions_path, split=split, frame=frame,
        preset=preset, thresholds=thresholds, inclusive=inclusive, n_bootstrap=n_bootstrap, seed=seed,
        on_error=on_error, skipped=truth_errors.skipped + errors.skipped, view=view, answer_tag=answer_tag,
    ))


def _workers(workers: int | None, path: Path) -> int:
    if workers is not None:
        return workers
    return min(os.cpu_count() or 1, 8) if path.stat().st_size >= PARALLEL_MIN_BYTES else 1


def score_predictions(
    records: Iterable[Mapping[str, Any]],
    dataset: LoadedDataset,
    *,
    frame: str = "pixel",
    compat: str | None = None,
    on_error: OnError = "raise",
    thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
    inclusive: bool = True,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    view: str = "volume",
    answer_tag: str = "required",
) -> ScoreResult:
    """Score in-memory prediction records (the objects of a predictions file) against a loaded data set.

    Errors name the record as ``<records>:N`` (N its 1-based position). Same rules as :func:`score_files`
    (the ``m3d-npy`` frame's crop boxes come from the records or the samples' ``extra["npy_crop_box"]``).
    """
    frame, preset = _check_run(frame, compat, on_error, view, answer_tag)
    errors = RowErrors(on_error)
    truth = _truth_from_dataset(dataset, view)
    _check_frame_dims(frame, truth)
    task = _Task("prediction", truth.dims or 2, frame, compat, answer_tag=answer_tag)
    preds = _Predictions()
    block = _Lines()
    for line, record in enumerate(records, start=1):
        block.add(record, task, RECORDS, line)
    _consume([block.finish(task)], truth, preds, errors, RECORDS, task.dims)
    return _score(truth, preds, _config(
        dataset=dataset.name, annotations=None, predictions=None, split=None, frame=frame, preset=preset,
        thresholds=thresholds, inclusive=inclusive, n_bootstrap=n_bootstrap, seed=seed, on_error=on_error,
        skipped=list(dataset.skipped) + errors.skipped, view=view, answer_tag=answer_tag,
    ))


def _config(*, dataset: str, annotations: str | Path | None, predictions: Path | None, split: str | None,
            frame: str, preset: CompatPreset | None, thresholds: Iterable[float], inclusive: bool,
            n_bootstrap: int, seed: int | None, on_error: str, skipped: list[SkippedRow],
            view: str, answer_tag: str) -> dict[str, Any]:
    """The run's settings; ``answer_tag`` is None under a compat preset (its parse rules decide)."""
    parse_rules = DEFAULT_PARSE_RULES + (UNTAGGED_PARSE_RULES if answer_tag == "optional" else "")
    return {
        "dataset": dataset,
        "annotations": None if annotations is None else str(annotations),
        "predictions": None if predictions is None else str(predictions),
        "split": split,
        "view": view,
        "frame": frame if preset is None else f"{frame} (raw coordinates, no rescaling or clipping)",
        "compat": None if preset is None else preset.name,
        "answer_tag": answer_tag if preset is None else None,
        "parse_rules": parse_rules if preset is None else preset.parse_rules,
        "thresholds": [float(t) for t in thresholds],
        "inclusive": inclusive if preset is None else preset.inclusive,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "on_error": on_error,
        "skipped_lines": len(skipped),
        "skipped_examples": [row.reason for row in skipped[:EXAMPLES_KEPT]],
    }


def _score(truth: _Truth, preds: _Predictions, config: dict[str, Any]) -> ScoreResult:
    """Convert, overlap and summarise; fills ``config`` with the join counts."""
    n, dims = len(truth.ids), truth.dims or 2
    width = 2 * dims
    true_counts = np.asarray(truth.counts, dtype=np.int64)
    true_flat = np.asarray(truth.flat, dtype=np.float64).reshape(-1, width)
    true_start = np.concatenate([[0], np.cumsum(true_counts)[:-1]]).astype(np.int64)
    sizes = np.full((n, dims), np.nan)
    known = np.fromiter((s is not None for s in truth.sizes), dtype=bool, count=n)
    if known.any():
        sizes[known] = np.asarray([s for s in truth.sizes if s is not None], dtype=np.float64)

    rows = np.asarray(preds.truth_rows, dtype=np.int64)
    # Area of each sample's true region (the union of its boxes): a sample without prediction pools it in cIoU.
    no_prediction = np.zeros((0, width)), np.zeros(n, dtype=np.int64)
    true_areas = geometry.region_overlap_columns(*no_prediction, true_flat, true_counts)[1]
    if config["compat"] is not None and width == 4:  # the preset compares with the enclosing box, area as theirs
        lo = np.minimum.reduceat(true_flat[:, :2], true_start, axis=0)
        hi = np.maximum.reduceat(true_flat[:, 2:], true_start, axis=0)
        true_areas = (hi - lo).prod(axis=1)
    iou, inter, union, pointing, failed, out = _score_matched(truth, preds, rows, true_flat, true_counts, true_start,
                                                              sizes, config)

    # Every ground-truth sample gets a row; those without a prediction are misses: IoU 0, area of their region.
    all_iou, all_inter = np.zeros(n), np.zeros(n)
    all_union = true_areas.copy()
    all_pointing, all_failed, all_out = (np.zeros(n, dtype=bool) for _ in range(3))
    for target, values in ((all_iou, iou), (all_inter, inter), (all_union, union), (all_pointing, pointing),
                           (all_failed, failed), (all_out, out)):
        target[rows] = values
    problems = ["no prediction"] * n
    for row, text in zip(preds.truth_rows, preds.problems):
        problems[row] = text
    missing = np.ones(n, dtype=bool)
    missing[rows] = False

    scores = SampleScores(ids=np.asarray(truth.ids, dtype=str), iou=all_iou, intersection=all_inter, union=all_union,
                          pointing=all_pointing, parse_failed=all_failed, out_of_frame=all_out,
                          category=truth.categories)
    config["unmatched_predictions"] = len(preds.unmatched)
    config["unmatched_examples"] = preds.unmatched[:EXAMPLES_KEPT]
    config["missing_predictions"] = int(missing.sum())
    config["missing_examples"] = [truth.ids[i] for i in np.flatnonzero(missing)[:EXAMPLES_KEPT]]
    report = grounding_report(scores, thresholds=config["thresholds"], inclusive=config["inclusive"],
                              n_bootstrap=config["n_bootstrap"], seed=config["seed"])
    return ScoreResult(report=report, per_sample=scores, problems=problems, config=config)


def _score_matched(truth: _Truth, preds: _Predictions, rows: np.ndarray, true_flat: np.ndarray,
                   true_counts: np.ndarray, true_start: np.ndarray, sizes: np.ndarray,
                   config: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """Per matched prediction: iou, intersection, union, pointing, parse_failed, out_of_frame."""
    k, dims = len(rows), truth.dims or 2
    width = 2 * dims
    counts = np.asarray(preds.counts, dtype=np.int64)
    flat = np.asarray(preds.flat, dtype=np.float64).reshape(-1, width)
    failed = counts == 0
    t_counts, t_start = true_counts[rows], true_start[rows]
    if config["compat"] is not None:
        return _score_compat(flat, counts, rows, true_flat, t_counts, t_start, sizes[rows], failed)

    # Sizes: the data set's, else the line's; rows with neither are pixel-frame rows (checked when read).
    row_sizes = sizes[rows]
    if any(s is not None for s in preds.image_sizes):
        line_sizes = np.asarray([s if s is not None else [np.nan] * dims for s in preds.image_sizes],
                                dtype=np.float64).reshape(k, dims)
        row_sizes = np.where(np.isnan(row_sizes), line_sizes, row_sizes)
    inputs = _input_sizes(truth, preds, dims)
    has_size = ~np.isnan(row_sizes).any(axis=1)
    frames = np.asarray(preds.frames, dtype=object)
    owner = np.repeat(np.arange(k), counts)
    converted = np.empty_like(flat)
    out = np.zeros(k, dtype=bool)
    for group in (has_size, ~has_size):
        if not group.any():
            continue
        box_mask = group[owner]
        group_frames = frames[group].tolist()
        converted[box_mask], out[group] = boxes_to_pixels(
            flat[box_mask], counts[group],
            frames=group_frames[0] if len(set(group_frames)) == 1 else group_frames,
            image_sizes=row_sizes[group] if group is has_size else None,
            input_sizes=None if inputs is None or group is not has_size else inputs[group], dims=dims,
        )

    # The matched samples' true boxes, in prediction order, as columns.
    true_rows_flat = true_flat[np.repeat(t_start - (np.cumsum(t_counts) - t_counts), t_counts)
                               + np.arange(int(t_counts.sum()))]
    inter, union = geometry.region_overlap_columns(converted, counts, true_rows_flat, t_counts)
    pointing = geometry.region_pointing_columns(converted, counts, true_rows_flat, t_counts)
    iou = np.clip(np.divide(inter, union, out=np.zeros(k), where=union > 0), 0.0, 1.0)
    return iou, inter, union, pointing, failed, out


def _input_sizes(truth: _Truth, preds: _Predictions, dims: int) -> np.ndarray | None:
    """Per matched prediction, the ``input_size`` of its frame, or None when no row has one: in 2D the line's
    ``[w, h]`` (``resized``); in 3D, for ``m3d-npy`` rows, the line's crop box, else the sample's. All-NaN rows:
    not given."""
    if dims == 2:
        if all(s is None for s in preds.input_sizes):
            return None
        return np.asarray([s if s is not None else [np.nan] * 2 for s in preds.input_sizes], dtype=np.float64)
    npy = [FRAME_PRESETS[f].kind == "m3d-npy" for f in preds.frames]
    if not any(npy):
        return None
    return np.asarray([(s if s is not None else truth.crops[row]) if is_npy else [np.nan] * 6
                       for s, row, is_npy in zip(preds.input_sizes, preds.truth_rows, npy)], dtype=np.float64)


def _score_compat(flat: np.ndarray, counts: np.ndarray, rows: np.ndarray, true_flat: np.ndarray,
                  t_counts: np.ndarray, t_start: np.ndarray, sizes: np.ndarray,
                  failed: np.ndarray) -> tuple[np.ndarray, ...]:
    """The vlm-r1 preset: one raw box per prediction ([0, 0, 0, 0] on a parse failure) against the (enclosing)
    true box, in VLM-R1's arithmetic; out_of_frame when the raw box leaves the known image."""
    if true_flat.shape[1] != 4:
        raise ValueError("--compat vlm-r1 scores 2D boxes only; this data set has 3D boxes")
    k = len(rows)
    pred = np.zeros((k, 4))
    pred[~failed] = flat  # one box per parsed prediction
    true = true_flat[t_start].copy()
    for i in np.flatnonzero(t_counts > 1):
        true[i] = enclosing_box(true_flat[t_start[i]:t_start[i] + t_counts[i]])
    inter, union = vlm_r1_overlap(pred, true)
    iou = np.divide(inter, union, out=np.zeros(k), where=union > 0)
    union = np.where(union > 0, union, 0.0)
    inter = np.where(union > 0, inter, 0.0)
    centre = (pred[:, :2] + pred[:, 2:]) / 2
    pointing = ~failed & ((centre >= true[:, :2]) & (centre <= true[:, 2:])).all(axis=1)
    out = ~failed & (pred[:, 2:] > np.where(np.isnan(sizes), np.inf, sizes)).any(axis=1)
    return iou, inter, union, pointing, failed, out

