"""Reading one M3D-RefSeg case (a CT, its label volume and ``text.json``) once, for every mask id asked of it.

NIfTI volumes (the release) through nibabel (the optional extra ``m3d``, imported only when a volume is read) or
M3D's ``.npy`` training layout; a case that cannot be read is a :class:`CaseFailure` value that every row of the case
reports with its own line (the loader, :func:`medground_eval.datasets.m3d_refseg.load_m3d_refseg`, does that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from medground_eval.datasets.volumes import largest_slice_box, mask_box, npy_crop_box
from medground_eval.extras import requires


def _nibabel() -> ModuleType:
    """The nibabel module, or an ImportError that says how to install it."""
    with requires("m3d", "reading M3D-RefSeg NIfTI volumes"):
        import nibabel
    return nibabel


@dataclass(frozen=True)
class _Region:
    """What a sample needs from one ``mask == Mask_ID`` region."""

    box: np.ndarray  # (6,) int64
    largest_slice: tuple[int, list[int]]
    projection_box: list[int]


@dataclass(frozen=True)
class Case:
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
class CaseFailure:
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


def _read_texts(text_path: Path) -> dict[str, str] | CaseFailure:
    expected = f"a JSON object mapping mask ids to descriptions at {text_path}"
    try:
        texts = json.loads(text_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return CaseFailure("Mask", str(text_path), expected + " (file not found)")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return CaseFailure("Mask", str(text_path), f"{expected} (invalid JSON: {error})")
    if not isinstance(texts, dict):
        return CaseFailure("Mask", str(text_path), f"{expected} (found {type(texts).__name__})")
    return {str(key): value for key, value in texts.items()}


def load_case(bases: tuple[Path, ...], image: str, mask: str, ids: set[int], npy_crop: bool) -> Case | CaseFailure:
    """Read the CT header (its data too with ``npy_crop``), the mask (once) and text.json; compute the region of
    every id in ``ids``. Paths are resolved against ``bases``; ``.npy`` files are M3D's layout."""
    paths = []
    for field, written in (("Image", image), ("Mask", mask)):
        path, looked = _resolve(bases, written)
        if path is None:
            return CaseFailure(field, written, "an existing NIfTI or .npy file (looked for "
                                + ", ".join(str(p) for p in looked) + ")")
        paths.append(path)
    ct_path, mask_path = paths
    if ct_path.suffix == ".npy" or mask_path.suffix == ".npy":
        if npy_crop:
            return CaseFailure("Image", image, "a NIfTI CT for the m3d-npy frame's crop box (the npy layout is "
                                "already cropped and resized: score it with --frame pixel)")
        return _load_npy_case(ct_path, mask_path, image, mask, ids)
    nib = _nibabel()
    text_path = mask_path.parent / "text.json"
    texts = _read_texts(text_path)
    if isinstance(texts, CaseFailure):
        return texts
    volumes = []
    for field, _written, path in (("Image", image, ct_path), ("Mask", mask, mask_path)):
        try:
            volumes.append(nib.load(path))
        except Exception as error:  # nibabel raises several types for unreadable files
            return CaseFailure(field, str(path), f"a readable NIfTI file ({type(error).__name__}: {error})")
    ct, mask_image = volumes
    if len(ct.shape) != 3:
        return CaseFailure("Image", image, f"a 3D volume ({ct_path} has shape {ct.shape})")
    if mask_image.shape != ct.shape:
        return CaseFailure("Mask", mask, f"a mask of the CT's shape {ct.shape} ({mask_path} has {mask_image.shape})")
    try:
        labels = np.asanyarray(mask_image.dataobj)
    except Exception as error:  # a truncated or corrupt data block only fails when read
        return CaseFailure("Mask", mask, f"a readable NIfTI file ({mask_path}: {type(error).__name__}: {error})")
    regions: dict[int, _Region | None] = {}
    for mask_id in sorted(ids):
        region = labels == mask_id
        regions[mask_id] = _region(region) if region.any() else None
    crop = None
    if npy_crop:
        try:
            crop = npy_crop_box(ct.get_fdata(dtype=np.float32)).tolist()
        except ValueError as error:
            return CaseFailure("Image", image, f"a CT with a foreground for M3D's crop ({ct_path}: {error})")
        except Exception as error:  # a truncated or corrupt data block only fails when read
            return CaseFailure("Image", image, f"a readable NIfTI file ({ct_path}: {type(error).__name__}: {error})")
    affine = np.array(ct.affine, dtype=np.float64)
    affine.setflags(write=False)
    return Case(tuple(int(n) for n in ct.shape), affine, tuple(nib.aff2axcodes(affine)), regions, texts,
                 mask_path, text_path, crop)


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


def _load_npy_case(ct_path: Path, mask_path: Path, image: str, mask: str, ids: set[int]) -> Case | CaseFailure:
    """A case of M3D's npy layout: ``(1, D, H, W)`` arrays; regions in the npy grid, axes reordered to (H, W, D)."""
    text_path = mask_path.parent / "text.json"
    texts = _read_texts(text_path)
    if isinstance(texts, CaseFailure):
        return texts
    arrays = []
    for field, written, path in (("Image", image, ct_path), ("Mask", mask, mask_path)):
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as error:  # numpy raises several types for unreadable files
            return CaseFailure(field, str(path), f"a readable .npy array ({type(error).__name__}: {error})")
        if array.ndim == 4 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 3:
            return CaseFailure(field, written, f"a (1, D, H, W) array as M3D writes it ({path} has {array.shape})")
        arrays.append(array)
    ct, labels = arrays
    if labels.shape != ct.shape:
        return CaseFailure("Mask", mask, f"a mask of the CT's shape {ct.shape} ({mask_path} has {labels.shape})")
    labels = np.transpose(np.asarray(labels), (1, 2, 0))  # (D, H, W) -> (H, W, D): x, y, z of the original axes
    regions = {i: (_region(labels == i) if (labels == i).any() else None) for i in sorted(ids)}
    return Case(tuple(int(n) for n in labels.shape), None, None, regions, texts, mask_path, text_path, None)
