"""Contract tests: each adapter called exactly as its engine calls it, compared with the core reward."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medground_eval.integrations import easyr1, engines, verl
from medground_eval.integrations.engines import (
    REWARD_CONFIG_ENV,
    engine_command,
    load_reward,
    reward_from_env,
)
from medground_eval.integrations.labels import BrokenLabel, LabelError, label_columns, read_label, sample_label
from medground_eval.integrations.openrlhf import response_text
from medground_eval.integrations.options import TrainOptions
from medground_eval.integrations.reward_config import load_engine_reward
from medground_eval.rewards import SpatialSemanticReward
from medground_eval.structures import Sample
from medground_eval.training.run import launch_engine

COMPLETIONS = [
    '<think>The left base [100, 500, 300, 700] is dense.</think>'
    '<answer>[{"bbox_2d": [100, 500, 300, 700], "label": "left pleural effusion"}]</answer>',
    '<think>Heart at [400, 300, 700, 600].</think><answer>[{"bbox_2d": [400, 300, 700, 600], "label": "cardiomegaly"}]</answer>',
    "<answer>[120, 480, 320, 720]</answer>",
    "no boxes at all",
]
LABELS = [
    {"id": "a", "solution": [[100, 500, 300, 700]], "phrase": "left pleural effusion", "image_size": [1000, 800],
     "frame": "pixel"},
    {"id": "b", "solution": [[380, 280, 720, 640]], "phrase": "enlarged heart", "image_size": [1000, 800],
     "frame": "pixel"},
    {"id": "c", "solution": [[100, 500, 300, 700], [600, 500, 800, 700]], "phrase": "bilateral effusions",
     "image_size": [1000, 800], "frame": "norm1000"},
    {"id": "d", "solution": [10, 10, 50, 50], "phrase": "nodule", "image_size": [64, 64]},
]
SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
USER = "<|im_start|>user\n<|vision_start|>{pads}<|vision_end|>Locate the finding.<|im_end|>\n<|im_start|>assistant\n"


def qwen_query(completion: str, pads: int) -> tuple[str, str]:
    """(query, prompt) as OpenRLHF 0.11 builds them for Qwen2.5-VL: the query's image placeholder is expanded."""
    prompt = SYSTEM + USER.format(pads="<|image_pad|>")
    query = SYSTEM + USER.format(pads="<|image_pad|>" * pads) + completion + "<|im_end|>" + "<|endoftext|>" * 3
    return query, prompt


def core(reward: SpatialSemanticReward, completions=COMPLETIONS, labels=LABELS):
    """The core breakdown with its total as the adapters hand it to the engines: divided by ``max_total``."""
    breakdown = reward.breakdown(completions, **label_columns([read_label(label) for label in labels]))
    return dataclasses.replace(breakdown, total=breakdown.total / reward.max_total)


