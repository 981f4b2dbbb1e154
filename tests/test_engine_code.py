"""The printed engine runs checked against the engines' own code: OpenRLHF 0.11.2 and verl 0.9.1 as installed by
`make test` (their argument parser, config composition and validation, reward loaders and reward managers), and a
dataclass copy of EasyR1's configuration (tests/easyr1_config.py, EasyR1 commit b44b311b).

Nothing here is skipped in CI (tests/engine_code.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import runpy
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from engine_code import require_engine

from medground_eval.integrations import engines
from medground_eval.integrations.engines import (
    REWARD_CONFIG_ENV,
    engine_command,
    plan_engine,
)
from medground_eval.integrations.labels import read_label
from medground_eval.integrations.options import TrainOptions
from medground_eval.integrations.reward_config import load_engine_reward
from medground_eval.training.run import launch_engine

COMPLETION = ('<think>Dense left base [10, 10, 60, 60].</think>'
              '<answer>[{"bbox_2d": [10, 10, 60, 60], "label": "finding 0"}]</answer>')


def write_dataset(tmp_path: Path, sizes=((512, 512),) * 5) -> Path:
    """Samples r0.. (the first three train, the rest test) with image files of ``sizes`` under tmp_path/img."""
    from PIL import Image

    (tmp_path / "img").mkdir(exist_ok=True)
    rows = []
    for i, (w, h) in enumerate(sizes):
        Image.new("L", (w, h)).save(tmp_path / f"img/{i}.png")
        rows.append({"id": f"r{i}", "phrase": f"finding {i}", "boxes": [[10, 10, 50 + i, 60]], "image_size": [w, h],
                     "image": f"img/{i}.png", "split": "train" if i < 3 else "test"})
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tiny_checkpoint(path: Path, *, model_type: str = "qwen2_5_vl", min_pixels: int = 3136,
                    max_pixels: int = 200704) -> Path:
    """A checkpoint folder with the files the launch reads: config.json and a Qwen2-VL image processor whose
    pixel limits are not the defaults."""
    from transformers import Qwen2VLImageProcessorPil

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": model_type}))
    Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels).save_pretrained(path)
    return path


def options_for(tmp_path: Path, **changes) -> TrainOptions:
    settings = dict(model=str(tiny_checkpoint(tmp_path / "model")), data_dir=str(write_dataset(tmp_path)),
                    image_root=str(tmp_path), output_dir=str(tmp_path / "run"), semantic_encoder="lexical")
    settings.update(changes)
    return TrainOptions(**settings)


# --- OpenRLHF 0.11.2 -------------------------------------------------------------------------------------------


class _Parsed(Exception):
    """Raised by the stubbed vLLM engine factory with OpenRLHF's parsed, validated arguments."""

    def __init__(self, args):
        super().__init__("parsed")
        self.parsed = args


def parse_openrlhf(command: list[str], monkeypatch) -> types.SimpleNamespace:
    """Run OpenRLHF's own ``openrlhf/cli/train_ppo_ray.py`` as ``__main__`` on ``command``: its argparse parser,
    ``hierarchize`` and every check of its ``__main__`` block and of ``train()`` up to the creation of the vLLM
    engines (which needs GPUs) run for real; Ray's cluster calls and the GPU actor modules are stubbed."""
    import ray
    import ray.util.placement_group  # noqa: F401  (the module; ray.util's attribute of that name is the function)

    pg_module = sys.modules["ray.util.placement_group"]

    require_engine("openrlhf.utils.config")
    import openrlhf.utils

    def create_vllm_engines(*args, **kwargs):
        raise _Parsed(strategy.args)

    strategy = types.SimpleNamespace(print=lambda *a: None, args=None)

    def get_strategy(args):
        strategy.args = args
        return strategy

    stubs = {
        "openrlhf.trainer.ray": types.SimpleNamespace(create_vllm_engines=create_vllm_engines),
        "openrlhf.trainer.ray.launcher": types.SimpleNamespace(
            RayActorGroup=None, ReferenceModelActor=None, RewardModelActor=None),
        "openrlhf.trainer.ray.ppo_actor": types.SimpleNamespace(PolicyModelActor=None),
        "openrlhf.trainer.ray.ppo_critic": types.SimpleNamespace(CriticModelActor=None),
    }
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(openrlhf.utils, "get_strategy", get_strategy)
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "get", lambda *a, **k: None)
    monkeypatch.setattr(pg_module, "placement_group",
                        lambda bundles, strategy: types.SimpleNamespace(ready=lambda: None, bundles=bundles))
    assert command[1:3] == ["-m", "openrlhf.cli.train_ppo_ray"]
    monkeypatch.setattr(sys, "argv", ["train_ppo_ray.py", *command[3:]])
    with pytest.raises(_Parsed) as parsed:
        runpy.run_module("openrlhf.cli.train_ppo_ray", run_name="__main__")
    return parsed.value.parsed


