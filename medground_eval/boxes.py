"""Vectorized box geometry for 2D and 3D grounding: conversions, IoU, GIoU, region (union) IoU.

Boxes are float64 arrays of shape ``(N, 2 * d)`` in corner form: ``[x1, y1, x2, y2]`` (``d = 2``) or
``[x1, y1, z1, x2, y2, z2]`` (``d = 3``); ``d`` is read from the last axis. Every function serves both.

Conventions, decided once for all functions:

- A box's area (volume in 3D) is the product of its side lengths, each clipped at 0: a degenerate
  (zero-width) or inverted box has area 0.
- IoU = intersection / union, and 0 where the union is 0 (two zero-area boxes): never NaN, never a
  ZeroDivisionError, no numpy warning.
- A *region* is the union of several boxes (the MS-CXR convention: a phrase with several boxes names one
  region). Region areas are exact, computed by coordinate compression (see :func:`union_area`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
_FORMATS = ("xyxy", "xywh", "cxcywh")


def as_boxes(boxes: ArrayLike, name: str = "boxes") -> np.ndarray:
    """``boxes`` as a float64 ``(N, 4)`` or ``(N, 6)`` array.

    A single box given as a flat sequence of 4 or 6 numbers becomes ``(1, 4 or 6)``; an empty input
    becomes ``(0, 4)`` unless it already has a last axis of 6. Raises ValueError on any other shape.

    >>> as_boxes([0, 0, 2, 3]).shape, as_boxes([]).shape
    ((1, 4), (0, 4))
    """
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0 and array.shape[-1:] != (6,):
        return array.reshape(0, 4)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] not in (4, 6):
        raise ValueError(f"{name}: expected an (N, 4) or (N, 6) array of corner boxes, got shape {array.shape}")
    return array


def _dims(boxes: np.ndarray) -> int:
    return boxes.shape[-1] // 2


def _same_dims(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"boxes must have the same dimension: got {a.shape[-1]} and {b.shape[-1]} numbers per box")


def safe_divide(numerator: ArrayLike, denominator: ArrayLike) -> np.ndarray:
    """``numerator / denominator`` as float64, 0 where the denominator is not positive (never NaN, no warning).

    The one division of the package for ratios whose denominator is a count, an area or a union (IoU, rates,
    means over possibly empty groups).

    >>> safe_divide([1.0, 2.0, 3.0], [2.0, 0.0, -1.0]).tolist()
    [0.5, 0.0, 0.0]
    """
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(numerator.shape, denominator.shape))
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


# ---------------------------------------------------------------- formats


def convert_boxes(boxes: ArrayLike, in_fmt: BoxFormat, out_fmt: BoxFormat) -> np.ndarray:
    """Convert between ``"xyxy"`` (corners), ``"xywh"`` (lower corner + size), ``"cxcywh"`` (centre + size).

    The same names serve 3D: ``xywh`` is ``[x, y, z, w, h, d]``, ``cxcywh`` is ``[cx, cy, cz, w, h, d]``.

    >>> convert_boxes([[10, 20, 30, 40]], "xywh", "xyxy").tolist()
    [[10.0, 20.0, 40.0, 60.0]]
    """
    for fmt in (in_fmt, out_fmt):
        if fmt not in _FORMATS:
            raise ValueError(f"box format {fmt!r} is unknown: expected one of {', '.join(_FORMATS)}")
    b = as_boxes(boxes)
    d = _dims(b)
    first, second = b[:, :d], b[:, d:]
    if in_fmt == "xyxy":
        lo, hi = first, second
    elif in_fmt == "xywh":
        lo, hi = first, first + second
    else:
        lo, hi = first - second / 2, first + second / 2
    if out_fmt == "xyxy":
        return np.concatenate([lo, hi], axis=1)
    if out_fmt == "xywh":
        return np.concatenate([lo, hi - lo], axis=1)
    return np.concatenate([(lo + hi) / 2, hi - lo], axis=1)


def clip_boxes(boxes: ArrayLike, size: ArrayLike) -> np.ndarray:
    """Clip every coordinate to ``[0, size]`` on its axis.

    ``size`` is ``(W, H)`` / ``(W, H, D)`` for all boxes, or an ``(N, d)`` array with one size per box.

    >>> clip_boxes([[-5, 10, 120, 50]], (100, 100)).tolist()
    [[0.0, 10.0, 100.0, 50.0]]
    """
    b = as_boxes(boxes)
    size = np.asarray(size, dtype=np.float64)
    upper = np.concatenate([size, size], axis=-1)
    return np.clip(b, 0.0, upper)


# ---------------------------------------------------------------- box pairs


def box_area(boxes: ArrayLike) -> np.ndarray:
    """Area (volume) of each box, ``(N,)``; degenerate and inverted boxes have area 0.

    >>> box_area([[0, 0, 2, 3], [5, 5, 4, 9]]).tolist()
    [6.0, 0.0]
    """
    b = as_boxes(boxes)
    d = _dims(b)
    return np.clip(b[:, d:] - b[:, :d], 0.0, None).prod(axis=1)


def _side_product(a: np.ndarray, b: np.ndarray, outer: bool, upper: np.ufunc, lower: np.ufunc) -> np.ndarray:
    """Product over the axes of ``upper(a_hi, b_hi) - lower(a_lo, b_lo)``, each side clipped at 0: paired ``(N,)``,
    or ``(N, M)`` when ``outer``. One pass per axis, no (N, M, d) array."""
    d = _dims(a)
    product = None
    for k in range(d):
        if outer:
            side = upper.outer(a[:, d + k], b[:, d + k])
            side -= lower.outer(a[:, k], b[:, k])
        else:
            side = upper(a[:, d + k], b[:, d + k])
            side -= lower(a[:, k], b[:, k])
        np.maximum(side, 0.0, out=side)
        if product is None:
            product = side
        else:
            product *= side
    return product


def _intersection(a: np.ndarray, b: np.ndarray, outer: bool) -> np.ndarray:
    """Intersection areas: paired ``(N,)``, or ``(N, M)`` when ``outer``."""
    return _side_product(a, b, outer, np.minimum, np.maximum)


def _enclosing(a: np.ndarray, b: np.ndarray, outer: bool) -> np.ndarray:
    """Area of the smallest box enclosing both boxes (side lengths clipped at 0)."""
    return _side_product(a, b, outer, np.maximum, np.minimum)


def _pair_inputs(a: ArrayLike, b: ArrayLike, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_boxes(a, "a"), as_boxes(b, "b")
    if a.shape[0] and b.shape[0]:
        _same_dims(a, b)
    if paired and a.shape[0] != b.shape[0]:
        raise ValueError(f"paired boxes need the same count: got {a.shape[0]} and {b.shape[0]}")
    return a, b


def _iou(a: np.ndarray, b: np.ndarray, outer: bool) -> tuple[np.ndarray, np.ndarray]:
    """(IoU, union) for paired or all-pairs boxes."""
    inter = _intersection(a, b, outer)
    area_a, area_b = box_area(a), box_area(b)
    union = (area_a[:, None] + area_b[None, :]) if outer else area_a + area_b
    union -= inter
    return safe_divide(inter, union), union


def box_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """IoU of paired boxes ``a[i]`` and ``b[i]``, shape ``(N,)``, in [0, 1]; 0 where the union is 0.

    >>> box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2]]).round(4).tolist()
    [0.3333]
    """
    a, b = _pair_inputs(a, b, paired=True)
    return _iou(a, b, outer=False)[0]


def box_iou_matrix(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b``, shape ``(N, M)``; 0 where the union is 0.

    >>> box_iou_matrix([[0, 0, 2, 2]], [[0, 0, 2, 2], [2, 2, 3, 3]]).tolist()
    [[1.0, 0.0]]
    """
    a, b = _pair_inputs(a, b, paired=False)
    return _iou(a, b, outer=True)[0]