@pytest.fixture
def lexical_config(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "reward.json"
    path.write_text(json.dumps({"encoder": "lexical", "weights": [1, 2, 0.5]}))
    monkeypatch.setenv(REWARD_CONFIG_ENV, str(path))
    return path


def load_openrlhf_file():
    """Load the adapter as OpenRLHF 0.11 does: by file path, under the module name "reward_func"."""
    path = Path(engines.__file__).with_name("openrlhf.py")
    spec = importlib.util.spec_from_file_location("reward_func", str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openrlhf_reward_file_matches_core(lexical_config):
    import torch

    module = load_openrlhf_file()
    expected = core(load_reward(lexical_config))
    for i, (completion, label) in enumerate(zip(COMPLETIONS, LABELS)):
        query, prompt = qwen_query(completion, pads=300)
        out = module.reward_func([query], [prompt], [json.dumps(label)])
        assert set(out) == {"rewards", "scores", "extra_logs"}
        assert isinstance(out["rewards"], torch.Tensor) and out["rewards"].shape == (1,)
        # OpenRLHF 0.11 wraps each sample's value as torch.tensor([value]): it must stay one value per sample.
        assert torch.tensor([out["rewards"]]).shape == (1,)
        assert out["rewards"].item() == pytest.approx(expected.total[i], abs=1e-6)
        assert out["scores"].item() == pytest.approx(expected.total[i], abs=1e-6)
        for name in ("format", "iou", "spatial", "semantic"):
            assert out["extra_logs"][name].item() == pytest.approx(getattr(expected, name)[i], abs=1e-6)
    assert expected.format[0] == 1.0  # the end-of-turn tokens must not cost the format reward


def test_openrlhf_reward_file_in_threads(lexical_config):
    module = load_openrlhf_file()
    expected = core(load_reward(lexical_config)).total
    calls = [qwen_query(COMPLETIONS[i % 4], pads=50 + i) + (json.dumps(LABELS[i % 4]),) for i in range(32)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda c: module.reward_func([c[0]], [c[1]], [c[2]])["rewards"].item(), calls))
    np.testing.assert_allclose(results, [expected[i % 4] for i in range(32)], atol=1e-6)


def test_openrlhf_broken_label_raises(lexical_config):
    module = load_openrlhf_file()
    query, prompt = qwen_query(COMPLETIONS[0], pads=5)
    with pytest.raises(BrokenLabel, match="'solution'"):  # past OpenRLHF's `except Exception` (test_engine_code.py)
        module.reward_func([query], [prompt], [json.dumps({"phrase": "x", "solution": [[5, 5, 1, 1]]})])


@pytest.mark.parametrize(
    ("query", "prompt", "response"),
    [
        ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
         "<|start_header_id|>assistant<|end_header_id|>\n\n<answer>[1, 2, 3, 4]</answer><|eot_id|>", "",
         "<answer>[1, 2, 3, 4]</answer>"),
        ("Question: where? <answer>[1, 2, 3, 4]</answer></s>", "Question: where? ", "<answer>[1, 2, 3, 4]</answer>"),
        ("<answer>[1, 2, 3, 4]</answer>", "another prompt", "<answer>[1, 2, 3, 4]</answer>"),
        ("<|im_start|>assistant\n<|box_start|>(1,2),(3,4)<|box_end|><|im_end|>", "", "<|box_start|>(1,2),(3,4)<|box_end|>"),
    ],
)
def test_response_text_dialects(query, prompt, response):
    assert response_text(query, prompt) == response


@settings(max_examples=200, deadline=None)
@given(response=st.text(st.characters(blacklist_characters="<|"), max_size=80), pads=st.integers(0, 50))
def test_response_text_isolates_any_response(response, pads):
    query, prompt = qwen_query(response, pads)
    assert response_text(query, prompt) == response.rstrip()


def test_verl_keyword_call_matches_core(lexical_config):
    expected = core(load_reward(lexical_config))
    for i, (completion, label) in enumerate(zip(COMPLETIONS, LABELS)):
        for ground_truth in (json.dumps(label), label):
            out = verl.compute_score(
                data_source="medground/jsonl", solution_str=completion, ground_truth=ground_truth,
                extra_info={"split": "train", "index": i, "label": json.dumps(label)},
            )
            assert out["score"] == pytest.approx(expected.total[i], abs=1e-6)
            assert {k: out[k] for k in ("format", "iou", "spatial", "semantic")} == pytest.approx(
                {k: getattr(expected, k)[i] for k in ("format", "iou", "spatial", "semantic")}, abs=1e-6)
            assert all(isinstance(v, float) for v in out.values())


def test_verl_label_without_image_size_in_pixel_frame(lexical_config):
    label = {"solution": [10, 10, 50, 50], "phrase": "nodule"}
    out = verl.compute_score(data_source="x", solution_str="<think>a</think><answer>[10, 10, 50, 50]</answer>",
                             ground_truth=json.dumps(label))
    assert out["iou"] == 1.0 and out["format"] == 1.0


def test_easyr1_batch_call_matches_core(lexical_config):
    expected = core(load_reward(lexical_config))
    inputs = [{"response": c, "response_length": len(c), "ground_truth": json.dumps(label)}
              for c, label in zip(COMPLETIONS, LABELS)]
    assert easyr1.REWARD_TYPE == "batch"
    out = easyr1.compute_score(inputs)
    assert [o["overall"] for o in out] == pytest.approx(expected.total.tolist(), abs=1e-6)
    assert [o["iou"] for o in out] == pytest.approx(expected.iou.tolist(), abs=1e-6)
    with pytest.raises(TypeError, match="REWARD_TYPE = 'batch'"):
        easyr1.compute_score(inputs[0])