@pytest.mark.parametrize(("nodes", "gpus"), [(1, 8), (2, 8)])
def test_openrlhf_parses_the_printed_command(nodes, gpus, tmp_path, monkeypatch, capsys):
    """The printed command passes OpenRLHF 0.11.2's parser and checks (``train_ppo_ray.py``), including the
    colocate-all assertion ``actor.num_nodes * actor.num_gpus_per_node == vllm.num_engines * tensor_parallel_size``
    of ``train()``; each setting the issue names is in the parsed arguments."""
    options = options_for(tmp_path, nodes=nodes, gpus=gpus, eval_steps=20, save_steps=100)
    plan, _ = plan_engine("openrlhf", options)
    args = parse_openrlhf(plan.command, monkeypatch)
    out = tmp_path / "run"
    assert args.vllm.num_engines == nodes * gpus and args.vllm.tensor_parallel_size == 1  # a rollout engine per GPU
    assert (args.actor.num_nodes, args.actor.num_gpus_per_node) == (args.ref.num_nodes, args.ref.num_gpus_per_node)
    assert (args.actor.num_nodes, args.actor.num_gpus_per_node) == (nodes, gpus)
    assert args.train.colocate_all and args.vllm.enable_sleep and args.ds.enable_sleep
    assert args.data.max_len == plan.budget.max_prompt_length + args.rollout.max_new_tokens
    assert args.data.max_len - args.rollout.max_new_tokens >= plan.budget.largest  # the executor's max_prompt_length
    assert args.eval.dataset == str(out / "data/openrlhf/test.jsonl") and args.eval.steps == 20
    assert args.ckpt.save_hf and args.ckpt.output_dir == str(out / "model") and args.ckpt.save_steps == 100
    assert args.ckpt.path == str(out / "checkpoints")
    assert args.logger.tensorboard_dir == str(out / "tensorboard") and args.logger.wandb.key is None
    assert args.reward.remote_url == [str(engines.adapter_path("openrlhf"))]
    assert all(Path(p).is_absolute() for p in (args.data.prompt_dataset, args.ckpt.path, args.reward.remote_url[0]))
    assert args.algo.advantage.estimator == "group_norm" and args.algo.kl.use_loss and args.algo.kl.estimator == "k3"
    assert tuple(args.algo.dynamic_filtering_range) == (0, 1)  # our scores are normalised into it


def openrlhf_rollout(executor, prompt: str, label: str, response: str):
    """One rollout through OpenRLHF's ``SingleTurnAgentExecutor.execute``, with a text tokenizer and a stub vLLM
    engine that answers ``response``: the query our reward gets is decoded by OpenRLHF itself."""
    from medground_eval.tiny_model import build_tokenizer

    tokenizer = build_tokenizer()

    class Engine:
        async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
            ids = tokenizer(response + "<|im_end|>", add_special_tokens=False)["input_ids"]
            output = types.SimpleNamespace(token_ids=ids, finish_reason="stop", logprobs=None)
            return types.SimpleNamespace(outputs=[output])

    params = types.SimpleNamespace(max_tokens=256, logprobs=None)
    return asyncio.run(executor.execute(prompt, label, params, 4096, tokenizer, Engine()))