def _giou_from(iou: np.ndarray, union: np.ndarray, enclosing: np.ndarray) -> np.ndarray:
    """GIoU = IoU - (C - U) / C, the penalty 1 where C is 0: the one GIoU rule (boxes and regions)."""
    penalty = np.ones_like(iou)
    np.divide(enclosing - union, enclosing, out=penalty, where=enclosing > 0)
    return iou - penalty


def _giou(a: np.ndarray, b: np.ndarray, outer: bool) -> np.ndarray:
    iou, union = _iou(a, b, outer)
    return _giou_from(iou, union, _enclosing(a, b, outer))


def generalized_box_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """GIoU of paired boxes, shape ``(N,)``, in [-1, 1] and never above the IoU.

    GIoU = IoU - (C - U) / C with C the area of the smallest box enclosing both and U their union.
    Degenerate case: when C is 0 (both boxes flat in a common line or plane, e.g. a zero-width box on the same
    zero-width true box) the penalty is 1, so GIoU = -1. That is the value any two zero-area boxes get when C > 0
    (IoU 0, U 0, penalty 1), so the rule is continuous as two flat boxes slide onto each other, never NaN, and a
    flat answer never scores above a clearly wrong one (IoU is 0 for zero-area boxes too).

    >>> generalized_box_iou([[0, 0, 2, 2], [0, 0, 1, 1], [5, 0, 5, 10]], [[1, 1, 3, 3], [0, 0, 1, 1], [5, 0, 5, 10]])
    array([-0.07936508,  1.        , -1.        ])
    """
    a, b = _pair_inputs(a, b, paired=True)
    return _giou(a, b, outer=False)


