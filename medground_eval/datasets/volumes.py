"""Boxes of 3D label volumes and the 2D views of a 3D sample (M3D-RefSeg's geometry, no file reading).

- :func:`mask_box`, :func:`largest_slice_box`: tight boxes of a mask (upper bound exclusive) and of its largest slice.
- :func:`npy_crop_box`: the foreground crop of M3D's preprocessing (the ``input_size`` of the ``"m3d-npy"`` frame).
- :func:`voxel_box_to_mm`: voxel boxes to enclosing world boxes through a NIfTI affine.
- :func:`view_sample`: a 3D sample with the target of a 2D view (``VIEWS``), as the scorer and the export read it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from medground_eval.structures import Sample

VIEWS = ("volume", "slice", "projection")
"""What a sample's target is: its 3D box (``volume``) or one of its 2D views (see :func:`view_sample`)."""
_VIEW_KEYS = {"slice": "largest_slice", "projection": "axial_projection_box"}


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
