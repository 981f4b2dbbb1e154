"""Per-sample export of a scored run: what people open in a spreadsheet or a notebook to look at the errors.

One row per ground-truth sample, in the scorer's order, with: ``id``, ``phrase``, ``category``, ``image``,
``iou``, ``hit@<t>`` for each of the run's thresholds, ``pointing``, ``parse_failed``, ``out_of_frame``,
``pred_boxes`` and ``true_boxes`` (original-image pixels, the predicted ones converted from the run's frame and
clipped exactly as the scorer does, through :func:`medground_eval.evaluation.report.sample_views`),
``pred_labels`` (what the model named each predicted box), ``input_size`` (the model input ``[w, h]`` the answer
was converted from: the line's own, else the resize of the image under a ``resized`` frame; null for other frames),
``problems`` (the parser's, "; "-joined; "no prediction" for a sample without a line) and ``completion``.

- ``.jsonl``: one JSON object a line, boxes as lists, the completion in full.
- ``.csv`` (any other suffix): boxes and labels as JSON text in their cells, the completion cut to
  :data:`CSV_COMPLETION_CHARS` characters with ``completion_truncated`` saying whether it was cut.

``pred_boxes_space`` says what ``pred_boxes`` holds: "original pixels" (the default rules), or, under a compat
preset, "as written (compat <name>)": the one box the preset's own extraction reads, before any rescaling the
preset applies when it compares (``--compat vlm-r1`` multiplies by image / model input), so it is never mistaken
for the compared pixel box.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medground_eval.datasets.m3d_refseg import view_sample
from medground_eval.evaluation.compat import get_compat
from medground_eval.evaluation.report.data import ScoredRun, _prediction_lines, read_samples, sample_views
from medground_eval.frames import get_frame
from medground_eval.metrics import iou_hits
from medground_eval.outputs import atomic_write_text, open_atomic
from medground_eval.parsing import completion_text

CSV_COMPLETION_CHARS = 300
"""Characters of the completion kept in a CSV cell (the JSONL export keeps it whole)."""


def per_sample_rows(result: ScoredRun, predictions_path: str | Path, *, dataset: str,
                    annotations: str | Path | None = None, split: str | None = None) -> Iterator[dict[str, Any]]:
    """The export's rows (see the module doc), in the order of ``result.per_sample``.

    The ground truth is read again with the run's options (``result.config``: frame, view, answer tag) and the
    prediction lines of the scored ids; the metric columns are the scorer's own numbers.
    """
    scores, config = result.per_sample, result.config
    ids = [str(i) for i in scores.ids.tolist()]
    samples = read_samples(predictions_path, ids, dataset=dataset, annotations=annotations, split=split)
    view = config.get("view") or "volume"
    if view != "volume":
        samples = {i: view_sample(s, view) for i, s in samples.items()}
    records = _prediction_lines(Path(predictions_path), set(ids))
    used = [i for i, problem in zip(ids, result.problems) if problem != "no prediction"]
    ordered = [samples[i] for i in ids if i in samples]
    frame = str(config.get("frame") or "pixel").split(" (")[0]
    compat = config.get("compat")
    views = sample_views([records[i] for i in used if i in records], ordered, frame=frame,
                         answer_tag=str(config.get("answer_tag") or "required"))
    thresholds = [float(t) for t in config.get("thresholds") or result.report.thresholds]
    hits = {t: iou_hits(scores.iou, t, result.report.inclusive) for t in thresholds}
    for k, sample_id in enumerate(ids):
        sample_view = views.get(sample_id)
        record = records.get(sample_id, {}) if sample_id in used else {}
        pred = [] if sample_view is None else sample_view.pred_boxes.tolist()
        if compat is not None:
            text = completion_text(record["completion"]) if "completion" in record else None
            box = None if text is None else get_compat(compat).extract(text)[0]
            pred = [] if box is None else [list(box)]
        row: dict[str, Any] = {
            "id": sample_id,
            "phrase": None if sample_view is None else sample_view.phrase,
            "category": scores.category[k],
            "image": None if sample_view is None else sample_view.image,
            "iou": float(scores.iou[k]),
        }
        row |= {f"hit@{t:g}": bool(hits[t][k]) for t in thresholds}
        row |= {
            "pointing": bool(scores.pointing[k]),
            "parse_failed": bool(scores.parse_failed[k]),
            "out_of_frame": bool(scores.out_of_frame[k]),
            "pred_boxes": [[_number(v) for v in box] for box in pred],
            "pred_boxes_space": "original pixels" if compat is None else f"as written (compat {compat})",
            "input_size": _input_size(record, samples.get(sample_id), frame),
            "true_boxes": [] if sample_view is None else [[_number(v) for v in b] for b in sample_view.true_boxes],
            "pred_labels": [] if sample_view is None or compat is not None else list(sample_view.labels),
            "problems": result.problems[k],
            "completion": None if sample_view is None else sample_view.completion,
        }
        yield row


def _input_size(record: dict[str, Any], sample: Any, frame: str) -> list[int] | None:
    """The model input size ``[w, h]`` the sample's answer was converted from: the line's own ``input_size``, else,
    under a ``resized`` frame (the line's or the run's), the frame's resize of the image size; None otherwise."""
    if record.get("input_size") is not None:
        return [int(v) for v in record["input_size"]]
    line_frame = get_frame(record.get("frame") or frame)
    size = record.get("image_size") or (None if sample is None else sample.image_size)
    if line_frame.kind != "resized" or size is None or len(size) != 2:
        return None
    return [int(v) for v in line_frame.input_sizes([size])[0]]


def _number(value: float) -> float | int:
    """A coordinate as an int when it is whole (pixel boxes stay readable), else a float."""
    return int(value) if float(value).is_integer() else round(float(value), 4)


def write_per_sample(result: ScoredRun, path: str | Path, predictions_path: str | Path, *, dataset: str,
                     annotations: str | Path | None = None, split: str | None = None) -> Path:
    """Write :func:`per_sample_rows` as JSONL (``.jsonl``: full completions) or CSV (truncated completions),
    atomically (:mod:`medground_eval.outputs`; ``-`` is standard output, as CSV)."""
    rows = per_sample_rows(result, predictions_path, dataset=dataset, annotations=annotations, split=split)
    if Path(path).suffix.lower() == ".jsonl":
        with open_atomic(path, "w") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return Path(path)
    import pandas as pd

    atomic_write_text(path, pd.DataFrame([_csv_row(row) for row in rows]).to_csv(index=False))
    return Path(path)


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("pred_boxes", "true_boxes", "pred_labels"):
        out[key] = json.dumps(row[key], ensure_ascii=False)
    text = row["completion"]
    out["completion"] = None if text is None else text[:CSV_COMPLETION_CHARS]
    out["completion_truncated"] = text is not None and len(text) > CSV_COMPLETION_CHARS
    return out

