"""Geometry against independent references: pycocotools, shapely, direct per-pair code, voxel counts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as coco_mask

from medground_eval.boxes import (
    as_boxes,
    box_area,
    box_iou,
    box_iou_matrix,
    clip_boxes,
    convert_boxes,
    generalized_box_iou,
    generalized_box_iou_matrix,
    matched_iou,
    points_in_region,
    region_center,
    region_iou,
    region_overlap,
    region_overlap_many,
    union_area,
)

coord = st.floats(0, 1000, allow_nan=False, allow_subnormal=False)
side = st.one_of(st.just(0.0), st.floats(0, 400, allow_nan=False, allow_subnormal=False))


@st.composite
def boxes_2d(draw: st.DrawFn, min_size: int = 0, max_size: int = 8) -> np.ndarray:
    """(K, 4) xyxy boxes, zero-area ones included."""
    rows = draw(st.lists(st.tuples(coord, coord, side, side), min_size=min_size, max_size=max_size))
    xywh = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return convert_boxes(xywh, "xywh", "xyxy")


@st.composite
def int_boxes_3d(draw: st.DrawFn, min_size: int = 0, max_size: int = 6) -> np.ndarray:
    """(K, 6) integer boxes inside [0, 8]^3, possibly flat."""
    rows = []
    for _ in range(draw(st.integers(min_size, max_size))):
        lo = [draw(st.integers(0, 8)) for _ in range(3)]
        hi = [draw(st.integers(v, 8)) for v in lo]
        rows.append(lo + hi)
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def voxel_mask(boxes: np.ndarray) -> np.ndarray:
    grid = np.zeros((8, 8, 8), dtype=bool)
    for x1, y1, z1, x2, y2, z2 in boxes.astype(int):
        grid[x1:x2, y1:y2, z1:z2] = True
    return grid


def shapely_region(boxes: np.ndarray) -> shapely.Geometry:
    return shapely.unary_union(shapely.box(boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]))


def direct_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Plain-Python IoU of two corner boxes of any dimension."""
    d = len(a) // 2
    inter = area_a = area_b = 1.0
    for k in range(d):
        inter *= max(0.0, min(a[d + k], b[d + k]) - max(a[k], b[k]))
        area_a *= max(0.0, a[d + k] - a[k])
        area_b *= max(0.0, b[d + k] - b[k])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def close(x: float, y: float) -> bool:
    return abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y))


