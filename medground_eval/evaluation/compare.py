"""Two runs side by side on the same samples: paired differences, McNemar on Acc@0.5, the samples they disagree on.

:func:`compare_runs` takes the per-sample scores of run A and run B (``ScoreResult.per_sample`` of each) and
returns a :class:`Comparison`:

- ``differences``: for Acc@t at each threshold, mIoU, pointing and the parse-failure rate, the value of A, of B,
  and ``B - A`` with a paired BCa bootstrap interval (:func:`medground_eval.metrics.paired_bootstrap`: each
  resample draws the same samples for both runs). A positive difference means B is higher.
- ``mcnemar``: McNemar's test of the hits at one threshold (0.5 by default), with the discordant counts.
- ``disagreements``: the ``top`` samples with the largest ``|IoU_A - IoU_B|`` (ties in A's sample order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from medground_eval.metrics import DEFAULT_THRESHOLDS, SampleScores, iou_hits, mcnemar, paired_bootstrap


@dataclass(frozen=True)
class Difference:
    """One metric of both runs: ``diff = b - a`` and its bootstrap interval ``(lo, hi)``."""

    metric: str
    a: float
    b: float
    diff: float
    lo: float
    hi: float


@dataclass(frozen=True)
class McNemar:
    """McNemar's test at IoU ``threshold``: ``a_only`` samples hit by A alone, ``b_only`` by B alone."""

    threshold: float
    both: int
    a_only: int
    b_only: int
    neither: int
    statistic: float
    p_value: float


