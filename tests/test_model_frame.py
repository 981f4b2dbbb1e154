"""One model-frame resolver for every surface: a checkpoint whose ``preprocessor_config.json`` sets non-default pixel
limits gives the same boxes on the TRL path, the engine (OpenRLHF / verl) path, ``predict`` and ``convert``.

Issue 11 measured the drift this catches: ``[100, 100, 300, 300]`` on a 2048 x 2500 image with
``max_pixels = 1280 * 28 * 28`` became ``[228.6, 228.9, 685.7, 686.8]`` on the TRL path but
``[100.2, 100.3, 300.6, 301.0]`` on the engine path, which fell back to the default limits.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medground_eval.cli import app
from medground_eval.frames import (
    PROCESSOR_DEFAULTS,
    get_frame,
    preset_name,
    processor_pixel_limits,
    resolve_model_frame,
)

IMAGE_SIZE = (2048, 2500)  # (W, H)
MIN_PIXELS, MAX_PIXELS = 64 * 28 * 28, 1280 * 28 * 28  # not the Qwen2.5-VL defaults (4 * 28 * 28, 16384 * 28 * 28)
ANSWER = [100, 100, 300, 300]
COMPLETION = f"<think>left apex</think><answer>{json.dumps(ANSWER)}</answer>"


def _checkpoint(folder: Path, model_type: str = "qwen2_5_vl", **processor: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    settings = {"image_processor_type": "Qwen2VLImageProcessor", "patch_size": 14, "merge_size": 2,
                "temporal_patch_size": 2, "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, **processor}
    (folder / "preprocessor_config.json").write_text(json.dumps(settings))
    return folder


@pytest.fixture
def setup(tmp_path):
    from PIL import Image

    model = _checkpoint(tmp_path / "checkpoint")
    (tmp_path / "img").mkdir()
    Image.new("L", IMAGE_SIZE).save(tmp_path / "img/0.png")
    row = {"id": "r0", "phrase": "left apical pneumothorax", "boxes": [[0, 0, 10, 10]], "image_size": list(IMAGE_SIZE),
           "image": "img/0.png", "split": "train"}
    (tmp_path / "data.jsonl").write_text(json.dumps(row) + "\n")
    return tmp_path, model


def _transformers_input_size(model: Path) -> tuple[int, int]:
    """``(w, h)`` transformers' own Qwen2-VL image processor, built from the folder offline, resizes the image to."""
    transformers = pytest.importorskip("transformers")
    from PIL import Image

    processor = transformers.Qwen2VLImageProcessorPil.from_pretrained(str(model))
    grid = processor(images=[Image.new("RGB", IMAGE_SIZE)], return_tensors="np")["image_grid_thw"][0]
    return int(grid[2]) * processor.patch_size, int(grid[1]) * processor.patch_size


def _easyr1_input_size(model: Path) -> tuple[int, int]:
    """``(w, h)`` of the image EasyR1 feeds its processor (its own rescale into ``data.min_pixels`` /
    ``data.max_pixels`` first, PIL's resize as its ``process_image`` does), through the same transformers processor."""
    transformers = pytest.importorskip("transformers")
    from PIL import Image

    from medground_eval.integrations.convert import easyr1_image_size

    processor = transformers.Qwen2VLImageProcessorPil.from_pretrained(str(model))
    image = Image.new("RGB", IMAGE_SIZE).resize(easyr1_image_size(IMAGE_SIZE))
    grid = processor(images=[image], return_tensors="np")["image_grid_thw"][0]
    return int(grid[2]) * processor.patch_size, int(grid[1]) * processor.patch_size


def _expected_box(input_size: tuple[int, int]) -> list[float]:
    (w, h), (big_w, big_h) = input_size, IMAGE_SIZE
    return [ANSWER[0] * big_w / w, ANSWER[1] * big_h / h, ANSWER[2] * big_w / w, ANSWER[3] * big_h / h]


def test_resolved_frame_reproduces_the_transformers_processor(setup):
    _, model = setup
    frame = resolve_model_frame(model)
    assert (frame.kind, frame.min_pixels, frame.max_pixels, frame.factor) == ("resized", MIN_PIXELS, MAX_PIXELS, 28)
    expected = _transformers_input_size(model)
    assert tuple(frame.input_sizes([IMAGE_SIZE])[0].astype(int)) == expected
    # the default limits (the engine path before) give another input size: the drift this test guards against
    assert tuple(get_frame("qwen2.5-vl").input_sizes([IMAGE_SIZE])[0].astype(int)) != expected


