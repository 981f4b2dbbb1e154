"""Grounding metrics: the worked example of docs/metrics.md, hand-computed cases, properties, validation,
the bootstrap against a per-replicate loop, McNemar against scipy."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from medground_eval import metrics
from medground_eval.metrics import (
    GroundingReport,
    SampleScores,
    grounding_report,
    mcnemar,
    paired_bootstrap,
    score_samples,
)


def boxes(*rows: list[float]) -> np.ndarray:
    """A (k, 4) / (k, 6) box array; no rows gives an empty (0, 4) array."""
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1) if rows else np.empty((0, 4))


WORKED_IDS = ["s1", "s2", "s3", "s4", "s5"]
WORKED_PRED = [boxes([0, 0, 10, 5]), boxes([6, 6, 16, 16]), boxes(), boxes([0, 0, 30, 10]), boxes([50, 50, 60, 60])]
WORKED_TRUE = [boxes([0, 0, 10, 10]), boxes([0, 0, 10, 10]), boxes([20, 20, 30, 40]),
               boxes([0, 0, 10, 10], [20, 0, 30, 10]), boxes([50, 50, 60, 60])]
WORKED_KW = {"out_of_frame": [False, False, False, False, True], "categories": ["lung", "heart", "lung", None, "heart"]}


def make_scores(iou, pointing=None, union=None, parse_failed=None, category=None) -> SampleScores:
    """SampleScores with intersection = iou * union (union defaults to 1)."""
    iou = np.asarray(iou, dtype=np.float64)
    n = len(iou)
    union = np.ones(n) if union is None else np.asarray(union, dtype=np.float64)
    return SampleScores(
        ids=np.array([f"id{i}" for i in range(n)], dtype=str),
        iou=iou,
        intersection=iou * union,
        union=union,
        pointing=np.zeros(n, bool) if pointing is None else np.asarray(pointing, bool),
        parse_failed=np.zeros(n, bool) if parse_failed is None else np.asarray(parse_failed, bool),
        out_of_frame=np.zeros(n, bool),
        category=[None] * n if category is None else category,
    )


# --- the worked example (docs/metrics.md) -------------------------------------------------------------

def test_worked_example_per_sample():
    scores = score_samples(WORKED_IDS, WORKED_PRED, WORKED_TRUE, **WORKED_KW)
    np.testing.assert_allclose(scores.intersection, [50, 16, 0, 200, 100])
    np.testing.assert_allclose(scores.union, [100, 184, 200, 300, 100])
    np.testing.assert_allclose(scores.iou, [0.5, 16 / 184, 0, 2 / 3, 1])
    assert scores.pointing.tolist() == [True, False, False, False, True]
    assert scores.parse_failed.tolist() == [False, False, True, False, False]
    assert scores.category.tolist() == ["lung", "heart", "lung", None, "heart"]


def test_worked_example():
    report = grounding_report(score_samples(WORKED_IDS, WORKED_PRED, WORKED_TRUE, **WORKED_KW))
    assert report.n == 5
    assert report.acc == pytest.approx({"0.1": 0.6, "0.3": 0.6, "0.5": 0.6, "0.7": 0.2, "0.9": 0.2})
    assert report.miou == pytest.approx((0.5 + 16 / 184 + 0 + 2 / 3 + 1) / 5)
    assert round(report.miou, 4) == 0.4507
    assert report.ciou == pytest.approx(366 / 884)
    assert round(report.ciou, 4) == 0.4140
    assert report.pointing == pytest.approx(0.4)
    assert report.parse_failure_rate == pytest.approx(0.2)
    assert report.out_of_frame_rate == pytest.approx(0.2)
    assert list(report.per_category) == ["heart", "lung"]
    lung, heart = report.per_category["lung"], report.per_category["heart"]
    assert lung["n"] == 2 and lung["acc"]["0.5"] == 0.5 and lung["pointing"] == 0.5
    assert lung["miou"] == pytest.approx(0.25) and lung["ciou"] == pytest.approx(50 / 300)
    assert heart["n"] == 2 and heart["acc"]["0.5"] == 0.5 and heart["pointing"] == 0.5
    assert heart["miou"] == pytest.approx((16 / 184 + 1) / 2) and heart["ciou"] == pytest.approx(116 / 284)

    exclusive = grounding_report(score_samples(WORKED_IDS, WORKED_PRED, WORKED_TRUE), inclusive=False)
    assert exclusive.acc["0.5"] == pytest.approx(0.4)


def test_worked_example_matched():
    scores = score_samples(WORKED_IDS, WORKED_PRED, WORKED_TRUE, multi="match")
    np.testing.assert_allclose(scores.iou, [0.5, 16 / 184, 0, 1 / 6, 1])
    np.testing.assert_allclose(scores.union, [100, 184, 200, 300, 100])  # still the union regions
    report = grounding_report(scores, n_bootstrap=0)
    assert round(report.miou, 4) == 0.3507
    assert report.acc["0.5"] == pytest.approx(0.4)
    assert report.ciou == pytest.approx(366 / 884)


# --- hand-computed cases ------------------------------------------------------------------------------

def test_flagged_parse_failure_ignores_its_boxes():
    scores = score_samples(["a", "b"], [boxes([0, 0, 4, 4]), boxes([0, 0, 4, 4])], [boxes([0, 0, 4, 4])] * 2,
                           parse_failed=np.array([True, False]))
    assert scores.iou.tolist() == [0.0, 1.0]
    assert scores.intersection.tolist() == [0.0, 16.0]
    assert scores.union.tolist() == [16.0, 16.0]
    assert scores.pointing.tolist() == [False, True]
    assert scores.parse_failed.tolist() == [True, False]


def test_3d_boxes():
    scores = score_samples(["v"], [boxes([0, 0, 0, 2, 2, 1])], [boxes([0, 0, 0, 2, 2, 2])])
    assert scores.iou.tolist() == [0.5]
    assert scores.union.tolist() == [8.0]
    assert scores.pointing.tolist() == [True]


def test_pooled_union_zero_gives_ciou_zero():
    report = grounding_report(make_scores([0.0, 0.0], union=[0.0, 0.0]), n_bootstrap=10)
    assert report.ciou == 0.0
    assert report.ci["ciou"] == (0.0, 0.0)


def test_category_none_is_under_no_key():
    report = grounding_report(make_scores([1.0, 0.0, 0.5], category=["a", None, "a"]), n_bootstrap=0)
    assert report.per_category == {
        "a": {"n": 2, "acc": {"0.1": 1.0, "0.3": 1.0, "0.5": 1.0, "0.7": 0.5, "0.9": 0.5},
              "miou": 0.75, "ciou": 0.75, "pointing": 0.0}
    }
    assert report.n == 3


def test_threshold_keys_and_boundaries():
    scores = make_scores([0.25, 0.5, 0.75, 1.0])
    report = grounding_report(scores, thresholds=[0.25, 0.5, 1.0, 0.0], n_bootstrap=0)
    assert report.acc == {"0.25": 1.0, "0.5": 0.75, "1": 0.25, "0": 1.0}
    report = grounding_report(scores, thresholds=[0.25, 0.5, 1.0, 0.0], inclusive=False, n_bootstrap=0)
    assert report.acc == {"0.25": 0.75, "0.5": 0.5, "1": 0.0, "0": 1.0}
    assert report.thresholds == (0.25, 0.5, 1.0, 0.0)


def test_empty_input_gives_none():
    report = grounding_report(score_samples([], [], []))
    assert report.to_dict() == {
        "n": 0, "acc": {"0.1": None, "0.3": None, "0.5": None, "0.7": None, "0.9": None}, "miou": None,
        "ciou": None, "pointing": None, "parse_failure_rate": None, "out_of_frame_rate": None,
        "per_category": {}, "ci": {}, "thresholds": [0.1, 0.3, 0.5, 0.7, 0.9], "inclusive": True,
    }
    assert list(report.rows())[:2] == [("n", 0, None), ("acc@0.1", None, None)]


def test_to_dict_is_plain_json():
    report = grounding_report(score_samples(WORKED_IDS, WORKED_PRED, WORKED_TRUE, **WORKED_KW), n_bootstrap=50)
    data = report.to_dict()
    assert set(data) == {"n", "acc", "miou", "ciou", "pointing", "parse_failure_rate", "out_of_frame_rate",
                         "per_category", "ci", "thresholds", "inclusive"}
    assert json.loads(json.dumps(data)) == data

    def check(value):
        assert type(value) in (int, float, bool, str, list, dict, type(None)), type(value)
        for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
            check(item)

    check(data)
    assert set(data["ci"]) == {"acc@0.1", "acc@0.3", "acc@0.5", "acc@0.7", "acc@0.9", "miou", "ciou", "pointing"}


def test_rows():
    report = grounding_report(score_samples(WORKED_IDS, WORKED_PRED, WORKED_TRUE), thresholds=(0.5,), n_bootstrap=20)
    rows = list(report.rows())
    assert [name for name, _, _ in rows] == ["n", "acc@0.5", "miou", "ciou", "pointing", "parse_failure_rate",
                                            "out_of_frame_rate"]
    assert rows[1] == ("acc@0.5", report.acc["0.5"], report.ci["acc@0.5"])
    assert rows[-1] == ("out_of_frame_rate", 0.0, None)


def test_sample_scores_are_read_only_copies():
    iou = np.array([0.5, 1.0])
    scores = make_scores(iou)
    with pytest.raises(ValueError):
        scores.iou[0] = 0.0
    iou[0] = 0.9  # the caller's array stays writable and does not leak in
    assert scores.iou[0] == 0.5


# --- bootstrap ----------------------------------------------------------------------------------------

def reference_intervals(scores: SampleScores, n_bootstrap: int, seed: int, per_chunk: int, confidence: float = 0.95):
    """The definitions written out: Wilson for the proportions; BCa (one replicate at a time, drawing indices in the
    same chunks as the implementation, jackknife by deleting each sample) for miou and ciou."""
    n = len(scores)
    z = NormalDist().inv_cdf((1 + confidence) / 2)

    def wilson(k):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return (max(0.0, centre - half), min(1.0, centre + half))

    rng = np.random.default_rng(seed)
    draws = np.vstack([rng.integers(0, n, size=(min(per_chunk, n_bootstrap - s), n))
                       for s in range(0, n_bootstrap, per_chunk)])
    statistics = {
        "miou": lambda index: np.mean(scores.iou[index]),
        "ciou": lambda index: scores.intersection[index].sum() / scores.union[index].sum(),
    }
    out = {"acc@0.5": wilson(int(np.sum(scores.iou >= 0.5))), "pointing": wilson(int(np.sum(scores.pointing)))}
    everything = np.arange(n)
    for name, statistic in statistics.items():
        replicates = np.array([statistic(index) for index in draws])
        estimate = statistic(everything)
        share = (np.sum(replicates < estimate) + 0.5 * np.sum(replicates == estimate)) / len(replicates)
        z0 = NormalDist().inv_cdf(share)
        jack = np.array([statistic(np.delete(everything, i)) for i in range(n)])
        d = jack.mean() - jack
        a = np.sum(d**3) / (6 * np.sum(d**2) ** 1.5)
        levels = [NormalDist().cdf(z0 + (z0 + q) / (1 - a * (z0 + q))) for q in (-z, z)]
        out[name] = tuple(np.quantile(replicates, levels))
    return out


@pytest.mark.parametrize("chunk_elements", [1 << 16, 40])
def test_bootstrap_matches_per_replicate_loop(monkeypatch, chunk_elements):
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.default_rng(7)
    scores = make_scores(rng.uniform(size=13), pointing=rng.uniform(size=13) < 0.5, union=rng.uniform(1, 9, 13))
    report = grounding_report(scores, thresholds=(0.5,), n_bootstrap=300, seed=3)
    expected = reference_intervals(scores, 300, 3, per_chunk=max(1, chunk_elements // 13))
    assert report.ci.keys() == expected.keys()
    for name, interval in expected.items():
        assert report.ci[name] == pytest.approx(interval, abs=1e-9), name


def _binomial_pmf(n: int, p: float) -> np.ndarray:
    return np.array([math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])


def test_wilson_holds_coverage_where_the_percentile_bootstrap_fails():
    # Exact coverage (a sum over the binomial outcomes, no Monte Carlo): n = 30, a rare event p = 0.05.
    n, p = 30, 0.05
    pmf = _binomial_pmf(n, p)
    wilson = sum(w for k, w in enumerate(pmf) if metrics.wilson_interval(k, n)[0] <= p <= metrics.wilson_interval(k, n)[1])
    # the percentile bootstrap interval of k / n is the 2.5% / 97.5% quantiles of Binomial(n, k / n) / n
    percentile = 0.0
    for k, w in enumerate(pmf):
        cdf = np.cumsum(_binomial_pmf(n, k / n))
        lo, hi = np.searchsorted(cdf, 0.025) / n, np.searchsorted(cdf, 0.975) / n
        percentile += w * (lo <= p <= hi)
    assert wilson >= 0.93, wilson
    assert percentile < 0.80, percentile  # 0.785: k = 0 gives [0, 0] (issue 14 measured 59% on its own rare event)


def test_bca_coverage_of_a_skewed_miou_at_small_n():
    # Monte Carlo: 300 data sets of n = 30 IoUs, 70% of them 0 (parse failures / misses), the rest Beta(5, 2);
    # true mean 0.3 * 5/7. BCa must cover within Monte Carlo error of 95%; fast (about a second).
    rng = np.random.default_rng(11)
    n, reps, truth = 30, 300, 0.3 * 5 / 7
    covered = 0
    for _ in range(reps):
        iou = np.where(rng.uniform(size=n) < 0.7, 0.0, rng.beta(5, 2, size=n))
        report = grounding_report(make_scores(iou), thresholds=(0.5,), n_bootstrap=400, seed=int(rng.integers(1 << 30)))
        lo, hi = report.ci["miou"]
        covered += lo <= truth <= hi
    assert covered / reps >= 0.90, covered / reps


def test_bootstrap_width_matches_normal_approximation():
    hits = np.arange(400) % 2 == 0  # p = 0.5, standard error sqrt(0.25 / 400) = 0.025
    report = grounding_report(make_scores(hits.astype(float)), thresholds=(0.5,), n_bootstrap=2000, seed=1)
    lo, hi = report.ci["acc@0.5"]
    assert hi - lo == pytest.approx(2 * 1.96 * 0.025, rel=0.1)
    assert lo < 0.5 < hi


def test_confidence_widens_interval():
    scores = make_scores(np.linspace(0, 1, 50))
    narrow = grounding_report(scores, confidence=0.5).ci["miou"]
    wide = grounding_report(scores, confidence=0.99).ci["miou"]
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=200)
    diff, lo, hi = paired_bootstrap(a, a + 0.1, n_bootstrap=500, seed=0)
    assert diff == pytest.approx(0.1)
    assert lo == pytest.approx(0.1) and hi == pytest.approx(0.1)  # pairing: every resample differs by 0.1
    b = rng.uniform(size=200)
    diff, lo, hi = paired_bootstrap(a, b, n_bootstrap=500, seed=0)
    assert diff == pytest.approx(b.mean() - a.mean())
    assert lo < diff < hi
    assert paired_bootstrap(a, b, n_bootstrap=500, seed=0) == (diff, lo, hi)
    assert paired_bootstrap([True, False], [True, True], n_bootstrap=10)[0] == 0.5


# --- McNemar ------------------------------------------------------------------------------------------

def hits_with(only_a: int, only_b: int, both: int = 3, neither: int = 2) -> tuple[np.ndarray, np.ndarray]:
    a = [True] * only_a + [False] * only_b + [True] * both + [False] * neither
    b = [False] * only_a + [True] * only_b + [True] * both + [False] * neither
    return np.array(a), np.array(b)


@pytest.mark.parametrize(("only_a", "only_b"), [(3, 9), (5, 5), (0, 1), (12, 12), (0, 24), (11, 2)])
def test_mcnemar_exact_matches_binomtest(only_a, only_b):
    statistic, p_value = mcnemar(*hits_with(only_a, only_b))
    assert statistic == min(only_a, only_b)
    assert p_value == pytest.approx(stats.binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue, rel=1e-9)


@pytest.mark.parametrize(("only_a", "only_b"), [(10, 30), (0, 25), (13, 12), (40, 40), (100, 60)])
def test_mcnemar_chi_square_by_hand(only_a, only_b):
    statistic, p_value = mcnemar(*hits_with(only_a, only_b))
    expected = max(abs(only_a - only_b) - 1, 0) ** 2 / (only_a + only_b)
    assert statistic == pytest.approx(expected)
    assert p_value == pytest.approx(stats.chi2.sf(expected, df=1), rel=1e-9)


def test_mcnemar_no_discordant_pairs():
    assert mcnemar(*hits_with(0, 0)) == (0.0, 1.0)
    assert mcnemar([], []) == (0.0, 1.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=30))
def test_mcnemar_symmetric_and_valid(pairs):
    a = np.array([p[0] for p in pairs], dtype=bool)
    b = np.array([p[1] for p in pairs], dtype=bool)
    statistic, p_value = mcnemar(a, b)
    assert (statistic, p_value) == mcnemar(b, a)
    assert 0.0 <= p_value <= 1.0 and statistic >= 0.0


# --- properties ---------------------------------------------------------------------------------------

iou_values = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]))
score_columns = st.integers(2, 40).flatmap(lambda n: st.tuples(
    st.lists(iou_values, min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.lists(st.floats(0.5, 100), min_size=n, max_size=n),
))
thresholds_strategy = st.lists(st.floats(0, 1), min_size=1, max_size=6, unique_by=lambda t: f"{t:g}")


@settings(max_examples=60, deadline=None)
@given(score_columns, thresholds_strategy)
def test_accuracy_properties(columns, thresholds):
    iou, pointing, union = columns
    scores = make_scores(iou, pointing, union)
    ordered = sorted(thresholds)
    inclusive = grounding_report(scores, thresholds=ordered, n_bootstrap=0)
    exclusive = grounding_report(scores, thresholds=ordered, inclusive=False, n_bootstrap=0)
    inc = [inclusive.acc[f"{t:g}"] for t in ordered]
    exc = [exclusive.acc[f"{t:g}"] for t in ordered]
    assert inc == sorted(inc, reverse=True)  # non-increasing in t
    assert exc == sorted(exc, reverse=True)
    assert all(i >= e for i, e in zip(inc, exc))
    assert 0.0 <= inclusive.miou <= 1.0 and 0.0 <= inclusive.ciou <= 1.0
    assert inclusive.miou == pytest.approx(np.mean(iou))


@settings(max_examples=40, deadline=None)
@given(score_columns, st.integers(0, 2**32 - 1))
def test_interval_properties(columns, seed):
    iou, pointing, union = columns
    scores = make_scores(iou, pointing, union)
    report = grounding_report(scores, thresholds=(0.3, 0.5), n_bootstrap=200, seed=seed)
    assert report.ci == grounding_report(scores, thresholds=(0.3, 0.5), n_bootstrap=200, seed=seed).ci
    if len(set(iou)) > 1:  # non-degenerate: the IoUs (hence cIoU's ratios) differ between samples
        point = {"acc@0.3": report.acc["0.3"], "acc@0.5": report.acc["0.5"], "miou": report.miou,
                 "ciou": report.ciou, "pointing": report.pointing}
        for name, value in point.items():
            lo, hi = report.ci[name]
            assert lo - 1e-12 <= value <= hi + 1e-12, (name, lo, value, hi)
            assert 0.0 <= lo <= hi <= 1.0


# --- validation ---------------------------------------------------------------------------------------

def scores_kwargs(**changes):
    base = {"ids": ["a", "b"], "iou": [0.5, 0.0], "intersection": [1.0, 0.0], "union": [2.0, 3.0],
            "pointing": [True, False], "parse_failed": [False, True], "out_of_frame": [False, False],
            "category": ["x", None]}
    return {**base, **changes}


def test_valid_sample_scores_accepted():
    assert len(SampleScores(**scores_kwargs())) == 2


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"iou": [0.5]}, ValueError, r"SampleScores.iou has shape \(1,\); expected \(2,\)"),
    ({"iou": [1.5, 0.0]}, ValueError, r"SampleScores.iou\[0\] \(id 'a'\) is 1.5; expected a value in \[0, 1\]"),
    ({"iou": [float("nan"), 0.0]}, ValueError, r"iou\[0\].*expected a value in \[0, 1\]"),
    ({"union": [2.0, -1.0]}, ValueError, r"union\[1\] \(id 'b'\) is -1.0; expected a finite value >= 0"),
    ({"intersection": [3.0, 0.0]}, ValueError, r"intersection\[0\] \(id 'a'\) is 3.0; expected a value <= union"),
    ({"iou": [0.5, 0.2]}, ValueError, r"iou\[1\] \(id 'b'\) is 0.2; expected 0 for a parse failure"),
    ({"pointing": [True, True]}, ValueError, r"pointing\[1\].*expected False for a parse failure"),
    ({"pointing": [1, 0]}, TypeError, r"SampleScores.pointing has dtype int64; expected bool"),
    ({"iou": ["0.5", "0"]}, TypeError, r"SampleScores.iou has dtype <U3; expected numbers"),
    ({"ids": ["a", "a"]}, ValueError, r"SampleScores.ids\[0\] = 'a' appears 2 times; expected unique ids"),
    ({"ids": [1, 2]}, TypeError, r"SampleScores.ids has dtype int64; expected strings"),
    ({"category": ["x", 3]}, TypeError, r"SampleScores.category\[1\] is 3; expected a str or None"),
    ({"category": ["x"]}, ValueError, r"SampleScores.category .*expected a sequence of 2 values"),
])
def test_sample_scores_validation(changes, error, message):
    with pytest.raises(error, match=message):
        SampleScores(**scores_kwargs(**changes))


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((["a"], [boxes([0, 0, 1, 1])], [boxes()]), {}, r"true_boxes\[0\] \(id 'a'\) is empty; expected at least one"),
    ((["a"], [np.zeros(4)], [boxes([0, 0, 1, 1])]), {}, r"pred_boxes\[0\] \(id 'a'\) has shape \(4,\); expected \(k, 4\)"),
    ((["a"], [boxes([0, 0, 1, 1, 1])], [boxes([0, 0, 1, 1])]), {}, r"has shape \(1, 5\)"),
    ((["a"], [boxes([0, 0, 0, 1, 1, 1])], [boxes([0, 0, 1, 1])]), {}, r"has 6 numbers per box but the true boxes have 4"),
    ((["a"], [boxes([0, 0, np.nan, 1])], [boxes([0, 0, 1, 1])]), {}, r"pred_boxes\[0\] .*non-finite coordinate"),
    ((["a"], [[[0, 0, 1]]], [boxes([0, 0, 1, 1])]), {}, r"pred_boxes\[0\] .*has shape \(1, 3\)"),
    ((["a", "b"], [boxes()], [boxes([0, 0, 1, 1])] * 2), {}, r"pred_boxes has 1 entries; expected 2"),
    ((["a"], [boxes()], [boxes([0, 0, 1, 1])]), {"categories": ["x", "y"]}, r"categories has 2 entries"),
    ((["a"], [boxes()], [boxes([0, 0, 1, 1])]), {"multi": "mean"}, r"multi='mean'; expected 'union' or 'match'"),
])
def test_score_samples_validation(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        score_samples(*args, **kwargs)


def test_score_samples_flag_types():
    with pytest.raises(TypeError, match=r"parse_failed .*expected a 1-D sequence of bools"):
        score_samples(["a"], [boxes()], [boxes([0, 0, 1, 1])], parse_failed=[0.0])


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"thresholds": []}, ValueError, r"thresholds is empty"),
    ({"thresholds": [0.5, 1.5]}, ValueError, r"thresholds holds 1.5; expected IoU thresholds in \[0, 1\]"),
    ({"thresholds": [0.5, 0.50000001]}, ValueError, r"expected distinct thresholds"),
    ({"thresholds": 0.5}, TypeError, r"thresholds=0.5; expected a sequence"),
    ({"n_bootstrap": -1}, ValueError, r"n_bootstrap=-1; expected an integer >= 0"),
    ({"n_bootstrap": 10.0}, ValueError, r"n_bootstrap=10.0"),
    ({"confidence": 1.0}, ValueError, r"confidence=1.0; expected a value strictly between 0 and 1"),
])
def test_grounding_report_validation(kwargs, error, message):
    with pytest.raises(error, match=message):
        grounding_report(make_scores([0.5]), **kwargs)
    with pytest.raises(TypeError, match=r"scores is a dict; expected SampleScores"):
        grounding_report({})


def test_comparison_validation():
    with pytest.raises(ValueError, match=r"a_values has 2 values and b_values 1"):
        paired_bootstrap([0.1, 0.2], [0.3])
    with pytest.raises(ValueError, match=r"empty; expected at least one paired sample"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match=r"b_values\[1\] is nan; expected a finite number"):
        paired_bootstrap([0.1, 0.2], [0.3, float("nan")])
    with pytest.raises(ValueError, match=r"n_bootstrap=0; expected an integer >= 1"):
        paired_bootstrap([0.1], [0.2], n_bootstrap=0)
    with pytest.raises(ValueError, match=r"a_hits has 1 values and b_hits 2"):
        mcnemar([True], [True, False])
    with pytest.raises(TypeError, match=r"a_hits .*expected a 1-D sequence of bools"):
        mcnemar([0.5], [True])


def test_report_is_frozen():
    report = grounding_report(make_scores([0.5]), n_bootstrap=0)
    assert isinstance(report, GroundingReport)
    with pytest.raises(AttributeError):
        report.miou = 1.0


def test_large_n_bootstrap_uses_gaussian_limit_that_matches_resampling(monkeypatch):
    import medground_eval.metrics as metrics_module

    rng = np.random.default_rng(3)
    n = 20_000
    iou = rng.beta(2, 2, size=n)
    scores = score_samples(
        [str(i) for i in range(n)], [np.array([[0, 0, 10, 10 * v]]) for v in iou], [np.array([[0, 0, 10, 10]])] * n
    )
    exact = grounding_report(scores, n_bootstrap=2000, seed=1)
    monkeypatch.setattr(metrics_module, "EXACT_BOOTSTRAP_MAX_N", 1000)
    limit = grounding_report(scores, n_bootstrap=2000, seed=1)
    assert limit.ci != exact.ci  # the other path really ran
    for name, (lo, hi) in exact.ci.items():
        width = hi - lo
        assert limit.ci[name][0] == pytest.approx(lo, abs=0.1 * width), name
        assert limit.ci[name][1] == pytest.approx(hi, abs=0.1 * width), name
    assert grounding_report(scores, n_bootstrap=2000, seed=1).ci == limit.ci  # seeded


def test_gaussian_limit_intervals_stay_in_unit_range(monkeypatch):
    """Near a bound, the Gaussian limit puts mass outside [0, 1]; the interval of a rate or an IoU may not."""
    monkeypatch.setattr(metrics, "EXACT_BOOTSTRAP_MAX_N", 100)
    iou = np.ones(1000)
    iou[0] = 0.0
    report = grounding_report(make_scores(iou, pointing=iou > 0), n_bootstrap=500)
    for name, (lo, hi) in report.ci.items():
        assert 0.0 <= lo <= hi <= 1.0, (name, lo, hi)
    assert report.ci["miou"][1] == 1.0
    assert report.ci["acc@0.5"] == metrics.wilson_interval(999, 1000)  # proportions: Wilson, no resampling


def test_hit_rule_tolerates_float_round_off_at_the_threshold():
    from medground_eval.metrics import iou_hits

    just_below = 0.49999999999999994  # an IoU of 1/2 after a frame round trip
    assert iou_hits(np.array([just_below]), 0.5, inclusive=True).tolist() == [True]
    assert iou_hits(np.array([0.5 + 1e-12]), 0.5, inclusive=False).tolist() == [False]
    assert iou_hits(np.array([0.4999]), 0.5).tolist() == [False]
    assert iou_hits(np.array([0.5001]), 0.5, inclusive=False).tolist() == [True]
    assert iou_hits(np.array([0.2, 0.6]), (0.1, 0.5)).tolist() == [[True, True], [False, True]]
