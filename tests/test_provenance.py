"""Provenance in every metrics.json (version, time, command line, sha256 of each input, resolved frame) and
`medground-eval --version`."""

from __future__ import annotations

import hashlib
import json
import shlex
from datetime import datetime

from typer.testing import CliRunner

from medground_eval.cli import app
from medground_eval.provenance import file_digest, package_version

runner = CliRunner()
GT = [{"id": "a", "phrase": "left nodule", "boxes": [[10, 10, 50, 50]], "image_size": [100, 100]},
      {"id": "b", "phrase": "right effusion", "boxes": [[40, 40, 90, 90]], "image_size": [100, 100]}]
PREDS = [{"id": "a", "completion": "<think>x</think><answer>[10, 10, 50, 50]</answer>"},
         {"id": "b", "completion": "<think>x</think><answer>[400, 400, 900, 900]</answer>"}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_version_flag_prints_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"medground-eval {package_version()}"


def test_score_output_carries_version_time_command_hashes_and_frame(tmp_path):
    gt, preds = write_jsonl(tmp_path / "gt.jsonl", GT), write_jsonl(tmp_path / "preds.jsonl", PREDS)
    args = ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt), "--frame", "norm1000",
            "--bootstrap", "0", "--output", str(tmp_path / "m.json")]
    assert runner.invoke(app, args).exit_code == 0
    record = json.loads((tmp_path / "m.json").read_text())["provenance"]
    assert record["version"] == package_version()
    assert datetime.fromisoformat(record["time"]).tzinfo is not None
    assert record["inputs"]["predictions"] == {"path": str(preds), "bytes": preds.stat().st_size,
                                               "sha256": hashlib.sha256(preds.read_bytes()).hexdigest()}
    assert record["inputs"]["annotations"]["sha256"] == hashlib.sha256(gt.read_bytes()).hexdigest()
    assert record["frame"]["name"] == "norm1000" and record["frame"]["kind"] == "norm1000"
    # The command line reproduces the run: the arguments and every option that was set (in the command's order).
    words = shlex.split(record["command"])
    assert words[:3] == ["medground-eval", "score", str(preds)]
    pairs = lambda w: sorted(zip(w[::2], w[1::2]))  # noqa: E731
    assert pairs(words[3:]) == pairs(args[2:])


def test_score_output_dash_writes_the_json_to_standard_output(tmp_path):
    gt, preds = write_jsonl(tmp_path / "gt.jsonl", GT), write_jsonl(tmp_path / "preds.jsonl", PREDS)
    result = runner.invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(gt),
                                 "--bootstrap", "0", "--output", "-"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["acc"]["0.5"] == 0.5
    assert not (tmp_path / "-").exists()


def test_folder_digest_changes_with_any_file(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.csv").write_text("1\n")
    before = file_digest(tmp_path / "d")
    (tmp_path / "d" / "x.csv").write_text("2\n")
    after = file_digest(tmp_path / "d")
    assert before["files"] == after["files"] == 1 and before["sha256"] != after["sha256"]
    assert file_digest(tmp_path / "nope")["sha256"] is None