def test_default_config_uses_minilm(monkeypatch):
    monkeypatch.delenv(REWARD_CONFIG_ENV, raising=False)
    reward = reward_from_env()
    assert reward is reward_from_env() and reward.normalize
    expected = core(SpatialSemanticReward(), COMPLETIONS[:2], LABELS[:2])
    outs = [verl.compute_score(data_source="x", solution_str=c, ground_truth=label)
            for c, label in zip(COMPLETIONS, LABELS[:2])]
    assert [o["score"] for o in outs] == pytest.approx(expected.total.tolist(), abs=1e-5)
    assert outs[0]["semantic"] > outs[1]["semantic"] > 0  # MiniLM: "left pleural effusion" matches itself best


def test_reward_config_files(tmp_path):
    toml = tmp_path / "r.toml"
    toml.write_text('preset = "paper"\nencoder = "lexical"\n')
    paper = load_reward(toml)
    assert paper.spatial.mode == "threshold" and paper.__name__ == "medground_r1_reward"
    bad = tmp_path / "bad.json"
    bad.write_text('{"encoder": "lexical", "wieghts": [1, 1, 1]}')
    with pytest.raises(ValueError, match=r"bad.json: unknown key\(s\) \['wieghts'\]"):
        load_reward(bad)
    bad.write_text('{"weights": [1, 1]}')
    with pytest.raises(ValueError, match="bad.json: weights"):
        load_reward(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        load_reward(bad)
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_reward(tmp_path / "missing.toml")


def test_sample_label_round_trip():
    sample = Sample(id="s1", phrase="effusion", boxes=[[1, 2, 30, 40]], image_size=(100, 80))
    label = sample_label(sample, "qwen2.5-vl")
    assert label == {"id": "s1", "solution": [[1.0, 2.0, 30.0, 40.0]], "phrase": "effusion",
                     "image_size": [100, 80], "frame": "qwen2.5-vl"}
    assert read_label(json.dumps(label)) == {**label, "image_size": [100.0, 80.0]}
    with pytest.raises(LabelError, match="image_size is None"):
        sample_label(Sample(id="s2", phrase="x", boxes=[[1, 2, 3, 4]]), "qwen2.5-vl")
    with pytest.raises(ValueError, match="qwen9"):
        sample_label(sample, "qwen9")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ({"phrase": "x"}, "field 'solution' missing"),
        ({"solution": [[1, 2, 3, 4]], "phrase": 3}, "'phrase' = 3: expected a string"),
        ({"solution": [[1, 2, 3]], "phrase": "x"}, "'solution' = \\[\\[1, 2, 3\\]\\]"),
        ({"solution": [[1, 2, float("nan"), 4]], "phrase": "x"}, "'solution'"),
        ({"solution": [], "phrase": "x"}, "'solution' = \\[\\]"),
        ({"solution": [[1, 2, 3, 4]], "phrase": "x", "frame": "nope"}, "'frame'.*nope"),
        ({"solution": [[1, 2, 3, 4]], "phrase": "x", "frame": "norm1000"}, "'image_size' = None"),
        ({"solution": [[1, 2, 3, 4]], "phrase": "x", "image_size": [0, 5]}, "'image_size' = \\[0, 5\\]"),
    ],
)
def test_read_label_errors_name_the_field(value, message):
    with pytest.raises(LabelError, match=message):
        read_label(value)


