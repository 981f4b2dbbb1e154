"""Benchmark the vectorized bootstrap of grounding_report against a per-replicate loop, measured in the same run.

Reference: for each of the n_bootstrap replicates, draw n indices and compute acc@t for every threshold, mIoU,
cIoU and pointing with numpy on the resampled columns (what a straightforward implementation does).
Measured: grounding_report(scores, n_bootstrap=...) for the same scores, which also computes the point metrics.
Target: at least 3x faster than the reference at n = 1000 samples (a typical test split), 1000 replicates,
best of several repeats. The ratio is also printed for smaller and larger n: the gain is the Python overhead
per replicate, so it shrinks as n grows and the work becomes drawing random indices (about 2x at n = 5000).
Also prints the time for n = 200000, where chunking bounds the memory.

Run: .venv/bin/python benchmarks/bench_metrics.py [--sizes 200 1000 5000] [--n-bootstrap 1000] [--repeats 3]
Exits non-zero when the target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

from medground_eval.metrics import DEFAULT_THRESHOLDS, EXACT_BOOTSTRAP_MAX_N, SampleScores, grounding_report

MIN_SPEEDUP = 3.0
TARGET_N = 1000


def make_scores(n: int, seed: int) -> SampleScores:
    rng = np.random.default_rng(seed)
    union = rng.uniform(100, 10_000, n)
    failed = rng.uniform(size=n) < 0.05
    iou = np.where(failed, 0.0, rng.beta(2, 2, n))
    return SampleScores(
        ids=np.array([f"s{i}" for i in range(n)]),
        iou=iou,
        intersection=iou * union,
        union=union,
        pointing=~failed & (iou > 0.3),
        parse_failed=failed,
        out_of_frame=rng.uniform(size=n) < 0.01,
        category=[None] * n,
    )


def loop_bootstrap(scores: SampleScores, n_bootstrap: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(scores)
    thresholds = np.asarray(DEFAULT_THRESHOLDS)
    acc, miou, ciou, pointing = [], [], [], []
    for _ in range(n_bootstrap):
        index = rng.integers(0, n, n)
        iou = scores.iou[index]
        acc.append((iou[None, :] >= thresholds[:, None]).mean(axis=1))
        miou.append(iou.mean())
        ciou.append(scores.intersection[index].sum() / scores.union[index].sum())
        pointing.append(scores.pointing[index].mean())
    q = [0.025, 0.975]
    return {"acc": np.quantile(acc, q, axis=0), "miou": np.quantile(miou, q), "ciou": np.quantile(ciou, q),
            "pointing": np.quantile(pointing, q)}


def best_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, TARGET_N, 5000])
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--n-large", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    passed = True
    for n in args.sizes:
        scores = make_scores(n, seed=0)
        reference = best_time(lambda scores=scores: loop_bootstrap(scores, args.n_bootstrap, 0), args.repeats)
        vectorized = best_time(lambda scores=scores: grounding_report(scores, n_bootstrap=args.n_bootstrap), args.repeats)
        speedup = reference / vectorized
        target = f" (target >= {MIN_SPEEDUP}x)" if n == TARGET_N else ""
        print(f"n={n} n_bootstrap={args.n_bootstrap}: per-replicate loop {reference:.4f}s, "
              f"grounding_report {vectorized:.4f}s, speed-up {speedup:.1f}x{target}")
        passed &= n != TARGET_N or speedup >= MIN_SPEEDUP

    large = make_scores(args.n_large, seed=1)
    seconds = best_time(lambda: grounding_report(large, n_bootstrap=args.n_bootstrap), 1)
    method = "Gaussian limit" if args.n_large > EXACT_BOOTSTRAP_MAX_N else "chunked resampling"
    print(f"n={args.n_large} n_bootstrap={args.n_bootstrap}: grounding_report {seconds:.2f}s ({method})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