def generalized_box_iou_matrix(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """GIoU of every box of ``a`` with every box of ``b``, shape ``(N, M)`` (see :func:`generalized_box_iou`).

    >>> generalized_box_iou_matrix([[0, 0, 1, 1]], [[0, 0, 1, 1], [2, 0, 3, 1]]).round(4).tolist()
    [[1.0, -0.3333]]
    """
    a, b = _pair_inputs(a, b, paired=False)
    return _giou(a, b, outer=True)


# ---------------------------------------------------------------- regions (unions of boxes)


def union_area(boxes: ArrayLike) -> float:
    """Exact area (volume) of the union of the boxes; 0.0 for no boxes.

    Coordinate compression: the sorted edges on each axis cut space into a grid of at most ``(2K - 1) ** d``
    cells, each either inside or outside the union. A box covers a contiguous block of cells; the blocks are added
    into a d-dimensional difference array (+/-1 at the block's 2**d corners), cumulative sums along every axis give
    the cover count of each cell, and the union is the total size of the cells covered at least once. Degenerate
    and inverted boxes add nothing. Exact for any K (memory grows as ``(2K) ** d``); :func:`union_area_columns`
    is the same computation for many regions at once, and this function calls it.

    >>> union_area([[0, 0, 2, 2], [1, 1, 3, 3]])
    7.0
    """
    b = as_boxes(boxes)
    return float(union_area_columns(b, np.array([len(b)]))[0])


_UNION_CELLS_PER_CHUNK = 1 << 20  # difference-array cells per batch of regions (8 MiB of float64)


def union_area_columns(flat: np.ndarray, counts: ArrayLike) -> np.ndarray:
    """:func:`union_area` of many regions stored in columns, ``(n,)``: region ``i`` is ``counts[i]`` consecutive
    rows of ``flat`` (0 rows: area 0). Regions with the same number of boxes are computed together, in batches
    of at most ``_UNION_CELLS_PER_CHUNK`` grid cells.

    >>> union_area_columns(np.array([[0., 0, 2, 2], [1, 1, 3, 3], [0, 0, 1, 5]]), [2, 1, 0]).tolist()
    [7.0, 5.0, 0.0]
    """
    flat = as_boxes(flat)
    counts = np.asarray(counts, dtype=np.int64)
    area = np.zeros(len(counts))
    start = _starts(counts)
    d = _dims(flat)
    for m in np.unique(counts[counts > 0]).tolist():
        rows = np.flatnonzero(counts == m)
        step = max(1, _UNION_CELLS_PER_CHUNK // (2 * m) ** d)
        for first in range(0, len(rows), step):
            chunk = rows[first:first + step]
            area[chunk] = _union_area_batch(flat[start[chunk, None] + np.arange(m)])
    return area


def _union_area_batch(b: np.ndarray) -> np.ndarray:
    """Union areas of ``g`` regions of ``m`` boxes each, ``b`` of shape ``(g, m, 2d)``: see :func:`union_area`.
    Equal edges stay as zero-width cells, which add 0; a degenerate or inverted box has weight 0."""
    g, m, width = b.shape
    d = width // 2
    lo, hi = b[..., :d], b[..., d:]
    valid = (hi > lo).all(axis=2)
    if m == 1:
        return np.where(valid[:, 0], np.prod(hi[:, 0] - lo[:, 0], axis=1), 0.0)
    size = 2 * m
    lo_index, hi_index, widths = [], [], []
    for k in range(d):
        edges = np.concatenate([lo[..., k], hi[..., k]], axis=1)  # (g, 2m)
        order = np.argsort(edges, axis=1, kind="stable")
        rank = np.argsort(order, axis=1, kind="stable")  # each edge's position in its region's sorted edges
        lo_index.append(rank[:, :m])
        hi_index.append(rank[:, m:])
        edges = np.take_along_axis(edges, order, axis=1)
        # (g, 2m - 1); equal edges give 0 (inf - inf would be NaN)
        widths.append(np.where(edges[:, 1:] == edges[:, :-1], 0.0, edges[:, 1:] - edges[:, :-1]))
    base = (np.arange(g) * size**d)[:, None]
    cells, signs = [], []
    for corner in itertools.product((0, 1), repeat=d):
        index = base
        for k, upper in enumerate(corner):
            index = index + (hi_index[k] if upper else lo_index[k]) * size ** (d - 1 - k)
        cells.append(index.ravel())
        signs.append(np.where(valid, -1.0 if sum(corner) % 2 else 1.0, 0.0).ravel())
    count = np.bincount(np.concatenate(cells), weights=np.concatenate(signs), minlength=g * size**d)
    count = count.reshape((g,) + (size,) * d)
    for k in range(1, d + 1):
        np.cumsum(count, axis=k, out=count)
    covered = count[(slice(None),) + (slice(0, -1),) * d] > 0.5  # cover counts are whole numbers
    cell_size = np.ones((g,) + (1,) * d)
    for k in range(d):
        shape = [g] + [1] * d
        shape[k + 1] = size - 1
        cell_size = cell_size * widths[k].reshape(shape)
    return np.where(covered, cell_size, 0.0).reshape(g, -1).sum(axis=1)


def region_overlap(pred: ArrayLike, true: ArrayLike) -> tuple[float, float]:
    """(intersection, union) areas of the region ``pred`` (union of its boxes) and the region ``true``.

    The intersection is the union of all pairwise box intersections. An empty ``pred`` gives
    intersection 0 and union = area of ``true`` (and vice versa); both empty give (0.0, 0.0).

    >>> region_overlap([[0, 0, 2, 2]], [[1, 0, 3, 2], [0, 0, 1, 1]])
    (3.0, 6.0)
    """
    pred, true = as_boxes(pred, "pred"), as_boxes(true, "true")
    if pred.shape[0] == 0 or true.shape[0] == 0:
        return 0.0, union_area(true) + union_area(pred)
    _same_dims(pred, true)
    d = _dims(pred)
    lo = np.maximum(pred[:, None, :d], true[None, :, :d])
    hi = np.minimum(pred[:, None, d:], true[None, :, d:])
    inter = union_area(np.concatenate([lo, hi], axis=2).reshape(-1, 2 * d))
    union = union_area(np.concatenate([pred, true]))
    return min(inter, union), union  # two coordinate grids: round-off could put inter an ulp above union


def region_iou(pred: ArrayLike, true: ArrayLike) -> float:
    """IoU of the two regions (unions of boxes), in [0, 1]; 0.0 when the union is empty.

    >>> region_iou([[0, 0, 1, 1], [1, 0, 2, 1]], [[0, 0, 2, 1]])
    1.0
    """
    inter, union = region_overlap(pred, true)
    return inter / union if union > 0 else 0.0


def _starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def _columns(boxes: Sequence[ArrayLike] | np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(flat, counts)`` of per-sample box arrays: a list of ``(K_i, 2d)`` arrays, an ``(n, K, 2d)`` array, or an
    ``(n, 2d)`` array (one box per sample)."""
    if isinstance(boxes, np.ndarray) and boxes.ndim in (2, 3):
        counts = np.full(boxes.shape[0], 1 if boxes.ndim == 2 else boxes.shape[1], dtype=np.int64)
        return as_boxes(boxes.reshape(-1, boxes.shape[-1]), name), counts
    arrays = [np.asarray(b, dtype=np.float64) for b in boxes]
    counts = np.fromiter((a.shape[0] if a.ndim == 2 else int(a.size > 0) for a in arrays), np.int64, len(arrays))
    width = next((a.shape[-1] for a in arrays if a.size), 4)
    if any(a.size and a.shape[-1] != width for a in arrays):
        raise ValueError(f"{name}: every box must have {width} numbers, like the first non-empty sample")
    flat = np.concatenate([a.reshape(-1, width) for a in arrays]) if arrays else np.zeros((0, width))
    return as_boxes(flat, name), counts


def region_overlap_columns(
    pred_flat: np.ndarray, pred_counts: np.ndarray, true_flat: np.ndarray, true_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`region_overlap` of many samples stored in columns: ``(intersection, union)``, each ``(n,)``.

    Sample ``i`` owns ``pred_counts[i]`` consecutive rows of ``pred_flat`` and ``true_counts[i]`` of ``true_flat``.
    Samples with one box on each side are computed in one vectorized pass, and so is a missing prediction against
    one true box (intersection 0, union = its area); the others by box counts, with :func:`union_area_columns`
    (the intersection is the union of the pairwise box intersections, as in :func:`region_overlap`).

    >>> flat = np.array([[0., 0, 2, 2], [0, 0, 1, 1], [1, 0, 2, 1]])
    >>> region_overlap_columns(flat, [1, 2], np.array([[1., 0, 3, 2], [0, 0, 2, 1]]), [1, 1])
    (array([2., 2.]), array([6., 2.]))
    """
    pred_counts, true_counts = np.asarray(pred_counts, np.int64), np.asarray(true_counts, np.int64)
    if len(pred_counts) != len(true_counts):
        raise ValueError(f"pred_counts and true_counts must have the same length: got {len(pred_counts)} and "
                         f"{len(true_counts)}")
    n = len(pred_counts)
    pred_start, true_start = _starts(pred_counts), _starts(true_counts)
    inter, union = np.zeros(n), np.zeros(n)
    single = (pred_counts == 1) & (true_counts == 1)
    if single.any():
        pred, true = pred_flat[pred_start[single]], true_flat[true_start[single]]
        _same_dims(pred, true)
        one = _intersection(pred, true, outer=False)
        inter[single], union[single] = one, box_area(pred) + box_area(true) - one
    missed = (pred_counts == 0) & (true_counts == 1)
    union[missed] = box_area(true_flat[true_start[missed]])
    rest = ~single & ~missed
    empty = rest & ((pred_counts == 0) | (true_counts == 0))
    if empty.any():  # one side without boxes: no intersection, the union is the other side's region
        rows = np.flatnonzero(empty)
        union[rows] = (union_area_columns(owned_rows(true_flat, true_counts, rows), true_counts[rows])
                       + union_area_columns(owned_rows(pred_flat, pred_counts, rows), pred_counts[rows]))
    both = rest & ~empty
    if not both.any():
        return inter, union
    _same_dims(pred_flat, true_flat)
    d = _dims(pred_flat)
    shapes = np.unique(np.stack([pred_counts[both], true_counts[both]], axis=1), axis=0)
    for k, m in shapes.tolist():
        rows = np.flatnonzero(both & (pred_counts == k) & (true_counts == m))
        pred = pred_flat[pred_start[rows, None] + np.arange(k)]  # (g, k, 2d)
        true = true_flat[true_start[rows, None] + np.arange(m)]  # (g, m, 2d)
        lo = np.maximum(pred[:, :, None, :d], true[:, None, :, :d])
        hi = np.minimum(pred[:, :, None, d:], true[:, None, :, d:])
        pairs = np.concatenate([lo, hi], axis=3).reshape(len(rows), k * m, 2 * d)
        region_inter = _batched_union(pairs)
        region_union = _batched_union(np.concatenate([pred, true], axis=1))
        # two coordinate grids: round-off could put the intersection an ulp above the union
        inter[rows], union[rows] = np.minimum(region_inter, region_union), region_union
    return inter, union


def owned_rows(flat: np.ndarray, counts: ArrayLike, rows: ArrayLike) -> np.ndarray:
    """The rows of ``flat`` that the samples ``rows`` own, in that order, when sample ``i`` owns ``counts[i]``
    consecutive rows (the column layout of :func:`region_overlap_columns`).

    >>> owned_rows(np.arange(5.0)[:, None], [2, 0, 3], [2, 0]).ravel().tolist()
    [2.0, 3.0, 4.0, 0.0, 1.0]
    """
    counts = np.asarray(counts, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    owned = counts[rows]
    offsets = np.arange(int(owned.sum())) - np.repeat(_starts(owned), owned)
    return flat[np.repeat(_starts(counts)[rows], owned) + offsets]


def _batched_union(boxes: np.ndarray) -> np.ndarray:
    """:func:`_union_area_batch` of ``(g, m, 2d)`` regions, a batch of at most ``_UNION_CELLS_PER_CHUNK`` cells at
    a time."""
    g, m, width = boxes.shape
    step = max(1, _UNION_CELLS_PER_CHUNK // (2 * m) ** (width // 2))
    return np.concatenate([_union_area_batch(boxes[first:first + step]) for first in range(0, g, step)])


def region_overlap_many(preds: Sequence[ArrayLike], trues: Sequence[ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`region_overlap` for many samples: ``(intersection, union)``, each of shape ``(n,)``.

    ``preds[i]`` and ``trues[i]`` are the ``(K, 4)`` / ``(K, 6)`` box arrays of sample ``i`` (K may be 0);
    an ``(n, K, 2 * d)`` array holds K boxes per sample, an ``(n, 2 * d)`` array one box per sample.
    Computed by :func:`region_overlap_columns`.

    >>> region_overlap_many([[[0, 0, 2, 2]], np.zeros((0, 4))], [[[0, 0, 1, 2]], [[0, 0, 1, 1]]])
    (array([2., 0.]), array([4., 1.]))
    """
    if len(preds) != len(trues):
        raise ValueError(f"preds and trues must have the same length: got {len(preds)} and {len(trues)}")
    return region_overlap_columns(*_columns(preds, "preds"), *_columns(trues, "trues"))


def _region_extent(flat: np.ndarray, counts: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, the lower and upper corner of the box enclosing its boxes (``+inf`` / ``-inf`` for none)."""
    lo, hi = np.full((len(counts), d), np.inf), np.full((len(counts), d), -np.inf)
    has = counts > 0
    if has.any():  # the starts of the non-empty samples cut flat into exactly their rows
        starts = _starts(counts)[has]
        lo[has] = np.minimum.reduceat(flat[:, :d], starts, axis=0)
        hi[has] = np.maximum.reduceat(flat[:, d:], starts, axis=0)
    return lo, hi


def region_giou_columns(
    pred_flat: np.ndarray,
    pred_counts: np.ndarray,
    true_flat: np.ndarray,
    true_counts: np.ndarray,
    *,
    overlap: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """GIoU of the predicted region with the true region per sample, columns as in :func:`region_overlap_columns`.

    GIoU = IoU - (C - U) / C with U the area of the union of the two regions and C that of the box enclosing every
    predicted and true box: for one box on each side it is :func:`generalized_box_iou` (the same rule, degenerate
    case included: penalty 1 when C is 0). -1 for a sample without a predicted box. ``overlap``: the
    ``(intersection, union)`` of :func:`region_overlap_columns` when already computed.

    >>> region_giou_columns(np.array([[0., 0, 1, 1], [2, 0, 3, 1]]), [2], np.array([[0., 0, 3, 1]]), [1]).round(4)
    array([0.6667])
    """
    pred_counts, true_counts = np.asarray(pred_counts, np.int64), np.asarray(true_counts, np.int64)
    inter, union = overlap if overlap is not None else region_overlap_columns(
        pred_flat, pred_counts, true_flat, true_counts
    )
    d = true_flat.shape[1] // 2 if true_flat.size else max(pred_flat.shape[1] // 2, 2)
    pred_lo, pred_hi = _region_extent(pred_flat.reshape(-1, 2 * d), pred_counts, d)
    true_lo, true_hi = _region_extent(true_flat.reshape(-1, 2 * d), true_counts, d)
    sides = np.maximum(pred_hi, true_hi) - np.minimum(pred_lo, true_lo)
    enclosing = np.prod(np.clip(np.nan_to_num(sides, posinf=0.0, neginf=0.0), 0.0, None), axis=1)
    giou = _giou_from(safe_divide(inter, union), union, enclosing)
    return np.where(pred_counts > 0, giou, -1.0)


def region_pointing_columns(
    pred_flat: np.ndarray, pred_counts: np.ndarray, true_flat: np.ndarray, true_counts: np.ndarray
) -> np.ndarray:
    """The pointing game per sample, columns as in :func:`region_overlap_columns`: the centre of the box enclosing
    the predicted boxes (:func:`region_center`) lies in the true region (in one of its boxes), boundary inclusive;
    False without a predicted box. One vectorized pass over the true boxes.

    >>> region_pointing_columns(np.array([[0., 0, 2, 2]]), [1], np.array([[0., 0, 1, 1]]), [1]).tolist()
    [True]
    """
    pred_counts, true_counts = np.asarray(pred_counts, np.int64), np.asarray(true_counts, np.int64)
    n = len(pred_counts)
    if not (pred_counts > 0).any() or not true_flat.size:
        return np.zeros(n, dtype=bool)
    _same_dims(pred_flat, true_flat)
    d = _dims(true_flat)
    lo, hi = _region_extent(pred_flat.reshape(-1, 2 * d), pred_counts, d)
    with np.errstate(invalid="ignore"):  # inf - inf: a sample without a predicted box, ruled out below
        centre = (lo + hi) / 2
    owner = np.repeat(np.arange(n), true_counts)
    true = true_flat.reshape(-1, 2 * d)
    inside = ((centre[owner] >= true[:, :d]) & (centre[owner] <= true[:, d:])).all(axis=1)
    return (np.bincount(owner[inside], minlength=n) > 0) & (pred_counts > 0)


def matched_iou(pred: ArrayLike, true: ArrayLike) -> float:
    """Mean IoU under the one-to-one matching of boxes that maximises the total IoU (Hungarian).

    Sum of matched IoUs / max(N, M): unmatched boxes on either side count as IoU 0. 0.0 when either
    side is empty.

    >>> matched_iou([[0, 0, 1, 1], [5, 5, 6, 6]], [[5, 5, 6, 6]])
    0.5
    """
    pred, true = as_boxes(pred, "pred"), as_boxes(true, "true")
    if pred.shape[0] == 0 or true.shape[0] == 0:
        return 0.0
    iou = box_iou_matrix(pred, true)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return float(iou[rows, cols].sum() / max(iou.shape))


def region_center(boxes: ArrayLike) -> np.ndarray:
    """Centre of the box enclosing all ``boxes``, shape ``(d,)``; all NaN for no boxes (inside no region).

    >>> region_center([[0, 0, 2, 2], [4, 0, 6, 2]]).tolist()
    [3.0, 1.0]
    """
    b = as_boxes(boxes)
    d = _dims(b)
    if b.shape[0] == 0:
        return np.full(d, np.nan)
    return (b[:, :d].min(axis=0) + b[:, d:].max(axis=0)) / 2


def points_in_region(points: ArrayLike, region: ArrayLike) -> np.ndarray | bool:
    """Whether each point lies in the region (union of boxes), boundary inclusive.

    ``points`` is ``(N, d)`` (returns a bool array ``(N,)``) or one point ``(d,)`` (returns a bool).
    A NaN point and an empty region give False.

    >>> points_in_region([[1, 1], [9, 9]], [[0, 0, 2, 2]]).tolist(), points_in_region([2, 2], [[0, 0, 2, 2]])
    ([True, False], True)
    """
    p = np.asarray(points, dtype=np.float64)
    r = as_boxes(region, "region")
    single = p.ndim == 1
    p = np.atleast_2d(p)
    d = p.shape[1]
    if r.shape[0] and r.shape[1] != 2 * d:
        raise ValueError(f"points have {d} coordinates but the region boxes have {r.shape[1]} numbers")
    inside = ((p[:, None, :] >= r[None, :, :d]) & (p[:, None, :] <= r[None, :, d:])).all(axis=2).any(axis=1)
    return bool(inside[0]) if single else inside
