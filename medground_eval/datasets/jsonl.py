"""The generic JSON-lines data set: one grounding sample per line.

Each non-blank line is a JSON object::

    {"id": "case-7", "phrase": "left pleural effusion", "boxes": [[10, 20, 110, 220]],
     "image_size": [1024, 1024], "category": "Effusion", "image": "imgs/case-7.png", "split": "test"}

- ``id`` (string or integer, stored as a string; unique in the file) and ``phrase`` (non-empty string)
  are required; so is ``boxes``: a list of ``[x1, y1, x2, y2]`` corner boxes in original-image pixels,
  or one such box.
- ``image_size`` ``[W, H]``, ``category``, ``image`` and ``split`` are optional (absent or null).
- Any other field is kept in ``Sample.extra``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medground_eval.datasets._rows import box_problem, filter_split, parse_size, require_rows
from medground_eval.datasets.base import DataError, LoadedDataset, OnError, RowErrors, register_dataset
from medground_eval.datasets.textfile import loads, text_lines
from medground_eval.structures import Sample
from medground_eval.validation import is_coordinate

KNOWN_FIELDS = ("id", "phrase", "boxes", "image_size", "category", "image", "split")


def _optional_text(record: Mapping[str, object], name: str, path: str | Path | None, line: int | None) -> str | None:
    value = record.get(name)
    if value is not None and not isinstance(value, str):
        raise DataError(path, line, name, value, "a string or null")
    return value


def _parse_boxes(
    value: object, image_size: tuple[int, int] | None, path: str | Path | None, line: int | None
) -> tuple[list[float], int]:
    """``boxes`` (one box ``[x1, y1, x2, y2]`` or a non-empty list of them) as flat float coordinates and a count."""
    if isinstance(value, list) and len(value) == 4 and all(is_coordinate(v) for v in value):
        value = [value]
    if not isinstance(value, list) or not value:
        raise DataError(path, line, "boxes", value, "a non-empty list of [x1, y1, x2, y2] boxes, or one such box")
    coords: list[float] = []
    for index, box in enumerate(value):
        if not isinstance(box, list) or len(box) != 4 or not all(is_coordinate(v) for v in box):
            raise DataError(path, line, f"boxes[{index}]", box, "4 numbers [x1, y1, x2, y2] (finite numbers)")
        problem = box_problem(box, image_size)
        if problem is not None:
            raise DataError(path, line, f"boxes[{index}]", box, problem)
        coords += box
    return [float(v) for v in coords], len(value)


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """The validated known fields of one ground-truth line: box coordinates flat (``count`` boxes of 4 numbers,
    original pixels), the image size ``(W, H)`` or None."""

    id: str
    phrase: str
    coords: list[float]
    count: int
    image_size: tuple[int, int] | None
    category: str | None
    image: str | None
    split: str | None


def read_truth_record(record: object, *, path: str | Path | None, line: int | None) -> TruthRecord:
    """Validate one JSON object with the fields of the module docstring: the one rule for a jsonl ground-truth line
    (the loader's and the scorer's). Any invalid field raises :class:`DataError` naming ``path``, ``line``, the field
    and its value; fields outside :data:`KNOWN_FIELDS` are not looked at."""
    if not isinstance(record, Mapping):
        raise DataError(path, line, None, record, "a JSON object")
    sample_id = record.get("id")
    if isinstance(sample_id, bool) or not isinstance(sample_id, (str, int)) or sample_id == "":
        raise DataError(path, line, "id", sample_id, "a non-empty string or an integer")
    phrase = record.get("phrase")
    if not isinstance(phrase, str) or not phrase.strip():
        raise DataError(path, line, "phrase", phrase, "a non-empty string")
    size = record.get("image_size")
    image_size = None
    if size is not None:
        if not isinstance(size, list) or len(size) != 2:
            raise DataError(path, line, "image_size", size, "[W, H] in pixels")
        width, height = size
        if type(width) is int and type(height) is int and width > 0 and height > 0:
            image_size = (width, height)
        else:
            image_size = (parse_size(width, path=path, line=line, field="image_size[0]"),
                          parse_size(height, path=path, line=line, field="image_size[1]"))
    if "boxes" not in record:
        raise DataError(path, line, "boxes", None, "a non-empty list of [x1, y1, x2, y2] boxes (field missing)")
    coords, count = _parse_boxes(record["boxes"], image_size, path, line)
    return TruthRecord(
        str(sample_id), phrase, coords, count, image_size, _optional_text(record, "category", path, line),
        _optional_text(record, "image", path, line), _optional_text(record, "split", path, line),
    )


def sample_from_record(record: object, *, path: str | Path | None, line: int | None) -> Sample:
    """Build a :class:`Sample` from one JSON object with the fields of the module docstring.

    ``path`` and ``line`` only locate errors: any invalid field raises :class:`DataError` naming them,
    the field and its value (:func:`read_truth_record`). Fields outside :data:`KNOWN_FIELDS` go to ``Sample.extra``
    unchanged.
    """
    row = read_truth_record(record, path=path, line=line)
    return Sample(
        id=row.id,
        phrase=row.phrase,
        boxes=np.asarray(row.coords, dtype=np.float64).reshape(row.count, 4),
        image_size=row.image_size,
        category=row.category,
        image=row.image,
        split=row.split,
        extra={name: value for name, value in record.items() if name not in KNOWN_FIELDS},
    )


@register_dataset("jsonl")
def load_jsonl(path: str | Path, *, split: str | None = None, on_error: OnError = "raise") -> LoadedDataset:
    """Read a JSON-lines file (see the module docstring); blank lines are ignored.

    Line numbers in errors are 1-based. A repeated ``id`` is an error on the later line (under
    ``on_error="skip"`` the first occurrence is kept). ``split`` keeps the samples whose ``split`` equals
    it, and is an error when none does.
    """
    path = Path(path)
    errors = RowErrors(on_error)
    samples: list[Sample] = []
    first_line: dict[str, int] = {}
    for line, text in enumerate(text_lines(path, errors), start=1):
        if not text.strip():
            continue
        try:
            try:
                record = loads(text)
            except json.JSONDecodeError as error:
                expected = f"a JSON object ({error.msg}, column {error.colno})"
                raise DataError(path, line, None, text.strip(), expected) from None
            sample = sample_from_record(record, path=path, line=line)
            if sample.id in first_line:
                expected = f"a unique id (already used on line {first_line[sample.id]})"
                raise DataError(path, line, "id", sample.id, expected)
        except DataError as error:
            errors.handle(error)
            continue
        first_line[sample.id] = line
        samples.append(sample)
    require_rows(samples, errors, path, "sample line")
    return LoadedDataset("jsonl", filter_split(samples, split, path=path), errors.skipped)
