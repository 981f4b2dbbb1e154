"""score_files / score_predictions: joins, frames, errors, data sets, agreement with metrics.score_samples."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medground_eval.datasets import DataError, LoadedDataset, get_loader
from medground_eval.datasets.mscxr import mscxr_sample_id
from medground_eval.evaluation import predictions
from medground_eval.evaluation import scorer as scoring
from medground_eval.evaluation.scorer import score_files, score_predictions
from medground_eval.metrics import score_samples
from medground_eval.parsing import format_box
from medground_eval.structures import Sample

CHESTXRAY8 = Path(__file__).resolve().parents[2] / "shared" / "data" / "chestxray8" / "BBox_List_2017.csv"


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def answer(box: list[float], dialect: str = "qwen2.5-json") -> str:
    return f"<think>look at the apex</think><answer>{format_box(box, 'x', dialect)}</answer>"


GT = [
    {"id": "a", "phrase": "left effusion", "boxes": [[0, 0, 100, 100]], "image_size": [1000, 500], "category": "E"},
    {"id": "b", "phrase": "right nodule", "boxes": [[100, 100, 200, 200]], "image_size": [1000, 500], "category": "N"},
    {"id": "c", "phrase": "both bases", "boxes": [[0, 400, 100, 500], [900, 400, 1000, 500]],
     "image_size": [1000, 500]},
]


@pytest.fixture
def truth(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "gt.jsonl", GT)


def test_hand_computed_run(tmp_path, truth):
    """a: exact (pixel); b: norm1000 per-line frame, x halved -> IoU 0.5; c: one of two boxes -> IoU 0.5."""
    preds = write_jsonl(tmp_path / "preds.jsonl", [
        {"id": "a", "completion": answer([0, 0, 100, 100])},
        {"id": "b", "completion": answer([100, 200, 150, 400]), "frame": "norm1000"},
        {"id": "c", "completion": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "text", "text": answer([0, 400, 100, 500])}]},
        ]},
    ])
    result = score_files(preds, dataset="jsonl", annotations=truth, thresholds=[0.5, 0.75], n_bootstrap=0)
    report = result.to_dict()
    assert report["n"] == 3
    assert report["acc"] == {"0.5": 1.0, "0.75": pytest.approx(1 / 3)}
    assert report["miou"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert report["ciou"] == pytest.approx((10000 + 5000 + 10000) / (10000 + 10000 + 20000))
    assert report["parse_failure_rate"] == 0.0
    assert set(report["per_category"]) == {"E", "N"}
    config = report["config"]
    assert config["dataset"] == "jsonl" and config["compat"] is None and config["inclusive"] is True
    assert "Chain-of-Box parser" in config["parse_rules"]
    assert (config["unmatched_predictions"], config["missing_predictions"], config["skipped_lines"]) == (0, 0, 0)
    assert result.hits(0.5).tolist() == [True, True, True]


def test_missing_predictions_are_misses_and_unknown_ids_are_counted(tmp_path, truth):
    preds = write_jsonl(tmp_path / "preds.jsonl", [
        {"id": "a", "pred_boxes": [0, 0, 100, 100]},
        {"id": "zzz", "pred_boxes": [[0, 0, 1, 1]]},
    ])
    result = score_files(preds, dataset="jsonl", annotations=truth, n_bootstrap=0)
    assert result.report.n == 3
    assert result.report.acc["0.5"] == pytest.approx(1 / 3)
    assert result.report.parse_failure_rate == 0.0  # a missing prediction is a miss, not a parse failure
    assert result.config["missing_predictions"] == 2 and result.config["missing_examples"] == ["b", "c"]
    assert result.config["unmatched_predictions"] == 1 and result.config["unmatched_examples"] == ["zzz"]
    assert result.problems == ["", "no prediction", "no prediction"]
    assert result.per_sample.union[1] == 10000  # the miss still counts its true area in cIoU


@pytest.mark.parametrize(("line", "match"), [
    ('{"id": "a", "completion": "x"', r"preds.jsonl:2: row = .*expected a JSON object"),
    ({"id": "b"}, r"preds.jsonl:2: field 'completion' = None: expected exactly one of"),
    ({"id": "b", "completion": "x", "frame": "qwen9"}, r"preds.jsonl:2: field 'frame' = 'qwen9': expected one of"),
    ({"id": "b", "pred_boxes": [[5, 0, 1, 1]]}, r"preds.jsonl:2: field 'pred_boxes\[0\]' = \[5, 0, 1, 1\]"),
    ({"id": "b", "completion": 7}, r"preds.jsonl:2: field 'completion' = 7: expected a string"),
    ({"id": "a", "completion": "x"}, r"preds.jsonl:2: field 'id' = 'a': expected a unique prediction id \(already "
                                      r"used on line 1\)"),
    ({"id": "b", "completion": "x", "image_size": [0, 5]}, r"preds.jsonl:2: field 'image_size' = \[0, 5\]"),
])
def test_bad_lines_name_file_line_field(tmp_path, truth, line, match):
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "completion": "x"}, line])
    with pytest.raises(DataError, match=match):
        score_files(preds, dataset="jsonl", annotations=truth, n_bootstrap=0)
    skipped = score_files(preds, dataset="jsonl", annotations=truth, n_bootstrap=0, on_error="skip")
    assert skipped.config["skipped_lines"] == 1
    assert "preds.jsonl:2" in skipped.config["skipped_examples"][0]


def test_frames_need_an_image_size_from_the_data_set_or_the_line(tmp_path):
    gt = write_jsonl(tmp_path / "gt.jsonl", [{"id": "a", "phrase": "p", "boxes": [[0, 0, 50, 50]]}])
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "completion": answer([0, 0, 500, 500]),
                                                    "frame": "norm1000"}])
    with pytest.raises(DataError, match=r"preds.jsonl:1: field 'image_size' = None: expected the original image size"):
        score_files(preds, dataset="jsonl", annotations=gt)
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "completion": answer([0, 0, 500, 500]),
                                                    "frame": "norm1000", "image_size": [100, 100]}])
    assert score_files(preds, dataset="jsonl", annotations=gt, n_bootstrap=0).report.miou == 1.0


def test_resized_frame_uses_input_size_per_line(tmp_path):
    """Qwen2.5-VL: boxes in the resized input's pixels; a given input_size overrides smart_resize."""
    gt = write_jsonl(tmp_path / "gt.jsonl", [{"id": "a", "phrase": "p", "boxes": [[0, 0, 500, 500]],
                                              "image_size": [1000, 1000]}])
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "pred_boxes": [0, 0, 250, 250],
                                                    "input_size": [500, 500]}])
    assert score_files(preds, dataset="jsonl", annotations=gt, frame="qwen2.5-vl", n_bootstrap=0).report.miou == 1.0
    assert score_files(preds, dataset="jsonl", annotations=gt, frame="pixel", n_bootstrap=0).report.miou == 0.25


