"""Ground truth from a Hugging Face datasets folder: `score --dataset hf --data-dir DIR` reads the folder that
`convert --format trl` writes, and scores exactly as against the jsonl it came from."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medground_eval.cli import app
from medground_eval.datasets import DataError, get_loader
from medground_eval.evaluation.scorer import score_files

datasets = pytest.importorskip("datasets")
runner = CliRunner()
GT = [{"id": "a", "phrase": "left nodule", "boxes": [[10, 10, 50, 50]], "image_size": [100, 100],
       "image": "a.png", "category": "nodule"},
      {"id": "b", "phrase": "two lesions", "boxes": [[0, 0, 20, 20], [60, 60, 90, 90]], "image_size": [100, 100],
       "image": "b.png", "category": "mass"}]
PREDS = [{"id": "a", "completion": "<think>x</think><answer>[100, 100, 500, 500]</answer>"},
         {"id": "b", "completion": "<think>x</think><answer>[0, 0, 200, 200]</answer>"}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_score_reads_the_folder_convert_writes(tmp_path):
    gt, preds = write_jsonl(tmp_path / "gt.jsonl", GT), write_jsonl(tmp_path / "preds.jsonl", PREDS)
    converted = runner.invoke(app, ["convert", "--dataset", "jsonl", "--annotations", str(gt), "--format", "trl",
                                    "--frame", "norm1000", "--output", str(tmp_path / "trl")])
    assert converted.exit_code == 0, converted.output
    (folder,) = [p for p in (tmp_path / "trl").iterdir() if p.is_dir() and not p.name.startswith(".")]
    result = runner.invoke(app, ["score", str(preds), "--dataset", "hf", "--data-dir", str(folder), "--frame",
                                 "norm1000", "--bootstrap", "0", "--output", str(tmp_path / "hf.json")])
    assert result.exit_code == 0, result.output
    from_hf = json.loads((tmp_path / "hf.json").read_text())
    from_jsonl = score_files(preds, dataset="jsonl", annotations=gt, frame="norm1000", n_bootstrap=0)
    assert from_hf["n"] == 2 and from_hf["acc"] == from_jsonl.report.acc and from_hf["miou"] == from_jsonl.report.miou
    samples = get_loader("hf")(folder).samples
    assert [s.boxes.tolist() for s in samples] == [g["boxes"] for g in GT]
    assert samples[0].image.endswith("a.png") and samples[0].image_size == (100, 100)


def test_bad_rows_name_the_folder_row_and_field(tmp_path):
    rows = [{"id": "a", "phrase": "p", "solution": [[10, 10, 5, 50]], "image_size": [100, 100]}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "d"))
    with pytest.raises(DataError, match=r"d:1: field 'boxes\[0\]' = \[10, 10, 5, 50\]"):
        get_loader("hf")(tmp_path / "d")
    skipped = get_loader("hf")(tmp_path / "d", on_error="skip")
    assert skipped.samples == [] and len(skipped.skipped) == 1


def test_a_dataset_dict_needs_one_of_its_splits(tmp_path):
    rows = [{"id": "a", "phrase": "p", "solution": [[1, 1, 5, 5]]}]
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"field 'split' = None: expected one of the folder's splits \['test'\]"):
        get_loader("hf")(tmp_path / "dd")
    assert [s.id for s in get_loader("hf")(tmp_path / "dd", split="test").samples] == ["a"]


def test_a_folder_without_boxes_or_a_missing_folder_is_a_clear_error(tmp_path):
    datasets.Dataset.from_list([{"id": "a", "phrase": "p"}]).save_to_disk(str(tmp_path / "nobox"))
    with pytest.raises(DataError, match="a column of true boxes 'solution'"):
        get_loader("hf")(tmp_path / "nobox")
    result = runner.invoke(app, ["score", str(write_jsonl(tmp_path / "p.jsonl", PREDS)), "--dataset", "hf",
                                 "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "no such folder" in result.output and "Traceback" not in result.output
