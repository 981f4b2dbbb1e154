"""The arithmetic of a scored run: the joined predictions converted to pixels and compared with their samples.

Every ground-truth sample gets one row of :class:`~medground_eval.metrics.SampleScores`; a sample without a
prediction is a miss (IoU 0, its true region's area in the union, so that it counts in cIoU). What is compared and how
is the run's :class:`~medground_eval.evaluation.compat.ScoringRules`: frame conversion and clipping or raw
coordinates, union regions or the enclosing true box, continuous region overlap or a preset's one-box arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medground_eval import boxes as geometry
from medground_eval.evaluation.compat import ScoringRules
from medground_eval.evaluation.diagnosis import MatchedBoxes
from medground_eval.evaluation.join import PredictionTable, TruthTable
from medground_eval.frames import get_frame
from medground_eval.metrics import SampleScores
from medground_eval.regions import boxes_to_pixels


@dataclass(frozen=True)
class ScoredSamples:
    """Per ground-truth sample: its scores, its parser problems ("no prediction" for a missing one), whether it
    had no prediction, its predicted boxes as compared (``pred_flat`` (M, 2d), ``pred_counts[i]`` of them sample
    i's, in ground-truth order: original pixels, or raw coordinates under a raw-coordinate preset), the image size
    used (``image_sizes`` (n, d), NaN rows where unknown); ``matched``: the matched predictions' raw answers for the
    frame diagnosis (2D runs whose boxes are converted from a frame; None otherwise)."""

    scores: SampleScores
    problems: list[str]
    missing: np.ndarray
    pred_flat: np.ndarray
    pred_counts: np.ndarray
    image_sizes: np.ndarray
    matched: MatchedBoxes | None = None


@dataclass(frozen=True)
class _TrueBoxes:
    """The compared true boxes: (M, 2d) flat, ``counts[i]`` of them sample i's, starting at ``start[i]``."""

    flat: np.ndarray
    counts: np.ndarray
    start: np.ndarray


def _true_boxes(truth: TruthTable, rules: ScoringRules) -> _TrueBoxes:
    width = 2 * (truth.dims or 2)
    counts = np.asarray(truth.counts, dtype=np.int64)
    flat = np.asarray(truth.flat, dtype=np.float64).reshape(-1, width)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    if rules.truth_region == "enclosing" and len(counts):
        if width != 4:
            raise ValueError(f"--compat {rules.name} scores 2D boxes only; this data set has 3D boxes")
        lo = np.minimum.reduceat(flat[:, :2], start, axis=0)
        hi = np.maximum.reduceat(flat[:, 2:], start, axis=0)
        flat, counts = np.concatenate([lo, hi], axis=1), np.ones(len(counts), dtype=np.int64)
        start = np.arange(len(counts), dtype=np.int64)
    return _TrueBoxes(flat, counts, start)


def score_samples(truth: TruthTable, preds: PredictionTable, rules: ScoringRules) -> ScoredSamples:
    """Convert, overlap and collect the per-sample scores of a join (see the module docstring)."""
    n, dims = len(truth.ids), truth.dims or 2
    true = _true_boxes(truth, rules)
    sizes = np.full((n, dims), np.nan)
    known = np.fromiter((s is not None for s in truth.sizes), dtype=bool, count=n)
    if known.any():
        sizes[known] = np.asarray([s for s in truth.sizes if s is not None], dtype=np.float64)

    rows = np.asarray(preds.truth_rows, dtype=np.int64)
    no_prediction = np.zeros((0, 2 * dims)), np.zeros(n, dtype=np.int64)
    true_areas = geometry.region_overlap_columns(*no_prediction, true.flat, true.counts)[1]
    matched: list = [None]
    iou, inter, union, pointing, failed, out, converted, row_sizes = _score_matched(truth, preds, rows, true, sizes,
                                                                                    rules, matched)
    pred_counts = np.zeros(n, dtype=np.int64)
    counts = np.asarray(preds.counts, dtype=np.int64)
    pred_counts[rows] = counts
    order = np.argsort(np.repeat(rows, counts), kind="stable")
    pred_flat = converted[order]
    if len(rows):
        sizes[rows] = row_sizes

    all_iou, all_inter = np.zeros(n), np.zeros(n)
    all_union = true_areas.copy()
    all_pointing, all_failed, all_out = (np.zeros(n, dtype=bool) for _ in range(3))
    for target, values in ((all_iou, iou), (all_inter, inter), (all_union, union), (all_pointing, pointing),
                           (all_failed, failed), (all_out, out)):
        target[rows] = values
    problems = ["no prediction"] * n
    for row, text in zip(preds.truth_rows, preds.problems):
        problems[row] = text
    missing = np.ones(n, dtype=bool)
    missing[rows] = False
    scores = SampleScores(ids=np.asarray(truth.ids, dtype=str), iou=all_iou, intersection=all_inter, union=all_union,
                          pointing=all_pointing, parse_failed=all_failed, out_of_frame=all_out,
                          category=truth.categories)
    return ScoredSamples(scores, problems, missing, pred_flat, pred_counts, sizes, matched[0])


def _score_matched(truth: TruthTable, preds: PredictionTable, rows: np.ndarray, true: _TrueBoxes,
                   sizes: np.ndarray, rules: ScoringRules, matched: list) -> tuple[np.ndarray, ...]:
    """Per matched prediction: iou, intersection, union, pointing, parse_failed, out_of_frame, then the compared
    boxes (flat) and the image size of each matched row; sets ``matched[0]`` (see :class:`ScoredSamples`)."""
    k, dims = len(rows), truth.dims or 2
    counts = np.asarray(preds.counts, dtype=np.int64)
    flat = np.asarray(preds.flat, dtype=np.float64).reshape(-1, 2 * dims)
    failed = counts == 0
    # Sizes: the data set's, else the line's; rows with neither are pixel-frame rows (checked when joined).
    row_sizes = sizes[rows]
    if any(s is not None for s in preds.image_sizes):
        line_sizes = np.asarray([s if s is not None else [np.nan] * dims for s in preds.image_sizes],
                                dtype=np.float64).reshape(k, dims)
        row_sizes = np.where(np.isnan(row_sizes), line_sizes, row_sizes)
    if rules.raw_coordinates and rules.rescale == "resized":
        converted = _resized_to_image(flat, counts, row_sizes)
        out = _outside_raw(converted, counts, row_sizes, dims)
    elif rules.raw_coordinates:
        converted, out = flat, _outside_raw(flat, counts, row_sizes, dims)
    else:
        converted, out = _to_pixels(truth, preds, flat, counts, row_sizes, dims)

    t_counts, t_start = true.counts[rows], true.start[rows]
    true_rows_flat = true.flat[np.repeat(t_start - (np.cumsum(t_counts) - t_counts), t_counts)
                               + np.arange(int(t_counts.sum()))]
    pointing = geometry.region_pointing_columns(converted, counts, true_rows_flat, t_counts)
    if rules.overlap is None:
        inter, union = geometry.region_overlap_columns(converted, counts, true_rows_flat, t_counts)
        iou = np.clip(np.divide(inter, union, out=np.zeros(k), where=union > 0), 0.0, 1.0)
        if dims == 2 and not rules.raw_coordinates:
            matched[0] = MatchedBoxes([truth.ids[r] for r in rows.tolist()], flat, counts, preds.frames, row_sizes,
                                      _input_sizes(truth, preds, dims), true_rows_flat, t_counts, iou)
        return iou, inter, union, pointing, failed, out, converted, row_sizes
    # A preset's one-box arithmetic: one box per parsed prediction, its failure box otherwise.
    pred = np.tile(np.asarray(rules.failure_box, dtype=np.float64), (k, 1))
    pred[~failed] = converted
    inter, union = rules.overlap(pred, true_rows_flat)
    iou = np.divide(inter, union, out=np.zeros(k), where=union > 0)
    union = np.where(union > 0, union, 0.0)
    inter = np.where(union > 0, inter, 0.0)
    return iou, inter, union, pointing, failed, out, converted, row_sizes


def _resized_to_image(flat: np.ndarray, counts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """VLM-R1's ``resize_bbox``: each (x, y) of a 2D box times ``image / input`` per axis, the input being
    :func:`medground_eval.frames.smart_resize` of the image (Qwen2.5-VL's default pixel limits), no clipping."""
    from medground_eval.frames import smart_resize

    owner = np.repeat(np.arange(len(counts)), counts)
    box_sizes = sizes[owner]
    if np.isnan(box_sizes).any():
        raise ValueError("the preset rescales answers from the model's resized input: every sample needs its "
                         "image size")
    scale = np.empty_like(box_sizes)
    for size in np.unique(box_sizes, axis=0):
        width, height = int(size[0]), int(size[1])
        input_height, input_width = smart_resize(height, width)
        rows = (box_sizes == size).all(axis=1)
        scale[rows] = [width / input_width, height / input_height]
    return flat * np.hstack([scale, scale])


def _outside_raw(flat: np.ndarray, counts: np.ndarray, sizes: np.ndarray, dims: int) -> np.ndarray:
    """Per prediction, a raw box leaves its known image (a coordinate below 0 or above the size)."""
    owner = np.repeat(np.arange(len(counts)), counts)
    limit = np.where(np.isnan(sizes), np.inf, sizes)[owner]
    box_out = (flat[:, :dims] < 0).any(axis=1) | (flat[:, dims:] > limit).any(axis=1)
    out = np.zeros(len(counts), dtype=bool)
    np.logical_or.at(out, owner, box_out)
    return out


def _to_pixels(truth: TruthTable, preds: PredictionTable, flat: np.ndarray, counts: np.ndarray,
               row_sizes: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The predictions' boxes converted from their frames to original pixels (clipped), and out_of_frame."""
    k = len(counts)
    inputs = _input_sizes(truth, preds, dims)
    has_size = ~np.isnan(row_sizes).any(axis=1)
    frames = np.asarray(preds.frames, dtype=object)
    owner = np.repeat(np.arange(k), counts)
    converted = np.empty_like(flat)
    out = np.zeros(k, dtype=bool)
    for group in (has_size, ~has_size):
        if not group.any():
            continue
        box_mask = group[owner]
        group_frames = frames[group].tolist()
        converted[box_mask], out[group] = boxes_to_pixels(
            flat[box_mask], counts[group],
            frames=group_frames[0] if len(set(group_frames)) == 1 else group_frames,
            image_sizes=row_sizes[group] if group is has_size else None,
            input_sizes=None if inputs is None or group is not has_size else inputs[group], dims=dims,
        )
    return converted, out


def _input_sizes(truth: TruthTable, preds: PredictionTable, dims: int) -> np.ndarray | None:
    """Per matched prediction, the ``input_size`` of its frame, or None when no row has one: in 2D the line's
    ``[w, h]`` (``resized``); in 3D, for ``m3d-npy`` rows, the line's crop box, else the sample's. All-NaN rows:
    not given."""
    if dims == 2:
        if all(s is None for s in preds.input_sizes):
            return None
        return np.asarray([s if s is not None else [np.nan] * 2 for s in preds.input_sizes], dtype=np.float64)
    npy = [get_frame(f).kind == "m3d-npy" for f in preds.frames]
    if not any(npy):
        return None
    return np.asarray([(s if s is not None else truth.crops[row]) if is_npy else [np.nan] * 6
                       for s, row, is_npy in zip(preds.input_sizes, preds.truth_rows, npy)], dtype=np.float64)
