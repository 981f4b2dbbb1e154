"""TRL backend, data set builder and predict, on the CPU with a tiny random-weight Qwen2.5-VL built here (offline)."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("trl")

from PIL import Image  # noqa: E402
from tiny_qwen import MAX_PIXELS, MIN_PIXELS, build_tiny_qwen  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from medground_eval.cli import app  # noqa: E402
from medground_eval.frames import get_frame, smart_resize  # noqa: E402
from medground_eval.inference import load_processor  # noqa: E402
from medground_eval.integrations.hf_data import MissingImageError, build_dataset  # noqa: E402
from medground_eval.integrations.options import load_options  # noqa: E402
from medground_eval.integrations.trl import grpo_config, reward_functions  # noqa: E402
from medground_eval.rewards import SpatialReward, SpatialSemanticReward  # noqa: E402
from medground_eval.structures import Sample  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> SimpleNamespace:
    """Six 56x56 images (4 train, 2 test) and a JSON-lines data set pointing at them relative to an image root."""
    root = tmp_path_factory.mktemp("data")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for index in range(6):
        Image.fromarray(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8)).save(images / f"{index}.png")
        lines.append(
            {"id": f"s{index}", "phrase": "left lower lobe opacity", "boxes": [[4, 8, 30 + index, 40]],
             "image_size": [56, 56], "image": f"{index}.png", "split": "train" if index < 4 else "test"}
        )
    annotations = root / "data.jsonl"
    annotations.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return SimpleNamespace(annotations=annotations, images=images, root=root)


def _sample(image: str | None, *, image_size=(112, 112)) -> Sample:
    return Sample(id="case-1", phrase="right apex nodule", boxes=[[10, 20, 50, 60]], image_size=image_size, image=image)


# Rewards -------------------------------------------------------------------------------------------------------------

COMPLETIONS = [
    [{"role": "assistant", "content": '<think>Right apex [10, 20, 50, 60].</think><answer>[{"bbox_2d": [10, 20, 50, 60], '
                                      '"label": "right apex nodule"}]</answer>'}],
    [{"role": "assistant", "content": "<answer>[0, 0, 10, 10]</answer>"}],
    [{"role": "assistant", "content": "no box at all"}],
    [{"role": "assistant", "content": "<think>x</think><answer>[0, 0, 2000, 10]</answer>"}],
]
COLUMNS = dict(solution=[[[10, 20, 50, 60]]] * 4, image_size=[[112, 112]] * 4, phrase=["right apex nodule"] * 4)


def test_reward_functions_are_the_core_components_weighted_and_logged():
    options = load_options(None, semantic_encoder="lexical", reward_weights=(1.0, 2.0, 0.5))
    frame = get_frame("pixel")
    functions, weights = reward_functions(options, frame)
    assert [f.__name__ for f in functions] == ["format", "spatial", "semantic", "anatomy"]
    assert weights == [1.0, 2.0, 0.5, 0.5]
    logged: dict[str, float] = {}
    values = {f.__name__: f(COMPLETIONS, log_metric=logged.__setitem__, trainer_state=None, **COLUMNS) for f in functions}
    core = SpatialSemanticReward(encoder="lexical", frame=frame).breakdown(COMPLETIONS, **COLUMNS)
    np.testing.assert_allclose(values["format"], core.format)
    np.testing.assert_allclose(values["spatial"], core.spatial)
    np.testing.assert_allclose(values["semantic"], core.semantic)
    np.testing.assert_allclose(values["anatomy"], core.anatomy)
    assert values["spatial"][0] == 1.0 and values["spatial"][2] == 0.0
    assert logged["grounding/mean_iou"] == pytest.approx(float(core.iou.mean()))
    assert logged["grounding/parse_failure_rate"] == 0.25  # "no box at all"
    assert logged["grounding/out_of_frame_rate"] == 0.25  # x2 = 2000 on a 112-pixel image
    for function in functions:
        clone = pickle.loads(pickle.dumps(function))
        assert clone.__name__ == function.__name__
        assert clone(COMPLETIONS, **COLUMNS) == function(COMPLETIONS, **COLUMNS)


def test_zero_weight_components_are_left_out_and_all_zero_is_an_error():
    options = load_options(None, reward_weights=(1.0, 1.0, 0.0), anatomy_weight=0.0)
    functions, weights = reward_functions(options, get_frame("pixel"))
    assert [f.__name__ for f in functions] == ["format", "spatial"] and weights == [1.0, 1.0]
    with pytest.raises(ValueError, match="at least one positive weight"):
        reward_functions(load_options(None, reward_weights=(0.0, 0.0, 0.0), anatomy_weight=0.0), get_frame("pixel"))


def test_spatial_reward_reads_boxes_in_the_models_frame():
    """A Qwen2.5-VL box in its 56x56 input of a 112x112 image is the half-size box in original pixels."""
    reward = SpatialReward(frame=get_frame("resized", min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS))
    completion = "<think>a</think><answer>[5, 10, 25, 30]</answer>"
    assert reward([completion], solution=[[10, 20, 50, 60]], image_size=[[112, 112]]) == [1.0]
    given = reward([completion], solution=[[10, 20, 50, 60]], image_size=[[112, 112]], input_size=[[112, 112]])
    assert given[0] < 0.5


# Frame and processor -------------------------------------------------------------------------------------------------

def test_run_frame_is_the_checkpoints_with_the_runs_pixel_limits(tiny_model):
    """The TRL run resolves its frame like every backend (frames.resolve_model_frame), extra limits overriding."""
    from medground_eval.integrations.trl import model_frame

    frame = model_frame(load_options(None, model=str(tiny_model)))
    assert (frame.kind, frame.min_pixels, frame.max_pixels, frame.factor) == ("resized", MIN_PIXELS, MAX_PIXELS, 28)
    wider = model_frame(load_options(None, model=str(tiny_model), extra={"max_pixels": 4 * MAX_PIXELS}))
    assert wider.max_pixels == 4 * MAX_PIXELS
    size = load_processor(tiny_model, max_pixels=4 * MAX_PIXELS).image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (wider.min_pixels, wider.max_pixels)


def test_processor_has_no_video_part_and_keeps_the_qwen_class_name(tiny_model, tmp_path):
    processor = load_processor(tiny_model)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert not hasattr(processor, "video_processor")
    assert processor.tokenizer.padding_side == "left"
    size = processor.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (MIN_PIXELS, MAX_PIXELS)
    wider = load_processor(tiny_model, max_pixels=4 * MAX_PIXELS).image_processor.size
    assert wider["longest_edge"] == 4 * MAX_PIXELS
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "processor_config.json").read_text())["processor_class"] == "Qwen2_5_VLProcessor"


# Data set builder ----------------------------------------------------------------------------------------------------

def test_build_dataset_columns_prompt_and_lazy_image(data):
    frame = get_frame("resized", min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    samples = [_sample("0.png"), _sample("1.png", image_size=None)]
    dataset = build_dataset(samples, image_root=data.images, frame=frame, template="plain")
    assert set(dataset.column_names) == {"id", "prompt", "image", "solution", "image_size", "input_size", "phrase"}
    assert type(dataset.features["image"]).__name__ == "Image"
    row = dataset[0]
    assert row["prompt"][0]["content"][0] == {"type": "image", "text": None}
    assert "right apex nodule" in row["prompt"][0]["content"][1]["text"]
    assert "step by step" not in row["prompt"][0]["content"][1]["text"]  # the plain template
    assert row["image"].size == (56, 56)
    assert row["solution"] == [[10, 20, 50, 60]]
    assert dataset["image_size"] == [[112, 112], [56, 56]]  # the annotation's size, else the file's
    assert dataset["input_size"] == [list(smart_resize(56, 56, 28, MIN_PIXELS, MAX_PIXELS))[::-1]] * 2
    norm = build_dataset(samples[:1], image_root=data.images, frame=get_frame("norm1000"))
    assert "input_size" not in norm.column_names
    assert "step by step" in norm[0]["prompt"][0]["content"][1]["text"]  # Chain-of-Box by default


def test_build_dataset_names_the_sample_and_path_of_a_missing_image(data):
    frame = get_frame("norm1000")
    with pytest.raises(MissingImageError, match=r"sample 'case-1'.*missing\.png.*not found"):
        build_dataset([_sample("missing.png")], image_root=data.images, frame=frame)
    with pytest.raises(MissingImageError, match=r"sample 'case-1'.*relative path.*--image-root"):
        build_dataset([_sample("0.png")], image_root=None, frame=frame)
    with pytest.raises(MissingImageError, match=r"sample 'case-1'.*no image path"):
        build_dataset([_sample(None)], image_root=data.images, frame=frame)
    (data.root / "broken.png").write_text("not an image")
    with pytest.raises(MissingImageError, match=r"broken\.png.*not a readable image"):
        build_dataset([_sample("broken.png")], image_root=data.root, frame=frame)


# Options -------------------------------------------------------------------------------------------------------------

def test_grpo_config_has_the_paper_defaults_and_passes_extra_fields(tmp_path):
    options = load_options(None, output_dir=str(tmp_path), use_cpu=True, extra={"log_completions": True, "min_pixels": 1})
    args = grpo_config(options, [1.0, 1.0, 1.0], bf16=False)
    assert (args.num_generations, args.beta, args.learning_rate, args.num_train_epochs) == (8, 0.04, 1e-6, 2.0)
    assert (args.max_completion_length, args.temperature, args.reward_weights) == (256, 1.0, [1.0, 1.0, 1.0])
    assert args.log_completions and args.use_cpu
    with pytest.raises(ValueError, match=r"extra option\(s\) \['max_prompt_length'\]"):
        grpo_config(load_options(None, extra={"max_prompt_length": 64}), [1.0], bf16=False)


# End to end ----------------------------------------------------------------------------------------------------------

def _config(path: Path, tiny_model: Path, data: SimpleNamespace, output_dir: Path, **changes: object) -> Path:
    options = {
        "model": str(tiny_model), "dataset": "jsonl", "data_dir": str(data.annotations), "image_root": str(data.images),
        "output_dir": str(output_dir), "num_generations": 2, "per_device_train_batch_size": 2,
        "max_completion_length": 16, "max_steps": 2, "save_steps": 2, "learning_rate": 1e-2, "use_cpu": True,
        "semantic_encoder": "lexical", "seed": 0,
    }
    options.update(changes)
    lines = [f"{k} = {json.dumps(v)}" for k, v in options.items()]
    lines += ["[extra]", 'extra_rewards = ["tiny_qwen:text_hash_reward"]', 'report_to = "none"', "eval_batch_size = 2"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _weights(directory: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(directory / "model.safetensors")


def test_train_trl_end_to_end(tiny_model, data, tmp_path):
    output_dir = tmp_path / "run"
    config = _config(tmp_path / "train.toml", tiny_model, data, output_dir)
    result = runner.invoke(app, ["train", "--backend", "trl", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output

    state = json.loads((output_dir / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    logged = [entry for entry in state["log_history"] if "loss" in entry]
    assert len(logged) == 2
    for key in ("rewards/format/mean", "rewards/spatial/mean", "rewards/semantic/mean",
                "rewards/text_hash_reward/mean", "grounding/mean_iou", "grounding/parse_failure_rate",
                "grounding/out_of_frame_rate"):
        assert all(key in entry for entry in logged), key

    before, after = _weights(tiny_model), _weights(output_dir)
    assert before.keys() == after.keys()
    changed = [name for name in before if not np.array_equal(before[name], after[name])]
    assert len(changed) > len(before) // 2, changed

    from medground_eval.inference import load_model_and_processor

    model, processor = load_model_and_processor(output_dir / "checkpoint-2")
    reloaded = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    name = next(k for k in after if k.endswith("embed_tokens.weight"))
    np.testing.assert_array_equal(reloaded[next(k for k in reloaded if k.endswith("embed_tokens.weight"))], after[name])
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"

    records = [json.loads(line) for line in (output_dir / "eval_predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["s4", "s5"]
    metrics = json.loads((output_dir / "eval_metrics.json").read_text())
    for key in ("n", "acc", "miou", "parse_failure_rate", "config"):
        assert key in metrics, key
    assert metrics["n"] == 2

    resumed = runner.invoke(app, ["train", "--config", str(config), "--max-steps", "3", "--no-eval",
                                  "--resume-from-checkpoint", "last"])
    assert resumed.exit_code == 0, resumed.output
    assert "trained 3 steps" in resumed.output


def test_train_with_lora_saves_merged_weights(tiny_model, data, tmp_path):
    output_dir = tmp_path / "lora"
    config = _config(tmp_path / "train.toml", tiny_model, data, output_dir, use_lora=True, lora_r=4, max_steps=1)
    result = runner.invoke(app, ["train", "--config", str(config), "--no-eval"])
    assert result.exit_code == 0, result.output
    assert not (output_dir / "eval_metrics.json").exists()
    before, after = _weights(tiny_model), _weights(output_dir)
    assert before.keys() == after.keys()  # merged: the base model's tensors, no adapter ones
    query = "model.layers.0.self_attn.q_proj.weight"  # a LoRA target: the adapter's update is merged in
    assert not np.array_equal(before[query], after[query])
    for frozen in ("model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"):  # not adapted
        np.testing.assert_array_equal(before[frozen], after[frozen])


def test_train_dry_run_checks_the_setup_without_training(tiny_model, data, tmp_path):
    config = _config(tmp_path / "train.toml", tiny_model, data, tmp_path / "run")
    flags = ["--num-generations", "4", "--per-device-train-batch-size", "4"]
    result = runner.invoke(app, ["train", "--config", str(config), "--dry-run", *flags])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["samples"] == {"train": 4, "test": 2}
    assert plan["frame"]["kind"] == "resized" and plan["frame"]["max_pixels"] == MAX_PIXELS
    assert plan["rewards"] == {"format": 1.0, "spatial": 1.0, "semantic": 1.0, "anatomy": 0.5, "text_hash_reward": 1.0}
    assert plan["grpo"]["num_generations"] == 4  # the flag overrides the file
    assert not (tmp_path / "run").exists()


def test_train_reads_yaml_and_dispatches_other_backends(tiny_model, data, tmp_path):
    import yaml

    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"model": str(tiny_model), "dataset": "jsonl", "data_dir": str(data.annotations),
                                      "image_root": str(data.images), "output_dir": str(tmp_path / "run")}))
    result = runner.invoke(app, ["train", "--backend", "verl", "--config", str(config), "--dry-run",
                                 "--num-generations", "4"])
    assert result.exit_code == 0, result.output
    assert "verl.trainer.main_ppo" in result.stdout and "rollout.n=4" in result.stdout
    unknown = runner.invoke(app, ["train", "--backend", "deepspeed-chat", "--config", str(config)])
    assert unknown.exit_code == 2 and "expected one of trl, openrlhf, verl" in unknown.output


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.toml", 'beta = "abc"\n', "option beta = 'abc': expected a number"),
        ("bad.toml", "num_generations = 8.5\n", "option num_generations = 8.5: expected an integer"),
        ("bad.toml", "reward_weights = [1, 2]\n", "option reward_weights = \\[1, 2\\]: expected a list of three"),
        ("bad.toml", 'use_lora = "yes"\n', "option use_lora = 'yes': expected true or false"),
        ("bad.toml", "model = \n", "not valid TOML"),
        ("bad.yaml", "model: [1\n", "not valid YAML"),
    ],
)
def test_train_config_errors_name_the_file_option_and_value(name, text, message, tmp_path):
    """A mistyped option stops the run at the start (it was passed on, e.g. as verl's kl_loss_coef=abc)."""
    config = tmp_path / name
    config.write_text(text)
    result = runner.invoke(app, ["train", "--backend", "verl", "--dry-run", "--model", "m", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert f"config file {config}" in result.output and re.search(message, result.output), result.output
    assert load_options(None, beta=1, reward_weights=(1, 2, 0.5)).reward_weights == (1.0, 2.0, 0.5)
    with pytest.raises(ValueError, match="flag: option max_steps = 1.5: expected an integer"):
        load_options(None, max_steps=1.5)


def test_train_reports_a_missing_image_before_training(tiny_model, data, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for index in range(4):  # the training images are there, a held-out one is not
        (images / f"{index}.png").write_bytes((data.images / f"{index}.png").read_bytes())
    config = _config(tmp_path / "train.toml", tiny_model, data, tmp_path / "run", image_root=str(images))
    result = runner.invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2
    assert "sample 's4'" in result.output and "4.png" in result.output and "not found" in result.output
    assert not (tmp_path / "run").exists()


def test_predict_writes_what_score_reads(tiny_model, data, tmp_path):
    output = tmp_path / "preds.jsonl"
    result = runner.invoke(app, [
        "predict", "--model", str(tiny_model), "--dataset", "jsonl", "--data-dir", str(data.annotations),
        "--image-root", str(data.images), "--split", "test", "--output", str(output), "--batch-size", "2",
        "--max-new-tokens", "8", "--use-cpu",
    ])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in records] == ["s4", "s5"]
    for record in records:
        assert set(record) == {"id", "completion", "frame", "image_size", "input_size"}
        assert record["frame"] == "resized" and record["image_size"] == [56, 56] and record["input_size"] == [56, 56]
        assert isinstance(record["completion"], str)

    from medground_eval.evaluation.scorer import score_files

    scored = score_files(output, dataset="jsonl", annotations=data.annotations, split="test")
    assert scored.to_dict()["n"] == 2