def test_openrlhf_loads_our_reward_file_and_scores_a_rollout(tmp_path, monkeypatch):
    """OpenRLHF's own loader (``SingleTurnAgentExecutor(remote_rm_url=<file>.py)``, ``openrlhf/utils/agent.py``)
    imports the adapter and scores a rollout; a broken label stops the rollout with its reason instead of the
    reward of None that the executor's ``except Exception`` leaves for other errors."""
    agent = require_engine("openrlhf.utils.agent")
    from medground_eval.integrations.labels import BrokenLabel

    options = options_for(tmp_path)
    monkeypatch.setattr(engines, "engine_installed", lambda backend: False)
    assert launch_engine("openrlhf", options) == 2
    config = tmp_path / "run/reward_config.json"
    monkeypatch.setenv(REWARD_CONFIG_ENV, str(config))
    executor = agent.SingleTurnAgentExecutor(remote_rm_url=str(engines.adapter_path("openrlhf")))
    record = json.loads((tmp_path / "run/data/openrlhf/train.jsonl").read_text().splitlines()[0])
    prompt = ("<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * 40 + "<|vision_end|>Locate finding 0."
              "<|im_end|>\n<|im_start|>assistant\n")
    out = openrlhf_rollout(executor, prompt, record["label"], COMPLETION)
    expected = load_engine_reward(config).score([COMPLETION], [record["label"]])
    assert out["reward"].item() == pytest.approx(expected.score[0], abs=1e-6)
    assert out["scores"].item() == pytest.approx(expected.score[0], abs=1e-6)
    assert 0.0 < out["scores"].item() <= 1.0 and out["extra_logs"]["iou"].item() > 0.5
    assert out["extra_logs"]["total_raw"].item() == pytest.approx(expected.score[0] * 3.5, abs=1e-5)
    broken = json.dumps({"solution": [[5, 5, 1, 1]], "phrase": "x"})
    with pytest.raises(BrokenLabel, match="'solution'.*x2 >= x1"):
        openrlhf_rollout(executor, prompt, broken, COMPLETION)


# --- verl 0.9.1 ------------------------------------------------------------------------------------------------


def compose_verl(command: list[str]):
    """verl's own Hydra config (``verl/trainer/config/ppo_trainer.yaml``) composed with the printed overrides."""
    verl = require_engine("verl")
    from hydra import compose, initialize_config_dir

    assert command[1:3] == ["-m", "verl.trainer.main_ppo"]
    with initialize_config_dir(config_dir=os.path.join(os.path.dirname(verl.__file__), "trainer", "config"),
                               version_base=None):
        return compose(config_name="ppo_trainer", overrides=command[3:])


@pytest.mark.parametrize(("nodes", "gpus"), [(1, 8), (2, 8)])
def test_verl_composes_and_validates_the_printed_command(nodes, gpus, tmp_path):
    """Composed with verl 0.9.1's config and passed through its ``validate_config`` (as ``main_ppo.main`` calls
    it, ``verl/utils/config.py``); each setting the issue names is in the composed config."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    options = options_for(tmp_path, nodes=nodes, gpus=gpus, eval_steps=20, save_steps=100)
    plan, _ = plan_engine("verl", options)
    config = compose_verl(plan.command)
    with pytest.warns(UserWarning, match="Disabled critic"):
        validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    out = tmp_path / "run"
    assert (config.trainer.nnodes, config.trainer.n_gpus_per_node) == (nodes, gpus)
    rollout = config.actor_rollout_ref.rollout
    assert rollout.name == "vllm" and rollout.tensor_model_parallel_size == 1
    assert rollout.prompt_length == config.data.max_prompt_length == plan.budget.max_prompt_length
    assert rollout.prompt_length >= plan.budget.largest and not config.data.filter_overlong_prompts
    assert config.data.truncation == "error"
    assert rollout.max_num_batched_tokens >= rollout.prompt_length + rollout.response_length
    assert config.trainer.test_freq == 20 and config.trainer.val_before_train
    assert config.data.val_files == str(out / "data/verl/test.parquet")
    assert "hf_model" in config.actor_rollout_ref.actor.checkpoint.save_contents
    assert config.trainer.default_local_dir == str(out / "checkpoints") and config.trainer.save_freq == 100
    assert list(config.trainer.logger) == ["console", "tensorboard"]
    assert plan.env["TENSORBOARD_DIR"] == str(out / "tensorboard")
    assert config.trainer.resume_mode == "disable"
    assert config.reward.custom_reward_function.path == str(engines.adapter_path("verl"))


def test_verl_lora_overrides_compose(tmp_path):
    """LoRA keys exist in verl 0.9.1's config (validation of a LoRA run imports vLLM, absent here)."""
    config = compose_verl(engine_command("verl", options_for(tmp_path, use_lora=True)))
    assert config.actor_rollout_ref.model.lora_rank == 16 and config.actor_rollout_ref.model.lora_alpha == 32