@given(boxes_2d(min_size=1), boxes_2d(min_size=1))
def test_iou_matrix_matches_pycocotools_and_direct(a: np.ndarray, b: np.ndarray) -> None:
    iou = box_iou_matrix(a, b)
    a_xywh, b_xywh = convert_boxes(a, "xyxy", "xywh"), convert_boxes(b, "xyxy", "xywh")
    coco = coco_mask.iou(a_xywh, b_xywh, np.zeros(len(b), np.uint8))
    np.testing.assert_allclose(iou, np.asarray(coco).reshape(len(a), len(b)), rtol=0, atol=1e-9)
    direct = np.array([[direct_iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(iou, direct, rtol=0, atol=1e-9)


@given(boxes_2d(min_size=1), boxes_2d(min_size=1))
def test_iou_properties(a: np.ndarray, b: np.ndarray) -> None:
    iou = box_iou_matrix(a, b)
    assert np.all((iou >= 0) & (iou <= 1))
    np.testing.assert_array_equal(iou, box_iou_matrix(b, a).T)
    giou = generalized_box_iou_matrix(a, b)
    assert np.all((giou >= -1) & (giou <= iou + 1e-12))
    n = min(len(a), len(b))
    np.testing.assert_array_equal(box_iou(a[:n], b[:n]), iou[np.arange(n), np.arange(n)])
    np.testing.assert_allclose(generalized_box_iou(a[:n], b[:n]), giou[np.arange(n), np.arange(n)], atol=1e-12)
    positive = box_area(a) > 0
    np.testing.assert_allclose(box_iou(a[positive], a[positive]), 1.0, atol=1e-12)


@given(int_boxes_3d(min_size=1), int_boxes_3d(min_size=1))
def test_iou_3d_matches_direct(a: np.ndarray, b: np.ndarray) -> None:
    direct = np.array([[direct_iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(box_iou_matrix(a, b), direct, rtol=0, atol=1e-9)
    assert np.all(generalized_box_iou_matrix(a, b) <= box_iou_matrix(a, b) + 1e-12)


def test_giou_known_values_and_degenerate_enclosure() -> None:
    a = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=float)
    b = np.array([[2, 0, 3, 1], [0, 0, 1, 1], [0, 2, 0, 3], [0, 0, 0, 0]], dtype=float)
    # disjoint unit squares 1 apart: enclosing 3, union 2 -> -1/3; identical -> 1; flat pairs (C == 0) -> -1
    np.testing.assert_allclose(generalized_box_iou(a, b), [-1 / 3, 1.0, -1.0, -1.0])


@given(boxes_2d(max_size=12))
def test_union_area_matches_shapely(boxes: np.ndarray) -> None:
    expected = shapely_region(boxes).area if len(boxes) else 0.0
    assert close(union_area(boxes), expected)


def test_union_area_many_boxes_matches_shapely() -> None:
    rng = np.random.default_rng(0)
    lo = rng.uniform(0, 900, (300, 2))
    boxes = np.hstack([lo, lo + rng.uniform(0, 100, (300, 2))])
    assert close(union_area(boxes), shapely_region(boxes).area)


@given(boxes_2d(), boxes_2d())
def test_region_overlap_matches_shapely(pred: np.ndarray, true: np.ndarray) -> None:
    inter, union = region_overlap(pred, true)
    p = shapely_region(pred) if len(pred) else shapely.Polygon()
    t = shapely_region(true) if len(true) else shapely.Polygon()
    assert close(inter, shapely.intersection(p, t).area)
    assert close(union, shapely.union(p, t).area)
    iou = region_iou(pred, true)
    assert 0 <= iou <= 1 and iou == region_iou(true, pred)


@given(int_boxes_3d(), int_boxes_3d())
def test_3d_region_overlap_matches_voxel_count(pred: np.ndarray, true: np.ndarray) -> None:
    p, t = voxel_mask(pred), voxel_mask(true)
    assert union_area(pred) == p.sum()
    assert region_overlap(pred, true) == (float((p & t).sum()), float((p | t).sum()))


@given(st.lists(st.tuples(boxes_2d(max_size=3), boxes_2d(max_size=3)), max_size=20))
def test_region_overlap_many_matches_one_by_one(pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    preds, trues = [p for p, _ in pairs], [t for _, t in pairs]
    inter, union = region_overlap_many(preds, trues)
    expected = np.array([region_overlap(p, t) for p, t in pairs]).reshape(-1, 2)
    np.testing.assert_allclose(inter, expected[:, 0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(union, expected[:, 1], rtol=1e-12, atol=1e-9)


def test_region_overlap_many_array_input_and_lists() -> None:
    rng = np.random.default_rng(1)
    lo = rng.uniform(0, 100, (50, 3))
    a = np.hstack([lo, lo + rng.uniform(0, 50, (50, 3))])
    b = a[::-1].copy()
    from_array = region_overlap_many(a, b)
    from_lists = region_overlap_many([[row.tolist()] for row in a], [row[None] for row in b])
    expected = np.array([region_overlap(x, y) for x, y in zip(a, b)])
    np.testing.assert_allclose(np.stack(from_array, 1), expected, rtol=1e-12)
    np.testing.assert_array_equal(np.stack(from_lists, 1), np.stack(from_array, 1))
    assert region_overlap_many([np.zeros((0, 4))], [[[0, 0, 2, 2]]]) == (0.0, 4.0)


def test_region_overlap_many_rejects_mismatched_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        region_overlap_many([[[0, 0, 1, 1]]], [])
    with pytest.raises(ValueError, match="4 numbers"):
        region_overlap_many([[[0, 0, 1, 1]], [[0, 0, 0, 1, 1, 1]]], [[[0, 0, 1, 1]], [[0, 0, 1, 1]]])


@given(boxes_2d(min_size=1))
def test_conversions_round_trip(boxes: np.ndarray) -> None:
    for fmt in ("xywh", "cxcywh"):
        back = convert_boxes(convert_boxes(boxes, "xyxy", fmt), fmt, "xyxy")
        np.testing.assert_allclose(back, boxes, rtol=1e-12, atol=1e-9)


def test_conversions_known_values_3d() -> None:
    box = np.array([[1, 2, 3, 5, 8, 13]], dtype=float)
    np.testing.assert_array_equal(convert_boxes(box, "xyxy", "xywh"), [[1, 2, 3, 4, 6, 10]])
    np.testing.assert_array_equal(convert_boxes(box, "xyxy", "cxcywh"), [[3, 5, 8, 4, 6, 10]])
    with pytest.raises(ValueError, match="'xxyy' is unknown"):
        convert_boxes(box, "xyxy", "xxyy")


def test_degenerate_boxes_give_zero_without_warnings() -> None:
    flat = np.array([[0, 0, 0, 5], [3, 3, 3, 3], [5, 5, 2, 2]], dtype=float)
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(box_iou(flat, flat), 0.0)
        np.testing.assert_array_equal(box_iou_matrix(flat, flat), 0.0)
        assert np.all(np.isfinite(generalized_box_iou_matrix(flat, flat)))
        assert region_iou(flat, flat) == 0.0 and union_area(flat) == 0.0
        assert region_iou([], []) == 0.0
        inter, union = region_overlap_many(flat[:, None], flat[:, None])
        np.testing.assert_array_equal(inter, 0.0)
        np.testing.assert_array_equal(union, 0.0)
    np.testing.assert_array_equal(box_area(flat), 0.0)


small_xywh = st.lists(st.tuples(*[st.integers(0, 20)] * 2, *[st.integers(1, 8)] * 2), max_size=4)


@given(small_xywh, small_xywh)
@settings(max_examples=60)
def test_matched_iou_is_best_permutation(p: list[tuple[int, ...]], t: list[tuple[int, ...]]) -> None:
    pred = convert_boxes(np.array(p, float).reshape(-1, 4), "xywh", "xyxy")
    true = convert_boxes(np.array(t, float).reshape(-1, 4), "xywh", "xyxy")
    if not len(pred) or not len(true):
        assert matched_iou(pred, true) == 0.0
        return
    iou = box_iou_matrix(pred, true)
    small, large = sorted(iou.shape)
    if iou.shape[0] > iou.shape[1]:
        iou = iou.T
    best = max(sum(iou[i, j] for i, j in enumerate(perm)) for perm in itertools.permutations(range(large), small))
    assert matched_iou(pred, true) == pytest.approx(best / large, abs=1e-12)


def test_region_center_and_pointing() -> None:
    region = np.array([[0, 0, 2, 2], [4, 4, 6, 8]], dtype=float)
    np.testing.assert_array_equal(region_center(region), [3, 4])
    points = np.array([[0, 0], [2, 2], [3, 4], [6, 8], [6.0001, 8], [np.nan, 1]])
    np.testing.assert_array_equal(points_in_region(points, region), [True, True, False, True, False, False])
    assert points_in_region([5, 5], region) is True
    assert points_in_region([5, 5], np.zeros((0, 4))) is False
    center = region_center(np.zeros((0, 6)))
    assert center.shape == (3,) and np.isnan(center).all()
    assert points_in_region(center, [[0, 0, 0, 9, 9, 9]]) is False
    np.testing.assert_array_equal(region_center([[0, 0, 0, 2, 4, 6]]), [1, 2, 3])


def test_clip_boxes_shared_and_per_box_sizes() -> None:
    boxes = np.array([[-5, 2, 50, 120], [10, -1, 20, 30]], dtype=float)
    np.testing.assert_array_equal(clip_boxes(boxes, (40, 100)), [[0, 2, 40, 100], [10, 0, 20, 30]])
    np.testing.assert_array_equal(clip_boxes(boxes, [[40, 100], [15, 25]]), [[0, 2, 40, 100], [10, 0, 15, 25]])


def test_bad_shapes_name_the_shape() -> None:
    with pytest.raises(ValueError, match=r"boxes: expected an \(N, 4\) or \(N, 6\).*\(2, 5\)"):
        as_boxes(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="same dimension"):
        box_iou_matrix(np.zeros((1, 4)), np.zeros((1, 6)))
    with pytest.raises(ValueError, match="same count"):
        box_iou(np.zeros((2, 4)), np.zeros((1, 4)))
    assert as_boxes([]).shape == (0, 4) and as_boxes(np.zeros((0, 6))).shape == (0, 6)


def test_region_iou_never_exceeds_one_by_round_off():
    # Found by hypothesis: the intersection and the union come from two coordinate grids.
    pred = np.array([[0.7, 1.0, 129.7, 2.0]])
    true = np.array([[0.0, 0.0, 1.00001, 1.59117462e-185], [0.7, 1.0, 129.7, 2.0]])
    inter, union = region_overlap(pred, true)
    assert inter <= union
    assert region_iou(pred, true) == region_iou(true, pred) == 1.0


@given(st.lists(st.tuples(boxes_2d(max_size=3), boxes_2d(min_size=1, max_size=3)), max_size=12))
def test_columns_agree_with_one_sample_at_a_time(samples):
    from medground_eval.boxes import region_overlap, region_overlap_columns, region_pointing_columns

    preds = [p for p, _ in samples]
    trues = [t for _, t in samples]
    pred_counts = np.array([len(p) for p in preds], dtype=np.int64)
    true_counts = np.array([len(t) for t in trues], dtype=np.int64)
    pred_flat = np.concatenate(preds) if preds else np.zeros((0, 4))
    true_flat = np.concatenate(trues) if trues else np.zeros((0, 4))
    inter, union = region_overlap_columns(pred_flat, pred_counts, true_flat, true_counts)
    pointing = region_pointing_columns(pred_flat, pred_counts, true_flat, true_counts)
    for i, (pred, true) in enumerate(samples):
        assert (inter[i], union[i]) == pytest.approx(region_overlap(pred, true), rel=1e-12, abs=1e-9)
        assert pointing[i] == (len(pred) > 0 and bool(points_in_region(region_center(pred), true)))
