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
