"""Progress from the first second: `score` shows its stage while the ground truth loads (before any prediction
byte is read), then while it writes; never on standard output."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from medground_eval.cli import app


def test_score_shows_each_stage_on_standard_error_even_for_a_small_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TTY_INTERACTIVE", "1")  # rich draws live progress only on a terminal; force it
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    gt = tmp_path / "gt.jsonl"
    gt.write_text(json.dumps({"id": "a", "phrase": "p", "boxes": [[0, 0, 5, 5]]}) + "\n")
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"id": "a", "pred_boxes": [[0, 0, 5, 5]]}) + "\n")
    result = CliRunner().invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt),
                                      "--bootstrap", "0", "--per-sample", str(tmp_path / "s.csv"), "--output", "-"])
    assert result.exit_code == 0, result.output
    assert "preds.jsonl: loading ground truth (jsonl)" in result.stderr
    assert "writing per-sample export" in result.stderr
    assert json.loads(result.stdout)["n"] == 1  # standard output holds only the JSON


def test_the_scorer_reports_the_end_of_ground_truth_loading_before_any_prediction_bytes(tmp_path):
    from medground_eval.evaluation.scorer import score_files

    gt = tmp_path / "gt.jsonl"
    gt.write_text(json.dumps({"id": "a", "phrase": "p", "boxes": [[0, 0, 5, 5]]}) + "\n")
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"id": "a", "pred_boxes": [[0, 0, 5, 5]]}) + "\n")
    calls: list[int] = []
    score_files(preds, dataset="jsonl", annotations=gt, n_bootstrap=0, progress=calls.append)
    mark = calls.index(0)  # after the annotations' bytes, before the predictions' bytes
    assert sum(calls[:mark]) == gt.stat().st_size and sum(calls[mark:]) == preds.stat().st_size


def _forced_terminal(monkeypatch) -> None:
    monkeypatch.setenv("TTY_INTERACTIVE", "1")  # rich draws live progress only on a terminal; force it
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "300")  # no stage line cut to the width of a narrow terminal


def _truth_and_predictions(tmp_path, name: str) -> tuple:
    gt = tmp_path / "gt.jsonl"
    gt.write_text("".join(json.dumps({"id": i, "phrase": "p", "boxes": [[0, 0, 5, 5]], "image": f"{i}.png",
                                      "image_size": [8, 8]}) + "\n" for i in "ab"))
    preds = tmp_path / name
    preds.write_text("".join(json.dumps({"id": i, "pred_boxes": [[0, 0, 5, 5]]}) + "\n" for i in "ab"))
    return gt, preds


def test_compare_shows_the_loading_and_scoring_of_each_run_and_the_bootstrap(tmp_path, monkeypatch):
    _forced_terminal(monkeypatch)
    gt, a = _truth_and_predictions(tmp_path, "run_a.jsonl")
    b = tmp_path / "run_b.jsonl"
    b.write_text(a.read_text())
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--dataset", "jsonl", "--annotations", str(gt),
                                      "--bootstrap", "10"])
    assert result.exit_code == 0, result.output
    for stage in ("run_a.jsonl: loading ground truth (jsonl)", "run_b.jsonl: loading ground truth (jsonl)",
                  "compare: paired bootstrap"):
        assert stage in result.stderr
    assert "loading ground truth" not in result.stdout  # the tables stay alone on standard output


def test_convert_shows_loading_then_writing(tmp_path, monkeypatch):
    _forced_terminal(monkeypatch)
    gt, _ = _truth_and_predictions(tmp_path, "unused.jsonl")
    result = CliRunner().invoke(app, ["convert", "--dataset", "jsonl", "--annotations", str(gt), "--format",
                                      "openrlhf", "--output", str(tmp_path / "out"), "--frame", "pixel"])
    assert result.exit_code == 0, result.output
    assert "convert: loading jsonl" in result.stderr and "convert: writing 2 samples as openrlhf" in result.stderr
    assert result.stdout.startswith("wrote 2 samples")


def test_predict_shows_each_step_before_the_first_batch_then_the_generation_bar(tmp_path, monkeypatch):
    from PIL import Image

    from medground_eval.tiny_model import build_tiny_qwen

    _forced_terminal(monkeypatch)
    model = build_tiny_qwen(tmp_path / "model", size="test")
    gt, _ = _truth_and_predictions(tmp_path, "unused.jsonl")
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    result = CliRunner().invoke(app, ["predict", "--model", str(model), "--dataset", "jsonl", "--data-dir", str(gt),
                                      "--image-root", str(tmp_path), "--output", str(tmp_path / "p.jsonl"),
                                      "--use-cpu", "--max-new-tokens", "2"])
    assert result.exit_code == 0, result.output
    for stage in ("predict: loading jsonl", "predict: loading the model", "predict: reading 2 images", "generating"):
        assert stage in result.stderr
    assert result.stdout.startswith("wrote 2 predictions")
