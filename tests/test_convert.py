"""`medground-eval convert`: each engine's file, read back the way the engine reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from medground_eval.cli import app
from medground_eval.datasets import get_loader
from medground_eval.integrations.convert import convert_dataset, convert_records
from medground_eval.integrations.labels import read_label
from medground_eval.prompts import render_prompt

ROWS = [
    {"id": "p1", "phrase": "left pleural effusion", "boxes": [[10, 20, 110, 220]], "image_size": [512, 400],
     "image": "imgs/p1.png", "split": "train"},
    {"id": "p2", "phrase": "cardiomegaly", "boxes": [[100, 100, 300, 300], [310, 100, 400, 200]],
     "image_size": [512, 400], "image": "imgs/p2.png", "split": "train"},
    {"id": "p3", "phrase": "nodule", "boxes": [[5, 5, 20, 20]], "image_size": [512, 400], "image": "imgs/p3.png",
     "split": "test"},
]


def write_image(path: Path, size: tuple[int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size).save(path)


@pytest.fixture
def annotations(tmp_path, monkeypatch) -> Path:
    """The rows as JSON lines, with no image files (tests that need them write them; relative paths resolve in
    ``tmp_path``)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


@pytest.fixture
def images(annotations, tmp_path) -> Path:
    """The image files of the rows, stored at the annotated size."""
    for row in ROWS:
        write_image(tmp_path / row["image"], tuple(row["image_size"]))
    return tmp_path


def load(annotations: Path, split: str = "train"):
    return get_loader("jsonl")(annotations, split=split)


def expected_label(row: dict) -> dict:
    """The label of a row in the qwen2.5-vl frame; input 504 x 392 is smart_resize of the 512 x 400 file."""
    return {"id": row["id"], "solution": [[float(v) for v in b] for b in row["boxes"]], "phrase": row["phrase"],
            "image_size": [float(v) for v in row["image_size"]], "frame": "qwen2.5-vl", "input_size": [504.0, 392.0]}


