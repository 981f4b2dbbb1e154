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
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Literal

import numpy as np

from medground_eval.datasets.base import DataError, LoadedDataset, OnError, RowErrors, register_dataset
from medground_eval.datasets.textfile import text_lines
from medground_eval.extras import requires
from medground_eval.structures import Sample

COLUMNS = ("Image", "Mask", "Mask_ID", "Question_Type", "Question", "Answer")
SPLITS = ("train", "test", "all")
VIEWS = ("volume", "slice", "projection")
"""What a sample's target is: its 3D box (``volume``) or one of its 2D views (see :func:`view_sample`)."""
_VIEW_KEYS = {"slice": "largest_slice", "projection": "axial_projection_box"}


def _nibabel() -> ModuleType:
    """The nibabel module, or an ImportError that says how to install it."""
    with requires("m3d", "reading M3D-RefSeg NIfTI volumes"):
        import nibabel
    return nibabel


def mask_box(mask: np.ndarray) -> np.ndarray:
    """Tight bounding box of the nonzero entries of an n-D mask, as int64 ``[lo_0..lo_n-1, hi_0..hi_n-1]``.

    Upper bounds are exclusive (``hi = last nonzero index + 1``): a 3D mask gives ``[x1, y1, z1, x2, y2, z2]``
    in its array axis order. Computed from one ``np.any`` profile per axis. An all-zero mask raises ValueError.
    """
    mask = np.asarray(mask, dtype=bool)
    lows, highs = [], []
    for axis in range(mask.ndim):
        profile = np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != axis))
        hits = np.flatnonzero(profile)
        if hits.size == 0:
            raise ValueError(f"mask of shape {mask.shape} has no nonzero entry: no bounding box")
        lows.append(hits[0])
        highs.append(hits[-1] + 1)
    return np.array(lows + highs, dtype=np.int64)


def largest_slice_box(mask: np.ndarray, axis: int = 2) -> tuple[int, np.ndarray]:
    """The slice along ``axis`` with the most nonzero voxels (lowest index on ties) and its 2D box.

    The box is :func:`mask_box` of that slice, in the order of the two remaining axes (``axis=2``: the axial
    slice ``mask[:, :, k]`` and ``[x1, y1, x2, y2]``). An all-zero 3D mask raises ValueError.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask has shape {mask.shape}: expected a 3D array")
    counts = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    if not counts.any():
        raise ValueError(f"mask of shape {mask.shape} has no nonzero entry: no largest slice")
    index = int(np.argmax(counts))
    return index, mask_box(np.take(mask, index, axis=axis))


NPY_CROP_PERCENTILE = 0.5
"""M3D's preprocessing maps this intensity percentile to 0 and crops to the voxels above it."""


def npy_crop_box(ct: np.ndarray) -> np.ndarray:
    """The foreground crop of M3D's preprocessing, as an int64 voxel box ``[x1, y1, z1, x2, y2, z2]``.

    ``m3d_refseg_data_prepare.py`` rescales the CT with ``ScaleIntensityRangePercentilesd(lower=0.5, upper=99.5,
    b_min=0, b_max=1, clip=True)`` and crops with ``CropForegroundd(source_key="image")`` (foreground: value > 0,
    margin 0), i.e. to the voxels strictly above the 0.5th percentile (linear interpolation, float32 as MONAI
    computes it). ``ct`` is the ``(X, Y, Z)`` array of ``get_fdata()``; the box is in its axes, upper bound
    exclusive, and is the ``input_size`` of the ``"m3d-npy"`` frame. A CT with no voxel above that percentile
    (a constant volume, which M3D's pipeline cannot resize either) raises ValueError.
    """
    values = np.asarray(ct, dtype=np.float32)
    if values.ndim != 3:
        raise ValueError(f"ct has shape {values.shape}: expected a 3D array")
    low = np.float32(np.percentile(values, NPY_CROP_PERCENTILE))
    foreground = values > low
    if not foreground.any():
        raise ValueError(f"ct has no voxel above its {NPY_CROP_PERCENTILE}th percentile ({low}): no foreground crop")
    return mask_box(foreground)


