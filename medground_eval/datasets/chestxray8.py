"""ChestX-ray8 bounding boxes (NIH Clinical Center, Wang et al., CVPR 2017): ``BBox_List_2017.csv``.

Each row is one box: image name, finding label, then ``x, y, w, h`` (top-left corner and size in pixels
of the 1024x1024 image). Fields 0..5 are read by position, so header spellings do not matter; fields
after the sixth must be empty (the NIH header ends in three empty fields). Line 1 is the header unless
its fields 2..5 are numbers.

A sample is one finding on one image, id ``f"{image}:{label}"``; boxes of the same image and label form
one region (the public file has none: 984 boxes give 984 samples on 880 images). ``category`` is the label
verbatim ("Infiltrate" stays "Infiltrate", though NIH's label file spells it "Infiltration").
The phrase comes from ``phrase_template`` with ``{label}`` (verbatim), ``{label_lower}`` (lower case) and
``{finding}`` (radiology wording from :data:`FINDING_TEXT`, e.g. "pleural effusion").
All boxed images are in the official NIH test list, so every sample has ``split="test"``.
"""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

from medground_eval.datasets._rows import BoxRow, SampleGroups, box_problem, parse_number, require_rows
from medground_eval.datasets.base import DataError, LoadedDataset, OnError, RowErrors, register_dataset
from medground_eval.datasets.textfile import text_lines
from medground_eval.structures import Sample

IMAGE_SIZE = (1024, 1024)
FIELDS = ("Image Index", "Finding Label", "x", "y", "w", "h")
FINDING_TEXT = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Effusion": "pleural effusion",
    "Infiltrate": "pulmonary infiltrate",
    "Mass": "mass",
    "Nodule": "nodule",
    "Pneumonia": "pneumonia",
    "Pneumothorax": "pneumothorax",
}
"""Wording for ``{finding}``; a label not listed here uses its lower-case form."""


def chestxray8_phrase(label: str, template: str = "{label}") -> str:
    """The phrase for ``label``: ``template`` formatted with ``label``, ``label_lower`` and ``finding``."""
    return template.format(label=label, label_lower=label.lower(), finding=FINDING_TEXT.get(label, label.lower()))


def _field(index: int) -> str:
    return f"{FIELDS[index]} (field {index})"


def _is_header(cells: list[str]) -> bool:
    try:
        [float(cell) for cell in cells[2:6]]
    except ValueError:
        return True
    return len(cells) < 6


def _box(cells: list[str], path: Path, line: int) -> tuple[float, float, float, float]:
    if len(cells) < 6:
        raise DataError(path, line, None, cells, "6 fields: image, label, x, y, w, h")
    if any(cell.strip() for cell in cells[6:]):
        raise DataError(path, line, None, cells, "6 fields: image, label, x, y, w, h (fields after the sixth empty)")
    for index in (0, 1):
        if not cells[index].strip():
            raise DataError(path, line, _field(index), cells[index], "a non-empty string")
    x, y, w, h = (parse_number(cells[i], path=path, line=line, field=_field(i)) for i in range(2, 6))
    if w < 0 or h < 0:
        raise DataError(path, line, "w, h", [w, h], "w >= 0 and h >= 0")
    box = (x, y, x + w, y + h)
    problem = box_problem(box, IMAGE_SIZE)
    if problem is not None:
        raise DataError(path, line, "x, y, w, h", [x, y, w, h], problem)
    return box


@register_dataset("chestxray8")
def load_chestxray8(
    path: str | Path,
    *,
    split: str | None = None,
    on_error: OnError = "raise",
    phrase_template: str = "{label}",
) -> LoadedDataset:
    """Read ``BBox_List_2017.csv`` (see the module docstring); blank rows are ignored.

    ``split`` may be None or "test" (the only split with boxes). ``phrase_template`` is a ``str.format``
    template over ``{label}``, ``{label_lower}``, ``{finding}``, e.g. "Findings suggesting {finding}.".
    """
    if split not in (None, "test"):
        raise ValueError(f"split = {split!r}: expected None or 'test' (all ChestX-ray8 boxes are on test images)")
    try:
        chestxray8_phrase("Mass", phrase_template)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"phrase_template = {phrase_template!r}: expected a str.format template over "
            f"{{label}}, {{label_lower}}, {{finding}} ({type(error).__name__}: {error})"
        ) from None
    path = Path(path)
    errors = RowErrors(on_error)
    groups = SampleGroups(path, errors)
    with contextlib.closing(text_lines(path, errors)) as handle:
        reader = csv.reader(handle)
        last_line = 0
        for cells in reader:
            line, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in cells) or (line == 1 and _is_header(cells)):
                continue
            image, label = cells[0].strip(), cells[1].strip() if len(cells) > 1 else ""
            try:
                box = _box(cells, path, line)
            except DataError as error:
                if image and label:
                    groups.reject((image, label), error, f"line {line}")
                else:
                    errors.handle(error)
                continue
            groups.add(BoxRow(f"line {line}", line, (image, label), box))
    samples = [
        Sample(
            id=f"{image}:{label}",
            phrase=chestxray8_phrase(label, phrase_template),
            boxes=[row.box for row in rows],
            image_size=IMAGE_SIZE,
            category=label,
            image=image,
            split="test",
        )
        for (image, label), rows in groups
    ]
    require_rows(samples, errors, path, "box row (Image Index, Finding Label, x, y, w, h)")
    return LoadedDataset("chestxray8", samples, errors.skipped, groups.duplicates)
