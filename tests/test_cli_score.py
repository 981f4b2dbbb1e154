"""`medground-eval score` through typer's CliRunner, plus one subprocess run of `python -m medground_eval score`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from medground_eval.cli import app

runner = CliRunner()

GT = [
    {"id": "a", "phrase": "left effusion", "boxes": [[0, 0, 100, 100]], "image_size": [1000, 1000], "category": "E"},
    {"id": "b", "phrase": "right nodule", "boxes": [[500, 500, 600, 600]], "image_size": [1000, 1000]},
]
PREDS = [
    {"id": "a", "completion": '<think>apex</think><answer>{"bbox_2d": [0, 0, 100, 100]}</answer>'},
    {"id": "b", "completion": '<think>base</think><answer>{"bbox_2d": [500, 500, 600, 650]}</answer>'},
]


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_score_writes_metrics_json_and_per_sample_csv(tmp_path):
    gt, preds = write_jsonl(tmp_path / "gt.jsonl", GT), write_jsonl(tmp_path / "preds.jsonl", PREDS)
    result = runner.invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt),
                                 "--output", str(tmp_path / "m.json"), "--per-sample", str(tmp_path / "s.csv"),
                                 "--thresholds", "0.5,0.75", "--bootstrap", "200", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "acc@0.5" in result.output and "compat none" in result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    keys = {"n", "acc", "miou", "ciou", "pointing", "parse_failure_rate", "per_category", "ci", "config"}
    assert keys <= set(metrics)
    assert metrics["acc"] == {"0.5": 1.0, "0.75": 0.5}
    assert metrics["miou"] == (1 + 2 / 3) / 2
    assert set(metrics["ci"]) == {"acc@0.5", "acc@0.75", "miou", "ciou", "pointing"}
    config = metrics["config"]
    assert config["thresholds"] == [0.5, 0.75] and config["n_bootstrap"] == 200 and config["seed"] == 3
    assert config["frame"] == "pixel" and config["compat"] is None and config["inclusive"] is True
    with (tmp_path / "s.csv").open() as handle:
        assert [row["hit@0.5"] for row in csv.DictReader(handle)] == ["True", "True"]


def test_compat_and_strict_options(tmp_path):
    gt, preds = write_jsonl(tmp_path / "gt.jsonl", GT), write_jsonl(tmp_path / "preds.jsonl", PREDS)
    result = runner.invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt), "--compat",
                                 "vlm-r1", "--output", str(tmp_path / "m.json"), "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "m.json").read_text())["config"]
    assert config["compat"] == "vlm-r1" and config["inclusive"] is False and config["parse_rules"].startswith("vlm-r1")
    assert "IoU > t (strict)" in result.output
    result = runner.invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt), "--compat",
                                 "vlm-r1", "--frame", "norm1000"])
    assert result.exit_code == 1 and "use --frame pixel" in result.output


def test_bad_line_stops_with_file_line_field_and_no_traceback(tmp_path):
    gt = write_jsonl(tmp_path / "gt.jsonl", GT)
    preds = write_jsonl(tmp_path / "preds.jsonl", [PREDS[0], {"id": "b", "completion": "x", "frame": "qwen9"}])
    result = runner.invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt)])
    assert result.exit_code == 1
    assert f"error: {preds}:2: field 'frame' = 'qwen9': expected one of" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt),
                                 "--on-error", "skip", "--output", str(tmp_path / "m.json"), "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    assert "1 lines skipped" in result.output and "1 ground-truth samples without a prediction" in result.output
    config = json.loads((tmp_path / "m.json").read_text())["config"]
    assert config["skipped_lines"] == 1 and config["missing_predictions"] == 1


def test_usage_errors(tmp_path):
    preds = write_jsonl(tmp_path / "preds.jsonl", PREDS)
    for args, message in ((["--dataset", "nope", "--annotations", str(preds)], "unknown dataset 'nope'"),
                          (["--dataset", "mscxr"], "needs --annotations"),
                          (["--dataset", "jsonl", "--frame", "qwen9"], "unknown frame 'qwen9'"),
                          (["--dataset", "jsonl", "--thresholds", "0.5,x"], "comma-separated IoU thresholds")):
        result = runner.invoke(app, ["score", str(preds), *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    result = runner.invoke(app, ["score", str(tmp_path / "missing.jsonl"), "--dataset", "jsonl"])
    assert result.exit_code == 1 and "no such predictions file" in result.output


def test_data_dir_is_an_alias_of_annotations(tmp_path):
    gt, preds = write_jsonl(tmp_path / "gt.jsonl", GT), write_jsonl(tmp_path / "preds.jsonl", PREDS)
    result = runner.invoke(app, ["score", str(preds), "--dataset", "jsonl", "--data-dir", str(gt),
                                 "--output", str(tmp_path / "m.json"), "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "m.json").read_text())["config"]
    assert config["annotations"] == str(gt)
    assert config["view"] is None  # a 2D run: the M3D-RefSeg view does not apply (was recorded as "volume")


def test_image_root_without_report_is_an_error(tmp_path):
    gt, preds = write_jsonl(tmp_path / "gt.jsonl", GT), write_jsonl(tmp_path / "preds.jsonl", PREDS)
    result = runner.invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt),
                                 "--image-root", str(tmp_path), "--output", str(tmp_path / "m.json")])
    assert result.exit_code == 1 and "--image-root is used by --report" in result.output
    assert not (tmp_path / "m.json").exists()


def test_image_root_is_refused_for_volumes(tmp_path):
    result = runner.invoke(app, ["score", str(tmp_path / "preds.jsonl"), "--dataset", "m3d-refseg", "--data-dir",
                                 str(tmp_path), "--report", str(tmp_path / "r"), "--image-root", str(tmp_path)])
    assert result.exit_code == 1 and "CT volumes" in result.output
    assert not (tmp_path / "r").exists()


BASELINE = [  # a zero-shot model: plain Qwen2.5-VL JSON and InternVL ref/box, no <think> or <answer> tags
    {"id": "a", "completion": '```json\n[{"bbox_2d": [0, 0, 100, 100], "label": "left effusion"}]\n```'},
    {"id": "b", "completion": "<ref>right nodule</ref><box>[[500, 500, 600, 650]]</box>"},
]


def test_answer_tag_optional_scores_an_untagged_baseline(tmp_path):
    gt, preds = write_jsonl(tmp_path / "gt.jsonl", GT), write_jsonl(tmp_path / "base.jsonl", BASELINE)
    metrics = {}
    for tag in ("required", "optional"):
        args = ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt), "--bootstrap", "0",
                "--output", str(tmp_path / f"{tag}.json"), "--answer-tag", tag]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert ("answer tag optional" in " ".join(result.output.split())) == (tag == "optional")  # rich may wrap
        metrics[tag] = json.loads((tmp_path / f"{tag}.json").read_text())
    assert metrics["required"]["parse_failure_rate"] == 1.0 and metrics["required"]["miou"] == 0.0
    assert metrics["optional"]["parse_failure_rate"] == 0.0 and metrics["optional"]["miou"] == (1 + 2 / 3) / 2
    assert metrics["required"]["config"]["answer_tag"] == "required"
    config = metrics["optional"]["config"]
    assert config["answer_tag"] == "optional" and "--answer-tag optional" in config["parse_rules"]


def test_answer_tag_is_refused_with_compat_and_checked(tmp_path):
    gt, preds = write_jsonl(tmp_path / "gt.jsonl", GT), write_jsonl(tmp_path / "base.jsonl", BASELINE)
    for command in (["score", str(preds)], ["compare", str(preds), str(preds)]):
        result = runner.invoke(app, [*command, "--dataset", "jsonl", "--annotations", str(gt), "--compat", "vlm-r1",
                                     "--answer-tag", "optional"])
        assert result.exit_code == 1, result.output
        assert "--answer-tag optional with --compat vlm-r1: the compat preset has its own parse rules" in result.output
    result = runner.invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt),
                                 "--answer-tag", "maybe"])
    assert result.exit_code == 1 and "--answer-tag 'maybe': expected one of required, optional" in result.output


def test_compare_passes_the_answer_tag(tmp_path):
    gt = write_jsonl(tmp_path / "gt.jsonl", GT)
    base, tuned = write_jsonl(tmp_path / "base.jsonl", BASELINE), write_jsonl(tmp_path / "tuned.jsonl", PREDS)
    result = runner.invoke(app, ["compare", str(base), str(tuned), "--dataset", "jsonl", "--annotations", str(gt),
                                 "--answer-tag", "optional", "--bootstrap", "10", "--output", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "c.json").read_text())
    assert document["metrics_a"]["config"]["answer_tag"] == "optional"
    assert document["metrics_a"]["parse_failure_rate"] == 0.0
    assert {d["metric"]: d["diff"] for d in document["differences"]}["miou"] == 0.0


def test_python_dash_m_smoke(tmp_path):
    preds = write_jsonl(tmp_path / "preds.jsonl", [{**gt, **pred} for gt, pred in zip(GT, PREDS)])
    run = subprocess.run([sys.executable, "-m", "medground_eval", "score", str(preds), "--dataset", "jsonl",
                          "--output", str(tmp_path / "m.json")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "m.json").read_text())["n"] == 2
