"""Reading prediction lines (and jsonl ground-truth lines): decode, validate, read each completion once.

A file is read in blocks of whole lines (:data:`CHUNK_BYTES`); each block's lines are decoded and validated one by
one into :class:`Line` records, and the completion texts of the block are then parsed in one batch
(:func:`medground_eval.regions.parse_batch`, its canonical fast path included; a preset with its own reading applies
it instead). Each text is parsed exactly once: its boxes and its parser problems come from that one parse.

What a prediction line may hold is documented in :mod:`medground_eval.evaluation.scorer`; a ground-truth line is read
by :func:`medground_eval.datasets.jsonl.read_truth_record`, the one validator of jsonl ground truth.

The reader is single-process: on the 2-core machine CI runs on, reading 200k predictions with 2 worker processes
took 5.4-6.0 s against 4.6-6.5 s in one process (the parent's join and the pickling of blocks eat the gain).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from medground_eval.datasets.base import DataError
from medground_eval.datasets.jsonl import TruthRecord, read_truth_record
from medground_eval.datasets.mscxr import mscxr_sample_id
from medground_eval.datasets.textfile import check_utf16, gzip_error, is_gzip, loads, open_binary
from medground_eval.evaluation.compat import ScoringRules
from medground_eval.frames import FRAME_PRESETS, get_frame
from medground_eval.parsing import completion_text
from medground_eval.regions import parse_batch
from medground_eval.structures import MAX_COORDINATE
from medground_eval.validation import is_coordinate

CHUNK_BYTES = 4 << 20
"""Bytes of whole lines read, decoded and parsed as one block."""
RECORDS = "<records>"
"""The file name errors give for in-memory prediction records."""


@dataclass(frozen=True)
class ReadTask:
    """What a line holds and how to read it.

    ``kind``: "truth" (a jsonl ground-truth file), "prediction", or "both" (jsonl predictions that carry their ground
    truth); ``dims``: 2 or 3 (numbers per box / 2); ``frame``: the run's default frame; ``rules``: the run's scoring
    rules; ``split``: keep only carried-truth lines of this split; ``answer_tag``: the parser's setting;
    ``mscxr_keys``: a line without ``id`` may name its MS-CXR sample by ``dicom_id`` and ``phrase``.
    """

    kind: Literal["truth", "prediction", "both"]
    dims: int
    frame: str
    rules: ScoringRules
    split: str | None = None
    answer_tag: str = "required"
    mscxr_keys: bool = False


@dataclass(slots=True)
class PredictionRecord:
    """A validated prediction line: raw box coordinates (flat, ``count`` boxes, in the line's ``frame``), the line's
    ``image_size`` / ``input_size`` (None: not given) and the parser's problems ("; "-joined, "" when none)."""

    id: str
    frame: str
    image_size: list[float] | None
    input_size: list[float] | None
    coords: list[float] = field(default_factory=list)
    count: int = 0
    problems: str = ""


@dataclass(slots=True)
class Line:
    """One non-blank line: its number, the ground truth it holds (valid, or None), its prediction (valid, or None) and
    its error (None when valid). A carried-truth line with a valid truth and a bad prediction has both ``truth`` and
    ``error``: the sample is kept and missed."""

    number: int
    truth: TruthRecord | None = None
    prediction: PredictionRecord | None = None
    error: DataError | None = None


def frame_dims_problem(frame: str, dims: int) -> str | None:
    """Why the preset ``frame`` cannot write ``dims``-D boxes, or None."""
    spec = get_frame(frame)
    if spec.kind == "m3d-npy" and dims != 3:
        return "a 2D frame ('m3d-npy' is 3D only: M3D's preprocessed volumes, with --view volume)"
    if (spec.kind in ("resized", "norm1024", "bins1000") or spec.axes != "xy") and dims != 2:
        what = f"'{spec.kind}'" if spec.axes == "xy" else "a y-first frame"
        return f"a 3D frame ({what} is 2D only): voxel, norm1000, norm1 or m3d-npy"
    return None


def _size_field(record: Mapping[str, object], name: str, count: int, path: Path | str | None,
                line: int) -> list[float] | None:
    value = record.get(name)
    if value is None:
        return None
    if type(value) is not list or len(value) != count or not all(is_coordinate(v) and v > 0 for v in value):
        axes = "[W, H, D]" if count == 3 else "[W, H]"
        raise DataError(path, line, name, value, f"{axes}: {count} positive numbers of pixels")
    return [float(v) for v in value]


def _input_field(record: Mapping[str, object], frame: str, path: Path | str | None, line: int) -> list[float] | None:
    """A line's ``input_size``: the crop box (6 numbers) under the ``m3d-npy`` frame, else ``[w, h]``."""
    if get_frame(frame).kind != "m3d-npy":
        return _size_field(record, "input_size", 2, path, line)
    value = record.get("input_size")
    if value is None:
        return None
    if type(value) is not list or len(value) != 6 or not all(is_coordinate(v) for v in value) \
            or not all(0 <= value[a] < value[a + 3] for a in range(3)):
        raise DataError(path, line, "input_size", value, "the crop box [x1, y1, z1, x2, y2, z2] of frame 'm3d-npy': "
                        "6 finite numbers of original voxels with 0 <= x1 < x2, 0 <= y1 < y2, 0 <= z1 < z2")
    return [float(v) for v in value]


def _frame_field(record: Mapping[str, object], task: ReadTask, path: Path | str | None, line: int) -> str:
    value = record.get("frame")
    if value is None:
        return task.frame
    name = value.strip().lower() if type(value) is str else None
    try:
        kind = None if name is None else get_frame(name).kind
    except ValueError:
        kind = None
    if kind is None:
        raise DataError(path, line, "frame", value, f"one of {', '.join(FRAME_PRESETS)} (optionally with settings, "
                        "e.g. 'resized:max_pixels=1003520')")
    if task.rules.raw_coordinates and kind != "pixel":
        raise DataError(path, line, "frame", value, f"'pixel' under --compat {task.rules.name} (it compares raw "
                        "coordinates with the ground truth, no rescaling)")
    problem = frame_dims_problem(name, task.dims)
    if problem is not None:
        raise DataError(path, line, "frame", value, problem)
    return name


def _pred_boxes(value: object, dims: int, path: Path | str | None, line: int) -> tuple[list[float], int]:
    """Flat coordinates and count of a ``pred_boxes`` field: a list of corner boxes or one box."""
    width = 2 * dims
    if type(value) is list and len(value) == width and all(is_coordinate(v) for v in value):
        value = [value]
    if type(value) is not list:
        raise DataError(path, line, "pred_boxes", value, f"a list of boxes of {width} numbers (or one box)")
    for index, box in enumerate(value):
        if type(box) is not list or len(box) != width or not all(is_coordinate(v) for v in box):
            raise DataError(path, line, f"pred_boxes[{index}]", box,
                            f"{width} finite numbers of magnitude <= {MAX_COORDINATE:.0f} (corner form)")
        if any(box[a] > box[a + dims] for a in range(dims)):
            raise DataError(path, line, f"pred_boxes[{index}]", box, "corner form: each lower corner <= upper corner")
    return [v for box in value for v in box], len(value)


def _mscxr_key(record: Mapping[str, object], path: Path | str | None, line: int) -> str:
    """The MS-CXR sample id of a line keyed by ``dicom_id`` and ``phrase`` (the sample's ``label_text``):
    :func:`~medground_eval.datasets.mscxr.mscxr_sample_id`, the loader's own rule."""
    dicom_id, phrase = record.get("dicom_id"), record.get("phrase")
    if not isinstance(dicom_id, str) or not dicom_id.strip():
        raise DataError(path, line, "dicom_id", dicom_id, "the image's DICOM id (a non-empty string)")
    if not isinstance(phrase, str) or not phrase.strip():
        raise DataError(path, line, "phrase", phrase, "the sample's phrase (MS-CXR label_text), which with dicom_id "
                        "names the sample")
    return mscxr_sample_id(dicom_id.strip(), phrase)


def read_prediction(record: object, task: ReadTask, path: Path | str | None,
                    line: int) -> tuple[PredictionRecord, str | None]:
    """Validate one prediction record (DataError when bad): the record, and the completion text its boxes are to be
    read from (None for a ``pred_boxes`` line, whose boxes the record already holds)."""
    if not isinstance(record, Mapping):
        raise DataError(path, line, None, record, "a JSON object with id and completion (or pred_boxes)")
    if "id" not in record and "doc_id" in record and "filtered_resps" in record:
        record = lmms_eval_record(record, path, line)
    sample_id = record.get("id")
    if sample_id is None and task.mscxr_keys and "dicom_id" in record:
        sample_id = _mscxr_key(record, path, line)
    if isinstance(sample_id, bool) or not isinstance(sample_id, (str, int)) or sample_id == "":
        expected = " (or, for MS-CXR, 'dicom_id' and 'phrase')" if task.mscxr_keys else ""
        raise DataError(path, line, "id", sample_id, f"a non-empty string or an integer{expected}")
    has_completion, has_boxes = "completion" in record, "pred_boxes" in record
    if has_completion == has_boxes:
        raise DataError(path, line, "completion", None if not has_completion else "(and pred_boxes)",
                        "exactly one of 'completion' (text or chat messages) and 'pred_boxes'")
    frame = _frame_field(record, task, path, line)
    prediction = PredictionRecord(str(sample_id), frame, _size_field(record, "image_size", task.dims, path, line),
                                  _input_field(record, frame, path, line))
    if has_completion:
        completion = record["completion"]
        if type(completion) is str:
            return prediction, completion
        if not isinstance(completion, (str, list, dict)):
            raise DataError(path, line, "completion", completion, "a string or a list of chat messages")
        return prediction, completion_text(completion)
    if task.rules.own_parser:
        raise DataError(path, line, "pred_boxes", record["pred_boxes"], f"a 'completion': --compat {task.rules.name} "
                        "applies its own parser to the model's text")
    prediction.coords, prediction.count = _pred_boxes(record["pred_boxes"], task.dims, path, line)
    prediction.problems = "" if prediction.count else "no box in pred_boxes"
    return prediction, None


def lmms_eval_record(record: Mapping[str, object], path: Path | str | None, line: int) -> dict[str, object]:
    """A line of lmms-eval's ``samples_<task>.jsonl`` (``doc_id``, ``target``, ``filtered_resps``; lmms-eval 0.7
    drops the doc) as a prediction record: the id is ``target`` (our lmms-eval tasks' ``doc_to_target`` is the
    sample id, see :mod:`medground_eval.integrations.lmms_eval`), the completion the one generated text.
    A line of another task (no string target) or with several texts is an error naming the line."""
    target = record.get("target")
    if not isinstance(target, str) or not target:
        raise DataError(path, line, "target", target, "the sample id (a medground-eval lmms-eval task writes it)")
    texts = record.get("filtered_resps")
    while isinstance(texts, list) and len(texts) == 1:
        texts = texts[0]
    if not isinstance(texts, str):
        raise DataError(path, line, "filtered_resps", texts, "one generated text (a generate_until task, repeats 1)")
    return {"id": target, "completion": texts}


def _read_texts(records: list[PredictionRecord], texts: list[str], task: ReadTask) -> None:
    """Fill each record's boxes and problems from its completion text: one parse per text, the block in one batch."""
    extract = task.rules.extract
    if extract is not None:
        for record, text in zip(records, texts):
            box, problem = extract(text)
            if box is not None:
                record.coords, record.count = list(box), 1
            record.problems = problem
        return
    batch = parse_batch(texts, task.dims, answer_tag=task.answer_tag)
    flat = batch.flat.ravel().tolist()
    width = 2 * task.dims
    offset = 0
    for i, (record, count, strict) in enumerate(zip(records, batch.counts.tolist(), batch.strict_format.tolist())):
        end = offset + count * width
        record.coords, record.count = flat[offset:end], count
        # strict_format means "no problem" (parsing.py); the others' reasons are in the batch's one parse.
        if not strict:
            record.problems = "; ".join(batch.problems(i))
        if count and not batch.canonical[i]:  # the fast path reads x-first dialects only
            mismatch = axes_problem(batch.completion(i).answer_boxes, record.frame)
            if mismatch:
                record.problems = f"{record.problems}; {mismatch}" if record.problems else mismatch
        offset = end


def axes_problem(boxes: Iterable[object], frame: str) -> str | None:
    """The problem of answer boxes whose dialect writes y first (Gemini ``box_2d``, PaliGemma ``<locYYYY>``;
    ``ParsedBox.axes == "yx"``) scored under an x-first frame, which would read them as x, y: their boxes still
    score (in the frame given), and the problem names the presets that read them right. None otherwise."""
    if get_frame(frame).axes == "yx" or not any(getattr(box, "axes", "xy") == "yx" for box in boxes):
        return None
    return (f"box written y first ([y1, x1, y2, x2]: Gemini box_2d or PaliGemma loc tokens) scored in the x-first "
            f"frame {frame!r}: use --frame gemini (0-1000) or paligemma (loc tokens)")


def read_block(records: Iterable[tuple[int, object]], task: ReadTask, path: Path | str | None) -> list[Line]:
    """Validate ``(line number, decoded record)`` pairs (a :class:`DataError` in place of a record is that line's
    error); a carried-truth line outside the task's split is left out. Completion texts are read at the end, in one
    batch."""
    lines: list[Line] = []
    pending: list[PredictionRecord] = []
    texts: list[str] = []
    kind = task.kind
    for number, record in records:
        line = Line(number)
        lines.append(line)
        try:
            if type(record) is DataError:
                raise record
            if kind == "both" and task.split is not None and isinstance(record, Mapping) \
                    and record.get("split") != task.split:
                lines.pop()
                continue
            if kind != "prediction":
                line.truth = read_truth_record(record, path=path, line=number)
            if kind != "truth":
                prediction, text = read_prediction(record, task, path, number)
                line.prediction = prediction
                if text is not None:
                    pending.append(prediction)
                    texts.append(text)
        except DataError as error:
            line.error = error
    if texts:
        _read_texts(pending, texts, task)
    return lines


def _decoded(data: bytes, first_line: int, path: Path) -> Iterator[tuple[int, object]]:
    """``(line number, JSON value)`` of each non-blank line of ``data``; a DataError in place of a line that is not
    JSON."""
    try:
        texts: list[str | bytes] = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        texts = data.split(b"\n")
    for number, text in enumerate(texts, start=first_line):
        if type(text) is bytes:
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as error:
                yield number, DataError(path, number, None, text[:200], f"UTF-8 text ({error.reason} at byte "
                                        f"{error.start + 1} of the line)")
                continue
        try:
            yield number, loads(text)
        except json.JSONDecodeError as error:
            if text.strip():
                yield number, DataError(path, number, None, text.strip(),
                                        f"a JSON object ({error.msg}, column {error.colno})")


def read_file(path: Path, task: ReadTask, progress: Callable[[int], None] | None = None) -> Iterator[list[Line]]:
    """The lines of a JSON-lines file (gzip-compressed when its name ends in ``.gz``), block by block in file order;
    ``progress`` is called with the bytes of the file each block took once it is read (compressed bytes for
    ``.gz``). A file with a UTF-16 byte order mark or a broken gzip stream is a DataError."""
    number, position = 1, 0
    with open_binary(path) as handle:
        raw = getattr(handle, "fileobj", handle)  # the compressed stream under a GzipFile
        while True:
            try:
                data = handle.read(CHUNK_BYTES)
                data += handle.readline() if data else b""
            except (OSError, EOFError, zlib.error) as error:
                if not is_gzip(path):
                    raise
                raise gzip_error(path, error) from None
            if not data:
                return
            if number == 1:
                check_utf16(path, data)
                data = data.removeprefix(b"\xef\xbb\xbf")
            yield read_block(_decoded(data, number, path), task, path)
            number += data.count(b"\n")
            if progress is not None:
                progress(raw.tell() - position)
                position = raw.tell()