def test_ground_truth_carried_in_prediction_lines_with_split(tmp_path):
    splits = ["test", "val", "test"]
    lines = [{**gt, "split": split, "completion": answer(gt["boxes"][0])} for gt, split in zip(GT, splits)]
    preds = write_jsonl(tmp_path / "preds.jsonl", lines)
    result = score_files(preds, dataset="jsonl", n_bootstrap=0)
    assert result.report.n == 3 and result.report.miou == pytest.approx((1 + 1 + 0.5) / 3)
    assert score_files(preds, dataset="jsonl", split="test", n_bootstrap=0).per_sample.ids.tolist() == ["a", "c"]
    bad = write_jsonl(tmp_path / "bad.jsonl", [lines[0], {**lines[1], "boxes": [[3, 0, 1, 1]]}])
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'boxes\[0\]'"):
        score_files(bad, dataset="jsonl")
    assert score_files(bad, dataset="jsonl", on_error="skip", n_bootstrap=0).report.n == 1


def test_carried_ground_truth_with_a_bad_prediction_is_a_miss(tmp_path, monkeypatch):
    """Under skip, a line with valid ground truth and a bad prediction keeps its sample, as a separate file would."""
    monkeypatch.setattr(predictions, "CHUNK_BYTES", 300)  # several blocks
    preds = [{"id": gt["id"], "completion": answer(gt["boxes"][0])} for gt in GT]
    preds[1] = {"id": "b", "pred_boxes": "bad"}
    preds[2] = {"id": "c", "completion": answer([0, 400, 100, 500]), "frame": "no such frame"}
    carried = write_jsonl(tmp_path / "carried.jsonl", [{**gt, **p} for gt, p in zip(GT, preds)])
    result = score_files(carried, dataset="jsonl", on_error="skip", n_bootstrap=0)
    assert result.per_sample.ids.tolist() == ["a", "b", "c"] and result.per_sample.iou.tolist() == [1.0, 0.0, 0.0]
    assert result.problems[1:] == ["no prediction", "no prediction"]
    assert (result.config["skipped_lines"], result.config["missing_predictions"]) == (2, 2)
    separate = score_files(write_jsonl(tmp_path / "p.jsonl", preds), dataset="jsonl",
                           annotations=write_jsonl(tmp_path / "g.jsonl", GT), on_error="skip", n_bootstrap=0)
    assert result.report.to_dict() == separate.report.to_dict()
    with pytest.raises(DataError, match=r"carried.jsonl:2: field 'pred_boxes' = 'bad'"):
        score_files(carried, dataset="jsonl")
    no_size = write_jsonl(tmp_path / "no_size.jsonl", [{"id": "d", "phrase": "p", "boxes": [[0, 0, 10, 10]],
                                                        "completion": answer([0, 0, 10, 10]), "frame": "norm1000"}])
    result = score_files(no_size, dataset="jsonl", on_error="skip", n_bootstrap=0)
    assert (result.report.n, result.config["skipped_lines"], result.config["missing_predictions"]) == (1, 1, 1)