@dataclass(frozen=True)
class Disagreement:
    """A sample on which the runs' IoUs differ; ``phrase`` is None until :meth:`Comparison.with_phrases`."""

    id: str
    phrase: str | None
    iou_a: float
    iou_b: float


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare_runs`; ``to_dict()`` is plain JSON."""

    n: int
    inclusive: bool
    confidence: float
    n_bootstrap: int
    differences: tuple[Difference, ...]
    mcnemar: McNemar
    disagreements: tuple[Disagreement, ...]

    def with_phrases(self, phrases: Mapping[str, str]) -> Comparison:
        """A copy whose disagreements carry ``phrases[id]`` (None for an id not in ``phrases``)."""
        named = tuple(replace(d, phrase=phrases.get(d.id)) for d in self.disagreements)
        return replace(self, disagreements=named)

    def to_dict(self) -> dict[str, Any]:
        """``{n, inclusive, confidence, n_bootstrap, differences: [...], mcnemar: {...}, disagreements: [...]}``."""
        return asdict(self) | {
            "differences": [asdict(d) for d in self.differences],
            "disagreements": [asdict(d) for d in self.disagreements],
        }


def compare_runs(
    a: SampleScores,
    b: SampleScores,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    inclusive: bool = True,
    mcnemar_threshold: float = 0.5,
    top: int = 20,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> Comparison:
    """Compare run B with run A on the same samples (B is reordered to A's sample order).

    A hit at threshold t is IoU >= t (``inclusive``) or IoU > t, as in ``grounding_report``. Every difference is
    ``mean(B) - mean(A)`` over all samples (parse failures count as IoU 0), with a paired bootstrap interval of
    ``n_bootstrap`` resamples at ``confidence`` from ``seed``. Disagreements: the ``top`` samples with the largest
    ``|IoU_A - IoU_B| > 0``, largest first, ties in A's order.

    Raises ``ValueError`` when the runs do not hold the same sample ids (naming how many and the first missing id
    on each side), when there are no samples, or for ``top < 0``.
    """
    if top < 0:
        raise ValueError(f"top={top!r}; expected a number of samples >= 0")
    order = _aligned(a, b)
    if len(a) == 0:
        raise ValueError("run A and run B have no samples; expected at least one scored sample")
    iou_a, iou_b = a.iou, b.iou[order]
    columns: list[tuple[str, np.ndarray, np.ndarray]] = [
        (f"acc@{t:g}", iou_hits(iou_a, t, inclusive), iou_hits(iou_b, t, inclusive)) for t in thresholds
    ]
    columns += [("miou", iou_a, iou_b), ("pointing", a.pointing, b.pointing[order]),
                ("parse_failure_rate", a.parse_failed, b.parse_failed[order])]
    differences = []
    for name, values_a, values_b in columns:
        diff, lo, hi = paired_bootstrap(values_a.astype(np.float64), values_b.astype(np.float64),
                                        n_bootstrap=n_bootstrap, seed=seed, confidence=confidence)
        differences.append(Difference(name, float(values_a.mean()), float(values_b.mean()), diff, lo, hi))

    hits_a, hits_b = iou_hits(iou_a, mcnemar_threshold, inclusive), iou_hits(iou_b, mcnemar_threshold, inclusive)
    statistic, p_value = mcnemar(hits_a, hits_b)
    test = McNemar(
        threshold=float(mcnemar_threshold),
        both=int(np.count_nonzero(hits_a & hits_b)),
        a_only=int(np.count_nonzero(hits_a & ~hits_b)),
        b_only=int(np.count_nonzero(~hits_a & hits_b)),
        neither=int(np.count_nonzero(~hits_a & ~hits_b)),
        statistic=statistic,
        p_value=p_value,
    )

    gap = np.abs(iou_a - iou_b)
    ranked = [i for i in np.argsort(-gap, kind="stable")[:top] if gap[i] > 0]
    disagreements = tuple(
        Disagreement(str(a.ids[i]), None, float(iou_a[i]), float(iou_b[i])) for i in ranked
    )
    return Comparison(len(a), inclusive, confidence, n_bootstrap, tuple(differences), test, disagreements)



def _aligned(a: SampleScores, b: SampleScores) -> np.ndarray:
    """Indices into B's rows in A's sample order; ValueError when the id sets differ."""
    position = {sample_id: i for i, sample_id in enumerate(b.ids.tolist())}
    missing_in_b = [i for i in a.ids.tolist() if i not in position]
    ids_a = set(a.ids.tolist())
    missing_in_a = [i for i in b.ids.tolist() if i not in ids_a]
    if missing_in_b or missing_in_a:
        parts = []
        if missing_in_b:
            parts.append(f"{len(missing_in_b)} of run A's samples are not in run B (first: {missing_in_b[0]!r})")
        if missing_in_a:
            parts.append(f"{len(missing_in_a)} of run B's samples are not in run A (first: {missing_in_a[0]!r})")
        raise ValueError("; ".join(parts) + "; expected both runs scored on the same samples")
    return np.array([position[i] for i in a.ids.tolist()], dtype=np.int64)


def comparison_markdown(comparison: Comparison, *, name_a: str = "A", name_b: str = "B") -> str:
    """The comparison as Markdown: the differences table, the McNemar line and the disagreement table."""
    level = f"{comparison.confidence:.0%}"
    lines = [f"{comparison.n} paired samples; B - A with {level} paired bootstrap intervals "
             f"({comparison.n_bootstrap} resamples). A = {name_a}, B = {name_b}.", "",
             f"| metric | A | B | B - A | {level} interval |", "|---|---|---|---|---|"]
    lines += [f"| {d.metric} | {d.a:.4f} | {d.b:.4f} | {d.diff:+.4f} | [{d.lo:+.4f}, {d.hi:+.4f}] |"
              for d in comparison.differences]
    m = comparison.mcnemar
    lines += ["", f"McNemar at IoU {m.threshold:g}: A alone hits {m.a_only}, B alone hits {m.b_only} "
                  f"(both {m.both}, neither {m.neither}); statistic {m.statistic:.4g}, p = {m.p_value:.4g}.", ""]
    if comparison.disagreements:
        lines += ["| id | phrase | IoU A | IoU B | B - A |", "|---|---|---|---|---|"]
        lines += [f"| {_cell(d.id)} | {_cell(d.phrase or '')} | {d.iou_a:.4f} | {d.iou_b:.4f} | "
                  f"{d.iou_b - d.iou_a:+.4f} |" for d in comparison.disagreements]
    else:
        lines.append("The runs give every sample the same IoU.")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
