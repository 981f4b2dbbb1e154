"""MS-CXR (Boecking et al., 2022; PhysioNet, credentialed): phrase grounding on MIMIC-CXR chest X-rays.

A sample is one phrase on one image: all boxes that share ``(dicom_id, label_text)`` form its region.
Its id is ``f"{dicom_id}:{h}"`` where ``h`` is the first 12 hex digits of the SHA-256 of the UTF-8
phrase (stripped of surrounding whitespace): the id depends on nothing but the sample's own text, so
it is stable under row reordering and across v1.0.0 / v1.1.0.

Release files read (``--annotations`` may name one of them or the folder holding them; a folder is read
in the order of :data:`RELEASE_FILES`):

- ``MS_CXR_Local_Alignment_v1.1.0.csv`` / ``v1.0.0.csv``: columns :data:`CSV_COLUMNS` (v1.1.0 adds
  ``split``: train / val / test); ``x, y`` top-left corner and ``w, h`` size in pixels of the original image.
- the COCO-style JSON: ``images`` [{id, file_name, path?, width, height, dicom_id?, split?}],
  ``annotations`` [{image_id, bbox [x, y, w, h], category_id, label_text | phrase | caption, split?}],
  ``categories`` [{id, name}]. The image is the release's ``path`` (the same MIMIC-CXR path as the CSV's
  ``path`` column), ``file_name`` only where ``path`` is absent; ``dicom_id`` defaults to the stem of that
  image; the phrase is the first of ``label_text``, ``phrase``, ``caption`` present; ``split`` is the
  annotation's, else the image's.

Boxes: the CSV writes integer ``x, y, w, h`` (rounded: up to ~1.7 px from the JSON's floats); the JSON keeps the
floats. A folder holding both is read from the CSV (:data:`RELEASE_FILES` order), the file most published
numbers use; name the JSON with ``--annotations`` to score against the floats.

Phrase grouping (``phrase_case``): ``"exact"`` (default) groups rows by their stripped ``label_text`` exactly, so
two texts differing only in letter case on one image are two samples, as the release lists them; ``"fold"`` groups
by the case-folded, whitespace-collapsed text (one sample with the union of their boxes; the first row's text is
the phrase and the id hashes the folded text). docs/datasets.md gives the counts of both on a synthetic file.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
from pathlib import Path

from medground_eval.datasets._rows import (
    BoxRow,
    SampleGroups,
    box_problem,
    filter_split,
    parse_number,
    parse_size,
    require_rows,
)
from medground_eval.datasets.base import DataError, LoadedDataset, OnError, RowErrors, register_dataset
from medground_eval.datasets.textfile import loads, text_lines
from medground_eval.structures import Sample

CSV_COLUMNS = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height")
RELEASE_FILES = (
    "MS_CXR_Local_Alignment_v1.1.0.csv",
    "MS_CXR_Local_Alignment_v1.0.0.csv",
    "MS_CXR_Local_Alignment_v1.1.0.json",
    "MS_CXR_Local_Alignment_v1.0.0.json",
)
PHRASE_KEYS = ("label_text", "phrase", "caption")
PHRASE_CASES = ("exact", "fold")
# Fields every box of a sample must share, named as in error messages: image size, image path, category, split.
CSV_AGREE = ("image_width,image_height", "path", "category_name", "split")
JSON_AGREE = ("images.width,height", "images.path", "categories.name", "split")


def mscxr_sample_id(dicom_id: str, label_text: str) -> str:
    """``f"{dicom_id}:{first 12 hex digits of sha256(label_text.strip())}"``."""
    digest = hashlib.sha256(label_text.strip().encode("utf-8")).hexdigest()[:12]
    return f"{dicom_id}:{digest}"


def grouping_text(label_text: str, phrase_case: str) -> str:
    """What rows are grouped by: the stripped text (``"exact"``), or its case-folded form with runs of whitespace
    collapsed to one space (``"fold"``)."""
    text = label_text.strip()
    return text if phrase_case == "exact" else " ".join(text.casefold().split())


def release_file(path: str | Path) -> Path:
    """The annotation file to read: ``path`` itself, or the first of :data:`RELEASE_FILES` in the folder ``path``."""
    path = Path(path)
    if not path.is_dir():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such MS-CXR annotation file or folder")
        return path
    for name in RELEASE_FILES:
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"{path}: expected one of {list(RELEASE_FILES)} in this folder")


def _corner_box(
    xywh: list[float], image_size: tuple[int, int], path: Path, line: int | None, field: str
) -> tuple[float, float, float, float]:
    x, y, w, h = xywh
    if w < 0 or h < 0:
        raise DataError(path, line, field, xywh, "w >= 0 and h >= 0")
    box = (x, y, x + w, y + h)
    problem = box_problem(box, image_size)
    if problem is not None:
        raise DataError(path, line, field, xywh, f"x, y, w, h giving {problem}")
    return box


def _csv_rows(path: Path, groups: SampleGroups, phrases: dict, phrase_case: str) -> bool:
    """Add every CSV row to ``groups``; True when the file has a ``split`` column (v1.1.0)."""
    with contextlib.closing(text_lines(path, groups.errors)) as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        missing = [name for name in CSV_COLUMNS if name not in header]
        if missing:
            raise DataError(path, 1, "header", header, f"the MS-CXR columns {list(CSV_COLUMNS)} (missing {missing})")
        has_split = "split" in header
        index = {name: header.index(name) for name in (*CSV_COLUMNS, "split") if name in header}
        last_line = reader.line_num
        for cells in reader:
            line, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                groups.errors.handle(DataError(path, line, None, cells, f"{len(header)} fields as in the header"))
                continue
            value = {name: cells[i].strip() for name, i in index.items()}
            if not value["dicom_id"] or not value["label_text"]:
                empty = "dicom_id" if not value["dicom_id"] else "label_text"
                groups.errors.handle(DataError(path, line, empty, cells[index[empty]], "a non-empty string"))
                continue
            key = (value["dicom_id"], grouping_text(value["label_text"], phrase_case))
            phrases.setdefault(key, value["label_text"])
            try:
                size = (
                    parse_size(value["image_width"], path=path, line=line, field="image_width"),
                    parse_size(value["image_height"], path=path, line=line, field="image_height"),
                )
                xywh = [parse_number(value[name], path=path, line=line, field=name) for name in "xywh"]
                box = _corner_box(xywh, size, path, line, "x,y,w,h")
                if has_split and not value["split"]:
                    raise DataError(path, line, "split", cells[index["split"]], "a split name (train, val, test)")
            except DataError as error:
                groups.reject(key, error, f"line {line}")
                continue
            agree = dict(zip(CSV_AGREE, (size, value["path"], value["category_name"], value.get("split"))))
            groups.add(BoxRow(f"line {line}", line, key, box, agree))
    return has_split


def _entries(document: dict, name: str, path: Path) -> list:
    entries = document.get(name)
    if not isinstance(entries, list):
        raise DataError(path, None, name, entries, "a list (COCO-style MS-CXR JSON)")
    return entries


def _json_rows(path: Path, groups: SampleGroups, phrases: dict, phrase_case: str) -> bool:
    """Add every COCO annotation to ``groups``; True when any annotation or image carries a split."""
    text = "".join(text_lines(path, RowErrors("raise")))  # one document: any bad line is fatal
    try:
        document = loads(text)
    except json.JSONDecodeError as error:
        raise DataError(path, error.lineno, None, error.msg, "valid JSON") from None
    if not isinstance(document, dict):
        expected = "a JSON object with images, annotations, categories"
        raise DataError(path, None, None, type(document).__name__, expected)
    errors = groups.errors
    images: dict[object, dict] = {}
    for i, image in enumerate(_entries(document, "images", path)):
        where = f"images[{i}]"
        try:
            if not isinstance(image, dict) or "id" not in image:
                raise DataError(path, None, where, image, "an object with id, file_name, width, height")
            if image["id"] in images:
                raise DataError(path, None, f"{where}.id", image["id"], "a unique image id")
            file_name = image.get("file_name")
            if not isinstance(file_name, str) or not file_name:
                raise DataError(path, None, f"{where}.file_name", file_name, "a non-empty string")
            size = (
                parse_size(image.get("width"), path=path, line=None, field=f"{where}.width"),
                parse_size(image.get("height"), path=path, line=None, field=f"{where}.height"),
            )
        except DataError as error:
            errors.handle(error)
            continue
        image_path = image.get("path")
        if image_path is not None and (not isinstance(image_path, str) or not image_path):
            errors.handle(DataError(path, None, f"{where}.path", image_path, "a non-empty image path or no path key"))
            continue
        image_path = image_path or file_name
        dicom_id = image.get("dicom_id") or Path(image_path).stem
        split = image.get("split")
        images[image["id"]] = {"path": image_path, "size": size, "dicom_id": str(dicom_id), "split": split}
    categories: dict[object, str] = {}
    for i, category in enumerate(_entries(document, "categories", path)):
        if not isinstance(category, dict) or "id" not in category or not isinstance(category.get("name"), str):
            errors.handle(DataError(path, None, f"categories[{i}]", category, "an object with id and name"))
            continue
        categories[category["id"]] = category["name"]
    has_split = any(info["split"] is not None for info in images.values())
    for i, annotation in enumerate(_entries(document, "annotations", path)):
        where = f"annotations[{i}]"
        if not isinstance(annotation, dict):
            errors.handle(DataError(path, None, where, annotation, "an object"))
            continue
        image = images.get(annotation.get("image_id"))
        if image is None:
            field = f"{where}.image_id"
            errors.handle(DataError(path, None, field, annotation.get("image_id"), "the id of a valid image"))
            continue
        phrase_key = next((k for k in PHRASE_KEYS if k in annotation), None)
        phrase = annotation.get(phrase_key) if phrase_key else None
        if not isinstance(phrase, str) or not phrase.strip():
            field = f"{where}.{phrase_key or 'label_text'}"
            errors.handle(DataError(path, None, field, phrase, f"a non-empty phrase in one of {list(PHRASE_KEYS)}"))
            continue
        key = (image["dicom_id"], grouping_text(phrase, phrase_case))
        phrases.setdefault(key, phrase.strip())
        try:
            category = categories.get(annotation.get("category_id"))
            if category is None:
                field = f"{where}.category_id"
                raise DataError(path, None, field, annotation.get("category_id"), "the id of a valid category")
            bbox = annotation.get("bbox")
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise DataError(path, None, f"{where}.bbox", bbox, "[x, y, w, h]")
            xywh = [parse_number(v, path=path, line=None, field=f"{where}.bbox") for v in bbox]
            box = _corner_box(xywh, image["size"], path, None, f"{where}.bbox")
            split = annotation.get("split", image["split"])
            if split is not None and (not isinstance(split, str) or not split):
                raise DataError(path, None, f"{where}.split", split, "a split name (train, val, test) or null")
        except DataError as error:
            groups.reject(key, error, where)
            continue
        has_split = has_split or split is not None
        agree = dict(zip(JSON_AGREE, (image["size"], image["path"], category, split)))
        groups.add(BoxRow(where, None, key, box, agree))
    return has_split


@register_dataset("mscxr")
def load_mscxr(
    path: str | Path, *, split: str | None = None, on_error: OnError = "raise", phrase_case: str = "exact"
) -> LoadedDataset:
    """Read the MS-CXR release (CSV or COCO JSON; see the module docstring) into one sample per phrase and image.

    ``phrase_case`` (:data:`PHRASE_CASES`) decides whether texts differing only in letter case are one sample.

    Boxes of one sample must agree on image size, image path, category and split (error otherwise).
    ``split`` ("train", "val", "test") needs a release with splits (v1.1.0). Under ``on_error="skip"``
    a bad row drops its whole sample; every row left out is listed in ``skipped``.
    """
    if phrase_case not in PHRASE_CASES:
        raise ValueError(f"phrase_case={phrase_case!r}; expected one of {', '.join(PHRASE_CASES)}")
    file = release_file(path)
    errors = RowErrors(on_error)
    groups = SampleGroups(file, errors)
    is_json = file.suffix.lower() == ".json"
    phrases: dict[tuple[str, str], str] = {}
    read = _json_rows if is_json else _csv_rows
    has_split = read(file, groups, phrases, phrase_case)
    if split is not None and not has_split:
        raise DataError(file, None, "split", split, "a release with a split column (MS-CXR v1.1.0); use split=None")
    samples = []
    for (dicom_id, grouped), rows in groups:
        image_size, image, category, sample_split = (rows[0].agree[k] for k in (JSON_AGREE if is_json else CSV_AGREE))
        samples.append(
            Sample(
                id=mscxr_sample_id(dicom_id, grouped),
                phrase=phrases[(dicom_id, grouped)],
                boxes=[row.box for row in rows],
                image_size=image_size,
                category=category,
                image=image,
                split=sample_split,
                extra={"dicom_id": dicom_id},
            )
        )
    seen: dict[str, str] = {}
    for sample in samples:
        if sample.id in seen:
            expected = f"a phrase whose id differs from that of {seen[sample.id]!r} (id {sample.id})"
            raise DataError(file, None, "label_text", sample.phrase, expected)
        seen[sample.id] = sample.phrase
    require_rows(samples, errors, file, "annotation row")
    return LoadedDataset("mscxr", filter_split(samples, split, path=file), errors.skipped, groups.duplicates)
