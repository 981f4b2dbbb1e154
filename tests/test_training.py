"""train --stage sft, --stage grpo --init-from, evaluation during training and the zero-variance guard.

Tiny "test" size Qwen2.5-VL (tests/tiny_qwen.py) and 56-pixel synthetic images: every run here is a few steps.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("trl")

from tiny_qwen import build_tiny_qwen  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from medground_eval.cli import app  # noqa: E402
from medground_eval.datasets import get_loader  # noqa: E402
from medground_eval.frames import (
    get_frame,  # noqa: E402
    resolve_model_frame,  # noqa: E402
)
from medground_eval.inference import load_model_and_processor  # noqa: E402
from medground_eval.integrations.hf_data import build_dataset  # noqa: E402
from medground_eval.parsing import parse_completion  # noqa: E402
from medground_eval.rewards import FormatReward  # noqa: E402
from medground_eval.synth import SynthOptions, synthesize  # noqa: E402
from medground_eval.training.monitor import ZeroVarianceGuard  # noqa: E402
from medground_eval.training.sft import frame_boxes, sft_batch, sft_target  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen"))


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("synth")
    annotations = synthesize(root, SynthOptions(n=12, n_test=4, size=112, seed=0))
    return SimpleNamespace(root=root, annotations=annotations)


def _flags(tiny_model: Path, synth: SimpleNamespace, output: Path, *extra: str) -> list[str]:
    return ["train", "--model", str(tiny_model), "--dataset", "jsonl", "--data-dir", str(synth.annotations),
            "--image-root", str(synth.root), "--output-dir", str(output), "--use-cpu", "--template", "plain",
            "--max-completion-length", "12", "--semantic-encoder", "lexical", "--seed", "0", *extra]


# Targets --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("template", ["chain-of-box", "plain"])
def test_sft_target_parses_back_to_its_boxes_in_the_strict_format(template):
    frame = get_frame("pixel")
    boxes = [[10, 20, 30, 40], [50, 60, 70, 80]]
    target = sft_target("bilateral opacities", boxes, template, frame)
    parsed = parse_completion(target)
    assert [list(b.coords) for b in parsed.answer_boxes] == boxes
    assert all(b.label == "bilateral opacities" for b in parsed.answer_boxes)
    assert not parsed.problems and FormatReward()([target]) == [1.0]
    assert FormatReward(require_think_box=True)([target]) == [1.0 if template == "chain-of-box" else 0.0]
    assert sft_target("a", [[0.1234, 0.5, 0.25, 0.75]], "plain", get_frame("norm1")).count("0.123") == 1


def test_sft_targets_are_written_in_the_models_resized_frame(tiny_model, synth):
    """A 112-pixel image enters the tiny model at 56 pixels: the target is the half-size box, which the rewards'
    frame reads back as the true box."""
    _, processor = load_model_and_processor(tiny_model)
    frame = resolve_model_frame(tiny_model)
    samples = get_loader("jsonl")(synth.annotations, split="train").samples
    dataset = build_dataset(samples[:3], image_root=synth.root, frame=frame, template="plain")
    for row in dataset:
        assert row["input_size"] == [56, 56]
        written = frame_boxes(row["solution"], row["image_size"], row["input_size"], frame)
        np.testing.assert_allclose(written, np.asarray(row["solution"]) / 2)
        parsed = parse_completion(sft_target(row["phrase"], written, "plain", frame))
        back = frame.to_pixels([b.coords for b in parsed.answer_boxes], row["image_size"]).boxes
        assert np.abs(back - np.asarray(row["solution"])).max() <= 1.0  # rounding to whole input pixels


# The training forward and generate agree ------------------------------------------------------------------------------

def test_training_forward_and_generate_agree_on_the_same_tokens(tiny_model, synth):
    """Greedy generate, then the SFT batch of the same prompt and completion: the training forward must predict each
    generated token (argmax) from the same positions. Without mm_token_type_ids transformers' Qwen2.5-VL silently
    uses 1D positions in the forward while generate uses 3D M-RoPE (transformers 5.2x modeling_qwen2_5_vl.py,
    ``compute_3d_position_ids``); the check below shows that trap changes the logits."""
    import torch

    model, processor = load_model_and_processor(tiny_model)
    model.eval()
    frame = resolve_model_frame(tiny_model)
    samples = get_loader("jsonl")(synth.annotations, split="test").samples
    rows = build_dataset(samples[:2], image_root=synth.root, frame=frame, template="plain")[:2]
    texts = [processor.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in rows["prompt"]]
    images = [[image.convert("RGB")] for image in rows["image"]]
    inputs = processor(images=images, text=texts, padding=True, return_tensors="pt")
    assert "mm_token_type_ids" in inputs
    vocab = processor.tokenizer.get_vocab()  # generate printable ASCII only, so that the text round-trips to the tokens
    suppress = [i for token, i in vocab.items() if not (len(token) == 1 and "!" <= token <= "~")]
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=10, do_sample=False, suppress_tokens=suppress)
    new_tokens = output[:, inputs["input_ids"].shape[1]:]
    targets = [processor.tokenizer.decode(t) for t in new_tokens]

    batch = sft_batch(processor, rows, targets)
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch).logits
    logits[:, :, suppress] = -torch.inf  # as generate's suppress_tokens did
    for row in range(2):
        positions = (labels[row] != -100).nonzero().flatten()
        predicted = logits[row, positions - 1].argmax(-1)
        learned = labels[row, positions]
        generated = new_tokens[row].tolist()
        assert learned.tolist() == generated + [processor.tokenizer.eos_token_id]  # the target, then the end of turn
        assert predicted[:10].tolist() == generated
    batch.pop("mm_token_type_ids")
    with torch.no_grad():
        one_d = model(**batch).logits
    assert not torch.allclose(one_d, logits, atol=1e-4)  # the 1D-position forward is a different model


def test_sft_batch_learns_only_the_target_and_the_end_of_turn(tiny_model, synth):
    _, processor = load_model_and_processor(tiny_model)
    frame = resolve_model_frame(tiny_model)
    samples = get_loader("jsonl")(synth.annotations, split="train").samples
    rows = build_dataset(samples[:2], image_root=synth.root, frame=frame, template="plain")[:2]
    targets = ["<think>a</think><answer>[1, 2, 3, 4]</answer>", "<think>longer one</think><answer>[1, 2, 3, 4]</answer>"]
    batch = sft_batch(processor, rows, targets)
    for row, target in enumerate(targets):
        kept = batch["labels"][row][batch["labels"][row] != -100]
        assert processor.tokenizer.decode(kept) == target + processor.tokenizer.eos_token


# End to end -----------------------------------------------------------------------------------------------------------

def test_train_sft_then_grpo_init_from_with_evaluation_during_training(tiny_model, synth, tmp_path):
    sft_dir = tmp_path / "sft"
    result = runner.invoke(app, _flags(tiny_model, synth, sft_dir, "--stage", "sft", "--learning-rate", "3e-3",
                                       "--max-steps", "24", "--per-device-train-batch-size", "4",
                                       "--eval-steps", "12", "--logging-steps", "4"))
    assert result.exit_code == 0, result.output
    assert "trained 24 steps" in result.output
    records = [json.loads(line) for line in (sft_dir / "curves.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]  # it learns the answer layout (a random model stays at ~5.5)
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [12, 24] and all(r["n"] == 4 for r in evals)
    assert all(0 <= r["miou"] <= 1 and 0 <= r["acc@0.5"] <= 1 for r in evals)
    assert (sft_dir / "eval" / "step-000012.jsonl").is_file() and (sft_dir / "curves.png").stat().st_size > 1000
    metrics = json.loads((sft_dir / "eval_metrics.json").read_text())
    assert metrics["n"] == 4 and "miou" in metrics["ci"]
    # the saved processor (transformers 5 writes it into processor_config.json, no preprocessor_config.json) gives the
    # model's frame back: read with the default pixel limits, every box of the GRPO stage was scored in a 4x frame
    assert not (sft_dir / "preprocessor_config.json").exists()
    assert resolve_model_frame(sft_dir) == resolve_model_frame(tiny_model)
    run = json.loads((sft_dir / "run.json").read_text())
    assert (run["stage"], run["template"], run["global_step"]) == ("sft", "plain", 24)
    assert run["frame"]["kind"] == "resized" and run["frame"]["max_pixels"] == 56 * 56

    grpo_dir = tmp_path / "grpo"
    flags = _flags(tiny_model, synth, grpo_dir, "--stage", "grpo", "--max-steps", "2", "--num-generations", "2",
                   "--per-device-train-batch-size", "2", "--eval-steps", "1", "--learning-rate", "1e-3")
    flags[flags.index("--model"):flags.index("--model") + 2] = ["--init-from", str(sft_dir)]
    result = runner.invoke(app, flags + ["--reward-weights", "1,1,0"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (grpo_dir / "curves.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train" and "rewards/spatial/mean" in r]
    assert len(train) == 2 and all("rewards/format/mean" in r for r in train)
    assert [r["step"] for r in records if r["kind"] == "eval"] == [1, 2]
    assert json.loads((grpo_dir / "run.json").read_text())["model"] == str(sft_dir)

    mismatch = runner.invoke(app, [*flags[:flags.index("--template")], "--template", "chain-of-box", "--dry-run"])
    assert mismatch.exit_code == 2 and "trained with --template 'plain'" in mismatch.output
    both = runner.invoke(app, flags + ["--model", str(tiny_model), "--dry-run"])
    assert both.exit_code == 2 and "give one of them" in both.output
    not_run = runner.invoke(app, [*flags[:flags.index("--init-from")], "--init-from", str(tmp_path),
                                  *flags[flags.index("--init-from") + 2:], "--dry-run"])
    assert not_run.exit_code == 2 and "expected a run folder holding a saved model" in not_run.output


def test_sft_stage_is_refused_by_other_engines(tiny_model, synth, tmp_path):
    result = runner.invoke(app, ["train", "--backend", "verl", "--stage", "sft", "--model", str(tiny_model),
                                 "--dry-run"])
    assert result.exit_code == 2 and "only the trl backend runs it" in result.output
    unknown = runner.invoke(app, _flags(tiny_model, synth, tmp_path / "x", "--stage", "dpo", "--dry-run"))
    assert unknown.exit_code == 2 and "--stage 'dpo': expected one of sft, grpo" in unknown.output


# Zero-variance guard --------------------------------------------------------------------------------------------------

def test_zero_variance_guard_warns_once_with_the_likely_cause_and_stops(caplog):
    guard = ZeroVarianceGuard(stop_after=3)
    untrained = {"frac_reward_zero_std": 1.0, "rewards/format/mean": 0.0, "rewards/spatial/mean": 0.0,
                 "grad_norm": 0.0}
    with caplog.at_level(logging.WARNING):
        assert not guard.observe(1, untrained)
        assert not guard.observe(2, untrained)
    assert len(guard.messages) == 1 and "format reward is never met" in guard.messages[0]
    assert "100% of the groups have identical rewards" in caplog.text
    assert guard.observe(3, untrained) and guard.stopped_at == 3
    assert "no gradient for 3 steps: stopped" in guard.messages[-1]

    learning = ZeroVarianceGuard(stop_after=2)
    for step, fraction in enumerate([1.0, 0.5, 1.0, 0.25], start=1):  # never two zero steps in a row
        assert not learning.observe(step, {"frac_reward_zero_std": fraction, "rewards/format/mean": 1.0,
                                           "rewards/spatial/mean": 0.0, "grad_norm": 0.1})
    assert "no predicted box overlaps its target" in learning.messages[0]
    quiet = ZeroVarianceGuard()
    quiet.observe(1, {"frac_reward_zero_std": 0.5})
    assert quiet.messages == []
    with pytest.raises(ValueError, match="expected 0 \\(off\\) or a positive number"):
        ZeroVarianceGuard(-1)


def test_grpo_on_a_random_model_warns_and_stops_on_zero_gradient(tiny_model, synth, tmp_path):
    """The issue's new-user run: a random model never meets the format, every group's rewards are identical."""
    flags = _flags(tiny_model, synth, tmp_path / "run", "--max-steps", "6", "--num-generations", "2",
                   "--per-device-train-batch-size", "2", "--stop-on-zero-gradient", "2", "--no-eval",
                   "--reward-weights", "1,1,0", "--beta", "0")
    result = runner.invoke(app, flags)
    assert result.exit_code == 0, result.output
    assert "warning: step 1: 100% of the groups have identical rewards" in result.output
    assert "format reward is never met" in result.output
    assert "no gradient for 2 steps: stopped (--stop-on-zero-gradient 2)" in result.output
    assert "trained 2 steps" in result.output


def test_an_interrupted_sft_save_leaves_no_run_json(tmp_path):
    # Issue 13: checkpoints the project writes itself appear complete or not at all (run.json is written last).
    from medground_eval.training.sft import _save

    class Model:
        def save_pretrained(self, folder):
            (Path(folder) / "model.safetensors").write_bytes(b"weights")

    class Processor:
        def save_pretrained(self, folder):
            (Path(folder) / "processor_config.json").write_text("{}")

    class Killed:
        def save_pretrained(self, folder):
            raise KeyboardInterrupt

    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text("{}")  # an earlier, complete save
    with pytest.raises(KeyboardInterrupt):
        _save(Model(), Killed(), out, {"stage": "sft"})
    assert sorted(p.name for p in out.iterdir()) == []  # no run.json, no weight file under its final name
    _save(Model(), Processor(), out, {"stage": "sft"})
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "processor_config.json", "run.json"]
