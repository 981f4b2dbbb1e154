"""Writing a report: the blocks (headings, paragraphs, tables, images) of a scored run as Markdown and HTML.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medground_eval.anatomy import LateralityReport
from medground_eval.evaluation.report.data import (
    SampleView,
    ScoredRun,
    _prediction_lines,
    example_ids,
    failure_ids,
    failure_reasons,
    headline_threshold,
    parsed_answers,
    read_samples,
    sample_views,
)
from medground_eval.evaluation.report.plots import (
    draw_overlay,
    plot_accuracy_curve,
    plot_categories,
    plot_iou_histogram,
    stored_scale,
)
from medground_eval.evaluation.scorer import join_notes
from medground_eval.metrics import GroundingReport, SampleScores
from medground_eval.outputs import atomic_directory
from medground_eval.parsing import completion_text
from medground_eval.provenance import provenance_rows

FAILURE_GALLERY = 5
"""Parse failures the report shows with their reason and text."""
FAILURE_TEXT_CHARS = 400
"""Characters of a failed completion the gallery shows (the per-sample JSONL export has it whole)."""

Block = tuple
"""A report element, rendered to Markdown and HTML: ("h1" | "h2" | "h3" | "p", text), ("table", header, rows) or
("image", file name in the report directory, alt text, caption)."""


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`: ``images`` lists every PNG, ``skipped_overlays`` says why a chosen
    sample got no overlay (``(id, reason)``)."""

    markdown: Path
    html: Path
    metrics: Path
    images: tuple[Path, ...]
    skipped_overlays: tuple[tuple[str, str], ...]


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
    provenance: Mapping[str, object] | None = None,
) -> ReportFiles:
    """The report of ``medground-eval score --report DIR``: :func:`write_report` of a
    :func:`medground_eval.evaluation.scorer.score_files` result, called with the same ``dataset``, ``annotations``, ``split``
    and ``frame``.

    With ``image_root``, the samples :func:`example_ids` picks are read again (ground truth by :func:`read_samples`,
    and their prediction lines) and converted by :func:`sample_views`. A sample the scorer found no prediction for
    (problem "no prediction": no line, or a line skipped under ``--on-error skip``) is never picked. The first
    :data:`FAILURE_GALLERY` parse failures' completions are read for the parse-failure gallery.
    """
    views = None
    failed = failure_ids(result.per_sample, FAILURE_GALLERY)
    if image_root is not None:
        eligible = parsed_answers(result.per_sample, result.problems)
        picked = [i for ids in example_ids(result.per_sample, examples_per_group, eligible).values() for i in ids]
        records = _prediction_lines(Path(predictions_path), set(picked) | set(failed))
        samples = read_samples(predictions_path, picked, dataset=dataset, annotations=annotations, split=split)
        views = sample_views([records[i] for i in picked if i in records],
                             [samples[i] for i in picked if i in samples], frame=frame,
                             answer_tag=str(result.config.get("answer_tag") or "required"))
    else:
        records = _prediction_lines(Path(predictions_path), set(failed))
    texts = {i: _record_text(records[i]) for i in failed if i in records}
    return write_report(result, out_dir, views=views, image_root=image_root, title=title,
                        examples_per_group=examples_per_group, provenance=provenance, failure_texts=texts)


def _record_text(record: Mapping[str, object]) -> str:
    """What a prediction line answered: its completion's text, or its ``pred_boxes`` as JSON."""
    if "completion" in record:
        return completion_text(record["completion"])
    return "pred_boxes: " + json.dumps(record.get("pred_boxes"))