def test_every_surface_reads_the_same_boxes(setup, monkeypatch):
    """TRL columns, engine labels (verl, OpenRLHF, EasyR1), predict's file and convert's labels: one converted box
    (EasyR1 rescales each image itself before its processor: its labels carry that input size, and the same answer
    scores against the box it means there)."""
    pytest.importorskip("datasets")
    from medground_eval import inference
    from medground_eval.datasets import get_loader
    from medground_eval.evaluation.scorer import score_files
    from medground_eval.integrations import trl
    from medground_eval.integrations.hf_data import build_dataset
    from medground_eval.integrations.labels import score_labels
    from medground_eval.integrations.options import TrainOptions, load_options
    from medground_eval.rewards import SpatialReward, SpatialSemanticReward
    from medground_eval.training.run import launch_engine

    root, model = setup
    expected = _expected_box(_transformers_input_size(model))
    truth = {"solution": [[expected]], "image_size": [list(IMAGE_SIZE)], "phrase": ["left apical pneumothorax"]}
    samples = get_loader("jsonl")(root / "data.jsonl").samples

    # TRL: the frame of the run, the input_size column of its data set, the spatial reward
    frame = trl.model_frame(load_options(None, model=str(model), frame="pixel"))
    columns = build_dataset(samples, image_root=root, frame=frame).to_dict()
    reward = SpatialReward(frame=frame)
    assert reward([COMPLETION], **{**truth, "input_size": columns["input_size"]}) == [pytest.approx(1.0)]

    # engines: the labels verl and OpenRLHF hand to the adapters, scored by the one core call
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    combined = SpatialSemanticReward(weights=(0.0, 1.0, 0.0), encoder="lexical")
    for backend in ("verl", "openrlhf"):
        options = TrainOptions(model=str(model), data_dir=str(root / "data.jsonl"), image_root=str(root),
                               output_dir=str(root / backend), eval_split=None, frame="pixel")
        assert launch_engine(backend, options) == 2
        if backend == "verl":
            import pyarrow.parquet as pq

            rows = pq.read_table(root / "verl/data/verl/train.parquet").to_pylist()
            labels = [json.loads(r["reward_model"]["ground_truth"]) for r in rows]
        else:
            labels = [json.loads(json.loads(line)["label"])
                      for line in (root / "openrlhf/data/openrlhf/train.jsonl").read_text().splitlines()]
        assert labels[0]["input_size"] == columns["input_size"][0]
        labels = [{**label, "solution": [expected]} for label in labels]
        assert score_labels(combined, [COMPLETION], labels).iou.tolist() == [pytest.approx(1.0)]
    options = TrainOptions(model=str(model), data_dir=str(root / "data.jsonl"), image_root=str(root),
                           output_dir=str(root / "easyr1"), eval_split=None, frame="pixel")
    assert launch_engine("easyr1", options) == 2
    easyr1_size = _easyr1_input_size(model)
    labels = [json.loads(json.loads(line)["answer"])
              for line in (root / "easyr1/data/easyr1/train.jsonl").read_text().splitlines()]
    assert labels[0]["frame"] == "qwen2.5-vl" and labels[0]["input_size"] == list(easyr1_size)
    labels = [{**label, "solution": [_expected_box(easyr1_size)]} for label in labels]
    assert score_labels(combined, [COMPLETION], labels).iou.tolist() == [pytest.approx(1.0)]

    # predict: the CLI resolves the frame from --model; the written file scores the box as the rewards read it
    monkeypatch.setattr(inference, "load_model_and_processor", lambda *a, **k: (None, None))
    monkeypatch.setattr(inference, "generate_completions", lambda m, p, dataset, **k: [COMPLETION] * len(dataset))
    truth_file = root / "truth.jsonl"
    truth_file.write_text(json.dumps({"id": "r0", "phrase": "x", "boxes": [expected],
                                      "image_size": list(IMAGE_SIZE)}) + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["predict", "--model", str(model), "--dataset", "jsonl", "--data-dir",
                                 str(root / "data.jsonl"), "--image-root", str(root), "--output",
                                 str(root / "preds.jsonl"), "--use-cpu"])
    assert result.exit_code == 0, result.output
    record = json.loads((root / "preds.jsonl").read_text())
    assert record["frame"] == "resized" and record["input_size"] == columns["input_size"][0]
    scored = score_files(root / "preds.jsonl", dataset="jsonl", annotations=truth_file)
    assert scored.per_sample.iou.tolist() == [pytest.approx(1.0)]

    # convert --model: the labels carry the same input size
    result = runner.invoke(app, ["convert", "--dataset", "jsonl", "--annotations", str(root / "data.jsonl"),
                                 "--format", "openrlhf", "--output", str(root / "converted"),
                                 "--image-root", str(root), "--model", str(model)])
    assert result.exit_code == 0, result.output
    label = json.loads(json.loads((root / "converted/all.jsonl").read_text())["label"])
    assert label["input_size"] == columns["input_size"][0]
    assert score_labels(combined, [COMPLETION], [{**label, "solution": [expected]}]).iou.tolist() == [
        pytest.approx(1.0)
    ]