def test_annotation_errors_and_split(tmp_path):
    gt = write_jsonl(tmp_path / "gt.jsonl", [GT[0], {**GT[1], "id": "a"}])
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "pred_boxes": [0, 0, 100, 100]}])
    with pytest.raises(DataError, match=r"gt.jsonl:2: field 'id' = 'a': expected a unique id \(already used on line 1"):
        score_files(preds, dataset="jsonl", annotations=gt)
    skipped = score_files(preds, dataset="jsonl", annotations=gt, on_error="skip", n_bootstrap=0)
    assert skipped.config["skipped_lines"] == 1
    with pytest.raises(DataError, match="split"):
        score_files(preds, dataset="jsonl", annotations=write_jsonl(tmp_path / "g2.jsonl", GT), split="test")


def test_block_size_does_not_change_results_or_the_first_error(tmp_path, truth, monkeypatch):
    rng = np.random.default_rng(0)
    gt_lines, pred_lines = [], []
    for i in range(60):
        box = np.sort(rng.integers(0, 400, 4).reshape(2, 2), axis=0).ravel().tolist()  # x1, y1, x2, y2
        gt_lines.append({"id": f"s{i}", "phrase": "p", "boxes": [box], "image_size": [400, 400]})
        pred_lines.append({"id": f"s{i}", "completion": answer((np.array(box) + rng.integers(-20, 20, 4)).tolist())})
    pred_lines[17] = {"id": "s17", "completion": None}
    pred_lines[40] = {"id": "s3", "completion": "x"}
    gt = write_jsonl(tmp_path / "g.jsonl", gt_lines)
    preds = write_jsonl(tmp_path / "p.jsonl", pred_lines + ["", "{broken"])
    whole = score_files(preds, dataset="jsonl", annotations=gt, on_error="skip")
    monkeypatch.setattr(predictions, "CHUNK_BYTES", 200)  # many blocks
    blocks = score_files(preds, dataset="jsonl", annotations=gt, on_error="skip")
    assert whole.to_dict() == blocks.to_dict()
    assert whole.config["skipped_lines"] == 3 and whole.config["missing_examples"] == ["s17", "s40"]
    with pytest.raises(DataError, match=r"p.jsonl:18: field 'completion'"):
        score_files(preds, dataset="jsonl", annotations=gt)


box_strategy = st.tuples(*[st.integers(0, 60)] * 4).map(lambda b: [min(b[0], b[2]), min(b[1], b[3]),
                                                                     max(b[0], b[2]), max(b[1], b[3])])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.lists(box_strategy, min_size=1, max_size=3), st.lists(box_strategy, max_size=3)),
                min_size=1, max_size=12))