def write_jsonl_dataset(tmp_path: Path) -> Path:
    """Five 512 x 512 samples (3 train, 2 test) with their image files under ``tmp_path / "img"``."""
    from PIL import Image

    rows = [
        {"id": f"r{i}", "phrase": f"finding {i}", "boxes": [[10, 10, 50 + i, 60]], "image_size": [512, 512],
         "image": f"img/{i}.png", "split": "train" if i < 3 else "test"}
        for i in range(5)
    ]
    (tmp_path / "img").mkdir(exist_ok=True)
    for row in rows:
        Image.new("L", (512, 512)).save(tmp_path / row["image"])
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("backend", ["openrlhf", "verl", "easyr1"])
def test_launch_dry_run_prints_command_and_writes_nothing(backend, tmp_path, capsys):
    options = TrainOptions(model="Qwen/Qwen2.5-VL-3B-Instruct", data_dir=str(write_jsonl_dataset(tmp_path)),
                           image_root=str(tmp_path), output_dir=str(tmp_path / "run"), use_lora=backend != "openrlhf")
    assert launch_engine(backend, options, dry_run=True) == 0
    printed = capsys.readouterr().out
    assert str(Path(engines.__file__).with_name(f"{backend}.py")) in printed
    assert f"{REWARD_CONFIG_ENV}={tmp_path / 'run' / 'reward_config.json'}" in printed
    assert "defaults of Qwen2.5-VL" in printed  # a hub name: the processor cannot be read, and the plan says so
    # 512 x 512 images: 18 x 18 patches of 28 pixels = 324 image tokens (the largest prompt), rounded up to 64
    assert "324 image tokens" in printed
    flags = {
        "openrlhf": ("--reward.remote_url", "--rollout.n_samples_per_prompt 8", "--algo.kl.init_coef 0.04",
                     "--actor.adam.lr 1e-06", "--rollout.max_new_tokens 256", "--data.label_key label",
                     "--data.image_key images", "--rollout.batch_size 8 ", "--train.batch_size 64 ",
                     "--vllm.num_engines 8 ", "--eval.steps 500 "),
        "verl": ("reward.custom_reward_function.name=compute_score", "actor_rollout_ref.rollout.n=8",
                 "actor_rollout_ref.actor.kl_loss_coef=0.04", "algorithm.adv_estimator=grpo",
                 "data.train_files=", "train.parquet", "data.val_files=", "test.parquet",
                 "actor_rollout_ref.model.lora_rank=16", "trainer.test_freq=500 "),
        "easyr1": ("worker.rollout.n=8", "algorithm.kl_coef=0.04", "data.format_prompt=null",
                   "worker.actor.model.lora.rank=16", "trainer.val_freq=500 ", "compute_score"),
    }[backend]
    for flag in flags:
        assert flag in printed
    assert not (tmp_path / "run").exists()


def verl_overrides(options: TrainOptions) -> dict[str, str]:
    command = engine_command("verl", options)
    keys = [arg.split("=", 1)[0] for arg in command[3:]]
    assert len(keys) == len(set(keys)), "a Hydra key set twice"
    return dict(arg.split("=", 1) for arg in command[3:])


