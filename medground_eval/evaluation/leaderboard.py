"""Several runs (checkpoints, prompts, models) scored on the same samples, one row a run: the leaderboard.

:func:`build_leaderboard` takes named :class:`~medground_eval.evaluation.scorer.ScoreResult` objects and returns a
:class:`Leaderboard` whose rows hold, per run: ``n``, Acc@t at each threshold, mIoU, cIoU and pointing with their
bootstrap intervals, the parse-failure count and rate, Acc@<headline> and n per category, and, when a baseline run
is named, the paired differences ``run - baseline`` of Acc@<headline> and mIoU (paired bootstrap intervals,
:func:`medground_eval.evaluation.compare.compare_runs`) and McNemar's p-value at the headline threshold.

Rows are sorted by ``sort`` (default ``acc@<headline>``), best first: highest first, except
``parse_failure_rate`` (lowest first); ties keep the order the runs were given. Every run must be scored on the
same samples with the same thresholds and hit rule (ValueError otherwise, naming the run).

:meth:`Leaderboard.markdown`, :meth:`Leaderboard.csv` and :meth:`Leaderboard.to_dict` render it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medground_eval.evaluation.compare import Comparison, compare_runs
from medground_eval.evaluation.report.data import ScoredRun, headline_threshold

SORT_KEYS_LOWER_IS_BETTER = ("parse_failure_rate", "parse_failures", "out_of_frame_rate")


@dataclass(frozen=True)
class Run:
    """One named run: its ``name`` in the table, the ``path`` it was read from (or None) and its scored result."""

    name: str
    path: str | None
    result: ScoredRun


@dataclass(frozen=True)
class Leaderboard:
    """Runs in rank order; ``comparisons[name]`` is the paired comparison of run ``name`` with the baseline (absent
    for the baseline itself and when there is none)."""

    runs: tuple[Run, ...]
    sort: str
    headline: str
    thresholds: tuple[str, ...]
    categories: tuple[str, ...]
    baseline: str | None
    comparisons: dict[str, Comparison]
    confidence: float

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per run, in rank order: the values of :meth:`columns` (intervals as ``<metric>_lo`` /
        ``<metric>_hi``; None where a metric is undefined)."""
        out = []
        for rank, run in enumerate(self.runs, start=1):
            report = run.result.report
            row: dict[str, Any] = {"rank": rank, "run": run.name, "n": report.n}
            for key in self.thresholds:
                row |= _with_interval(f"acc@{key}", report.acc.get(key), report.ci.get(f"acc@{key}"))
            for name in ("miou", "ciou", "pointing"):
                row |= _with_interval(name, getattr(report, name), report.ci.get(name))
            row["parse_failures"] = int(run.result.per_sample.parse_failed.sum())
            row["parse_failure_rate"] = report.parse_failure_rate
            for category in self.categories:
                stats = report.per_category.get(category)
                row[f"{category} acc@{self.headline}"] = None if stats is None else stats["acc"][self.headline]
                row[f"{category} n"] = 0 if stats is None else stats["n"]
            if self.baseline is not None:
                comparison = self.comparisons.get(run.name)
                for metric in (f"acc@{self.headline}", "miou"):
                    diff = None if comparison is None else _difference(comparison, metric)
                    row[f"d_{metric}"] = None if diff is None else diff.diff
                    row[f"d_{metric}_lo"] = None if diff is None else diff.lo
                    row[f"d_{metric}_hi"] = None if diff is None else diff.hi
                row["mcnemar_p"] = None if comparison is None else comparison.mcnemar.p_value
            out.append(row)
        return out

    def markdown(self) -> str:
        """A Markdown table (values with their intervals in brackets), then the sort and baseline notes."""
        level = f"{self.confidence:.0%}"
        header = ["rank", "run", "n", *(f"acc@{k}" for k in self.thresholds), "miou", "ciou", "pointing",
                  "parse failures", *(f"{c} acc@{self.headline}" for c in self.categories)]
        if self.baseline is not None:
            header += [f"Δacc@{self.headline} vs {self.baseline}", f"Δmiou vs {self.baseline}", "McNemar p"]
        lines = ["| " + " | ".join(_md(h) for h in header) + " |", "|" + "---|" * len(header)]
        for row in self.rows():
            cells = [str(row["rank"]), _md(row["run"]), str(row["n"])]
            cells += [_value_ci(row, f"acc@{k}") for k in self.thresholds]
            cells += [_value_ci(row, name) for name in ("miou", "ciou", "pointing")]
            cells.append(f"{row['parse_failures']} ({_fmt(row['parse_failure_rate'])})")
            cells += [f"{_fmt(row[f'{c} acc@{self.headline}'])} (n={row[f'{c} n']})" for c in self.categories]
            if self.baseline is not None:
                cells += [_diff_ci(row, f"acc@{self.headline}"), _diff_ci(row, "miou"),
                          "baseline" if row["run"] == self.baseline else _fmt(row["mcnemar_p"], 4)]
            lines.append("| " + " | ".join(cells) + " |")
        notes = [f"Sorted by {self.sort} ({'lowest' if self.sort in SORT_KEYS_LOWER_IS_BETTER else 'highest'} "
                 f"first). Intervals: {level} bootstrap."]
        if self.baseline is not None:
            notes.append(f"Δ: run - {self.baseline} on the same samples, {level} paired bootstrap interval; McNemar p "
                         f"at IoU {self.headline}.")
        return "\n".join(lines) + "\n\n" + " ".join(notes) + "\n"

    def csv(self) -> str:
        """The rows as CSV, one column per key of :meth:`rows`."""
        rows = self.rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["rank", "run"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """``{sort, headline, baseline, confidence, categories, rows, runs}``: ``runs`` holds each run's name,
        path, full metrics JSON (``to_dict()`` of its result) and, against the baseline, its comparison."""
        return {
            "sort": self.sort, "headline": self.headline, "baseline": self.baseline, "confidence": self.confidence,
            "categories": list(self.categories), "rows": self.rows(),
            "runs": [{"name": r.name, "path": r.path, "metrics": r.result.to_dict(),
                      "vs_baseline": self.comparisons[r.name].to_dict() if r.name in self.comparisons else None}
                     for r in self.runs],
        }


def build_leaderboard(runs: Sequence[Run], *, sort: str | None = None, baseline: str | None = None,
                      n_bootstrap: int = 1000, seed: int | None = 0) -> Leaderboard:
    """Rank ``runs`` (see the module doc). ``baseline`` names one of them; ``n_bootstrap`` / ``seed`` drive the
    paired bootstrap of the comparisons (at least 1 resample when a baseline is given)."""
    if not runs:
        raise ValueError("no runs; expected at least one predictions file")
    names = [r.name for r in runs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"run name {repeated[0]!r} is used twice; name the runs apart with NAME=PATH")
    first = runs[0].result.report
    for run in runs[1:]:
        report = run.result.report
        if report.thresholds != first.thresholds or report.inclusive != first.inclusive:
            raise ValueError(f"run {run.name!r} was scored with thresholds {list(report.thresholds)} "
                             f"(inclusive={report.inclusive}); expected those of {runs[0].name!r}: "
                             f"{list(first.thresholds)} (inclusive={first.inclusive})")
    headline = headline_threshold(first)
    keys = tuple(first.acc)
    sortable = [f"acc@{k}" for k in keys] + ["miou", "ciou", "pointing", "parse_failure_rate"]
    sort = sort or f"acc@{headline}"
    if sort not in sortable:
        raise ValueError(f"--sort {sort!r}: expected one of {', '.join(sortable)}")
    comparisons: dict[str, Comparison] = {}
    if baseline is not None:
        if baseline not in names:
            raise ValueError(f"--baseline {baseline!r} is not one of the runs ({', '.join(names)}); expected a run "
                             "name (the file name without .jsonl, or NAME of NAME=PATH)")
        base = next(r for r in runs if r.name == baseline)
        for run in runs:
            if run.name == baseline:
                continue
            try:
                comparisons[run.name] = compare_runs(
                    base.result.per_sample, run.result.per_sample, thresholds=first.thresholds,
                    inclusive=first.inclusive, mcnemar_threshold=float(headline), top=0,
                    n_bootstrap=max(1, n_bootstrap), seed=seed)
            except ValueError as error:
                raise ValueError(f"run {run.name!r} vs baseline {baseline!r}: {error}") from None
    lower = sort in SORT_KEYS_LOWER_IS_BETTER
    ranked = sorted(runs, key=lambda r: _sort_value(r.result.report, sort, lower))
    categories = tuple(sorted({c for r in runs for c in r.result.report.per_category}))
    return Leaderboard(tuple(ranked), sort, headline, keys, categories, baseline, comparisons, first.confidence)


def _sort_value(report: Any, sort: str, lower: bool) -> tuple[int, float]:
    """Key ranking the best first; undefined values (no samples) last."""
    value = report.acc.get(sort[4:]) if sort.startswith("acc@") else getattr(report, sort)
    if value is None:
        return (1, 0.0)
    return (0, value if lower else -value)


def _difference(comparison: Comparison, metric: str) -> Any:
    return next((d for d in comparison.differences if d.metric == metric), None)


def _with_interval(name: str, value: float | None, interval: tuple[float, float] | None) -> dict[str, Any]:
    return {name: value, f"{name}_lo": None if interval is None else interval[0],
            f"{name}_hi": None if interval is None else interval[1]}


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _value_ci(row: dict[str, Any], name: str) -> str:
    if row[f"{name}_lo"] is None:
        return _fmt(row[name])
    return f"{_fmt(row[name])} [{row[f'{name}_lo']:.4f}, {row[f'{name}_hi']:.4f}]"


def _diff_ci(row: dict[str, Any], metric: str) -> str:
    value = row[f"d_{metric}"]
    if value is None:
        return "baseline"
    return f"{value:+.4f} [{row[f'd_{metric}_lo']:+.4f}, {row[f'd_{metric}_hi']:+.4f}]"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
