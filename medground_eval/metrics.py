"""Grounding metrics: per-sample scores, Acc@IoU, mIoU, cIoU, pointing accuracy and bootstrap intervals.

Two steps, as in scikit-learn: :func:`score_samples` checks its inputs once and turns predicted and true
boxes into :class:`SampleScores` (one row per sample); :func:`grounding_report` summarises those rows
into a :class:`GroundingReport`. :func:`paired_bootstrap` and :func:`mcnemar` compare two runs scored on
the same samples. Every definition and edge case is written below and in ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import bdtr, chdtrc, ndtr, ndtri
from threadpoolctl import threadpool_limits

from medground_eval import boxes

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
"""IoU thresholds reported by default (Acc@0.5 is the usual headline number)."""

EXACT_MCNEMAR_BELOW = 25
""":func:`mcnemar` uses the exact binomial test when fewer discordant pairs than this, else chi-square."""

IOU_TOLERANCE = 1e-9  # see iou_hits
EXACT_BOOTSTRAP_MAX_N = 100_000  # above this many samples, resampled means come from their Gaussian limit
_CHUNK_ELEMENTS = 1 << 16  # resampled indices per bootstrap chunk (512 KiB of int64: stays in cache)


@dataclass(frozen=True)
class SampleScores:
    """Per-sample grounding results in columns, one row per sample (all 1-D arrays of equal length).

    - ``ids``: unique sample ids (str).
    - ``iou``: the sample's IoU in [0, 1] (see :func:`score_samples` for the ``multi`` rule).
    - ``intersection``, ``union``: area (volume in 3D) of the intersection and of the union of the
      predicted and true regions, >= 0, intersection <= union; their sums give cIoU.
    - ``pointing``: the centre of the predicted region lies inside the true region.
    - ``parse_failed``: no usable predicted box; such a row must have iou 0, intersection 0, pointing False.
    - ``out_of_frame``: some predicted box had a coordinate outside its declared frame (before clipping).
    - ``category``: a str per sample, or None when the sample has no category.

    Construction copies the inputs into read-only arrays and raises ``ValueError`` / ``TypeError``
    naming the field, row, id and value when a column has the wrong length, type or range.
    """

    ids: np.ndarray
    iou: np.ndarray
    intersection: np.ndarray
    union: np.ndarray
    pointing: np.ndarray
    parse_failed: np.ndarray
    out_of_frame: np.ndarray
    category: np.ndarray

    def __post_init__(self) -> None:
        ids = _as_ids(self.ids)
        n = len(ids)
        columns: dict[str, np.ndarray] = {"ids": ids}
        for name in ("iou", "intersection", "union"):
            columns[name] = _as_column(name, getattr(self, name), n, np.float64)
        for name in ("pointing", "parse_failed", "out_of_frame"):
            columns[name] = _as_column(name, getattr(self, name), n, np.bool_)
        columns["category"] = _as_categories(self.category, n)

        iou, inter, union = columns["iou"], columns["intersection"], columns["union"]
        _first_bad(~((iou >= 0) & (iou <= 1)), "iou", iou, ids, "a value in [0, 1]")
        _first_bad(~(np.isfinite(inter) & (inter >= 0)), "intersection", inter, ids, "a finite value >= 0")
        _first_bad(~(np.isfinite(union) & (union >= 0)), "union", union, ids, "a finite value >= 0")
        _first_bad(inter > union * (1 + 1e-9), "intersection", inter, ids, "a value <= union")
        failed = columns["parse_failed"]
        _first_bad(failed & (iou != 0), "iou", iou, ids, "0 for a parse failure")
        _first_bad(failed & (inter != 0), "intersection", inter, ids, "0 for a parse failure")
        _first_bad(failed & columns["pointing"], "pointing", columns["pointing"], ids, "False for a parse failure")
        for name, array in columns.items():
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return len(self.ids)


def score_samples(
    ids: Sequence[str],
    pred_boxes: Sequence[np.ndarray],
    true_boxes: Sequence[np.ndarray],
    *,
    parse_failed: Sequence[bool] | np.ndarray | None = None,
    out_of_frame: Sequence[bool] | np.ndarray | None = None,
    categories: Sequence[str | None] | None = None,
    multi: Literal["union", "match"] = "union",
) -> SampleScores:
    """Score each sample's predicted boxes against its true boxes.

    ``pred_boxes[i]`` is a (k, 4) or (k, 6) array in the same pixel frame as ``true_boxes[i]``
    (k >= 0; k = 0 means no predicted box); ``true_boxes[i]`` must hold at least one box.

    - IoU, ``multi="union"`` (default): area of (union of predicted boxes) intersected with (union of
      true boxes), divided by the area of the union of both regions; 0 when that union has area 0.
    - IoU, ``multi="match"``: :func:`boxes.matched_iou`, a one-to-one matching of predicted to true boxes
      maximising IoU, summed and divided by max(#pred, #true). ``intersection`` / ``union`` stay those
      of the union regions, so cIoU does not depend on ``multi``.
    - ``pointing``: :func:`boxes.region_center` of the predicted boxes (centre of their enclosing box)
      lies in the true region (:func:`boxes.points_in_region`).
    - Parse failure: a sample with no predicted box, or flagged in ``parse_failed`` (its boxes are then
      ignored), scores IoU 0, intersection 0, union = area of the true region, pointing False.

    ``out_of_frame`` defaults to all False, ``categories`` to all None. Raises ``ValueError`` naming the
    argument, index and id on a length mismatch, a box array of the wrong shape, a sample with no true
    box, pred/true of different dimensionality, or a non-finite coordinate.

    >>> scores = score_samples(["a", "b"], [np.array([[0., 0, 10, 10]]), np.zeros((0, 4))],
    ...                        [np.array([[0., 0, 10, 20]]), np.array([[0., 0, 5, 5]])])
    >>> scores.iou.tolist(), scores.parse_failed.tolist()
    ([0.5, 0.0], [False, True])
    """
    if multi not in ("union", "match"):
        raise ValueError(f"multi={multi!r}; expected 'union' or 'match'")
    ids = list(ids)
    n = len(ids)
    for name, values in (("pred_boxes", pred_boxes), ("true_boxes", true_boxes), ("parse_failed", parse_failed),
                         ("out_of_frame", out_of_frame), ("categories", categories)):
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries; expected {n}, one per id")

    trues = [_as_boxes(box, "true_boxes", i, ids[i], None) for i, box in enumerate(true_boxes)]
    preds = [_as_boxes(box, "pred_boxes", i, ids[i], trues[i].shape[1]) for i, box in enumerate(pred_boxes)]
    failed = np.array([len(pred) == 0 for pred in preds], dtype=bool)
    if parse_failed is not None:
        failed |= _as_flags("parse_failed", parse_failed)
    preds = [np.empty((0, true.shape[1])) if fail else pred for pred, true, fail in zip(preds, trues, failed)]

    pred_counts = np.fromiter((len(pred) for pred in preds), dtype=np.int64, count=n)
    true_counts = np.fromiter((len(true) for true in trues), dtype=np.int64, count=n)
    width = trues[0].shape[1] if n else 4
    mixed = next((i for i, true in enumerate(trues) if true.shape[1] != width), None)
    if mixed is not None:
        raise ValueError(f"true_boxes[{mixed}] (id {ids[mixed]!r}) has {trues[mixed].shape[1]} numbers per box; "
                         f"expected {width}, like the first sample (2D and 3D samples cannot be scored together)")
    pred_flat = np.concatenate(preds) if n else np.zeros((0, width))
    true_flat = np.concatenate(trues) if n else np.zeros((0, width))
    inter, union = boxes.region_overlap_columns(pred_flat, pred_counts, true_flat, true_counts)
    if multi == "union":
        iou = boxes.safe_divide(inter, union)
    else:
        iou = np.array([boxes.matched_iou(pred, true) for pred, true in zip(preds, trues)])
    pointing = boxes.region_pointing_columns(pred_flat, pred_counts, true_flat, true_counts)
    return SampleScores(
        ids=ids,
        iou=np.clip(iou, 0.0, 1.0),  # rounding in the geometry may leave 1 + 1e-16
        intersection=inter,
        union=union,
        pointing=pointing,
        parse_failed=failed,
        out_of_frame=np.zeros(n, dtype=bool) if out_of_frame is None else _as_flags("out_of_frame", out_of_frame),
        category=[None] * n if categories is None else list(categories),
    )


@dataclass(frozen=True)
class GroundingReport:
    """Summary of a run; build it with :func:`grounding_report`.

    Rates are fractions in [0, 1]; any metric over zero samples is None. ``acc`` and ``per_category``
    ``acc`` are keyed by ``f"{t:g}"`` ("0.5"); ``ci`` maps "acc@<t>", "miou", "ciou", "pointing" to
    ``(lo, hi)`` and is empty when ``n == 0`` or ``n_bootstrap == 0``.
    """

    n: int
    acc: dict[str, float | None]
    miou: float | None
    ciou: float | None
    pointing: float | None
    parse_failure_rate: float | None
    out_of_frame_rate: float | None
    per_category: dict[str, dict[str, Any]]
    ci: dict[str, tuple[float, float]]
    thresholds: tuple[float, ...]
    inclusive: bool
    confidence: float
    n_bootstrap: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able Python (int, float, None, str, list, dict): keys ``n, acc, miou, ciou, pointing,
        parse_failure_rate, out_of_frame_rate, per_category, ci, thresholds, inclusive``."""
        return {
            "n": self.n,
            "acc": dict(self.acc),
            "miou": self.miou,
            "ciou": self.ciou,
            "pointing": self.pointing,
            "parse_failure_rate": self.parse_failure_rate,
            "out_of_frame_rate": self.out_of_frame_rate,
            "per_category": {name: {**stats, "acc": dict(stats["acc"])} for name, stats in self.per_category.items()},
            "ci": {name: list(interval) for name, interval in self.ci.items()},
            "thresholds": list(self.thresholds),
            "inclusive": self.inclusive,
        }

    def rows(self) -> Iterator[tuple[str, float | int | None, tuple[float, float] | None]]:
        """(name, value, interval or None) for display, overall metrics only: n, acc@<t> per threshold,
        miou, ciou, pointing, parse_failure_rate, out_of_frame_rate (names match ``to_dict`` / ``ci`` keys)."""
        yield "n", self.n, None
        for key, value in self.acc.items():
            yield f"acc@{key}", value, self.ci.get(f"acc@{key}")
        for name in ("miou", "ciou", "pointing"):
            yield name, getattr(self, name), self.ci.get(name)
        yield "parse_failure_rate", self.parse_failure_rate, None
        yield "out_of_frame_rate", self.out_of_frame_rate, None


def grounding_report(
    scores: SampleScores,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    inclusive: bool = True,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> GroundingReport:
    """Summarise per-sample scores. Every mean is over all n samples: parse failures count as IoU 0.

    - ``acc[f"{t:g}"]``: fraction of samples with IoU >= t (``inclusive=True``) or IoU > t (``inclusive=False``,
      the rule of the VLM-R1 / MedGround-R1 evaluation scripts at t = 0.5), as :func:`iou_hits` decides it.
    - ``miou``: mean per-sample IoU. ``ciou``: sum(intersection) / sum(union); 0 when the pooled union is 0.
    - ``pointing``, ``parse_failure_rate``, ``out_of_frame_rate``: fraction of samples with that flag.
    - ``per_category[c]``: ``{n, acc, miou, ciou, pointing}`` over samples of category c (sorted by name);
      samples with category None count in the overall metrics but under no category.
    - ``ci`` at ``confidence`` (percentile intervals under-cover at small n: 59% for a nominal 95% at n = 30 on a
      rare event, see docs/metrics.md):
      - acc@t and pointing (proportions): the Wilson score interval (:func:`wilson_interval`), no resampling;
      - miou and ciou: the BCa bootstrap interval (:func:`bca_interval`): ``n_bootstrap`` resamples of n samples
        drawn with replacement (``numpy.random.default_rng(seed)``, so a fixed seed gives the same intervals),
        bias-corrected with the resamples below the estimate and accelerated with the jackknife of the statistic.
        Above ``EXACT_BOOTSTRAP_MAX_N`` samples the resampled means are drawn from their Gaussian limit (same mean
        and covariance as resampling; see _bootstrap_means), and draws outside [0, 1] are clipped to it.
    - n = 0: every metric is None, ``acc`` maps each threshold to None, ``per_category`` and ``ci`` are empty.

    >>> scores = score_samples(["a", "b"], [np.array([[0., 0, 10, 10]])] * 2, [np.array([[0., 0, 10, 10]]),
    ...                        np.array([[0., 0, 10, 40]])])
    >>> report = grounding_report(scores)
    >>> report.n, round(report.miou, 4), report.to_dict()["acc"]["0.5"]
    (2, 0.625, 0.5)
    """
    if not isinstance(scores, SampleScores):
        raise TypeError(f"scores is a {type(scores).__name__}; expected SampleScores (see score_samples)")
    thresholds = _check_thresholds(thresholds)
    _check_bootstrap(n_bootstrap, confidence, minimum=0)
    n = len(scores)
    keys = [f"{t:g}" for t in thresholds]
    if n == 0:
        return GroundingReport(
            n=0, acc=dict.fromkeys(keys), miou=None, ciou=None, pointing=None, parse_failure_rate=None,
            out_of_frame_rate=None, per_category={}, ci={}, thresholds=thresholds, inclusive=inclusive,
            confidence=confidence, n_bootstrap=n_bootstrap,
        )

    hits = iou_hits(scores.iou, thresholds, inclusive)
    overall = _summary(hits, keys, scores.iou, scores.intersection, scores.union, scores.pointing)
    per_category = {}
    for name in sorted({c for c in scores.category if c is not None}):
        mask = scores.category == name
        per_category[name] = {
            "n": int(mask.sum()),
            **_summary(hits[:, mask], keys, scores.iou[mask], scores.intersection[mask], scores.union[mask],
                       scores.pointing[mask]),
        }

    ci: dict[str, tuple[float, float]] = {}
    if n_bootstrap > 0:
        columns = np.vstack([hits, scores.iou, scores.pointing, scores.intersection, scores.union])
        means = _bootstrap_means(columns, n_bootstrap, np.random.default_rng(seed))
        t = len(thresholds)
        ci = {f"acc@{key}": wilson_interval(int(row.sum()), n, confidence) for key, row in zip(keys, hits)}
        # Every statistic lies in [0, 1]; only Gaussian-limit draws can leave it (a no-op for exact resampling).
        ci["miou"] = bca_interval(np.clip(means[:, t], 0.0, 1.0), overall["miou"], _jackknife_means(scores.iou),
                                  confidence)
        ciou = np.clip(boxes.safe_divide(means[:, t + 2], means[:, t + 3]), 0.0, 1.0)
        ci["ciou"] = bca_interval(ciou, overall["ciou"], _jackknife_ratio(scores.intersection, scores.union),
                                  confidence)
        ci["pointing"] = wilson_interval(int(np.count_nonzero(scores.pointing)), n, confidence)

    return GroundingReport(
        n=n,
        acc=overall["acc"],
        miou=overall["miou"],
        ciou=overall["ciou"],
        pointing=overall["pointing"],
        parse_failure_rate=float(scores.parse_failed.mean()),
        out_of_frame_rate=float(scores.out_of_frame.mean()),
        per_category=per_category,
        ci=ci,
        thresholds=thresholds,
        inclusive=inclusive,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
    )


def paired_bootstrap(
    a_values: Sequence[float] | np.ndarray,
    b_values: Sequence[float] | np.ndarray,
    *,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Difference of means ``mean(b) - mean(a)`` of two runs on the same samples, with a paired
    BCa bootstrap interval (:func:`bca_interval`): each resample draws the same sample indices for a and b.

    ``a_values[i]`` and ``b_values[i]`` are the two runs' per-sample values (IoU, or 0/1 hits) for
    sample i. Returns ``(diff, lo, hi)``. Raises ``ValueError`` on unequal lengths, no samples,
    non-finite values or ``n_bootstrap < 1``.
    """
    _check_bootstrap(n_bootstrap, confidence, minimum=1)
    a = _as_values("a_values", a_values)
    b = _as_values("b_values", b_values)
    if len(a) != len(b):
        raise ValueError(f"a_values has {len(a)} values and b_values {len(b)}; expected one pair per sample")
    if len(a) == 0:
        raise ValueError("a_values and b_values are empty; expected at least one paired sample")
    means = _bootstrap_means(np.vstack([a, b]), n_bootstrap, np.random.default_rng(seed))
    diff = float(b.mean() - a.mean())
    lo, hi = bca_interval(means[:, 1] - means[:, 0], diff, _jackknife_means(b - a), confidence)
    return diff, lo, hi


def mcnemar(a_hits: Sequence[bool] | np.ndarray, b_hits: Sequence[bool] | np.ndarray) -> tuple[float, float]:
    """McNemar's test of two runs' hit rates on the same samples; returns ``(statistic, p_value)``.

    With n01 = #(a hit, b miss), n10 = #(a miss, b hit) and m = n01 + n10 discordant pairs:

    - m = 0: ``(0.0, 1.0)``.
    - m < ``EXACT_MCNEMAR_BELOW`` (25): exact two-sided binomial test of min(n01, n10) ~ Binomial(m, 1/2);
      statistic = min(n01, n10), p = min(1, 2 * P(X <= min(n01, n10))).
    - otherwise: chi-square with Edwards' continuity correction, statistic = max(|n01 - n10| - 1, 0)^2 / m,
      p = P(chi2 with 1 degree of freedom >= statistic).

    >>> round(mcnemar([True] * 10 + [False] * 10, [False] * 20)[1], 4)  # 10 discordant pairs, all one way
    0.002
    """
    a = _as_flags("a_hits", a_hits)
    b = _as_flags("b_hits", b_hits)
    if len(a) != len(b):
        raise ValueError(f"a_hits has {len(a)} values and b_hits {len(b)}; expected one pair per sample")
    only_a = int(np.count_nonzero(a & ~b))
    only_b = int(np.count_nonzero(~a & b))
    discordant = only_a + only_b
    if discordant == 0:
        return 0.0, 1.0
    if discordant < EXACT_MCNEMAR_BELOW:
        smaller = min(only_a, only_b)
        return float(smaller), float(min(1.0, 2.0 * bdtr(smaller, discordant, 0.5)))
    statistic = max(abs(only_a - only_b) - 1, 0) ** 2 / discordant
    return float(statistic), float(chdtrc(1, statistic))


def _summary(hits: np.ndarray, keys: list[str], iou: np.ndarray, inter: np.ndarray, union: np.ndarray,
             pointing: np.ndarray) -> dict[str, Any]:
    """acc / miou / ciou / pointing of a non-empty set of samples, as Python floats."""
    return {
        "acc": {key: float(row.mean()) for key, row in zip(keys, hits)},
        "miou": float(iou.mean()),
        "ciou": float(boxes.safe_divide(inter.sum(), union.sum())),
        "pointing": float(pointing.mean()),
    }


def iou_hits(iou: np.ndarray, thresholds: float | Sequence[float], inclusive: bool = True) -> np.ndarray:
    """The hit rule, everywhere: IoU >= t (``inclusive``) or IoU > t, compared with a tolerance of ``IOU_TOLERANCE``.

    The tolerance absorbs float round-off (an IoU of exactly 1/2 can come back as 0.49999999999999994 after a
    frame round trip), so the same boxes hit or miss alike in every frame; it is far below any IoU difference
    between integer-pixel boxes of real images. A scalar threshold gives one bool per sample; a sequence of T
    thresholds a (T, n) array.

    >>> iou_hits(np.array([0.5, 0.49, 0.7]), 0.5).tolist(), iou_hits(np.array([0.5]), 0.5, inclusive=False).tolist()
    ([True, False, True], [False])
    """
    iou = np.asarray(iou, dtype=np.float64)
    limits = np.asarray(thresholds, dtype=np.float64)
    limits = limits if limits.ndim == 0 else limits[:, None]
    return iou >= limits - IOU_TOLERANCE if inclusive else iou > limits + IOU_TOLERANCE


def _bootstrap_means(columns: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """(n_bootstrap, k) means of the k rows of ``columns`` (k, n) over resamples of the n columns.

    Up to ``EXACT_BOOTSTRAP_MAX_N`` samples, each resample is a row of an index matrix drawn with replacement; its
    means are counts @ values / n, computed a chunk of resamples at a time so that at most ``_CHUNK_ELEMENTS``
    indices are held. Above it (a million predictions would need 10^9 draws), the resampled means are drawn from
    their Gaussian limit: mean = the column means, covariance = the columns' (biased) covariance / n, exactly the
    first two moments of the resampling distribution; at that n its skewness is negligible and the intervals
    differ from exact resampling by less than the Monte Carlo error of 1000 replicates.
    """
    k, n = columns.shape
    values = columns.T.astype(np.float64)
    if n > EXACT_BOOTSTRAP_MAX_N:
        centre = values.mean(axis=0)
        covariance = np.atleast_2d(np.cov(values, rowvar=False, bias=True)) / n
        return rng.multivariate_normal(centre, covariance, size=n_bootstrap, method="eigh")
    per_chunk = max(1, _CHUNK_ELEMENTS // n)
    means = np.empty((n_bootstrap, k))
    # One BLAS thread: the products are small, and on a busy machine a multi-threaded BLAS made them 10-100x slower
    # (n = 100k: 0.5 s on one thread, 5-70 s on two beside another process).
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, n_bootstrap, per_chunk):
            rows = min(per_chunk, n_bootstrap - start)
            draws = rng.integers(0, n, size=(rows, n))
            draws += n * np.arange(rows)[:, None]  # row r counts into bins [r * n, (r + 1) * n)
            counts = np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n)
            means[start:start + rows] = counts.astype(np.float64) @ values / n
    return means


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n`` (n >= 1) at ``confidence``.

    ``centre = (p + z^2 / 2n) / (1 + z^2 / n)``, ``half = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)``
    with ``z`` the ``(1 + confidence) / 2`` normal quantile. Unlike a percentile bootstrap it is never the empty
    ``[0, 0]`` at 0 successes, and its coverage stays near nominal at small n (docs/metrics.md).

    >>> tuple(round(v, 4) for v in wilson_interval(8, 10))
    (0.4902, 0.9433)
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: successes={successes!r}, n={n!r}; expected 0 <= successes <= n, n >= 1")
    z = float(ndtri((1 + confidence) / 2))
    p = successes / n
    scale = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z / scale * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return float(lo), float(hi)


def bca_interval(
    replicates: np.ndarray, estimate: float, jackknife: np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Bias-corrected and accelerated (BCa) bootstrap interval (Efron 1987).

    ``replicates``: the statistic on each resample; ``estimate``: on the data; ``jackknife``: on the data with
    each sample left out. ``z0 = Phi^-1(share of replicates below the estimate, ties counted half)``;
    ``a = sum(d^3) / (6 sum(d^2)^1.5)`` with ``d = mean(jackknife) - jackknife``; the interval is the replicates'
    quantiles at ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))`` for ``z`` the two normal quantiles of ``confidence``.
    All replicates equal: ``(estimate, estimate)``. The share is kept within ``[1/(B+1), B/(B+1)]`` so z0 is
    finite, and with a = 0 and z0 = 0 this is the percentile interval.
    """
    replicates = np.asarray(replicates, dtype=np.float64)
    if replicates.size == 0 or np.ptp(replicates) == 0:
        return float(estimate), float(estimate)
    b = replicates.size
    below = (np.count_nonzero(replicates < estimate) + 0.5 * np.count_nonzero(replicates == estimate)) / b
    z0 = float(ndtri(min(max(below, 1 / (b + 1)), b / (b + 1))))
    d = np.mean(jackknife) - np.asarray(jackknife, dtype=np.float64)
    spread = float(np.sum(d * d))
    a = float(np.sum(d**3)) / (6 * spread**1.5) if spread > 0 else 0.0
    levels = []
    for z in (ndtri((1 - confidence) / 2), ndtri((1 + confidence) / 2)):
        shifted = z0 + z
        denominator = 1 - a * shifted
        levels.append(float(ndtr(z0 + shifted / denominator)) if denominator > 0 else (0.0 if z < 0 else 1.0))
    lo, hi = np.quantile(replicates, levels)
    return float(lo), float(hi)


def _jackknife_means(values: np.ndarray) -> np.ndarray:
    """Leave-one-out means of ``values`` (n >= 2; a single value gives itself)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    return values.copy() if n < 2 else (values.sum() - values) / (n - 1)


def _jackknife_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Leave-one-out ``sum(numerator) / sum(denominator)`` (0 where the rest's denominator is 0)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    if len(numerator) < 2:
        return boxes.safe_divide(numerator, denominator)
    return boxes.safe_divide(numerator.sum() - numerator, denominator.sum() - denominator)


def _check_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in thresholds)
    except TypeError:
        raise TypeError(f"thresholds={thresholds!r}; expected a sequence of IoU thresholds in [0, 1]") from None
    if not values:
        raise ValueError("thresholds is empty; expected at least one IoU threshold in [0, 1]")
    for t in values:
        if not 0 <= t <= 1:
            raise ValueError(f"thresholds holds {t!r}; expected IoU thresholds in [0, 1]")
    keys = [f"{t:g}" for t in values]
    if len(set(keys)) != len(keys):
        raise ValueError(f"thresholds {values} give the keys {keys}; expected distinct thresholds")
    return values


def _check_bootstrap(n_bootstrap: int, confidence: float, minimum: int) -> None:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < minimum:
        raise ValueError(f"n_bootstrap={n_bootstrap!r}; expected an integer >= {minimum}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r}; expected a value strictly between 0 and 1, e.g. 0.95")


def _as_boxes(value: object, name: str, index: int, sample_id: object, width: int | None) -> np.ndarray:
    """A (k, 4) / (k, 6) float array; ``width=None`` means ground truth (k >= 1 required), else predictions
    whose width must equal ``width`` (k = 0 allowed)."""
    where = f"{name}[{index}] (id {sample_id!r})"
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where} is {value!r}; expected a (k, 4) or (k, 6) array of numbers") from None
    if array.size == 0:
        if width is None:
            raise ValueError(f"{where} is empty; expected at least one ground-truth box")
        return np.empty((0, width))
    if array.ndim != 2 or array.shape[1] not in (4, 6):
        raise ValueError(f"{where} has shape {array.shape}; expected (k, 4) for 2D or (k, 6) for 3D boxes")
    if width is not None and array.shape[1] != width:
        raise ValueError(f"{where} has {array.shape[1]} numbers per box but the true boxes have {width}; "
                         "expected the same dimensionality")
    if not np.isfinite(array).all():
        raise ValueError(f"{where} holds a non-finite coordinate; expected finite numbers")
    return array


def _as_flags(name: str, values: object) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind != "b"):
        raise TypeError(f"{name} has shape {array.shape} and dtype {array.dtype}; expected a 1-D sequence of bools")
    return array.astype(bool)


def _as_values(name: str, values: object) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "biuf"):
        raise ValueError(f"{name} has shape {array.shape} and dtype {array.dtype}; expected a 1-D sequence of numbers")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        index = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(f"{name}[{index}] is {array[index].item()!r}; expected a finite number")
    return array


def _as_ids(values: object) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"SampleScores.ids has shape {array.shape}; expected a 1-D array of strings")
    if array.size == 0:
        return np.array([], dtype=str)
    if array.dtype.kind == "O" and all(isinstance(v, str) for v in array):
        array = array.astype(str)
    if array.dtype.kind != "U":
        raise TypeError(f"SampleScores.ids has dtype {array.dtype}; expected strings")
    unique, first, counts = np.unique(array, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = int(np.argmax(counts > 1))
        raise ValueError(f"SampleScores.ids[{first[dup]}] = {str(unique[dup])!r} appears {counts[dup]} times; "
                         "expected unique ids")
    return array.copy()


def _as_column(name: str, values: object, n: int, dtype: type) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (n,):
        raise ValueError(f"SampleScores.{name} has shape {array.shape}; expected ({n},), one value per id")
    expected_kinds = "b" if dtype is np.bool_ else "biuf"
    if n and array.dtype.kind not in expected_kinds:
        expected = "bool" if dtype is np.bool_ else "numbers"
        raise TypeError(f"SampleScores.{name} has dtype {array.dtype}; expected {expected}")
    return array.astype(dtype)  # astype copies, so freezing never touches the caller's array


def _as_categories(values: object, n: int) -> np.ndarray:
    items = None if isinstance(values, str) or not hasattr(values, "__len__") else list(values)
    if items is None or len(items) != n:
        raise ValueError(f"SampleScores.category is {values!r:.80}; expected a sequence of {n} values (str or None)")
    for i, item in enumerate(items):
        if item is not None and not isinstance(item, str):
            raise TypeError(f"SampleScores.category[{i}] is {item!r}; expected a str or None")
    array = np.empty(n, dtype=object)
    array[:] = items
    return array


def _first_bad(bad: np.ndarray, name: str, values: np.ndarray, ids: np.ndarray, expected: str) -> None:
    """Raise ValueError naming the first row where ``bad`` holds."""
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"SampleScores.{name}[{i}] (id {str(ids[i])!r}) is {values[i].item()!r}; expected {expected} "
                         f"({int(bad.sum())} rows fail)")