def write_report(
    result: ScoredRun,
    out_dir: str | Path,
    *,
    views: Mapping[str, SampleView] | None = None,
    image_root: str | Path | None = None,
    title: str = "Grounding report",
    examples_per_group: int = 3,
    provenance: Mapping[str, object] | None = None,
    failure_texts: Mapping[str, str] | None = None,
) -> ReportFiles:
    """Write the report of a scored run into the folder ``out_dir``, atomically: it is built under a temporary name
    and appears whole or not at all (:func:`medground_eval.outputs.atomic_directory`; an existing ``out_dir`` is
    replaced when it is empty or an earlier report, else FileExistsError).

    The examples are the best, median and worst *parsed answers* (:func:`parsed_answers`): parse failures have
    their own gallery, the first :data:`FAILURE_GALLERY` with their reasons and text (``failure_texts[id]``, else
    the completion of ``views[id]``). ``provenance`` (:func:`medground_eval.provenance.provenance`) goes into
    metrics.json and a Provenance section.

    Parse-failure reasons come from ``result.problems``. ``views`` (from :func:`sample_views`; at least the samples
    :func:`example_ids` picks) give the overlay boxes; overlays are drawn when ``image_root`` is given too, for
    samples whose ``image`` file exists under it (2D only). A chosen sample
    without an image, a missing file or 3D boxes is listed in the report and in ``ReportFiles.skipped_overlays``.
    """
    final = Path(out_dir)
    with atomic_directory(final) as out:
        report, per_sample = result.report, result.per_sample
        metrics_path = out / "metrics.json"
        anatomy = getattr(result, "anatomy", None)
        metrics = {**report.to_dict(), "anatomy": None if anatomy is None else anatomy.to_dict(),
                   "config": dict(result.config)}
        if provenance is not None:
            metrics["provenance"] = dict(provenance)
        metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")

        blocks: list[Block] = [("h1", title), ("p", _summary_line(report))] + _run_blocks(result.config)
        blocks += [("h2", "Metrics"), ("table", ["metric", "value", f"{report.confidence:.0%} interval"],
                                       [[name, _fmt(value), _fmt_interval(ci)]
                                        for name, value, ci in report.rows()])]
        images: list[Path] = []
        skipped: list[tuple[str, str]] = []
        if report.n:
            images.append(plot_accuracy_curve(report, per_sample, out / "acc_curve.png"))
            images.append(plot_iou_histogram(per_sample, out / "iou_histogram.png"))
            blocks += [("h2", "Accuracy vs IoU threshold"), ("image", "acc_curve.png", "Acc vs IoU threshold", ""),
                       ("h2", "IoU distribution"), ("image", "iou_histogram.png", "IoU histogram", "")]
        if report.per_category:
            key = headline_threshold(report)
            rows = [[name, str(s["n"]), _fmt(s["acc"][key]), _fmt(s["miou"]), _fmt(s["ciou"]),
                     _fmt(s["pointing"])] for name, s in report.per_category.items()]
            images.append(plot_categories(report, out / "categories.png"))
            blocks += [("h2", "Per category"),
                       ("table", ["category", "n", f"acc@{key}", "miou", "ciou", "pointing"], rows),
                       ("image", "categories.png", "Per-category Acc and mIoU", "")]
        blocks += _anatomy_blocks(anatomy)
        blocks += _failure_blocks(per_sample, result.problems)
        texts = {i: v.completion for i, v in (views or {}).items() if v.completion is not None}
        blocks += _failure_gallery(per_sample, result.problems, texts | dict(failure_texts or {}))
        if views is not None and image_root is not None and report.n:
            overlay_blocks, overlay_images, skipped = _overlays(per_sample, views, Path(image_root), out,
                                                                examples_per_group,
                                                                parsed_answers(per_sample, result.problems))
            blocks += overlay_blocks
            images += overlay_images
        if provenance is not None:
            blocks += [("h2", "Provenance"), ("table", ["item", "value"], provenance_rows(provenance))]

        markdown = out / "report.md"
        markdown.write_text(_markdown(blocks), encoding="utf-8")
        page = out / "report.html"
        page.write_text(_html(blocks, out, title), encoding="utf-8")
    moved = [final / path.name for path in images]
    return ReportFiles(final / "report.md", final / "report.html", final / "metrics.json", tuple(moved),
                       tuple(skipped))


def _anatomy_blocks(anatomy: LateralityReport | None) -> list[Block]:
    """The "Anatomy" section: laterality and zone metrics (docs/metrics.md), overall and per category."""
    if anatomy is None or not (anatomy.n_sided or anatomy.n_zoned or anatomy.n_no_size):
        return []
    rows = [
        ["laterality accuracy", _fmt(anatomy.laterality_accuracy), str(anatomy.n_sided)],
        ["wrong-side rate", _fmt(anatomy.wrong_side_rate), str(anatomy.n_one_sided)],
        ["zone agreement", _fmt(anatomy.zone_agreement), str(anatomy.n_zoned)],
        ["true regions on the named side (convention check)", _fmt(anatomy.truth_laterality_accuracy),
         str(anatomy.n_sided)],
    ]
    blocks: list[Block] = [("h2", "Anatomy"), ("table", ["metric", "value", "samples"], rows)]
    notes = []
    if anatomy.wrong_side:
        notes.append(f"{anatomy.mirrored} of {anatomy.wrong_side} wrong-side predictions mirror the true region.")
    if anatomy.n_no_size:
        notes.append(f"{anatomy.n_no_size} samples name a side or zone but have no image size: left out.")
    if notes:
        blocks.append(("p", " ".join(notes)))
    if anatomy.per_category:
        blocks.append(("table", ["category", "laterality accuracy", "wrong-side rate", "zone agreement"],
                       [[name, _fmt(r["laterality_accuracy"]), _fmt(r["wrong_side_rate"]), _fmt(r["zone_agreement"])]
                        for name, r in anatomy.per_category.items()]))
    return blocks


