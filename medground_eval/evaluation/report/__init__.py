"""Reports of a scored run: ``data`` (which samples, their boxes in pixels, failure reasons, curves), ``plots``
(PNG pictures) and ``render`` (Markdown, HTML and metrics.json). The public names are re-exported here."""

from medground_eval.evaluation.report.data import (
    SampleView,
    ScoredRun,
    accuracy_curve,
    example_ids,
    failure_ids,
    failure_reasons,
    headline_threshold,
    parsed_answers,
    read_samples,
    sample_views,
)
from medground_eval.evaluation.report.plots import (
    PRED_COLOR,
    THINK_COLOR,
    TRUE_COLOR,
    category_figure,
    category_plot_height,
    curve_points,
    draw_overlay,
    plot_accuracy_curve,
    plot_categories,
    plot_iou_histogram,
)
from medground_eval.evaluation.report.render import ReportFiles, score_report, write_report

__all__ = [
    "PRED_COLOR", "THINK_COLOR", "TRUE_COLOR", "ReportFiles", "SampleView", "ScoredRun", "accuracy_curve",
    "category_figure", "category_plot_height", "curve_points", "draw_overlay", "example_ids", "failure_ids",
    "failure_reasons", "headline_threshold", "parsed_answers",
    "plot_accuracy_curve", "plot_categories", "plot_iou_histogram", "read_samples", "sample_views", "score_report",
    "write_report",
]