def test_verl_reward_manager_scores_our_parquet(tmp_path, monkeypatch):
    """verl 0.9.1's reward loop (``verl/trainer/ppo/reward.py`` ``load_reward_manager`` with the printed
    ``reward.custom_reward_function``, then the registered ``naive`` manager's ``run_single``) on rows of the
    parquet the launch wrote, with the response decoded by the manager itself."""
    require_engine("verl")
    import torch
    from tensordict import TensorDict
    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager

    from medground_eval.tiny_model import build_tokenizer

    options = options_for(tmp_path)
    monkeypatch.setattr(engines, "engine_installed", lambda backend: False)
    assert launch_engine("verl", options) == 2
    plan, _ = plan_engine("verl", options)
    monkeypatch.setenv(REWARD_CONFIG_ENV, str(plan.reward_config))
    config = compose_verl(plan.command)
    tokenizer = build_tokenizer()
    manager = load_reward_manager(config, tokenizer)
    rows = pq.read_table(tmp_path / "run/data/verl/train.parquet").to_pylist()
    responses = [COMPLETION, "<answer>[0, 0, 1, 1]</answer>", "no box"]
    scores = []
    for row, response in zip(rows, responses):
        ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        prompt = torch.zeros((1, 4), dtype=torch.long)
        batch = TensorDict({"prompts": prompt, "responses": torch.tensor([ids]),
                            "attention_mask": torch.ones((1, 4 + len(ids)), dtype=torch.long)}, batch_size=[1])
        non_tensor = {key: np.array([row[key]], dtype=object) for key in ("data_source", "reward_model", "extra_info")}
        data = DataProto(batch=batch, non_tensor_batch=non_tensor)
        result = manager.loop.run_until_complete(manager.run_single(data))  # the loop the manager was built on
        scores.append(result["reward_score"])
        assert set(result["reward_extra_info"]) >= {"format", "iou", "spatial", "semantic", "total_raw"}
    expected = load_engine_reward(plan.reward_config).score(
        responses, [row["reward_model"]["ground_truth"] for row in rows])
    np.testing.assert_allclose(scores, expected.score, atol=1e-6)
    assert scores[0] > max(scores[1:]) and all(0 <= s <= 1 for s in scores)
    assert rows[0]["images"][0] == {"image": str(tmp_path / "img/0.png"), "min_pixels": 3136, "max_pixels": 200704}


# --- EasyR1 (dataclass copy of its config, commit b44b311b) -----------------------------------------------------