def test_resolver_rules(tmp_path):
    """Model type picks the preset; transformers' key precedence; explicit limits win; no folder gives the default."""
    norm = _checkpoint(tmp_path / "qwen2", model_type="qwen2_vl")
    assert resolve_model_frame(norm) == get_frame("norm1000")
    assert resolve_model_frame(_checkpoint(tmp_path / "q3", model_type="qwen3_vl")).kind == "norm1000"
    other = _checkpoint(tmp_path / "llava", model_type="llava")
    assert resolve_model_frame(other, default="norm1") == get_frame("norm1")
    assert resolve_model_frame("Qwen/Qwen2.5-VL-3B-Instruct", default="qwen2.5-vl") == get_frame("qwen2.5-vl")
    # size.* is read, and top-level min_pixels / max_pixels override it (transformers' __init__ does the same)
    sized = _checkpoint(tmp_path / "sized", min_pixels=None, max_pixels=None, patch_size=16,
                        size={"shortest_edge": 1000, "longest_edge": 5000})
    assert processor_pixel_limits(sized) == {"factor": 32, "min_pixels": 1000, "max_pixels": 5000}
    both = _checkpoint(tmp_path / "both", size={"shortest_edge": 1000, "longest_edge": 5000})
    assert processor_pixel_limits(both)["max_pixels"] == MAX_PIXELS
    bare = _checkpoint(tmp_path / "bare", min_pixels=None, max_pixels=None)
    assert processor_pixel_limits(bare)["max_pixels"] == PROCESSOR_DEFAULTS["max_pixels"]
    frame = resolve_model_frame(both, min_pixels=28 * 28, max_pixels=100 * 28 * 28)
    assert (frame.min_pixels, frame.max_pixels) == (28 * 28, 100 * 28 * 28)
    # a folder without preprocessor_config.json keeps the preset's limits
    (tmp_path / "noproc").mkdir()
    (tmp_path / "noproc/config.json").write_text('{"model_type": "qwen2_5_vl"}')
    assert resolve_model_frame(tmp_path / "noproc") == get_frame("qwen2.5-vl")


def test_resolver_errors_name_the_file_and_field(tmp_path):
    bad = _checkpoint(tmp_path / "bad", max_pixels="lots")
    with pytest.raises(ValueError, match=r"preprocessor_config.json: field 'max_pixels' = 'lots'"):
        resolve_model_frame(bad)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken/config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config.json: not a readable JSON file"):
        resolve_model_frame(tmp_path / "broken")
    with pytest.raises(ValueError, match="exceeds max_pixels"):
        resolve_model_frame(_checkpoint(tmp_path / "ok"), min_pixels=10**9)


def test_preset_name_round_trips_through_get_frame():
    for name in ("pixel", "norm1000", "norm1", "qwen2.5-vl", "resized", "m3d-npy"):
        frame = get_frame(name)
        assert get_frame(preset_name(frame, hint=name)) == frame
        assert get_frame(preset_name(frame)).kind == frame.kind
    limited = get_frame("qwen2.5-vl", max_pixels=MAX_PIXELS)
    assert preset_name(limited, hint="qwen2.5-vl") == "qwen2.5-vl"
    assert preset_name(limited, hint="pixel") == "qwen2.5-vl"
    assert np.isfinite(limited.input_sizes([IMAGE_SIZE])).all()