def test_verl_command_sets_what_verl_requires():
    """verl 0.9 has no default for the rollout engine (``???``), refuses a train batch smaller than
    ``ppo_mini_batch_size`` (default 256), and asserts that the micro-batch sizes are set."""
    overrides = verl_overrides(TrainOptions(model="m", per_device_train_batch_size=4, gradient_accumulation_steps=2))
    assert overrides["actor_rollout_ref.rollout.name"] == "vllm"
    assert overrides["data.train_batch_size"] == overrides["actor_rollout_ref.actor.ppo_mini_batch_size"] == "8"
    for key in ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
                "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu",
                "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu"):
        assert overrides[key] == "1"
    custom = verl_overrides(TrainOptions(model="m", extra={"engine_args": [
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4", "+trainer.extra=1", "trainer.n_gpus_per_node=8"]}))
    assert custom["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"] == "4"  # replaced, not repeated
    assert custom["+trainer.extra"] == "1" and custom["trainer.n_gpus_per_node"] == "8"


def test_openrlhf_refuses_lora():
    """OpenRLHF 0.11's --ds.lora.* serves SFT / RM / DPO only; Ray + vLLM PPO does not support LoRA."""
    with pytest.raises(ValueError, match="use_lora = True: OpenRLHF's Ray \\+ vLLM PPO does not support LoRA"):
        engine_command("openrlhf", TrainOptions(model="m", use_lora=True))


@pytest.mark.parametrize(("model_type", "frame"), [("qwen2_vl", "norm1000"), ("qwen3_vl", "norm1000"),
                                                   ("qwen2_5_vl", "qwen2.5-vl")])
def test_engine_labels_use_the_model_frame(model_type, frame, tmp_path, monkeypatch):
    """As with TRL, the frame of a local checkpoint comes from its config, not from the --frame default."""
    from transformers import Qwen2VLImageProcessorPil

    monkeypatch.setattr(engines, "engine_installed", lambda backend: False)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": model_type}))
    Qwen2VLImageProcessorPil().save_pretrained(model)
    options = TrainOptions(model=str(model), data_dir=str(write_jsonl_dataset(tmp_path)), image_root=str(tmp_path),
                           output_dir=str(tmp_path / "run"), eval_split=None, frame="pixel")
    assert launch_engine("verl", options, dry_run=False) == 2
    rows = pq.read_table(tmp_path / "run/data/verl/train.parquet").to_pylist()
    assert {read_label(row["reward_model"]["ground_truth"])["frame"] for row in rows} == {frame}
    assert json.loads((tmp_path / "run/reward_config.json").read_text())["frame"] == frame


def test_engine_refuses_what_it_cannot_size(tmp_path):
    """A model type whose processor the prompt budget does not know, a checkpoint without its processor file, and
    pixel-limit overrides (no engine's processor takes them) stop the launch with the reason."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llava"}))
    options = TrainOptions(model=str(model), data_dir=str(write_jsonl_dataset(tmp_path)), image_root=str(tmp_path),
                           output_dir=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="model_type 'llava'"):
        launch_engine("verl", options, dry_run=True)
    # a model type with a frame but another processor geometry (PaliGemma's fixed resolution) is no Qwen-VL either
    (model / "config.json").write_text(json.dumps({"model_type": "paligemma"}))
    with pytest.raises(ValueError, match="model_type 'paligemma'"):
        launch_engine("verl", options, dry_run=True)
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    with pytest.raises(ValueError, match="preprocessor_config.json"):
        launch_engine("verl", options, dry_run=True)
    with pytest.raises(ValueError, match="extra.max_pixels = 1000000.*preprocessor_config.json"):
        launch_engine("openrlhf", dataclasses.replace(options, extra={"max_pixels": 1000000}), dry_run=True)


def test_launch_without_engine_writes_files_and_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(engines, "engine_installed", lambda backend: False)
    options = TrainOptions(model="m", data_dir=str(write_jsonl_dataset(tmp_path)), image_root=str(tmp_path),
                           output_dir=str(tmp_path / "run"))
    assert launch_engine("openrlhf", options, dry_run=False) == 2
    captured = capsys.readouterr()
    assert "pip install 'openrlhf" in captured.err and "train_ppo_ray" in captured.out
    train = (tmp_path / "run/data/openrlhf/train.jsonl").read_text().splitlines()
    assert len(train) == 3 and len((tmp_path / "run/data/openrlhf/test.jsonl").read_text().splitlines()) == 2
    record = json.loads(train[0])
    assert read_label(record["label"])["frame"] == "qwen2.5-vl"
    assert record["images"] == [str(tmp_path / "img/0.png")]  # absolute: Ray workers have another working directory
    config = json.loads((tmp_path / "run/reward_config.json").read_text())
    data = tmp_path / "run/data/openrlhf"
    assert config == {"weights": [1.0, 1.0, 1.0], "spatial_mode": "iou", "encoder": "minilm", "anatomy_weight": 0.5,
                      "frame": "qwen2.5-vl", "normalize": True,
                      "label_files": [str(data / "train.jsonl"), str(data / "test.jsonl")]}
    assert load_reward(tmp_path / "run/reward_config.json").weights == (1.0, 1.0, 1.0)


def test_broken_label_file_fails_when_the_reward_loads(tmp_path, monkeypatch):
    """The reward config names the data files; a label broken after conversion stops the adapter when the engine
    loads it, naming the file, the line and the field."""
    monkeypatch.setattr(engines, "engine_installed", lambda backend: False)
    options = TrainOptions(model="m", data_dir=str(write_jsonl_dataset(tmp_path)), image_root=str(tmp_path),
                           output_dir=str(tmp_path / "run"), semantic_encoder="lexical")
    assert launch_engine("easyr1", options, dry_run=False) == 2
    data = tmp_path / "run/data/easyr1/test.jsonl"
    lines = data.read_text().splitlines()
    record = json.loads(lines[1])
    record["answer"] = json.dumps({**json.loads(record["answer"]), "solution": [[50, 50, 10, 10]]})
    data.write_text("\n".join([lines[0], json.dumps(record)]) + "\n")
    with pytest.raises(LabelError, match=r"test.jsonl: line 2 field 'answer': label field 'solution'"):
        load_engine_reward(tmp_path / "run/reward_config.json")


def test_cli_train_easyr1_dry_run(tmp_path):
    """`medground-eval train --backend easyr1 --dry-run` exists and maps --gpus / --nodes / --eval-steps."""
    from typer.testing import CliRunner

    from medground_eval.cli import app

    result = CliRunner().invoke(app, [
        "train", "--backend", "easyr1", "--dry-run", "--model", "Qwen/Qwen2.5-VL-7B-Instruct",
        "--data-dir", str(write_jsonl_dataset(tmp_path)), "--image-root", str(tmp_path),
        "--output-dir", str(tmp_path / "run"), "--gpus", "8", "--nodes", "2", "--eval-steps", "10"])
    assert result.exit_code == 0, result.output
    for flag in ("verl.trainer.main", "trainer.nnodes=2", "trainer.n_gpus_per_node=8", "trainer.val_freq=10 "):
        assert flag in result.output
    assert not (tmp_path / "run").exists()


def test_engine_command_errors():
    with pytest.raises(ValueError, match="backend = 'trl'"):
        engine_command("trl", TrainOptions(model="m"))
    with pytest.raises(ValueError, match="'model' is empty"):
        engine_command("verl", TrainOptions())
    command = engine_command("verl", TrainOptions(model="m", extra={"engine_args": ["trainer.n_gpus_per_node=4"]}))
    assert command[-1] == "trainer.n_gpus_per_node=4" and "trainer.n_gpus_per_node=8" not in command
    with pytest.raises(ValueError, match="rollout_tensor_parallel = 3 does not divide gpus = 8"):
        engine_command("openrlhf", TrainOptions(model="m", rollout_tensor_parallel=3))
    with pytest.raises(ValueError, match="60 completions per step .* do not divide over 16 GPUs"):
        engine_command("verl", TrainOptions(model="m", nodes=2, per_device_train_batch_size=6, num_generations=10))
    with pytest.raises(ValueError, match="engine_args"):
        engine_command("verl", TrainOptions(model="m", extra={"engine_args": "x"}))


def test_options_an_engine_does_not_take_are_reported_not_dropped(tmp_path, capsys):
    options = TrainOptions(model="Qwen/Qwen2.5-VL-3B-Instruct", data_dir=str(write_jsonl_dataset(tmp_path)),
                           image_root=str(tmp_path), output_dir=str(tmp_path / "run"), max_steps=10,
                           resume_from_checkpoint="last", use_cpu=True)
    assert launch_engine("openrlhf", options, dry_run=True) == 0
    captured = capsys.readouterr()
    assert "openrlhf does not take option max_steps = 10" in captured.err and "use_cpu = True" in captured.err
    assert "--ckpt.load_enable" in captured.out
    assert launch_engine("verl", options, dry_run=True) == 0
    captured = capsys.readouterr()
    assert "max_steps" not in captured.err and "verl does not take option use_cpu" in captured.err
    assert "trainer.resume_mode=auto" in captured.out and "trainer.total_training_steps=10" in captured.out
    with pytest.raises(ValueError, match="OpenRLHF resumes from the latest checkpoint"):
        engine_command("openrlhf", dataclasses.replace(options, resume_from_checkpoint="some/folder"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openrlhf", "verl"])
def test_after_training_the_checkpoint_is_scored_on_the_held_out_split(backend, tmp_path, monkeypatch, capsys):
    """When the engine exits 0 and left a Hugging Face checkpoint (OpenRLHF: ``--ckpt.output_dir``; verl:
    ``global_step_N/actor/huggingface`` from ``save_contents`` with ``hf_model``), the same launch predicts and
    scores the held-out split with it. The engine run is a stub that writes a tiny Qwen2.5-VL there."""
    import subprocess

    from tiny_qwen import build_tiny_qwen

    model = build_tiny_qwen(tmp_path / "model")
    options = TrainOptions(model=str(model), data_dir=str(write_jsonl_dataset(tmp_path)), image_root=str(tmp_path),
                           output_dir=str(tmp_path / "run"), semantic_encoder="lexical", max_completion_length=8)
    runs = []

    def engine_run(command, env, check):
        runs.append((command, env))
        target = tmp_path / ("run/model" if backend == "openrlhf" else "run/checkpoints/global_step_4/actor/huggingface")
        build_tiny_qwen(target)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(engines, "engine_installed", lambda backend: True)
    monkeypatch.setattr(engines.subprocess, "run", engine_run)
    assert launch_engine(backend, options) == 0
    (command, env), = runs
    assert env[REWARD_CONFIG_ENV] == str(tmp_path / "run/reward_config.json")
    predictions = [json.loads(line) for line in (tmp_path / "run/eval_predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == ["r3", "r4"] and predictions[0]["frame"] == "resized"
    metrics = json.loads((tmp_path / "run/eval_metrics.json").read_text())
    assert "held-out metrics" in capsys.readouterr().out and metrics