def _summary_line(report: GroundingReport) -> str:
    rule = "IoU >= t" if report.inclusive else "IoU > t"
    intervals = (f"{report.confidence:.0%} intervals: Wilson for rates, BCa bootstrap over {report.n_bootstrap} "
                 "resamples for mIoU and cIoU" if report.ci else "no intervals")
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


def _failure_gallery(per_sample: SampleScores, problems: Sequence[str], texts: Mapping[str, str]) -> list[Block]:
    """The first parse failures: id, phrase-free reason and the start of what the model wrote."""
    ids = failure_ids(per_sample, FAILURE_GALLERY)
    if not ids:
        return []
    problem_of = dict(zip(per_sample.ids.tolist(), problems))
    rows = []
    for sample_id in ids:
        text = texts.get(sample_id)
        shown = "(text not read)" if text is None else (text[:FAILURE_TEXT_CHARS] + (" ..." if len(text) >
                                                                                   FAILURE_TEXT_CHARS else ""))
        rows.append([sample_id, problem_of[sample_id] or "no predicted box", shown])
    total = int(per_sample.parse_failed.sum())
    return [("h3", "Parse-failure gallery"),
            ("p", f"The first {len(ids)} of {total} parse failures, with the parser's reasons and the completion."),
            ("table", ["id", "reason", "completion"], rows)]


def _overlays(
    per_sample: SampleScores, views: Mapping[str, SampleView], image_root: Path, out: Path, per_group: int,
    eligible: np.ndarray,
) -> tuple[list[Block], list[Path], list[tuple[str, str]]]:
    iou = dict(zip(per_sample.ids.tolist(), per_sample.iou.tolist()))
    blocks: list[Block] = [("h2", "Examples"), ("p", "Green: true boxes. Red: predicted boxes. Orange, numbered: "
                                                      "Chain-of-Box reasoning boxes from <think>, in order. "
                                                      "Chosen among parsed answers (parse failures are listed "
                                                      "above).")]
    images: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for group, ids in example_ids(per_sample, per_group, eligible).items():
        blocks.append(("h3", f"{group.capitalize()} samples"))
        for k, sample_id in enumerate(ids, start=1):
            view = views.get(sample_id)
            reason = _overlay_problem(view, image_root)
            if reason is not None:
                skipped.append((sample_id, reason))
                blocks.append(("p", f"{sample_id}: no overlay ({reason})."))
                continue
            name = f"overlay_{group}_{k}.png"
            caption = f"{sample_id}: \"{view.phrase}\", IoU {iou[sample_id]:.3f}" + _scaled_note(image_root, view)
            images.append(draw_overlay(image_root / view.image, view, out / name, caption=caption))
            blocks.append(("image", name, f"overlay of {sample_id}", caption))
    return blocks, images, skipped


def _scaled_note(image_root: Path, view: SampleView) -> str:
    """The caption's note when the stored file is not the annotated size (the boxes were scaled to it)."""
    from PIL import Image

    with Image.open(image_root / view.image) as opened:
        stored = opened.size
    if stored_scale(view, stored) is None:
        return ""
    w, h = view.image_size[:2]
    return f" (boxes scaled from the annotated {w} x {h} to the stored file's {stored[0]} x {stored[1]})"


def _overlay_problem(view: SampleView | None, image_root: Path) -> str | None:
    if view is None:
        return "no prediction view"
    if view.image is None:
        return "the sample names no image"
    if view.true_boxes.shape[1] != 4:
        return "3D sample"
    if not _inside(image_root, view.image):
        return f"image path {view.image!r} is outside --image-root {str(image_root)!r}"
    if not (image_root / view.image).is_file():
        return f"image file {image_root / view.image} not found"
    return None


def _inside(root: Path, relative: str | Path) -> bool:
    """True when ``root / relative`` (symbolic links and ``..`` resolved) lies inside ``root``: a carried image path
    that is absolute or climbs out of ``--image-root`` is never read into a report."""
    base = root.resolve()
    return (base / relative).resolve().is_relative_to(base)


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
