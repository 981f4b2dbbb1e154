"""lmms-eval task functions for medground-eval grounding tasks (``!function medground_utils.<name>`` in the YAML).

Each doc is one grounding sample written by :func:`medground_eval.integrations.lmms_eval.write_task_folder`:
``id``, ``phrase``, ``image_path`` (absolute), ``boxes`` (true corner boxes in pixels), ``image_size`` ``[W, H]``,
``category``, ``frame`` (the model's coordinate frame, a medground-eval frame spec) and ``prompt``.

Scoring is medground-eval's, not lmms-eval's refcoco rules: every box of the answer is read by our parser (all
dialects, never a silent ``[0, 0, 0, 0]``), converted once from the doc's frame to pixels and clipped, the union of
the boxes is compared with the union of the true boxes, and a completion the parser finds no box in scores IoU 0 and
counts in ``parse_failure_rate``. ``doc_to_target`` is the sample id, so lmms-eval's ``samples_*.jsonl`` (which
drops the doc) keeps it in ``target``; ``medground-eval score`` reads such a file as predictions.
"""

from __future__ import annotations

import numpy as np

from medground_eval.frames import get_frame
from medground_eval.metrics import grounding_report, score_samples
from medground_eval.parsing import parse_completion

METRICS = ("acc@0.1", "acc@0.3", "acc@0.5", "acc@0.7", "acc@0.9", "miou", "ciou", "pointing", "parse_failure_rate")


def doc_to_visual(doc: dict) -> list:
    from PIL import Image

    with Image.open(doc["image_path"]) as image:
        return [image.convert("RGB")]


def doc_to_text(doc: dict) -> str:
    return doc["prompt"]


def doc_to_target(doc: dict) -> str:
    return doc["id"]


def process_results(doc: dict, results: list) -> dict:
    """One record per metric (the same for all): the sample's predicted boxes in pixels and its truth."""
    text = results[0] if results else ""
    parsed = parse_completion(text if isinstance(text, str) else str(text), dims=2)
    boxes = parsed.boxes(2)
    size = doc["image_size"]
    if len(boxes):
        frame = get_frame(doc["frame"])
        axes = {b.axes for b in parsed.answer_boxes}
        if frame.axes == "xy" and axes == {"yx"}:
            raise ValueError(f"sample {doc['id']}: the answer writes y first (Gemini box_2d / PaliGemma <loc>) but "
                             f"the task's frame {doc['frame']!r} is x-first; write the task with a y-first frame")
        boxes = frame.to_pixels(boxes, size).boxes
    record = {"id": doc["id"], "pred": np.asarray(boxes, dtype=float).reshape(-1, 4).tolist(), "true": doc["boxes"],
              "failed": not len(boxes), "category": doc.get("category")}
    return {metric: record for metric in METRICS}


def _report(records: list[dict]):
    scores = score_samples(
        [r["id"] for r in records],
        [np.asarray(r["pred"], dtype=float).reshape(-1, 4) for r in records],
        [np.asarray(r["true"], dtype=float).reshape(-1, 4) for r in records],
        parse_failed=[r["failed"] for r in records],
        categories=[r["category"] for r in records],
    )
    return grounding_report(scores, n_bootstrap=0)


def _aggregate(name: str):
    def aggregate(records: list[dict]) -> float:
        report = _report(records)
        if name.startswith("acc@"):
            return float(report.acc[name[4:]])
        return float(getattr(report, name))

    aggregate.__name__ = f"aggregate_{name.replace('@', '_').replace('.', '')}"
    return aggregate


aggregate_acc01 = _aggregate("acc@0.1")
aggregate_acc03 = _aggregate("acc@0.3")
aggregate_acc05 = _aggregate("acc@0.5")
aggregate_acc07 = _aggregate("acc@0.7")
aggregate_acc09 = _aggregate("acc@0.9")
aggregate_miou = _aggregate("miou")
aggregate_ciou = _aggregate("ciou")
aggregate_pointing = _aggregate("pointing")
aggregate_parse_failure_rate = _aggregate("parse_failure_rate")