def test_openrlhf_jsonl(annotations, images, tmp_path):
    out = convert_dataset(load(annotations), "openrlhf", tmp_path / "o/train.jsonl", image_root=images)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2
    first = records[0]
    assert set(first) == {"prompt", "images", "label"}
    assert first["images"] == [str(images / "imgs/p1.png")]
    assert first["prompt"] == [{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": render_prompt("left pleural effusion", "chain-of-box")}]}]
    assert isinstance(first["label"], str) and read_label(first["label"]) == expected_label(ROWS[0])


def test_verl_parquet_schema(annotations, images, tmp_path):
    out = convert_dataset(load(annotations), "verl", tmp_path / "v/train.parquet", split="train")
    table = pq.read_table(out)
    assert table.column_names == ["data_source", "prompt", "images", "ability", "reward_model", "extra_info"]
    rows = table.to_pylist()
    second = rows[1]
    assert second["data_source"] == "medground/jsonl"
    assert second["prompt"] == [{"role": "user", "content": "<image>" + render_prompt("cardiomegaly")}]
    # the frame's pixel limits beside the image: qwen_vl_utils.fetch_image (run by verl before the processor)
    # resizes to the processor's own size once
    assert second["images"] == [{"image": "imgs/p2.png", "min_pixels": 3136, "max_pixels": 12845056}]
    assert second["reward_model"]["style"] == "rule"
    assert read_label(second["reward_model"]["ground_truth"]) == expected_label(ROWS[1])
    assert second["extra_info"] == {"split": "train", "index": 1, "id": "p2",
                                    "label": second["reward_model"]["ground_truth"]}


def test_easyr1_jsonl(annotations, images, tmp_path):
    out = convert_dataset(load(annotations, "test"), "easyr1", tmp_path / "e/test.jsonl", template="plain")
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert set(record) == {"problem", "answer", "images"}
    assert record["problem"] == "<image>" + render_prompt("nodule", "plain") and record["images"] == ["imgs/p3.png"]
    # EasyR1 first scales the 512 x 400 image up to 262144 pixels (579 x 452), then smart_resize
    assert isinstance(record["answer"], str) and read_label(record["answer"]) == {
        **expected_label(ROWS[2]), "input_size": [588.0, 448.0]}


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


def test_cli_convert(annotations, images, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["convert", "--dataset", "jsonl", "--annotations", str(annotations), "--split",
                                 "train", "--format", "verl", "--output", str(tmp_path / "out"), "--image-root", str(images)])
    assert result.exit_code == 0, result.output
    assert "wrote 2 samples" in result.output
    assert pq.read_table(tmp_path / "out/train.parquet").num_rows == 2
    result = runner.invoke(app, ["convert", "--dataset", "jsonl", "--annotations", str(annotations), "--format",
                                 "xml", "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "expected one of trl, openrlhf, verl, easyr1" in result.output
    result = runner.invoke(app, ["convert", "--dataset", "nope", "--annotations", str(annotations), "--format",
                                 "trl", "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "unknown dataset 'nope'" in result.output


def test_resized_frame_label_carries_the_input_size_of_the_image_file(annotations, tmp_path):
    """The model sees the stored file: a file smaller than the annotated original changes the input size."""
    write_image(tmp_path / "imgs/p1.png", (256, 200))  # half the annotated 512 x 400
    write_image(tmp_path / "imgs/p2.png", (512, 400))
    records = convert_records(load(annotations), "openrlhf", image_root=tmp_path)
    labels = [read_label(record["label"]) for record in records]
    assert labels[0]["input_size"] == [252.0, 196.0]  # smart_resize(200, 256), not smart_resize(400, 512)
    assert labels[1]["input_size"] == [504.0, 392.0]
    assert labels[0]["image_size"] == [512.0, 400.0]  # boxes stay in the annotation's pixels
    trl = convert_records(load(annotations), "trl", image_root=tmp_path)
    assert [row["input_size"] for row in trl] == [[252, 196], [504, 392]]


def test_easyr1_label_follows_easyr1_image_rescaling(tmp_path):
    """EasyR1 rescales every image into [262144, 4194304] pixels before the processor sees it."""
    rows = [{"id": "big", "phrase": "x", "boxes": [[0, 0, 10, 10]], "image_size": [2500, 3000], "image": "big.png"},
            {"id": "small", "phrase": "x", "boxes": [[0, 0, 10, 10]], "image_size": [200, 160], "image": "small.png"}]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    write_image(tmp_path / "big.png", (2500, 3000))
    write_image(tmp_path / "small.png", (200, 160))
    easyr1 = [read_label(r["answer"])["input_size"] for r in convert_records(
        get_loader("jsonl")(path), "easyr1", image_root=tmp_path)]
    # 2500 x 3000 -> int(2500 f) x int(3000 f) = 1869 x 2243 with f = sqrt(4194304 / 7.5e6), then smart_resize
    assert easyr1 == [[1876.0, 2240.0], [560.0, 448.0]]  # small: 200 x 160 -> 572 x 457 -> smart_resize
    verl = [read_label(r["reward_model"]["ground_truth"])["input_size"] for r in convert_records(
        get_loader("jsonl")(path), "verl", image_root=tmp_path)]
    assert verl == [[2492.0, 2996.0], [196.0, 168.0]]  # no pre-rescaling: smart_resize of the file's size


def test_resized_frame_needs_the_image_file(annotations, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"sample 'p1': image file '.*imgs/p1.png' not found"):
        convert_records(load(annotations), "verl", image_root=tmp_path)
    assert "input_size" not in read_label(convert_records(load(annotations), "verl", frame="norm1000")[0]
                                          ["reward_model"]["ground_truth"])


@pytest.mark.parametrize("fmt", ["openrlhf", "verl", "trl"])
def test_convert_failing_mid_write_leaves_no_file(annotations, images, tmp_path, monkeypatch, fmt):
    """Issue 13 case 1: an interrupted convert used to leave a newline-terminated prefix of all.jsonl."""
    import medground_eval.integrations.convert as convert

    def failing_records(*args, **kwargs):
        raise_at = 1
        for k, row in enumerate(ROWS):
            if k == raise_at:
                raise KeyboardInterrupt
            yield {"id": row["id"], "label": "x"}

    monkeypatch.setattr(convert, "convert_records", lambda *a, **k: failing_records())
    if fmt != "openrlhf":  # the table writers take the whole list: fail inside them instead
        monkeypatch.setattr(convert, "convert_records", lambda *a, **k: [{"id": "p1"}])
        import datasets
        import pyarrow.parquet as pq

        def boom(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(pq, "write_table", boom)
        monkeypatch.setattr(datasets.Dataset, "save_to_disk", boom)
    out = tmp_path / "o" / ("train" if fmt == "trl" else "train.x")
    with pytest.raises(KeyboardInterrupt):
        convert_dataset(load(annotations), fmt, out, image_root=images)
    assert not out.exists() and list(out.parent.iterdir()) == []
