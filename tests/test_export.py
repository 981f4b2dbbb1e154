"""Per-sample export: phrase, category, image, predicted and true boxes in original pixels, labels, problems and
the completion (full in JSONL, truncated in CSV), next to the scorer's own numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medground_eval.cli import app
from medground_eval.evaluation.export import CSV_COMPLETION_CHARS, per_sample_rows
from medground_eval.evaluation.scorer import score_files

runner = CliRunner()
LONG = "<think>" + "the left apex looks dense. " * 30 + "</think><answer>[500, 500, 750, 1000]</answer>"
GT = [{"id": "a", "phrase": "left nodule", "boxes": [[100, 100, 150, 200]], "image_size": [200, 200],
       "category": "nodule", "image": "img/a.png"},
      {"id": "b", "phrase": "right effusion", "boxes": [[10, 10, 90, 90]], "image_size": [200, 200],
       "category": "effusion", "image": "img/b.png"},
      {"id": "c", "phrase": "cardiomegaly", "boxes": [[40, 40, 160, 160]], "image_size": [200, 200]}]
PREDS = [{"id": "a", "completion": LONG},
         {"id": "b", "completion": '<think>r</think><answer>{"bbox_2d": [50, 50, 450, 450], "label": "effusion"}'
                                   '</answer>'}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_export_has_boxes_in_original_pixels_and_full_completions(tmp_path):
    gt, preds = write_jsonl(tmp_path / "gt.jsonl", GT), write_jsonl(tmp_path / "preds.jsonl", PREDS)
    out = tmp_path / "deep" / "per_sample.jsonl"
    result = runner.invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt), "--frame",
                                 "norm1000", "--bootstrap", "0", "--per-sample", str(out)])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(rows) == ["a", "b", "c"]
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert a["pred_boxes"] == [[100, 100, 150, 200]] and a["true_boxes"] == [[100, 100, 150, 200]]  # norm1000 -> px
    assert a["iou"] == 1.0 and a["hit@0.5"] and a["completion"] == LONG
    assert (a["phrase"], a["category"], a["image"]) == ("left nodule", "nodule", "img/a.png")
    assert b["pred_boxes"] == [[10, 10, 90, 90]] and b["pred_labels"] == ["effusion"]
    assert c["problems"] == "no prediction" and c["pred_boxes"] == [] and c["completion"] is None
    scored = score_files(preds, dataset="jsonl", annotations=gt, frame="norm1000", n_bootstrap=0)
    assert [r["iou"] for r in rows.values()] == pytest.approx(scored.per_sample.iou.tolist())


def test_csv_export_truncates_the_completion_and_says_so(tmp_path):
    gt, preds = write_jsonl(tmp_path / "gt.jsonl", GT), write_jsonl(tmp_path / "preds.jsonl", PREDS)
    out = tmp_path / "per_sample.csv"
    assert runner.invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt), "--frame",
                               "norm1000", "--bootstrap", "0", "--per-sample", str(out)]).exit_code == 0
    table = pd.read_csv(out, keep_default_na=False)
    assert {"phrase", "category", "image", "pred_boxes", "true_boxes", "pred_labels", "problems", "completion",
            "completion_truncated"} <= set(table.columns)
    first = table.iloc[0]
    assert first["completion"] == LONG[:CSV_COMPLETION_CHARS] and bool(first["completion_truncated"])
    assert json.loads(first["pred_boxes"]) == [[100, 100, 150, 200]]


def test_parse_failures_keep_their_reason_and_text(tmp_path):
    gt = write_jsonl(tmp_path / "gt.jsonl", GT[:1])
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "completion": "<think>hm</think> [1, 2, 3]"}])
    result = score_files(preds, dataset="jsonl", annotations=gt, n_bootstrap=0)
    (row,) = per_sample_rows(result, preds, dataset="jsonl", annotations=gt)
    assert row["parse_failed"] and "missing <answer>" in row["problems"]
    assert row["completion"] == "<think>hm</think> [1, 2, 3]" and row["pred_boxes"] == []


def test_under_a_compat_preset_the_box_is_labelled_as_written(tmp_path):
    gt = write_jsonl(tmp_path / "gt.jsonl", GT[:1])
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "completion": "<think>x</think><answer>"
                                                                          "{[100, 100, 150, 200]}</answer>"}])
    result = score_files(preds, dataset="jsonl", annotations=gt, compat="vlm-r1", n_bootstrap=0)
    (row,) = per_sample_rows(result, preds, dataset="jsonl", annotations=gt)
    assert row["pred_boxes"] == [[100, 100, 150, 200]] and row["pred_boxes_space"] == "as written (compat vlm-r1)"
    plain = score_files(preds, dataset="jsonl", annotations=gt, n_bootstrap=0)
    assert next(per_sample_rows(plain, preds, dataset="jsonl", annotations=gt))["pred_boxes_space"] == \
        "original pixels"


def test_export_carries_each_samples_input_size(tmp_path):
    # Issue 12: each sample's model input size is recorded: the line's own, else the resize of its image.
    gt = write_jsonl(tmp_path / "gt.jsonl", [{"id": "a", "phrase": "p", "boxes": [[0, 0, 900, 900]],
                                              "image_size": [2048, 2500]},
                                             {"id": "b", "phrase": "q", "boxes": [[0, 0, 50, 50]],
                                              "image_size": [2048, 2500]}])
    preds = write_jsonl(tmp_path / "preds.jsonl", [
        {"id": "a", "completion": "<think>x</think><answer>[0, 0, 300, 300]</answer>"},
        {"id": "b", "completion": "<think>x</think><answer>[0, 0, 30, 30]</answer>", "input_size": [812, 980]}])
    out = tmp_path / "per_sample.jsonl"
    result = runner.invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt), "--frame",
                                 "qwen2.5-vl", "--max-pixels", "1003520", "--bootstrap", "0", "--per-sample", str(out)])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    from medground_eval.frames import smart_resize

    h, w = smart_resize(2500, 2048, max_pixels=1003520)
    assert rows["a"]["input_size"] == [w, h] and rows["b"]["input_size"] == [812, 980]


@pytest.mark.parametrize("frame", ["pixel", "norm1000", "norm1", "qwen2.5-vl", "qwen2.5-vl:max_pixels=1003520"])
def test_the_exported_boxes_give_the_scorers_iou_in_every_frame(tmp_path, frame):
    """The export converts the answers itself (the report's path); its boxes must be the ones the scorer compared:
    region IoU of pred_boxes against true_boxes equals the exported (scorer's) iou, for one and two boxes, boxes
    past the image edge (clipped) and a line that declares its own frame."""
    from medground_eval.boxes import region_iou
    from medground_eval.frames import get_frame

    rng = np.random.default_rng(len(frame))
    gt, preds = [], []
    for k in range(40):
        size = [int(rng.integers(800, 4300)), int(rng.integers(800, 4300))]
        x0, y0 = rng.uniform(0, 0.6, 2) * size
        truth = [[x0, y0, x0 + rng.uniform(50, 400), y0 + rng.uniform(50, 400)]]
        gt.append({"id": str(k), "phrase": "opacity", "boxes": truth, "image_size": size})
        line_frame = "norm1000" if k % 7 == 0 else frame
        scale = _answer_scale(get_frame(line_frame), size)
        n_boxes = 2 if k % 5 == 0 else 1
        boxes = [(np.asarray(truth[0]) + rng.normal(0, 20, 4) + [0, 0, 300 * (k % 3 == 0), 0]) / scale
                 for _ in range(n_boxes)]
        answer = json.dumps([{"bbox_2d": [round(float(v), 4) for v in b], "label": "opacity"} for b in boxes])
        record = {"id": str(k), "completion": f"<think>t</think><answer>{answer}</answer>"}
        preds.append(record | ({"frame": "norm1000"} if line_frame != frame else {}))
    gt_file, preds_file = write_jsonl(tmp_path / "gt.jsonl", gt), write_jsonl(tmp_path / "p.jsonl", preds)
    out = tmp_path / "per_sample.jsonl"
    result = runner.invoke(app, ["score", str(preds_file), "--dataset", "jsonl", "--annotations", str(gt_file),
                                 "--frame", frame, "--bootstrap", "0", "--per-sample", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 40 and sum(len(r["pred_boxes"]) == 2 for r in rows) == 8
    assert sum(r["iou"] > 0.3 for r in rows) >= 20  # near misses and hits, not a table of zeros
    for row in rows:
        assert region_iou(row["pred_boxes"], row["true_boxes"]) == pytest.approx(row["iou"], abs=1e-4), row["id"]


def _answer_scale(frame, size) -> np.ndarray:
    """Original pixels per unit of the frame's coordinates, as [sx, sy, sx, sy]."""
    if frame.kind == "pixel":
        return np.ones(4)
    if frame.kind == "resized":
        w, h = frame.input_sizes([size])[0]
        return np.array([size[0] / w, size[1] / h] * 2)
    unit = 1000.0 if frame.kind == "norm1000" else 1.0
    return np.array([size[0] / unit, size[1] / unit] * 2)