def test_agrees_with_metrics_score_samples(tmp_path, samples):
    """The vectorized scorer equals the reference per-sample definition (union regions, pointing, failures)."""
    dataset = LoadedDataset("jsonl", [Sample(id=f"s{i}", phrase="p", boxes=true, image_size=(64, 64))
                                      for i, (true, _) in enumerate(samples)])
    records = [{"id": f"s{i}", "pred_boxes": pred} for i, (_, pred) in enumerate(samples)]
    result = score_predictions(records, dataset, n_bootstrap=0)
    reference = score_samples([f"s{i}" for i in range(len(samples))],
                              [np.array(pred, dtype=float).reshape(-1, 4) for _, pred in samples],
                              [np.array(true, dtype=float) for true, _ in samples])
    for name in ("iou", "intersection", "union"):
        np.testing.assert_allclose(getattr(result.per_sample, name), getattr(reference, name), atol=1e-9)
    for name in ("pointing", "parse_failed"):
        assert getattr(result.per_sample, name).tolist() == getattr(reference, name).tolist()


def test_three_d_samples():
    dataset = LoadedDataset("m3d", [Sample(id="v", phrase="liver lesion", boxes=[[0, 0, 0, 10, 10, 10]],
                                           image_size=(100, 100, 50))])
    result = score_predictions([{"id": "v", "completion": answer([0, 0, 0, 100, 100, 200])}], dataset,
                               frame="norm1000", n_bootstrap=0)
    assert result.report.miou == pytest.approx(1.0)
    flat = score_predictions([{"id": "v", "pred_boxes": [[0, 0, 0, 10, 10, 5]]}], dataset, n_bootstrap=0)
    assert flat.report.miou == pytest.approx(0.5)


VOLUME = Sample(id="v", phrase="liver lesion", boxes=[[10, 20, 4, 30, 40, 12]], image_size=(100, 80, 40),
                extra={"npy_crop_box": [10, 20, 0, 74, 52, 32], "largest_slice": (8, [12, 20, 30, 40]),
                       "axial_projection_box": [10, 20, 30, 40]})
"""A 3D sample as m3d-refseg loads it with views and npy_crop: crop 64 x 32 x 32 voxels -> 256 x 256 x 32 npy."""


def test_m3d_npy_frame_crop_box_from_the_sample_or_the_line():
    dataset = LoadedDataset("m3d-refseg", [VOLUME, Sample(id="w", phrase="kidney", boxes=[[0, 0, 0, 10, 10, 10]],
                                                           image_size=(100, 80, 40))])
    # npy [d, h, w] -> x = 10 + h / 4, y = 20 + w / 8, z = d: [4, 0, 0] .. [12, 80, 160] is the true box of v.
    # w has no crop box of its own; its line gives the whole volume: x = h * 100 / 256, y = w * 80 / 256,
    # z = d * 40 / 32.
    records = [{"id": "v", "pred_boxes": [4, 0, 0, 12, 80, 160]},
               {"id": "w", "pred_boxes": [0, 0, 0, 8, 25.6, 32], "input_size": [0, 0, 0, 100, 80, 40]}]
    result = score_predictions(records, dataset, frame="m3d-npy", n_bootstrap=0)
    np.testing.assert_allclose(result.per_sample.iou, [1.0, 1.0])
    # a voxel line next to an m3d-npy line: its input_size means nothing to its frame
    mixed = score_predictions([{"id": "v", "pred_boxes": [10, 20, 4, 30, 40, 8], "input_size": [5, 5]},
                               {**records[1], "frame": "m3d-npy"}], dataset, frame="voxel", n_bootstrap=0)
    np.testing.assert_allclose(mixed.per_sample.iou, [0.5, 1.0])