@pytest.mark.parametrize(("nodes", "gpus"), [(1, 8), (2, 8)])
def test_easyr1_command_merges_into_its_config(nodes, gpus, tmp_path):
    """Merged as EasyR1's ``verl/trainer/main.py`` does (``OmegaConf.structured(PPOConfig())`` + command line),
    against a dataclass copy of its fields (tests/easyr1_config.py, EasyR1 commit b44b311b): every key exists,
    every value has its field's type; the removed ``worker.reward.reward_type`` is refused there too."""
    from easyr1_config import PPOConfig
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError

    options = options_for(tmp_path, nodes=nodes, gpus=gpus, eval_steps=20, save_steps=100)
    plan, _ = plan_engine("easyr1", options)
    assert plan.command[1:3] == ["-m", "verl.trainer.main"]
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PPOConfig()),
                                                 OmegaConf.from_dotlist(plan.command[3:])))
    out = tmp_path / "run"
    assert (config.trainer.nnodes, config.trainer.n_gpus_per_node) == (nodes, gpus)
    assert config.data.format_prompt is None and config.data.prompt_key == "problem"
    assert config.data.max_prompt_length == plan.budget.max_prompt_length >= plan.budget.largest
    assert not config.data.filter_overlong_prompts
    assert config.trainer.val_freq == 20 and config.trainer.val_before_train
    assert config.trainer.save_checkpoint_path == str(out / "checkpoints") and config.trainer.save_freq == 100
    assert list(config.trainer.logger) == ["console", "file"] and not config.trainer.find_last_checkpoint
    assert config.worker.rollout.tensor_parallel_size == 1 and config.worker.rollout.limit_images == 1
    assert config.worker.reward.reward_function == f"{engines.adapter_path('easyr1')}:compute_score"
    assert config.algorithm.filter_low == 0.01 and config.algorithm.filter_high == 0.99  # on our [0, 1] overall
    with pytest.raises(ConfigKeyError, match="reward_type"):
        OmegaConf.merge(OmegaConf.structured(PPOConfig()), OmegaConf.from_dotlist(["worker.reward.reward_type=batch"]))


# --- labels in the engine processor's frame ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["openrlhf", "verl", "easyr1"])
def test_labels_carry_the_engine_processors_input_size(backend, tmp_path, monkeypatch):
    """With a checkpoint whose processor sets max_pixels = 200704 (default 12845056), each label's input_size is
    the size transformers' own Qwen2-VL image processor of that checkpoint resizes the image to (image_grid_thw
    x patch size), after EasyR1's own rescaling into 262144..4194304 pixels for easyr1; and the prompt budget
    holds the processor's real prompt."""
    from PIL import Image
    from transformers import AutoImageProcessor

    from medground_eval.inference import load_processor
    from medground_eval.integrations.convert import easyr1_image_size

    sizes = [(2048, 2500), (300, 200), (512, 512), (1000, 3000), (64, 64)]
    model = tiny_checkpoint(tmp_path / "model")
    from medground_eval.tiny_model import build_tokenizer

    build_tokenizer().save_pretrained(model)
    options = TrainOptions(model=str(model), data_dir=str(write_dataset(tmp_path, sizes)), image_root=str(tmp_path),
                           output_dir=str(tmp_path / "run"), semantic_encoder="lexical")
    monkeypatch.setattr(engines, "engine_installed", lambda backend: False)
    assert launch_engine(backend, options) == 2
    folder = tmp_path / f"run/data/{backend}"
    if backend == "verl":
        labels = [row["reward_model"]["ground_truth"] for name in ("train", "test")
                  for row in pq.read_table(folder / f"{name}.parquet").to_pylist()]
    else:
        key = "label" if backend == "openrlhf" else "answer"
        labels = [json.loads(line)[key] for name in ("train", "test")
                  for line in (folder / f"{name}.jsonl").read_text().splitlines()]
    processor = AutoImageProcessor.from_pretrained(model)
    full = load_processor(model)
    plan, _ = plan_engine(backend, options)
    from medground_eval.prompts import render_prompt

    for i, (label, size) in enumerate(zip(map(read_label, labels), sizes)):
        seen = easyr1_image_size(size) if backend == "easyr1" else size
        image = Image.new("RGB", seen)
        _, grid_h, grid_w = processor(images=[image], return_tensors="np")["image_grid_thw"][0]
        assert label["input_size"] == [grid_w * 14, grid_h * 14], (size, label)
        assert label["frame"] == "qwen2.5-vl"
        text = full.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"},
                                          {"type": "text", "text": render_prompt(f"finding {i}", "chain-of-box")}]}],
            add_generation_prompt=True, tokenize=False)
        tokens = len(full(text=[text], images=[image], return_tensors="np")["input_ids"][0])
        assert tokens <= plan.budget.max_prompt_length
