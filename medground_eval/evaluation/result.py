"""The result of a scored run: the report, the per-sample scores, each sample's problems and the run's config."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medground_eval.anatomy import LateralityReport
from medground_eval.datasets.base import SkippedRow
from medground_eval.evaluation.compat import ScoringRules
from medground_eval.evaluation.diagnosis import MatchedBoxes
from medground_eval.frames import get_frame
from medground_eval.metrics import GroundingReport, SampleScores, iou_hits

UNTAGGED_PARSE_RULES = (
    "; --answer-tag optional: a completion without <answer> is read from its text after </think> (or its whole text) "
    "by the same rules, and still has the problem 'missing <answer>'"
)
"""Appended to the default rules' ``parse_rules`` in a run scored with ``answer_tag="optional"``."""
EXAMPLES_KEPT = 10
"""Ids (or reasons) listed in ``config`` for unmatched predictions, missing predictions and skipped lines."""


@dataclass(frozen=True)
class ScoreResult:
    """A scored run: the summary ``report``, the ``per_sample`` scores (ground-truth order), each sample's parser
    ``problems`` ("; "-joined, "no prediction" for a missing one), the run's ``config`` and its ``anatomy``
    (laterality and zone metrics, docs/metrics.md; None where not computed)."""

    report: GroundingReport
    per_sample: SampleScores
    problems: list[str]
    config: dict[str, Any]
    anatomy: LateralityReport | None = None
    matched: MatchedBoxes | None = field(default=None, repr=False, compare=False)
    """The matched predictions' raw answers, for :mod:`medground_eval.evaluation.diagnosis` (2D runs whose boxes
    are converted from a frame; None otherwise)."""

    def to_dict(self) -> dict[str, Any]:
        """The metrics JSON: :meth:`GroundingReport.to_dict` keys, ``anatomy`` and ``config``."""
        anatomy = None if self.anatomy is None else self.anatomy.to_dict()
        return {**self.report.to_dict(), "anatomy": anatomy, "config": self.config}

    def hits(self, threshold: float = 0.5) -> np.ndarray:
        """Per sample, IoU >= threshold (or > under a strict rule such as the vlm-r1 preset)."""
        iou = self.per_sample.iou
        return iou_hits(iou, threshold, self.report.inclusive)

    def write_per_sample(self, path: str | Path) -> Path:
        """The per-sample export of ``score --per-sample`` (:mod:`medground_eval.evaluation.export`: phrase, boxes
        in original pixels, labels, problems, completion; ``.jsonl`` or CSV), written atomically; returns the path.

        It re-reads the run's files (``config``'s predictions, dataset, annotations and split); a run scored from
        records in memory has no predictions file to read, and raises ``ValueError`` saying so.
        """
        from medground_eval.evaluation.export import write_per_sample

        config = self.config
        if config.get("predictions") is None:
            raise ValueError("write_per_sample: this run was scored from records in memory (config['predictions'] "
                             "is None); expected a run of score_files, whose predictions file the export reads")
        return write_per_sample(self, path, config["predictions"], dataset=config["dataset"],
                                annotations=config.get("annotations"), split=config.get("split"))

def join_notes(config: Mapping[str, Any]) -> list[str]:
    """A run's non-zero join counts as sentences: unmatched and missing predictions, skipped lines."""
    labels = (("unmatched_predictions", "predictions with an id not in the ground truth (left out)"),
              ("missing_predictions", "ground-truth samples without a prediction (scored as misses)"),
              ("skipped_lines", "lines skipped (--on-error skip)"),
              ("duplicate_rows", "exact duplicate ground-truth rows dropped (each box counted once)"))
    return [f"{config[key]} {label}" for key, label in labels if config.get(key)]


def run_config(*, dataset: str, annotations: str | Path | None, predictions: Path | None, split: str | None,
               frame: str, rules: ScoringRules, thresholds: Iterable[float], inclusive: bool,
               n_bootstrap: int, seed: int | None, on_error: str, skipped: list[SkippedRow],
               view: str, answer_tag: str, convention: str = "radiological",
               duplicates: Sequence[SkippedRow] = ()) -> dict[str, Any]:
    """The run's settings; ``answer_tag`` is None under a preset with its own parser (its parse rules decide)."""
    parse_rules = rules.parse_rules + (UNTAGGED_PARSE_RULES if answer_tag == "optional" else "")
    return {
        "dataset": dataset,
        "annotations": None if annotations is None else str(annotations),
        "predictions": None if predictions is None else str(predictions),
        "split": split,
        "view": view,
        "frame": frame if not rules.raw_coordinates else f"{frame} (raw coordinates, no rescaling or clipping)",
        "frame_settings": dataclasses.asdict(get_frame(frame)),
        "compat": rules.name,
        "answer_tag": None if rules.own_parser else answer_tag,
        "convention": convention,
        "parse_rules": parse_rules,
        "thresholds": [float(t) for t in thresholds],
        "inclusive": inclusive if rules.inclusive is None else rules.inclusive,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "on_error": on_error,
        "skipped_lines": len(skipped),
        "skipped_examples": [row.reason for row in skipped[:EXAMPLES_KEPT]],
        "duplicate_rows": len(duplicates),
        "duplicate_examples": [row.reason for row in duplicates[:EXAMPLES_KEPT]],
    }
