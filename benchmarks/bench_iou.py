"""IoU speed and accuracy against a plain numpy broadcast reference measured in the same run.

Checks (PASS/FAIL lines, exit status 1 on any failure):
- box_iou_matrix on 2,000 x 2,000 boxes takes at most 2x the reference's time, max abs difference <= 1e-9;
- region_overlap_many on 1,000,000 single-box pairs (list of (1, 4) arrays, the scorer's input) finishes
  in under 3 s, and agrees with the paired reference IoU to 1e-9.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from medground_eval.boxes import box_iou_matrix, region_overlap_many

MAX_RATIO = 2.0
MAX_ERROR = 1e-9
MAX_MANY_SECONDS = 3.0


def reference_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """torchvision's box_iou written in plain numpy broadcasting (positive-area boxes only)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    lo = rng.uniform(0, 1000, (n, 2))
    return np.hstack([lo, lo + rng.uniform(1, 300, (n, 2))])


def best_time(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def check(ok: bool, line: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {line}")
    return ok


def main() -> int:
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 2000), random_boxes(rng, 2000)
    ours, reference = box_iou_matrix(a, b), reference_iou_matrix(a, b)
    error = float(np.abs(ours - reference).max())
    t_ours = best_time(lambda: box_iou_matrix(a, b))
    t_ref = best_time(lambda: reference_iou_matrix(a, b))
    ratio = t_ours / t_ref
    results = [
        check(ratio <= MAX_RATIO, f"box_iou_matrix 2000x2000: {t_ours * 1e3:.1f} ms vs reference {t_ref * 1e3:.1f} ms,"
              f" ratio {ratio:.2f} (target <= {MAX_RATIO})"),
        check(error <= MAX_ERROR, f"box_iou_matrix max abs difference {error:.2e} (target <= {MAX_ERROR:.0e})"),
    ]

    n = 1_000_000
    pred, true = random_boxes(rng, n), random_boxes(rng, n)
    preds, trues = list(pred[:, None, :]), list(true[:, None, :])
    start = time.perf_counter()
    inter, union = region_overlap_many(preds, trues)
    seconds = time.perf_counter() - start
    iou = inter / union
    sides = np.minimum(pred[:, 2:], true[:, 2:]) - np.maximum(pred[:, :2], true[:, :2])
    ref_inter = np.prod(np.clip(sides, 0, None), 1)
    ref_union = np.prod(pred[:, 2:] - pred[:, :2], 1) + np.prod(true[:, 2:] - true[:, :2], 1) - ref_inter
    many_error = float(np.abs(iou - ref_inter / ref_union).max())
    results += [
        check(seconds <= MAX_MANY_SECONDS, f"region_overlap_many 1,000,000 single-box pairs (lists): {seconds:.2f} s"
              f" (target <= {MAX_MANY_SECONDS} s)"),
        check(many_error <= MAX_ERROR, f"region_overlap_many IoU max abs difference {many_error:.2e}"),
    ]
    start = time.perf_counter()
    region_overlap_many(pred, true)
    print(f"info  region_overlap_many 1,000,000 pairs as (n, 4) arrays: {time.perf_counter() - start:.2f} s")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
