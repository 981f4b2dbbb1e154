"""`medground-eval convert`: each engine's file, read back the way the engine reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from medground_eval.cli import app
from medground_eval.convert import convert_dataset, convert_records
from medground_eval.datasets import get_loader
from medground_eval.prompts import render_prompt
from medground_eval.trainers.labels import read_label

ROWS = [
    {"id": "p1", "phrase": "left pleural effusion", "boxes": [[10, 20, 110, 220]], "image_size": [512, 400],
     "image": "imgs/p1.png", "split": "train"},
    {"id": "p2", "phrase": "cardiomegaly", "boxes": [[100, 100, 300, 300], [310, 100, 400, 200]],
     "image_size": [512, 400], "image": "imgs/p2.png", "split": "train"},
    {"id": "p3", "phrase": "nodule", "boxes": [[5, 5, 20, 20]], "image_size": [512, 400], "image": "imgs/p3.png",
     "split": "test"},
]


@pytest.fixture
def annotations(tmp_path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


def load(annotations: Path, split: str = "train"):
    return get_loader("jsonl")(annotations, split=split)


def expected_label(row: dict) -> dict:
    return {"id": row["id"], "solution": [[float(v) for v in b] for b in row["boxes"]], "phrase": row["phrase"],
            "image_size": [float(v) for v in row["image_size"]], "frame": "qwen2.5-vl"}


def test_openrlhf_jsonl(annotations, tmp_path):
    out = convert_dataset(load(annotations), "openrlhf", tmp_path / "o/train.jsonl", image_root="/data")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2
    first = records[0]
    assert set(first) == {"prompt", "images", "label"}
    assert first["images"] == ["/data/imgs/p1.png"]
    assert first["prompt"] == [{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": render_prompt("left pleural effusion", "chain-of-box")}]}]
    assert isinstance(first["label"], str) and read_label(first["label"]) == expected_label(ROWS[0])


def test_verl_parquet_schema(annotations, tmp_path):
    out = convert_dataset(load(annotations), "verl", tmp_path / "v/train.parquet", split="train")
    table = pq.read_table(out)
    assert table.column_names == ["data_source", "prompt", "images", "ability", "reward_model", "extra_info"]
    rows = table.to_pylist()
    second = rows[1]
    assert second["data_source"] == "medground/jsonl"
    assert second["prompt"] == [{"role": "user", "content": "<image>" + render_prompt("cardiomegaly")}]
    assert second["images"] == [{"image": "imgs/p2.png"}]
    assert second["reward_model"]["style"] == "rule"
    assert read_label(second["reward_model"]["ground_truth"]) == expected_label(ROWS[1])
    assert second["extra_info"] == {"split": "train", "index": 1, "id": "p2",
                                    "label": second["reward_model"]["ground_truth"]}


def test_easyr1_jsonl(annotations, tmp_path):
    out = convert_dataset(load(annotations, "test"), "easyr1", tmp_path / "e/test.jsonl", template="plain")
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert set(record) == {"problem", "answer", "images"}
    assert record["problem"] == "<image>" + render_prompt("nodule", "plain") and record["images"] == ["imgs/p3.png"]
    assert isinstance(record["answer"], str) and read_label(record["answer"]) == expected_label(ROWS[2])


def test_trl_dataset_on_disk(annotations, tmp_path):
    import datasets

    out = convert_dataset(load(annotations), "trl", tmp_path / "t/train", frame="pixel")
    data = datasets.load_from_disk(str(out))
    assert data.column_names == ["id", "prompt", "image", "solution", "phrase", "image_size", "frame"]
    assert data[1]["solution"] == [[100.0, 100.0, 300.0, 300.0], [310.0, 100.0, 400.0, 200.0]]
    assert data[0]["frame"] == "pixel" and data[0]["image"] == "imgs/p1.png"


def test_errors_name_the_sample(annotations, tmp_path):
    no_image = tmp_path / "noimg.jsonl"
    no_image.write_text(json.dumps({"id": "z9", "phrase": "x", "boxes": [1, 2, 3, 4], "image_size": [9, 9]}) + "\n")
    with pytest.raises(ValueError, match="sample 'z9': field 'image' is None"):
        convert_records(get_loader("jsonl")(no_image), "openrlhf")
    no_size = tmp_path / "nosize.jsonl"
    no_size.write_text(json.dumps({"id": "z8", "phrase": "x", "boxes": [1, 2, 3, 4], "image": "a.png"}) + "\n")
    with pytest.raises(ValueError, match="sample 'z8': image_size is None: frame 'qwen2.5-vl'"):
        convert_records(get_loader("jsonl")(no_size), "verl")
    assert convert_records(get_loader("jsonl")(no_size), "verl", frame="pixel")[0]["images"] == [{"image": "a.png"}]
    with pytest.raises(ValueError, match="format = 'csv'"):
        convert_records(load(annotations), "csv")
    with pytest.raises(ValueError, match="template"):
        convert_records(load(annotations), "easyr1", template="no placeholder")


def test_cli_convert(annotations, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["convert", "--dataset", "jsonl", "--annotations", str(annotations), "--split",
                                 "train", "--format", "verl", "--output", str(tmp_path / "out"), "--image-root", "/im"])
    assert result.exit_code == 0, result.output
    assert "wrote 2 samples" in result.output
    assert pq.read_table(tmp_path / "out/train.parquet").num_rows == 2
    result = runner.invoke(app, ["convert", "--dataset", "jsonl", "--annotations", str(annotations), "--format",
                                 "xml", "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "expected one of trl, openrlhf, verl, easyr1" in result.output
    result = runner.invoke(app, ["convert", "--dataset", "nope", "--annotations", str(annotations), "--format",
                                 "trl", "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "unknown dataset 'nope'" in result.output