def voxel_box_to_mm(box: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Voxel boxes ``(6,)`` or ``(N, 6)`` (exclusive upper bound) -> enclosing world boxes in mm, same shape.

    nibabel's affine maps voxel *centres*: voxel ``i`` covers ``[i - 0.5, i + 0.5]`` in index coordinates, so
    the box ``[x1, x2)`` spans ``[x1 - 0.5, x2 - 0.5]``. Its 8 corners go through the affine and the result
    is their per-axis min / max, in the affine's world axes (RAS+ for NIfTI). For an axis-aligned affine the
    mm box has exactly the voxel box's volume times the voxel volume; for an oblique one it encloses it.
    """
    boxes = np.asarray(box, dtype=np.float64)
    single = boxes.ndim == 1
    boxes = np.atleast_2d(boxes)
    if boxes.shape[-1] != 6:
        raise ValueError(f"box has shape {np.shape(box)}: expected (6,) or (N, 6)")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine has shape {affine.shape}: expected (4, 4)")
    low, high = boxes[:, :3] - 0.5, boxes[:, 3:] - 0.5
    choose = np.array([[(c >> a) & 1 for a in range(3)] for c in range(8)], dtype=bool)  # (8, 3)
    corners = np.where(choose[None], high[:, None, :], low[:, None, :])  # (N, 8, 3)
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    result = np.concatenate([world.min(axis=1), world.max(axis=1)], axis=1)
    return result[0] if single else result


@dataclass(frozen=True)
class _Region:
    """What a sample needs from one ``mask == Mask_ID`` region."""

    box: np.ndarray  # (6,) int64
    largest_slice: tuple[int, list[int]]
    projection_box: list[int]


@dataclass(frozen=True)
class _Case:
    """One mask file read once: the CT geometry, the regions of every requested id, the descriptions."""

    image_size: tuple[int, int, int]
    affine: np.ndarray | None  # None: M3D's npy layout (no geometry)
    axcodes: tuple[str, ...] | None
    regions: dict[int, _Region | None]  # None: no voxel carries the id
    texts: dict[str, str]
    mask_path: Path
    text_path: Path
    npy_crop: list[int] | None  # npy_crop_box of the CT, when asked for


@dataclass(frozen=True)
class _CaseFailure:
    """Why a case could not be read; every row of the case reports it with its own line."""

    field: str
    value: object
    expected: str


def _region(label: np.ndarray) -> _Region:
    """Box and 2D views of a non-empty boolean 3D region (views computed on the box crop, then shifted)."""
    box = mask_box(label)
    x1, y1, z1, x2, y2, z2 = box
    crop = label[x1:x2, y1:y2, z1:z2]
    shift = np.array([x1, y1, x1, y1])
    k, slice_box = largest_slice_box(crop, axis=2)
    projection = mask_box(crop.any(axis=2)) + shift
    return _Region(box, (int(k + z1), (slice_box + shift).tolist()), projection.tolist())


def view_sample(sample: Sample, view: str) -> Sample:
    """``sample`` with the target of ``view``: ``"volume"`` returns it unchanged; ``"slice"`` gives the 2D box of
    ``extra["largest_slice"]`` (the slice index itself is not part of the box), ``"projection"`` the box of
    ``extra["axial_projection_box"]``, both with ``image_size`` ``(X, Y)``. ValueError for an unknown view, or a
    sample without that view (not a 3D sample, or loaded with ``with_views=False``)."""
    if view not in VIEWS:
        raise ValueError(f"view = {view!r}: expected one of {', '.join(VIEWS)}")
    if view == "volume":
        return sample
    key = _VIEW_KEYS[view]
    if sample.dims != 3 or key not in sample.extra:
        raise ValueError(f"sample {sample.id!r} has no {view} view (extra[{key!r}]): views exist for the 3D samples "
                         "of m3d-refseg loaded with with_views=True")
    value = sample.extra[key]
    box = value[1] if view == "slice" else value
    size = None if sample.image_size is None else sample.image_size[:2]
    return dataclasses.replace(sample, boxes=np.asarray([box], dtype=np.float64), image_size=size)


def _read_texts(text_path: Path) -> dict[str, str] | _CaseFailure:
    expected = f"a JSON object mapping mask ids to descriptions at {text_path}"
    try:
        texts = json.loads(text_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _CaseFailure("Mask", str(text_path), expected + " (file not found)")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return _CaseFailure("Mask", str(text_path), f"{expected} (invalid JSON: {error})")
    if not isinstance(texts, dict):
        return _CaseFailure("Mask", str(text_path), f"{expected} (found {type(texts).__name__})")
    return {str(key): value for key, value in texts.items()}


def _load_case(bases: tuple[Path, ...], image: str, mask: str, ids: set[int], npy_crop: bool) -> _Case | _CaseFailure:
    """Read the CT header (its data too with ``npy_crop``), the mask (once) and text.json; compute the region of
    every id in ``ids``. Paths are resolved against ``bases``; ``.npy`` files are M3D's layout."""
    paths = []
    for field, written in (("Image", image), ("Mask", mask)):
        path, looked = _resolve(bases, written)
        if path is None:
            return _CaseFailure(field, written, "an existing NIfTI or .npy file (looked for "
                                + ", ".join(str(p) for p in looked) + ")")
        paths.append(path)
    ct_path, mask_path = paths
    if ct_path.suffix == ".npy" or mask_path.suffix == ".npy":
        if npy_crop:
            return _CaseFailure("Image", image, "a NIfTI CT for the m3d-npy frame's crop box (the npy layout is "
                                "already cropped and resized: score it with --frame pixel)")
        return _load_npy_case(ct_path, mask_path, image, mask, ids)
    nib = _nibabel()
    text_path = mask_path.parent / "text.json"
    texts = _read_texts(text_path)
    if isinstance(texts, _CaseFailure):
        return texts
    volumes = []
    for field, _written, path in (("Image", image, ct_path), ("Mask", mask, mask_path)):
        try:
            volumes.append(nib.load(path))
        except Exception as error:  # nibabel raises several types for unreadable files
            return _CaseFailure(field, str(path), f"a readable NIfTI file ({type(error).__name__}: {error})")
    ct, mask_image = volumes
    if len(ct.shape) != 3:
        return _CaseFailure("Image", image, f"a 3D volume ({ct_path} has shape {ct.shape})")
    if mask_image.shape != ct.shape:
        return _CaseFailure("Mask", mask, f"a mask of the CT's shape {ct.shape} ({mask_path} has {mask_image.shape})")
    try:
        labels = np.asanyarray(mask_image.dataobj)
    except Exception as error:  # a truncated or corrupt data block only fails when read
        return _CaseFailure("Mask", mask, f"a readable NIfTI file ({mask_path}: {type(error).__name__}: {error})")
    regions: dict[int, _Region | None] = {}
    for mask_id in sorted(ids):
        region = labels == mask_id
        regions[mask_id] = _region(region) if region.any() else None
    crop = None
    if npy_crop:
        try:
            crop = npy_crop_box(ct.get_fdata(dtype=np.float32)).tolist()
        except ValueError as error:
            return _CaseFailure("Image", image, f"a CT with a foreground for M3D's crop ({ct_path}: {error})")
        except Exception as error:  # a truncated or corrupt data block only fails when read
            return _CaseFailure("Image", image, f"a readable NIfTI file ({ct_path}: {type(error).__name__}: {error})")
    affine = np.array(ct.affine, dtype=np.float64)
    affine.setflags(write=False)
    return _Case(tuple(int(n) for n in ct.shape), affine, tuple(nib.aff2axcodes(affine)), regions, texts,
                 mask_path, text_path, crop)


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


def _resolve(bases: tuple[Path, ...], written: str) -> tuple[Path | None, list[Path]]:
    """The first existing file for a row's path (``.nii.gz`` falls back to the ``.npy`` beside it), and every
    candidate looked at."""
    looked: list[Path] = []
    names = [written]
    if written.endswith(".nii.gz"):
        names.append(written[: -len(".nii.gz")] + ".npy")
    for base in bases:
        for name in names:
            path = base / name
            looked.append(path)
            if path.is_file():
                return path, looked
    return None, looked


def _load_npy_case(ct_path: Path, mask_path: Path, image: str, mask: str, ids: set[int]) -> _Case | _CaseFailure:
    """A case of M3D's npy layout: ``(1, D, H, W)`` arrays; regions in the npy grid, axes reordered to (H, W, D)."""
    text_path = mask_path.parent / "text.json"
    texts = _read_texts(text_path)
    if isinstance(texts, _CaseFailure):
        return texts
    arrays = []
    for field, written, path in (("Image", image, ct_path), ("Mask", mask, mask_path)):
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as error:  # numpy raises several types for unreadable files
            return _CaseFailure(field, str(path), f"a readable .npy array ({type(error).__name__}: {error})")
        if array.ndim == 4 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 3:
            return _CaseFailure(field, written, f"a (1, D, H, W) array as M3D writes it ({path} has {array.shape})")
        arrays.append(array)
    ct, labels = arrays
    if labels.shape != ct.shape:
        return _CaseFailure("Mask", mask, f"a mask of the CT's shape {ct.shape} ({mask_path} has {labels.shape})")
    labels = np.transpose(np.asarray(labels), (1, 2, 0))  # (D, H, W) -> (H, W, D): x, y, z of the original axes
    regions = {i: (_region(labels == i) if (labels == i).any() else None) for i in sorted(ids)}
    return _Case(tuple(int(n) for n in labels.shape), None, None, regions, texts, mask_path, text_path, None)


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

    cases: dict[str, _Case | _CaseFailure] = {}
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
            cases[mask] = _load_case(bases, row["Image"], mask, wanted[mask], npy_crop)
        case = cases[mask]
        if isinstance(case, _CaseFailure):
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
