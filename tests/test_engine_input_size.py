"""Engine labels carry the input size the engine's own processor produces, for a checkpoint with non-default pixel
limits: the reference is transformers' Qwen2-VL image processor itself (its PIL variant, which needs no
torchvision), run on the converted image files; image_grid_thw * patch_size is the resized input in pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from medground_eval.cli import app

pytest.importorskip("transformers")
Image = pytest.importorskip("PIL.Image")
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil  # noqa: E402

runner = CliRunner()
MIN_PIXELS, MAX_PIXELS = 200704, 1003520  # a public GRPO script's limits, not the processor's defaults
SIZES = [(2544, 3056), (1024, 1024), (300, 200), (3000, 2500)]


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    folder = tmp_path / "qwen25-ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Qwen2VLImageProcessor", "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2,
        "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS}))
    return folder


@pytest.fixture
def data(tmp_path) -> Path:
    rows = []
    for i, (w, h) in enumerate(SIZES):
        image = tmp_path / "images" / f"x{i}.png"
        image.parent.mkdir(exist_ok=True)
        Image.new("RGB", (w, h)).save(image)
        rows.append({"id": f"x{i}", "phrase": "effusion", "boxes": [[1, 1, w // 2, h // 2]], "image_size": [w, h],
                     "image": f"images/x{i}.png", "split": "train"})
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def processor_input_sizes(image_paths: list[str]) -> list[list[float]]:
    """``[w, h]`` the transformers processor resizes each image file to, with the checkpoint's limits."""
    processor = Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, patch_size=14, merge_size=2)
    sizes = []
    for path in image_paths:
        grid = processor(images=[Image.open(path).convert("RGB")], return_tensors="np")["image_grid_thw"][0]
        sizes.append([float(grid[2] * 14), float(grid[1] * 14)])
    return sizes


@pytest.mark.parametrize("fmt", ["openrlhf", "verl"])
def test_engine_labels_equal_the_transformers_processor_resize(fmt, checkpoint, data, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", "--dataset", "jsonl", "--annotations", str(data), "--format", fmt,
                                 "--output", str(out), "--split", "train", "--image-root", str(tmp_path),
                                 "--model", str(checkpoint)])
    assert result.exit_code == 0, result.output
    if fmt == "openrlhf":
        records = [json.loads(line) for line in next(out.glob("*.jsonl")).read_text().splitlines()]
        labels = [json.loads(r["label"]) for r in records]
        images = [r["images"][0] for r in records]
    else:
        rows = pq.read_table(next(out.glob("*.parquet"))).to_pylist()
        labels = [json.loads(r["reward_model"]["ground_truth"]) for r in rows]
        images = [str(tmp_path / f"images/x{i}.png") for i in range(len(rows))]
    expected = processor_input_sizes(images)
    assert [label["input_size"] for label in labels] == expected
    # Not the default limits' sizes: the first image would be 2492 x 2996 there.
    assert expected[0] != [2492.0, 2996.0] and np.prod(expected[0]) <= MAX_PIXELS