@pytest.mark.parametrize(("record", "match"), [
    ({"id": "w", "pred_boxes": [0, 0, 0, 1, 1, 1]},
     r"<records>:1: field 'input_size' = None: expected the crop box \[x1, y1, z1, x2, y2, z2\] of id 'w'"),
    ({"id": "v", "pred_boxes": [0, 0, 0, 1, 1, 1], "input_size": [0, 0, 0, 100, 80, 41]},
     r"<records>:1: field 'input_size' = \[0.0, 0.0, 0.0, 100.0, 80.0, 41.0\]: expected a crop box inside the "
     r"volume \[100, 80, 40\]"),
    ({"id": "v", "pred_boxes": [0, 0, 0, 1, 1, 1], "input_size": [5, 0, 0, 5, 80, 40]},
     r"<records>:1: field 'input_size' = \[5, 0, 0, 5, 80, 40\]: expected the crop box .* 0 <= x1 < x2"),
    ({"id": "v", "pred_boxes": [0, 0, 0, 1, 1, 1], "input_size": [100, 80]},
     r"<records>:1: field 'input_size' = \[100, 80\]: expected the crop box"),
])
def test_m3d_npy_lines_without_a_usable_crop_box(record, match):
    dataset = LoadedDataset("m3d-refseg", [VOLUME, Sample(id="w", phrase="kidney", boxes=[[0, 0, 0, 10, 10, 10]],
                                                           image_size=(100, 80, 40))])
    with pytest.raises(DataError, match=match):
        score_predictions([record], dataset, frame="m3d-npy")
    skipped = score_predictions([record], dataset, frame="m3d-npy", on_error="skip", n_bootstrap=0)
    assert skipped.config["skipped_lines"] == 1 and skipped.config["missing_predictions"] == 2


def test_frames_must_write_the_ground_truths_dimensions(tmp_path, truth):
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "pred_boxes": [0, 0, 1, 1], "frame": "m3d-npy"}])
    with pytest.raises(DataError, match=r"preds.jsonl:1: field 'frame' = 'm3d-npy': expected a 2D frame"):
        score_files(preds, dataset="jsonl", annotations=truth)
    with pytest.raises(ValueError, match=r"--frame m3d-npy: the ground truth has 2D boxes"):
        score_files(preds, dataset="jsonl", annotations=truth, frame="m3d-npy")
    volume = LoadedDataset("m3d-refseg", [VOLUME])
    with pytest.raises(DataError, match=r"<records>:1: field 'frame' = 'qwen2.5-vl': expected a 3D frame"):
        score_predictions([{"id": "v", "pred_boxes": [0, 0, 0, 1, 1, 1], "frame": "qwen2.5-vl"}], volume)
    with pytest.raises(DataError, match=r"<records>:1: field 'input_size' = \[0, 0, 0, 5, 5, 5\]: expected \[W, H\]"):
        score_predictions([{"id": "v", "pred_boxes": [0, 0, 0, 1, 1, 1], "input_size": [0, 0, 0, 5, 5, 5]}], volume)


def test_views_score_the_2d_target_of_3d_samples():
    dataset = LoadedDataset("m3d-refseg", [VOLUME])
    on_slice = score_predictions([{"id": "v", "pred_boxes": [12, 20, 30, 30]}], dataset, view="slice",
                                 n_bootstrap=0)
    assert on_slice.report.miou == pytest.approx(0.5) and on_slice.config["view"] == "slice"
    projected = score_predictions([{"id": "v", "pred_boxes": [250, 250, 300, 500], "frame": "norm1000"}], dataset,
                                  view="projection", n_bootstrap=0)  # [X, Y] = [100, 80]: [25, 20, 30, 40]
    assert projected.report.miou == pytest.approx(0.25)
    with pytest.raises(DataError, match=r"field 'pred_boxes\[0\]' = \[0, 0, 0, 1, 1, 1\]: expected 4 finite"):
        score_predictions([{"id": "v", "pred_boxes": [[0, 0, 0, 1, 1, 1]]}], dataset, view="slice")
    with pytest.raises(ValueError, match="--view slice: data set jsonl has 2D boxes"):
        score_predictions([], LoadedDataset("jsonl", [Sample(id="a", phrase="p", boxes=[[0, 0, 1, 1]])]),
                          view="slice")
    bare = LoadedDataset("m3d-refseg", [Sample(id="u", phrase="p", boxes=[[0, 0, 0, 1, 1, 1]])])
    with pytest.raises(ValueError, match=r"sample 'u' has no projection view \(extra\['axial_projection_box'\]\)"):
        score_predictions([], bare, view="projection")


