"""M3D-RefSeg box extraction: ``mask_box`` (np.any profiles) against ``np.argwhere`` min/max, same run.

A CT-sized label volume (512 x 512 x 200, 13 labels, one a large organ). Target: mask_box at least 3x faster
than the argwhere reference on every label, identical boxes. Run: ``.venv/bin/python benchmarks/bench_m3d_refseg.py``.
Exits non-zero when the target is missed.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from medground_eval.datasets.m3d_refseg import mask_box


def argwhere_box(mask: np.ndarray) -> np.ndarray:
    points = np.argwhere(mask)
    return np.concatenate([points.min(0), points.max(0) + 1])


def best_time(function, argument, repeat: int = 3) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function(argument)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    rng = np.random.default_rng(0)
    labels = np.zeros((512, 512, 200), dtype=np.uint8)
    labels[100:400, 120:380, 30:170] = 1  # a liver-sized block
    for label in range(2, 14):
        x, y, z = rng.integers(0, [480, 480, 180])
        labels[x : x + rng.integers(5, 30), y : y + rng.integers(5, 30), z : z + rng.integers(3, 20)] = label
    ratios = []
    for label in (1, 2, 7, 13):
        region = labels == label
        assert np.array_equal(mask_box(region), argwhere_box(region))
        fast, reference = best_time(mask_box, region), best_time(argwhere_box, region)
        ratios.append(reference / fast)
        print(f"label {label:2d}: mask_box {fast * 1e3:7.1f} ms, argwhere {reference * 1e3:7.1f} ms, "
              f"speedup {reference / fast:5.1f}x")
    ok = min(ratios) >= 3
    print(f"min speedup {min(ratios):.1f}x (target >= 3x): {'OK' if ok else 'BELOW TARGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
