"""M3D-RefSeg: 3D referring-expression grounding on CT volumes (dataset card ``GoodBaiBai88/M3D-RefSeg``).

Layouts read (:func:`find_layout`; ``data_dir`` may be the release root or its case folder):

- **the release as published** (HF ``GoodBaiBai88/M3D-RefSeg``: ``M3D_RefSeg_{all,train,test}.csv`` at the root
  beside ``M3D_RefSeg.zip``, which unpacks to the case folder ``M3D_RefSeg/``)::

    M3D_RefSeg_all.csv, M3D_RefSeg_train.csv, M3D_RefSeg_test.csv
        columns Image, Mask, Mask_ID, Question_Type, Question, Answer
    M3D_RefSeg/s0000/ct.nii.gz     the CT volume
    M3D_RefSeg/s0000/mask.nii.gz   one label volume per case; a row's region is ``mask == Mask_ID``
    M3D_RefSeg/s0000/text.json     {"<mask id>": "<description of that region>", ...}

- the same with the case folders directly beside the CSVs (``s0000/ct.nii.gz``);
- **M3D's training layout** (BAAI-DCAI/M3D ``Data/process/m3d_refseg_data_prepare.py`` writes
  ``M3D_RefSeg_npy/<case>/ct.npy``, ``mask.npy`` and a copy of ``text.json``; ``LaMed/src/train/train.py``
  lists it with ``M3D_RefSeg_npy/M3D_RefSeg.csv`` (train) and ``M3D_RefSeg_npy/M3D_RefSeg_test.csv``, and
  ``LaMed/src/dataset/multi_dataset.py`` ``RefSegDataset`` reads ``np.load(data_root / Image)`` and
  ``mask == Mask_ID``). Each array is ``1 x 32 x 256 x 256`` = ``(C, D, H, W)``, D along the original z, H along
  x, W along y (the prepare script transposes ``(2, 0, 1)``). An Image / Mask cell naming ``ct.nii.gz`` /
  ``mask.nii.gz`` is read from the ``.npy`` beside it when only that exists.

A row's Image / Mask path is resolved against the CSV's folder, then ``M3D_RefSeg/``, then ``M3D_RefSeg_npy/``
under it, then ``data_dir``; a path found in none of them names every file looked for.

One CSV row gives one :class:`~medground_eval.structures.Sample`:

- ``id``: ``"{case}/{Mask_ID}/{h}"`` where ``case`` is the folder of ``Mask`` (``s0000``) and ``h`` the first
  8 hex digits of the SHA-1 of ``Question``; the id is therefore the same in the ``all`` and in the
  ``train``/``test`` listings. A repeated (case, Mask_ID, Question) in one listing gets ``~2``, ``~3``... in
  file order, so ids never collide.
- ``phrase``: the ``text.json`` description of the mask id (the physicians' referring expression). Rows that
  share a mask share this phrase; the LLM-generated ``Question`` / ``Answer`` are kept in ``extra``.
- ``boxes``: one 3D box ``[x1, y1, z1, x2, y2, z2]``, the tight bounding box of every voxel with
  ``mask == Mask_ID`` (all connected components together), in voxel indices of the original volume, upper
  bound exclusive (``x2`` = last index + 1), so a box filled by the region has volume = voxel count.
  ``x, y, z`` are the array axes ``i, j, k`` of nibabel's ``get_fdata()``; nothing is reoriented.
- ``image_size``: the CT shape ``(X, Y, Z)``; ``image``: the ``Image`` path as written in the CSV;
  **npy layout**: boxes and ``image_size`` ``(256, 256, 32)`` are in the npy grid, reordered to ``x, y, z``
  (``[h1, w1, d1, h2, w2, d2]``), ``extra["grid"] = "m3d-npy"``; there is no affine (``affine`` and ``axcodes``
  None) and no original voxel size, so score such predictions with ``--frame pixel`` written in that order;
  ``category``: ``Question_Type``; ``split``: the listing read (``"train"``, ``"test"`` or ``"all"``).
- ``extra``: ``case``, ``mask`` (the ``Mask`` path), ``mask_id``, ``question``, ``answer``, ``question_type``,
  ``affine`` (read-only 4x4 voxel-to-mm matrix of the CT), ``axcodes`` (nibabel's anatomical direction of
  each axis, e.g. ``("L", "P", "S")``) and, with ``with_views``, ``largest_slice`` and
  ``axial_projection_box`` (see :func:`load_m3d_refseg`); with ``npy_crop``, ``npy_crop_box`` (see
  :func:`npy_crop_box`), the ``input_size`` of the ``"m3d-npy"`` frame.

Reading volumes needs the optional extra ``m3d`` (nibabel), imported only when a volume is read.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
from pathlib import Path, PurePosixPath
from typing import Literal

from medground_eval.datasets.base import DataError, LoadedDataset, OnError, RowErrors, register_dataset
from medground_eval.datasets.m3d_cases import Case, CaseFailure, load_case
from medground_eval.datasets.textfile import text_lines
from medground_eval.datasets.volumes import (  # noqa: F401  (re-exported: their import path of before)
    NPY_CROP_PERCENTILE,
    VIEWS,
    largest_slice_box,
    mask_box,
    npy_crop_box,
    view_sample,
    voxel_box_to_mm,
)
from medground_eval.structures import Sample

COLUMNS = ("Image", "Mask", "Mask_ID", "Question_Type", "Question", "Answer")
SPLITS = ("train", "test", "all")


LISTING_NAMES = {
    "all": ("M3D_RefSeg_all.csv",),
    "train": ("M3D_RefSeg_train.csv", "M3D_RefSeg.csv"),
    "test": ("M3D_RefSeg_test.csv",),
}
"""Listing file names per split: the release's ``M3D_RefSeg_{split}.csv``; M3D's train.py names the npy training
listing ``M3D_RefSeg.csv``."""

CASE_FOLDERS = ("", "M3D_RefSeg", "M3D_RefSeg_npy")
"""Folders, relative to the listing's, against which a row's Image / Mask path is resolved (in this order)."""


def find_layout(data_dir: str | Path, split: str) -> tuple[Path, tuple[Path, ...]]:
    """The listing CSV of ``split`` and the folders a row's paths are resolved against.

    Looked for, in order: ``data_dir``, ``data_dir/M3D_RefSeg_npy`` (M3D's layout inside the root) and the parent
    of ``data_dir`` (``data_dir`` is the case folder ``M3D_RefSeg/`` of the release). FileNotFoundError names every
    file looked for when none exists.
    """
    data_dir = Path(data_dir)
    looked: list[Path] = []
    for folder in (data_dir, data_dir / "M3D_RefSeg_npy", data_dir.parent):
        for name in LISTING_NAMES[split]:
            path = folder / name
            looked.append(path)
            if path.is_file():
                bases = [folder / sub for sub in CASE_FOLDERS]
                if data_dir not in bases:
                    bases.append(data_dir)
                return path, tuple(bases)
    raise FileNotFoundError(
        f"{data_dir}: no M3D-RefSeg {split} listing; looked for " + ", ".join(str(p) for p in looked)
        + ". Expected the release root (M3D_RefSeg_{all,train,test}.csv beside M3D_RefSeg/), its case folder "
        "M3D_RefSeg/, or M3D's M3D_RefSeg_npy/ (M3D_RefSeg.csv, M3D_RefSeg_test.csv)"
    )


def _parse_mask_id(value: str) -> int | None:
    """A positive integer id ("3" or "3.0"), else None."""
    try:
        number = float(value)
    except ValueError:
        return None
    if not number.is_integer() or number <= 0:
        return None
    return int(number)


def _read_listing(csv_path: Path, errors: RowErrors) -> list[tuple[int, dict[str, str]]]:
    """Rows of a listing CSV (UTF-8, with or without a byte order mark; ``.gz`` read) with the line each ends on; a
    missing file or column raises at once; an undecodable line goes to ``errors``."""
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"{csv_path}: M3D-RefSeg listing not found; expected a data dir holding M3D_RefSeg_{{all,train,test}}.csv"
        )
    with contextlib.closing(text_lines(csv_path, errors)) as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(csv_path, 1, None, reader.fieldnames, f"columns {', '.join(COLUMNS)} (missing {missing})")
        return [(reader.line_num, row) for row in reader]


def _cell_error(csv_path: Path, line: int, row: dict[str | None, object]) -> DataError | None:
    """A row with fewer cells than the header, or non-empty cells past its last column (an unquoted comma), else
    None."""
    missing = any(row.get(column) is None for column in COLUMNS)
    extra = [cell for cell in row.get(None) or [] if str(cell).strip()]
    if not missing and not extra:
        return None
    cells = [value for key, value in row.items() if key is not None and value is not None] + list(row.get(None) or [])
    found = "fewer cells than the header" if missing else "more cells than the header (an unquoted comma?)"
    return DataError(csv_path, line, None, cells, f"one cell per column of the header; the row has {found}")


def _sample_id(case: str, mask_id: int, question: str, seen: dict[str, int]) -> str:
    base = f"{case}/{mask_id}/{hashlib.sha1(question.encode('utf-8')).hexdigest()[:8]}"
    seen[base] = seen.get(base, 0) + 1
    return base if seen[base] == 1 else f"{base}~{seen[base]}"


@register_dataset("m3d-refseg")
def load_m3d_refseg(
    data_dir: str | Path,
    split: Literal["train", "test", "all"] | None = "test",
    *,
    on_error: OnError = "raise",
    with_views: bool = True,
    npy_crop: bool = False,
) -> LoadedDataset:
    """Load ``M3D_RefSeg_{split}.csv`` under ``data_dir``: one 3D-box sample per row (see the module doc).

    ``split`` picks the listing; None (what a generic caller passes for "no split") means ``"test"``.
    Each mask file is read once per call, and the region of every id it is asked for is computed then.
    With ``with_views``, ``extra`` also holds ``largest_slice = (k, [x1, y1, x2, y2])``, the axial slice
    ``mask[:, :, k]`` with the most region voxels (lowest ``k`` on ties) and the region's box on it, and
    ``axial_projection_box = [x1, y1, x2, y2]``, the box of the region projected along z. With ``npy_crop``
    (reads every CT's data, not only its header), ``extra["npy_crop_box"]`` is :func:`npy_crop_box` of the CT:
    the ``input_size`` that maps boxes of the ``"m3d-npy"`` frame back to original voxels.

    Row errors (too few or too many cells, bad Mask_ID, missing or unreadable CT / mask / text.json, no
    description for the id, no voxel with the id) raise :class:`DataError` naming the CSV line, or are recorded
    in ``skipped`` under ``on_error="skip"``. A missing listing or column raises whatever ``on_error``.
    """
    split = "test" if split is None else split
    if split not in SPLITS:
        raise ValueError(f"split = {split!r}: expected one of {SPLITS}")
    csv_path, bases = find_layout(data_dir, split)
    errors = RowErrors(on_error)
    rows = _read_listing(csv_path, errors)
    malformed = {line: error for line, row in rows if (error := _cell_error(csv_path, line, row)) is not None}

    wanted: dict[str, set[int]] = {}
    for line, row in rows:
        if line in malformed:
            continue
        mask_id = _parse_mask_id(row["Mask_ID"])
        if mask_id is not None:
            wanted.setdefault(row["Mask"], set()).add(mask_id)

    cases: dict[str, Case | CaseFailure] = {}
    seen: dict[str, int] = {}
    samples: list[Sample] = []
    for line, row in rows:
        if line in malformed:
            errors.handle(malformed[line])
            continue
        mask_id = _parse_mask_id(row["Mask_ID"])
        if mask_id is None:
            errors.handle(DataError(csv_path, line, "Mask_ID", row["Mask_ID"], "a positive integer label id"))
            continue
        mask = row["Mask"]
        if mask not in cases:
            cases[mask] = load_case(bases, row["Image"], mask, wanted[mask], npy_crop)
        case = cases[mask]
        if isinstance(case, CaseFailure):
            errors.handle(DataError(csv_path, line, case.field, case.value, case.expected))
            continue
        text = case.texts.get(str(mask_id))
        if not isinstance(text, str) or not text.strip():
            errors.handle(DataError(csv_path, line, "Mask_ID", mask_id,
                                    f"an id with a non-empty description in {case.text_path} (found {text!r})"))
            continue
        region = case.regions[mask_id]
        if region is None:
            errors.handle(DataError(csv_path, line, "Mask_ID", mask_id,
                                    f"a label present in {case.mask_path} (no voxel has it)"))
            continue
        case_name = PurePosixPath(mask).parent.as_posix()
        extra: dict[str, object] = {
            "case": case_name,
            "mask": mask,
            "mask_id": mask_id,
            "question": row["Question"],
            "answer": row["Answer"],
            "question_type": row["Question_Type"],
            "affine": case.affine,
            "axcodes": case.axcodes,
        }
        if with_views:
            extra["largest_slice"] = (region.largest_slice[0], list(region.largest_slice[1]))
            extra["axial_projection_box"] = list(region.projection_box)
        if case.npy_crop is not None:
            extra["npy_crop_box"] = list(case.npy_crop)
        if case.affine is None:
            extra["grid"] = "m3d-npy"
        samples.append(
            Sample(
                id=_sample_id(case_name, mask_id, row["Question"], seen),
                phrase=text.strip(),
                boxes=region.box[None, :],
                image_size=case.image_size,
                category=row["Question_Type"] or None,
                image=row["Image"],
                split=split,
                extra=extra,
            )
        )
    return LoadedDataset("m3d-refseg", samples, errors.skipped)
