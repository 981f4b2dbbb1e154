"""Benchmark CachedEncoder against the encoder it wraps, measured in the same run.

1. Cold overhead: CachedEncoder(minilm).encode(unique texts) on an empty cache vs minilm.encode(same texts).
   Target: at most 10% slower (best of 5 interleaved repeats: the best time is the least disturbed by other load).
2. Warm throughput: 100k texts drawn from a few hundred repeated labels, all cached; prints texts/s and the
   speed-up over the MiniLM's own throughput. Target: at least 100x faster than encoding.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_encoder_cache.py [--n-unique 1000] [--repeats 5]
Exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

from medground_eval.rewards.encoders import CachedEncoder, SentenceTransformerEncoder

COLD_MAX_OVERHEAD = 0.10
WARM_MIN_SPEEDUP = 100.0

SIDES = ["left", "right", "bilateral", "upper", "lower", "middle", "apical", "basal", "retrocardiac", "perihilar"]
FINDINGS = [
    "pleural effusion", "pneumothorax", "consolidation", "atelectasis", "nodule", "mass", "opacity",
    "cardiomegaly", "rib fracture", "interstitial edema", "hilar enlargement", "pleural thickening",
]
QUALIFIERS = ["small", "large", "moderate", "subtle", "new", "resolving", "loculated", "patchy", ""]


def make_texts(n: int, seed: int) -> list[str]:
    """``n`` distinct short radiology phrases."""
    rng = np.random.default_rng(seed)
    texts: dict[str, None] = {}
    while len(texts) < n:
        q, s, f = rng.choice(QUALIFIERS), rng.choice(SIDES), rng.choice(FINDINGS)
        texts[f"{q} {s} {f} {rng.integers(0, 10 * n)}".strip()] = None
    return list(texts)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_times(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Best wall time of each function over ``repeats`` rounds, the functions interleaved within a round so that
    load from other processes hits them alike."""
    times = [[timed(fn) for fn in fns] for _ in range(repeats)]
    return [min(column) for column in zip(*times)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-unique", type=int, default=1000, help="unique texts for the cold comparison")
    parser.add_argument("--n-warm", type=int, default=100_000, help="texts in the warm batch")
    parser.add_argument("--n-labels", type=int, default=500, help="distinct labels in the warm batch")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    minilm = SentenceTransformerEncoder()
    minilm.encode(make_texts(64, seed=99))  # load the model and warm up kernels outside the timings
    texts = make_texts(args.n_unique, seed=0)

    direct, cold = best_times([lambda: minilm.encode(texts), lambda: CachedEncoder(minilm).encode(texts)], args.repeats)
    overhead = cold / direct - 1.0
    direct_rate = len(texts) / direct
    print(f"cold: direct {direct:.3f}s, cached {cold:.3f}s for {len(texts)} unique texts -> overhead {overhead:+.1%}")

    labels = make_texts(args.n_labels, seed=1)
    warm_texts = [labels[i] for i in np.random.default_rng(2).integers(0, len(labels), size=args.n_warm)]
    cached = CachedEncoder(minilm)
    cached.encode(labels)
    (warm,) = best_times([lambda: cached.encode(warm_texts)], args.repeats)
    warm_rate = len(warm_texts) / warm
    speedup = warm_rate / direct_rate
    print(
        f"warm: {len(warm_texts)} texts ({len(labels)} labels) in {warm:.3f}s = {warm_rate:,.0f} texts/s; "
        f"MiniLM encodes {direct_rate:,.0f} texts/s -> speed-up x{speedup:,.0f}"
    )
    print(f"cache_info: {cached.cache_info()}")

    ok_cold = overhead <= COLD_MAX_OVERHEAD
    ok_warm = speedup >= WARM_MIN_SPEEDUP
    print(f"{'PASS' if ok_cold else 'FAIL'} cold overhead {overhead:+.1%} (target <= {COLD_MAX_OVERHEAD:.0%})")
    print(f"{'PASS' if ok_warm else 'FAIL'} warm speed-up x{speedup:,.0f} (target >= x{WARM_MIN_SPEEDUP:.0f})")
    return 0 if ok_cold and ok_warm else 1


if __name__ == "__main__":
    sys.exit(main())