def test_per_sample_csv(tmp_path, truth):
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "a", "completion": "<answer>[0, 0, 100, 100]"},
                                                   {"id": "b", "completion": "no box"}])
    result = score_files(preds, dataset="jsonl", annotations=truth, n_bootstrap=0)
    result.write_per_sample(tmp_path / "per.csv")
    with (tmp_path / "per.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    # the export of `score --per-sample` (tests/test_export.py), not a narrower second one
    assert {"id", "phrase", "iou", "hit@0.5", "pointing", "parse_failed", "pred_boxes", "true_boxes", "problems",
            "completion"} <= set(rows[0])
    assert rows[0]["iou"] == "1.0" and rows[0]["hit@0.5"] == "True" and rows[0]["pred_boxes"] == "[[0, 0, 100, 100]]"
    assert "missing </answer>" in rows[0]["problems"] and "missing <think>" in rows[0]["problems"]
    assert rows[1]["parse_failed"] == "True" and "missing <answer>" in rows[1]["problems"]
    assert rows[2]["problems"] == "no prediction"


def test_per_sample_export_of_a_run_scored_in_memory_says_it_has_no_file(truth):
    dataset = get_loader("jsonl")(truth)
    result = score_predictions([{"id": "a", "pred_boxes": [[0, 0, 100, 100]]}], dataset, n_bootstrap=0)
    with pytest.raises(ValueError, match="scored from records in memory"):
        result.write_per_sample("per.csv")


MSCXR_HEADER = ["dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height",
                "split"]


def test_mscxr_synthetic_release(tmp_path):
    """Synthetic rows with the MS-CXR v1.1.0 schema (never real rows); two rows of one phrase form one region."""
    rows = [
        ["d1", "Pneumonia", "left basal opacity", "files/p1/d1.jpg", 10, 20, 100, 50, 2000, 2500, "test"],
        ["d1", "Pneumonia", "left basal opacity", "files/p1/d1.jpg", 300, 20, 100, 50, 2000, 2500, "test"],
        ["d2", "Pneumothorax", "small right apical pneumothorax", "files/p2/d2.jpg", 5, 5, 40, 40, 1000, 1000, "test"],
    ]
    path = tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([MSCXR_HEADER, *rows])
    id1, id2 = mscxr_sample_id("d1", "left basal opacity"), mscxr_sample_id("d2", "small right apical pneumothorax")
    preds = write_jsonl(tmp_path / "preds.jsonl", [
        {"id": id1, "pred_boxes": [[10, 20, 110, 70], [300, 20, 400, 70]]},
        {"id": id2, "completion": answer([5, 5, 45, 45])},
    ])
    result = score_files(preds, dataset="mscxr", annotations=tmp_path, split="test", n_bootstrap=0)
    assert result.report.n == 2 and result.report.acc["0.9"] == 1.0
    assert set(result.report.per_category) == {"Pneumonia", "Pneumothorax"}
    with pytest.raises(ValueError, match="needs --annotations"):
        score_files(preds, dataset="mscxr")


@pytest.mark.skipif(not CHESTXRAY8.is_file(), reason="the public ChestX-ray8 box list is not in ../shared")
def test_chestxray8_perfect_predictions(tmp_path):
    loaded = get_loader("chestxray8")(CHESTXRAY8)
    assert len({sample.image for sample in loaded.samples}) == 880
    records = [{"id": s.id, "pred_boxes": s.boxes.tolist()} for s in loaded.samples]
    preds = write_jsonl(tmp_path / "preds.jsonl", records)
    result = score_files(preds, dataset="chestxray8", annotations=CHESTXRAY8, n_bootstrap=0)
    assert result.report.n == len(loaded.samples) == 984
    assert all(value == 1.0 for value in result.report.acc.values())
    assert result.config["missing_predictions"] == 0


def untagged(box: list[float], dialect: str = "qwen2.5-json") -> str:
    """A zero-shot answer: the box without any tag."""
    return f"[{format_box(box, 'x', dialect)}]" if dialect == "qwen2.5-json" else format_box(box, "x", dialect)


def test_answer_tag_optional_scores_untagged_completions(tmp_path, truth, monkeypatch):
    monkeypatch.setattr(predictions, "CHUNK_BYTES", 100)  # several blocks
    preds = write_jsonl(tmp_path / "preds.jsonl", [
        {"id": "a", "completion": untagged([0, 0, 100, 100])},
        {"id": "b", "completion": "<think>round</think> " + untagged([100, 100, 200, 200], "ref-box")},
        {"id": "c", "completion": answer([0, 400, 100, 500])},
    ])
    required = score_files(preds, dataset="jsonl", annotations=truth, n_bootstrap=0)
    assert required.per_sample.parse_failed.tolist() == [True, True, False]
    assert required.problems[0] == "missing <think>; missing <answer>"
    optional = score_files(preds, dataset="jsonl", annotations=truth, n_bootstrap=0,
                           answer_tag="optional")
    assert optional.per_sample.parse_failed.tolist() == [False, False, False]
    assert optional.per_sample.iou.tolist() == [1.0, 1.0, 0.5]
    assert optional.problems == ["missing <think>; missing <answer>", "missing <answer>", ""]
    assert required.config["answer_tag"] == "required" and optional.config["answer_tag"] == "optional"
    assert required.config["parse_rules"] == scoring.DEFAULT_PARSE_RULES
    assert optional.config["parse_rules"] == scoring.DEFAULT_PARSE_RULES + scoring.UNTAGGED_PARSE_RULES


def test_answer_tag_in_memory_and_its_errors(truth):
    dataset = get_loader("jsonl")(truth)
    records = [{"id": "a", "completion": untagged([0, 0, 100, 100])}]
    result = score_predictions(records, dataset, n_bootstrap=0, answer_tag="optional")
    assert result.per_sample.iou.tolist() == [1.0, 0.0, 0.0] and result.config["answer_tag"] == "optional"
    with pytest.raises(ValueError, match="--answer-tag optional with --compat vlm-r1: the compat preset has its own"):
        score_predictions(records, dataset, compat="vlm-r1", answer_tag="optional")
    with pytest.raises(ValueError, match="--answer-tag 'maybe': expected one of required, optional"):
        score_predictions(records, dataset, answer_tag="maybe")
    assert score_predictions(records, dataset, compat="vlm-r1", n_bootstrap=0).config["answer_tag"] is None


def test_each_completion_is_parsed_once(tmp_path, truth, monkeypatch):
    """The scorer reads a text's boxes and its problems from one parse (it used to parse non-strict texts twice)."""
    import medground_eval.regions as regions

    calls: list[str] = []
    real = regions.parse_completion
    monkeypatch.setattr(regions, "parse_completion", lambda text, **kw: calls.append(text) or real(text, **kw))
    texts = ["<answer>[0, 0, 100, 100]</answer>", "<think>t</think><answer>[100, 100, 200, 200]", answer([0, 0, 1, 1])]
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": i, "completion": t} for i, t in zip("abc", texts)])
    result = score_files(preds, dataset="jsonl", annotations=truth, n_bootstrap=0)
    assert result.problems == ["missing <think>", "missing </answer>", ""]
    assert sorted(calls) == sorted(texts[:2])  # the canonical third text is read by the fast path


def test_lines_that_are_not_objects_or_not_utf8_are_errors_naming_the_line(tmp_path, truth):
    preds = tmp_path / "p.jsonl"
    preds.write_bytes(b'{"id": "a", "pred_boxes": [0, 0, 100, 100]}\nnull\n{"id": "b", "completion": "\xff"}\n')
    with pytest.raises(DataError, match=r"p.jsonl:2: row = None: expected a JSON object"):
        score_files(preds, dataset="jsonl", annotations=truth)
    result = score_files(preds, dataset="jsonl", annotations=truth, on_error="skip", n_bootstrap=0)
    assert result.config["skipped_lines"] == 2 and result.per_sample.iou.tolist() == [1.0, 0.0, 0.0]
    assert "p.jsonl:3: row = b'{\"id\": \"b\", \"completion\": \"\\xff\"}': expected UTF-8 text" in \
        result.config["skipped_examples"][1]
