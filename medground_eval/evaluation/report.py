"""Reports people look at: the metrics table, plots and box overlays of a scored run, as Markdown and HTML.

:func:`write_report` writes into one directory:

- ``report.md``: the metrics table with bootstrap intervals, per-category and parse-failure tables, and references
  to the PNG files next to it;
- ``report.html``: the same content, self-contained (every PNG embedded as a base64 data URI);
- ``metrics.json``: ``GroundingReport.to_dict()``, the numbers the tables show, with the run's ``config`` (as
  ``score --output`` writes it);
- ``acc_curve.png`` (Acc as a function of the IoU threshold), ``iou_histogram.png``, ``categories.png`` (when the
  run has categories) and ``overlay_<group>_<k>.png`` (when images are available).

Overlays show, on the image, the true boxes (green), the predicted boxes (red) and the Chain-of-Box reasoning boxes
of ``<think>`` (orange, numbered in order) for the best, median and worst samples by IoU. The boxes come from
:func:`sample_views`, which goes through :func:`medground_eval.regions.parse_many` and
:func:`~medground_eval.regions.boxes_to_pixels` (the core of ``predicted_regions``): the one conversion path the
scorer uses.

matplotlib (Agg backend, no display needed) and Pillow are imported inside the functions that draw, so importing
this module needs neither.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from medground_eval.datasets.base import get_loader
from medground_eval.datasets.jsonl import sample_from_record
from medground_eval.frames import Frame, get_frame
from medground_eval.metrics import GroundingReport, SampleScores
from medground_eval.regions import boxes_to_pixels, parse_many
from medground_eval.evaluation.scorer import join_notes
from medground_eval.structures import ParsedCompletion, Sample

FIGURE_SIZE = (6.4, 4.0)
"""Plot size in inches; at :data:`DPI` a plot PNG is 640 x 400 pixels (the category plot grows with categories)."""
DPI = 100
MAX_OVERLAY_SIDE = 768
"""Overlays are downscaled (never upscaled) so that their longer side is at most this many pixels."""
CURVE_POINTS = 101
"""IoU thresholds 0, 0.01, ..., 1 on the Acc-vs-threshold curve."""
HISTOGRAM_BINS = 20

TRUE_COLOR = (0, 200, 0)
PRED_COLOR = (230, 30, 30)
THINK_COLOR = (255, 160, 0)

Block = tuple
"""A report element, rendered to Markdown and HTML: ("h1" | "h2" | "h3" | "p", text), ("table", header, rows) or
("image", file name in the report directory, alt text, caption)."""


class ScoredRun(Protocol):
    """What the report needs from a scored run; ``medground_eval.evaluation.scorer.ScoreResult`` has it: ``problems[i]`` is
    the parser's problems with sample i's prediction, joined by "; " ("" when none); ``config`` the run's settings
    and join counts (``ScoreResult.config``; the report's "Run" section shows them)."""

    report: GroundingReport
    per_sample: SampleScores
    problems: Sequence[str]
    config: Mapping[str, object]


@dataclass(frozen=True)
class SampleView:
    """The boxes an overlay shows for one sample, all in original-image pixels.

    - ``true_boxes``: the ground truth, (K, 2d).
    - ``pred_boxes``: the predicted answer boxes, converted and clipped like the scorer does, (P, 2d); P = 0 when
      nothing parsed.
    - ``think_boxes``: the 2d-number boxes written inside ``<think>`` (Chain-of-Box steps), in order, converted in
      the same frame as the answer, (R, 2d).
    """

    id: str
    phrase: str
    image: str | None
    true_boxes: np.ndarray
    pred_boxes: np.ndarray
    think_boxes: np.ndarray


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`: ``images`` lists every PNG, ``skipped_overlays`` says why a chosen
    sample got no overlay (``(id, reason)``)."""

    markdown: Path
    html: Path
    metrics: Path
    images: tuple[Path, ...]
    skipped_overlays: tuple[tuple[str, str], ...]


def sample_views(
    records: Sequence[Mapping[str, object]], samples: Sequence[Sample], *, frame: str | Frame = "pixel",
    answer_tag: str = "required",
) -> dict[str, SampleView]:
    """One :class:`SampleView` per ground-truth sample, keyed by id.

    ``records`` are prediction records as in a predictions file: ``{"id", "completion"}`` or ``{"id", "pred_boxes"}``,
    each optionally with ``frame``, ``image_size`` (used when the sample has none, as the scorer does) and
    ``input_size``. Records whose id is not a sample are ignored (the scorer reports them); a sample without a record
    gets no predicted box. Completions are parsed with ``answer_tag`` (as the scorer did). Raises
    ``ValueError`` naming the id when a ``pred_boxes`` value is not a list of boxes of the samples' dimensionality.
    """
    if not samples:
        return {}
    by_id = {str(r["id"]): r for r in records}
    rows = [by_id.get(s.id, {}) for s in samples]
    dims = samples[0].dims
    width = 2 * dims
    texts = [i for i, row in enumerate(rows) if "completion" in row]
    parsed = dict(zip(texts, parse_many([rows[i]["completion"] for i in texts], dims=dims, answer_tag=answer_tag)))
    answers = [parsed[i].boxes(dims) if i in parsed else _given_boxes(s.id, row, width)
               for i, (s, row) in enumerate(zip(samples, rows))]
    thinks = [_think_boxes(parsed[i], width) if i in parsed else np.empty((0, width)) for i in range(len(rows))]
    frames = [get_frame(row.get("frame") or frame) for row in rows]
    sizes = [row.get("image_size") if s.image_size is None else s.image_size for s, row in zip(samples, rows)]
    if all(size is not None for size in sizes):
        image_sizes = np.asarray(sizes, dtype=np.float64)
    elif all(f.kind == "pixel" for f in frames):
        image_sizes = None
    else:
        missing = next(s.id for s, size in zip(samples, sizes) if size is None)
        raise ValueError(f"sample {missing!r} has no image_size; expected one for a frame other than 'pixel'")
    input_sizes = np.array([row.get("input_size") or [np.nan, np.nan] for row in rows], dtype=np.float64)
    convert = {"frames": frames, "image_sizes": image_sizes, "dims": dims,
               "input_sizes": input_sizes if np.isfinite(input_sizes).any() else None}
    pred = _to_pixels(answers, convert)
    think = _to_pixels(thinks, convert)
    return {
        s.id: SampleView(s.id, s.phrase, s.image, s.boxes, pred[i], think[i])
        for i, s in enumerate(samples)
    }


def score_report(
    result: ScoredRun,
    out_dir: str | Path,
    predictions_path: str | Path,
    *,
    dataset: str,
    annotations: str | Path | None = None,
    split: str | None = None,
    frame: str = "pixel",
    image_root: str | Path | None = None,
    title: str = "Grounding report",
    examples_per_group: int = 3,
) -> ReportFiles:
    """The report of ``medground-eval score --report DIR``: :func:`write_report` of a
    :func:`medground_eval.evaluation.scorer.score_files` result, called with the same ``dataset``, ``annotations``, ``split``
    and ``frame``.

    With ``image_root``, the samples :func:`example_ids` picks are read again (ground truth by :func:`read_samples`,
    and their prediction lines) and converted by :func:`sample_views`. A sample the scorer found no prediction for
    (problem "no prediction": no line, or a line skipped under ``--on-error skip``) is drawn without predicted boxes.
    """
    views = None
    if image_root is not None:
        picked = [i for ids in example_ids(result.per_sample, examples_per_group).values() for i in ids]
        used = {str(i) for i, problem in zip(result.per_sample.ids, result.problems) if problem != "no prediction"}
        records = _prediction_lines(Path(predictions_path), set(picked) & used)
        samples = read_samples(predictions_path, picked, dataset=dataset, annotations=annotations, split=split)
        views = sample_views(list(records.values()), [samples[i] for i in picked if i in samples], frame=frame,
                             answer_tag=str(result.config.get("answer_tag") or "required"))
    return write_report(result, out_dir, views=views, image_root=image_root, title=title,
                        examples_per_group=examples_per_group)


def read_samples(
    predictions_path: str | Path,
    ids: Iterable[str],
    *,
    dataset: str,
    annotations: str | Path | None = None,
    split: str | None = None,
) -> dict[str, Sample]:
    """The ground-truth samples of ``ids`` for a run scored with these options, keyed by id (absent ids left out).

    ``jsonl`` without ``annotations`` reads them from the prediction lines that carry them; any other data set
    through its loader (``on_error="skip"``: the scorer has already reported bad rows).
    """
    wanted = set(ids)
    if dataset == "jsonl" and annotations is None:
        records = _prediction_lines(Path(predictions_path), wanted)
        return {i: sample_from_record(r, path=predictions_path, line=None) for i, r in records.items()}
    loaded = get_loader(dataset)(annotations, split=split, on_error="skip")
    return {s.id: s for s in loaded.samples if s.id in wanted}


def _prediction_lines(path: Path, ids: set[str]) -> dict[str, dict[str, object]]:
    """``{id: record}`` of the prediction lines whose id is in ``ids`` (first occurrence); non-JSON lines are
    passed over (the scorer reports them)."""
    found: dict[str, dict[str, object]] = {}
    with path.open(encoding="utf-8") as handle:
        for text in handle:
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and str(record.get("id")) in ids:
                found.setdefault(str(record["id"]), record)
    return found


def _to_pixels(per_sample: list[np.ndarray], convert: dict[str, object]) -> list[np.ndarray]:
    """Per-sample boxes in the record's frame -> per-sample boxes in original pixels, via ``boxes_to_pixels``."""
    counts = np.array([len(b) for b in per_sample], dtype=np.int64)
    converted, _ = boxes_to_pixels(np.concatenate(per_sample), counts, **convert)
    return np.split(converted, np.cumsum(counts)[:-1])


def _think_boxes(parsed: ParsedCompletion, width: int) -> np.ndarray:
    """The reasoning boxes with ``width`` numbers, in order, as a (R, width) array."""
    rows = [b.coords for b in parsed.think_boxes if len(b.coords) == width]
    return np.array(rows, dtype=np.float64).reshape(len(rows), width)


def _given_boxes(sample_id: str, record: Mapping[str, object], width: int) -> np.ndarray:
    """A record's ``pred_boxes`` (one box, a list of boxes, or absent) as a (P, width) array."""
    value = record.get("pred_boxes")
    try:
        array = np.asarray([] if value is None else value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is not None and array.ndim == 1 and array.size == width:
        array = array[None, :]
    if array is None or (array.size and (array.ndim != 2 or array.shape[1] != width)):
        raise ValueError(f"record {sample_id!r}: pred_boxes = {value!r:.120}; expected a list of {width}-number boxes")
    return array.reshape(-1, width)


def failure_reasons(per_sample: SampleScores, problems: Sequence[str]) -> Counter[str]:
    """For the samples scored as parse failures: how many samples show each problem of ``problems[i]``
    ("; "-joined, as in ``ScoreResult.problems``).

    The box number is dropped ("box 2 has 3 numbers (expected 4)" counts as "a box has 3 numbers (expected 4)"),
    each reason counts once per sample, and a failure without a recorded problem counts as "no predicted box".
    """
    counts: Counter[str] = Counter()
    for i in np.flatnonzero(per_sample.parse_failed):
        reasons = {re.sub(r"^box \d+", "a box", p.strip()) for p in problems[i].split("; ") if p.strip()}
        counts.update(reasons or {"no predicted box"})
    return counts


def example_ids(per_sample: SampleScores, per_group: int = 3) -> dict[str, list[str]]:
    """Ids of the ``per_group`` best, median and worst samples by IoU, no sample in two groups.

    Order: ``np.argsort(iou, kind="stable")`` (ties keep file order). Best: the last ``per_group`` reversed (highest
    IoU first); worst: the first ``per_group``; median: ``per_group`` samples centred on position ``n // 2``.
    With fewer than ``3 * per_group`` samples, best is filled first, then worst, then median.
    """
    order = [str(per_sample.ids[i]) for i in np.argsort(per_sample.iou, kind="stable")]
    n = len(order)
    start = max(0, min(n - per_group, n // 2 - per_group // 2))
    groups = {"best": order[::-1][:per_group], "worst": order[:per_group], "median": order[start:start + per_group]}
    used: set[str] = set()
    picked: dict[str, list[str]] = {}
    for name in ("best", "worst", "median"):
        picked[name] = [i for i in groups[name] if i not in used]
        used.update(picked[name])
    return {name: picked[name] for name in ("best", "median", "worst")}


def accuracy_curve(iou: np.ndarray, thresholds: np.ndarray, inclusive: bool) -> np.ndarray:
    """Acc at each threshold t: fraction of samples with IoU >= t (``inclusive``) or IoU > t; NaN when empty."""
    iou = np.asarray(iou, dtype=np.float64)
    if iou.size == 0:
        return np.full(len(thresholds), np.nan)
    ordered = np.sort(iou)
    side = "left" if inclusive else "right"
    return 1.0 - np.searchsorted(ordered, thresholds, side=side) / iou.size


def _figure(height: float = FIGURE_SIZE[1]):  # noqa: ANN202  (a matplotlib Figure; matplotlib is imported here)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(FIGURE_SIZE[0], height), dpi=DPI, layout="constrained")


def plot_accuracy_curve(report: GroundingReport, per_sample: SampleScores, path: Path) -> Path:
    """Acc as a function of the IoU threshold, the report's thresholds marked with their values and intervals."""
    grid = np.linspace(0.0, 1.0, CURVE_POINTS)
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(grid, accuracy_curve(per_sample.iou, grid, report.inclusive), color="tab:blue")
    for key, value in report.acc.items():
        if value is None:
            continue
        t = float(key)
        interval = report.ci.get(f"acc@{key}")
        if interval is not None:
            ax.errorbar(t, value, yerr=[[value - interval[0]], [interval[1] - value]], color="tab:red", capsize=3)
        ax.plot(t, value, "o", color="tab:red")
        ax.annotate(f"{value:.3f}", (t, value), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if report.miou is not None:
        ax.axvline(report.miou, color="grey", linestyle="--", linewidth=1, label=f"mIoU = {report.miou:.3f}")
        ax.legend(loc="upper right")
    rule = ">=" if report.inclusive else ">"
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="IoU threshold t", ylabel=f"Acc (fraction with IoU {rule} t)",
           title=f"Accuracy vs IoU threshold (n = {report.n})")
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return path


def plot_iou_histogram(per_sample: SampleScores, path: Path) -> Path:
    """Histogram of per-sample IoU over [0, 1], parse failures (IoU 0) stacked in their own colour."""
    fig = _figure()
    ax = fig.add_subplot()
    failed = per_sample.parse_failed
    ax.hist([per_sample.iou[~failed], per_sample.iou[failed]], bins=HISTOGRAM_BINS, range=(0, 1), stacked=True,
            color=["tab:blue", "tab:grey"], label=["answer parsed", "parse failure"])
    ax.set(xlim=(0, 1), xlabel="IoU", ylabel="samples", title=f"IoU distribution (n = {len(per_sample)})")
    ax.legend(loc="upper center")
    ax.grid(alpha=0.3, axis="y")
    fig.savefig(path)
    return path


def headline_threshold(report: GroundingReport) -> str:
    """The Acc key shown per category: "0.5" when reported, else the middle reported threshold."""
    keys = list(report.acc)
    return "0.5" if "0.5" in keys else keys[len(keys) // 2]


def plot_categories(report: GroundingReport, path: Path) -> Path:
    """Horizontal bars of Acc@0.5 (see :func:`headline_threshold`) and mIoU per category, n in each label.

    The figure is ``FIGURE_SIZE[0]`` wide and ``1.2 + 0.4 * categories`` inches high (at least ``FIGURE_SIZE[1]``).
    """
    names = list(report.per_category)
    key = headline_threshold(report)
    fig = _figure(category_plot_height(len(names)))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    stats = [report.per_category[name] for name in names]
    ax.barh(y - 0.2, [s["acc"][key] for s in stats], height=0.4, color="tab:blue", label=f"Acc@{key}")
    ax.barh(y + 0.2, [s["miou"] for s in stats], height=0.4, color="tab:orange", label="mIoU")
    ax.set_yticks(y, [f"{name} (n={s['n']})" for name, s in zip(names, stats)])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="value", title="Per category")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    fig.savefig(path)
    return path


def category_plot_height(n_categories: int) -> float:
    """Height in inches of the category plot (see :func:`plot_categories`)."""
    return max(FIGURE_SIZE[1], 1.2 + 0.4 * n_categories)


def draw_overlay(image_path: Path, view: SampleView, path: Path) -> Path:
    """The image with true (green), predicted (red) and reasoning (orange, numbered) boxes, saved as PNG.

    Outlines are drawn inside each box's edges; the true box's outline is twice as wide as the predicted one's.
    The image is converted to RGB (16-bit and float images are scaled min-max to 0-255) and downscaled so its longer
    side is at most :data:`MAX_OVERLAY_SIDE`; boxes are scaled with it. Raises ``ValueError`` for 3D boxes.
    """
    from PIL import Image, ImageDraw

    if view.true_boxes.shape[1] != 4:
        raise ValueError(f"sample {view.id!r}: overlays are 2D only, got boxes with {view.true_boxes.shape[1]} numbers")
    with Image.open(image_path) as opened:
        image = _to_rgb(opened)
    scale = min(1.0, MAX_OVERLAY_SIDE / max(image.size))
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 256))
    for step, box in enumerate(view.think_boxes * scale, start=1):
        draw.rectangle(box.tolist(), outline=THINK_COLOR, width=max(1, width - 1))
        above = box[1] - 12 >= 0  # the step number sits above the box's corner, or inside when there is no room
        draw.text((box[0], box[1] - 12 if above else box[1] + width), str(step), fill=THINK_COLOR)
    for box in view.true_boxes * scale:  # twice as wide as the prediction: both stay visible when they coincide
        draw.rectangle(box.tolist(), outline=TRUE_COLOR, width=2 * width)
    for box in view.pred_boxes * scale:
        draw.rectangle(box.tolist(), outline=PRED_COLOR, width=width)
    image.save(path, format="PNG")
    return path


def _to_rgb(image):  # noqa: ANN001, ANN202  (PIL images; PIL is imported by the caller)
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        lo, hi = float(pixels.min()), float(pixels.max())
        scaled = np.zeros_like(pixels) if hi == lo else (pixels - lo) / (hi - lo) * 255.0
        image = Image.fromarray(scaled.astype(np.uint8))
    return image.convert("RGB")


def write_report(
    result: ScoredRun,
    out_dir: str | Path,
    *,
    views: Mapping[str, SampleView] | None = None,
    image_root: str | Path | None = None,
    title: str = "Grounding report",
    examples_per_group: int = 3,
) -> ReportFiles:
    """Write the report of a scored run into ``out_dir`` (created if needed; files of the same name are replaced).

    Parse-failure reasons come from ``result.problems``. ``views`` (from :func:`sample_views`; at least the samples
    :func:`example_ids` picks) give the overlay boxes; overlays are drawn when ``image_root`` is given too, for
    samples whose ``image`` file exists under it (2D only). A chosen sample
    without an image, a missing file or 3D boxes is listed in the report and in ``ReportFiles.skipped_overlays``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report, per_sample = result.report, result.per_sample
    metrics_path = out / "metrics.json"
    metrics = {**report.to_dict(), "config": dict(result.config)}
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")

    blocks: list[Block] = [("h1", title), ("p", _summary_line(report))] + _run_blocks(result.config)
    blocks += [("h2", "Metrics"), ("table", ["metric", "value", f"{report.confidence:.0%} interval"],
                                   [[name, _fmt(value), _fmt_interval(ci)] for name, value, ci in report.rows()])]
    images: list[Path] = []
    skipped: list[tuple[str, str]] = []
    if report.n:
        images.append(plot_accuracy_curve(report, per_sample, out / "acc_curve.png"))
        images.append(plot_iou_histogram(per_sample, out / "iou_histogram.png"))
        blocks += [("h2", "Accuracy vs IoU threshold"), ("image", "acc_curve.png", "Acc vs IoU threshold", ""),
                   ("h2", "IoU distribution"), ("image", "iou_histogram.png", "IoU histogram", "")]
    if report.per_category:
        key = headline_threshold(report)
        rows = [[name, str(s["n"]), _fmt(s["acc"][key]), _fmt(s["miou"]), _fmt(s["ciou"]), _fmt(s["pointing"])]
                for name, s in report.per_category.items()]
        images.append(plot_categories(report, out / "categories.png"))
        blocks += [("h2", "Per category"), ("table", ["category", "n", f"acc@{key}", "miou", "ciou", "pointing"], rows),
                   ("image", "categories.png", "Per-category Acc and mIoU", "")]
    blocks += _failure_blocks(per_sample, result.problems)
    if views is not None and image_root is not None and report.n:
        overlay_blocks, overlay_images, skipped = _overlays(per_sample, views, Path(image_root), out,
                                                            examples_per_group)
        blocks += overlay_blocks
        images += overlay_images

    markdown = out / "report.md"
    markdown.write_text(_markdown(blocks), encoding="utf-8")
    page = out / "report.html"
    page.write_text(_html(blocks, out, title), encoding="utf-8")
    return ReportFiles(markdown, page, metrics_path, tuple(images), tuple(skipped))


def _summary_line(report: GroundingReport) -> str:
    rule = "IoU >= t" if report.inclusive else "IoU > t"
    intervals = (f"{report.confidence:.0%} percentile bootstrap intervals over {report.n_bootstrap} resamples"
                 if report.ci else "no intervals")
    return f"{report.n} samples; a hit at threshold t means {rule}; {intervals}. Numbers as in metrics.json."


RUN_SETTINGS = ("dataset", "annotations", "predictions", "split", "view", "frame", "compat", "parse_rules")
"""The ``config`` keys the "Run" section lists (those present and not None; ``view`` unless "volume"), then the
join counts."""


def _run_blocks(config: Mapping[str, object]) -> list[Block]:
    """The run's settings (data set, frame, compat preset, parse rules) and what was left out or missing."""
    rows = [[key, str(config[key])] for key in RUN_SETTINGS if config.get(key) not in (None, "volume")]
    if not rows:
        return []
    return [("h2", "Run"), ("table", ["setting", "value"], rows)] + [("p", note) for note in join_notes(config)]


def _failure_blocks(per_sample: SampleScores, problems: Sequence[str]) -> list[Block]:
    failures = int(per_sample.parse_failed.sum())
    blocks: list[Block] = [("h2", "Parse failures"),
                           ("p", f"{failures} of {len(per_sample)} samples have no usable predicted box.")]
    if failures:
        reasons = failure_reasons(per_sample, problems)
        rows = [[reason, str(count)] for reason, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
        blocks += [("p", "Reasons (a sample can show several):"), ("table", ["reason", "samples"], rows)]
    return blocks


def _overlays(
    per_sample: SampleScores, views: Mapping[str, SampleView], image_root: Path, out: Path, per_group: int
) -> tuple[list[Block], list[Path], list[tuple[str, str]]]:
    iou = dict(zip(per_sample.ids.tolist(), per_sample.iou.tolist()))
    blocks: list[Block] = [("h2", "Examples"), ("p", "Green: true boxes. Red: predicted boxes. Orange, numbered: "
                                                      "Chain-of-Box reasoning boxes from <think>, in order.")]
    images: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for group, ids in example_ids(per_sample, per_group).items():
        blocks.append(("h3", f"{group.capitalize()} samples"))
        for k, sample_id in enumerate(ids, start=1):
            view = views.get(sample_id)
            reason = _overlay_problem(view, image_root)
            if reason is not None:
                skipped.append((sample_id, reason))
                blocks.append(("p", f"{sample_id}: no overlay ({reason})."))
                continue
            name = f"overlay_{group}_{k}.png"
            images.append(draw_overlay(image_root / view.image, view, out / name))
            caption = f"{sample_id}: \"{view.phrase}\", IoU {iou[sample_id]:.3f}"
            blocks.append(("image", name, f"overlay of {sample_id}", caption))
    return blocks, images, skipped


def _overlay_problem(view: SampleView | None, image_root: Path) -> str | None:
    if view is None:
        return "no prediction view"
    if view.image is None:
        return "the sample names no image"
    if view.true_boxes.shape[1] != 4:
        return "3D sample"
    if not (image_root / view.image).is_file():
        return f"image file {image_root / view.image} not found"
    return None


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.4f}"


def _fmt_interval(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f"[{interval[0]:.4f}, {interval[1]:.4f}]"


_MD_SPECIAL = re.compile(r"([\\`*_<>\[\]|])")


def _md_text(text: str) -> str:
    """Text shown literally in Markdown: special characters backslash-escaped, newlines as spaces."""
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def _markdown(blocks: Iterable[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + _md_text(block[1]), ""]
        elif kind == "p":
            lines += [_md_text(block[1]), ""]
        elif kind == "table":
            header, rows = block[1], block[2]
            lines.append("| " + " | ".join(_md_text(h) for h in header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(_md_text(c) for c in row) + " |" for row in rows]
            lines.append("")
        else:  # image
            _, name, alt, caption = block
            lines += [f"![{_md_text(alt)}]({name})", ""]
            if caption:
                lines += [f"*{_md_text(caption)}*", ""]
    return "\n".join(lines)


_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
          "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
          "th{background:#f3f3f3}img{max-width:100%}figure{margin:1em 0}figcaption{color:#555}")


def _html(blocks: Iterable[Block], out: Path, title: str) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3", "p"):
            parts.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "table":
            header, rows = block[1], block[2]
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:  # image
            _, name, alt, caption = block
            data = base64.b64encode((out / name).read_bytes()).decode("ascii")
            figcaption = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
            parts.append(f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
                         f"{figcaption}</figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
