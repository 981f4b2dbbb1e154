"""Supervised fine-tuning (``train --stage sft``): teach a model the answer format and its own box frame.

The loop is plain PyTorch (AdamW, constant learning rate after a linear warm-up of ``warmup_steps``, gradient norm
clipped to 1), so nothing between the processor and the model's forward is hidden:

- Target (:func:`sft_target`): the ground-truth boxes converted once into the model's own frame (the frame the
  rewards and the scorer read the model's boxes in: Qwen2.5-VL's resized input pixels, Qwen2-VL / Qwen3-VL's
  0-1000) and written in the template's answer layout: Chain-of-Box puts the phrase and the boxes inside
  ``<think>`` and the JSON ``bbox_2d`` list in ``<answer>``; the plain template puts only the phrase in ``<think>``.
- Batch (:func:`sft_batch`): the prompt rendered by the processor's chat template with the generation prompt, the
  target and the end-of-turn token appended, everything through the processor in one call. Its output includes
  ``mm_token_type_ids``, without which transformers' Qwen2.5-VL computes 1D positions in a training forward while
  ``generate`` uses 3D M-RoPE positions (the model then learns garbage). Labels are -100 on the padding and prompt
  tokens: only the target and the end-of-turn token are learned.
- Every ``eval_steps`` steps (and at the end) the held-out split is predicted and scored
  (:class:`~medground_eval.training.monitor.RunMonitor`); the final model and processor are saved in ``output_dir``
  with ``run.json`` (stage, template, frame, steps), a ``checkpoint-<N>`` folder of the same every ``save_steps``
  steps (model, processor, ``run.json``; no optimizer state, so no resuming), ``curves.jsonl``, ``curves.png``,
  ``eval_predictions.jsonl`` and ``eval_metrics.json``, so ``train --stage grpo --init-from output_dir`` continues from it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medground_eval.frames import Frame
from medground_eval.integrations.options import TrainOptions

logger = logging.getLogger(__name__)

WARMUP_STEPS = 20


def _coordinate(value: float, frame: Frame) -> str:
    return f"{value:.3f}" if frame.kind == "norm1" else str(int(round(value)))


def sft_target(phrase: str, boxes: Sequence[Sequence[float]], template: str, frame: Frame) -> str:
    """The completion the model is taught for ``phrase`` and ``boxes`` (already in ``frame``'s coordinates).

    >>> from medground_eval.frames import get_frame
    >>> sft_target("left opacity", [[10, 20, 30.4, 40.6]], "chain-of-box", get_frame("pixel"))
    '<think>left opacity: [10, 20, 30, 41]</think><answer>[{"bbox_2d": [10, 20, 30, 41], "label": "left opacity"}]</answer>'
    """
    written = ["[" + ", ".join(_coordinate(v, frame) for v in box) + "]" for box in boxes]
    label = json.dumps(phrase, ensure_ascii=False)
    answer = ", ".join(f'{{"bbox_2d": {box}, "label": {label}}}' for box in written)
    think = f"{phrase}: {', '.join(written)}" if template == "chain-of-box" else phrase
    return f"<think>{think}</think><answer>[{answer}]</answer>"


def frame_boxes(solution: Sequence[Sequence[float]], image_size: Sequence[float], input_size: object,
                frame: Frame) -> np.ndarray:
    """Ground-truth boxes (original pixels) in ``frame``: what the model should write for them."""
    return frame.from_pixels(np.asarray(solution, dtype=np.float64), image_size, input_size)


def sft_batch(processor, rows: dict, targets: Sequence[str]):
    """Processor inputs for a batch of rows (``prompt``, ``image``) and their target completions, with ``labels``.

    The prompt and target go through the processor together (left padding), so the model sees exactly the token
    sequence ``generate`` produces after the same prompt; labels keep the last ``len(completion)`` tokens of each row.
    """
    prompts = [processor.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in rows["prompt"]]
    images = [[image.convert("RGB")] for image in rows["image"]]
    eos = processor.tokenizer.eos_token
    inputs = processor(images=images, text=[p + t + eos for p, t in zip(prompts, targets)], padding=True,
                       return_tensors="pt")
    prompt_lengths = processor(images=images, text=prompts, padding=True, return_tensors="pt")["attention_mask"].sum(1)
    lengths = inputs["attention_mask"].sum(1)
    width = inputs["input_ids"].shape[1]
    labels = inputs["input_ids"].clone()
    for row, (length, prompt) in enumerate(zip(lengths.tolist(), prompt_lengths.tolist())):
        labels[row, : width - (length - prompt)] = -100
    inputs["labels"] = labels
    return inputs


def _save(model, processor, output_dir: Path, run: dict) -> None:
    """Save the model and processor into ``output_dir``, ``run.json`` last: the files are written in a temporary
    folder inside it and renamed into place when complete, after the old ``run.json`` is removed, so a folder whose
    save was interrupted has no ``run.json`` (and no half-written weight file)."""
    import os
    import tempfile

    from medground_eval.outputs import atomic_write_text

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "run.json").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix=".saving-", dir=output_dir) as temp:
        model.save_pretrained(temp)
        processor.save_pretrained(temp)
        for path in sorted(Path(temp).iterdir()):
            os.replace(path, output_dir / path.name)
    atomic_write_text(output_dir / "run.json", json.dumps(run, indent=2) + "\n")


def train_sft(options: TrainOptions):
    """Run supervised fine-tuning on ``options`` (see the module docstring); returns a ``TrainResult``."""
    import torch

    from medground_eval.inference import load_model_and_processor
    from medground_eval.integrations.hf_data import build_dataset
    from medground_eval.integrations.trl import _setup, model_frame
    from medground_eval.training.run import TrainResult, final_evaluation, run_monitor

    setup = _setup(options)
    model, processor = load_model_and_processor(
        options.model, bf16=setup.bf16, min_pixels=setup.extra.get("min_pixels"),
        max_pixels=setup.extra.get("max_pixels"),
    )
    device = "cpu" if options.use_cpu or not torch.cuda.is_available() else "cuda"
    model.to(device)
    frame = model_frame(options)
    dataset = build_dataset(setup.train_samples, image_root=options.image_root, frame=frame, template=options.template)
    input_sizes = dataset["input_size"] if "input_size" in dataset.column_names else [None] * len(dataset)
    targets = [
        sft_target(phrase, frame_boxes(solution, size, given, frame), options.template, frame)
        for phrase, solution, size, given in zip(dataset["phrase"], dataset["solution"], dataset["image_size"],
                                                  input_sizes)
    ]
    output_dir = Path(options.output_dir)
    monitor = run_monitor(options, setup, output_dir)
    batch_size = options.per_device_train_batch_size
    steps_per_epoch = math.ceil(len(dataset) / batch_size)
    total = options.max_steps if options.max_steps > 0 else math.ceil(options.num_train_epochs * steps_per_epoch)

    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / WARMUP_STEPS))
    order: list[int] = []
    run = {"stage": "sft", "model": options.model, "template": options.template, "frame": dataclasses.asdict(frame),
           "options": dataclasses.asdict(options)}
    model.train()
    for step in range(1, total + 1):
        if len(order) < batch_size:
            order += rng.permutation(len(dataset)).tolist()
        chosen, order = order[:batch_size], order[batch_size:]
        inputs = sft_batch(processor, dataset[chosen], [targets[i] for i in chosen]).to(device)
        loss = model(**inputs).loss
        if not torch.isfinite(loss):
            raise ValueError(f"step {step}: the SFT loss is {loss.item()}: lower --learning-rate")
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % max(1, options.logging_steps) == 0 or step == total:
            values = {"loss": loss.item(), "grad_norm": float(grad_norm), "learning_rate": schedule.get_last_lr()[0],
                      "epoch": step / steps_per_epoch}
            monitor.log_train(step, values)
            logger.info("step %d/%d: loss %.4f, grad_norm %.3f", step, total, values["loss"], values["grad_norm"])
        if options.eval_steps > 0 and step % options.eval_steps == 0 and step != total:
            monitor.evaluate(model, processor, step)
        if options.save_steps > 0 and step % options.save_steps == 0 and step != total:
            _save(model, processor, output_dir / f"checkpoint-{step}", {**run, "global_step": step})

    _save(model, processor, output_dir, {**run, "global_step": total})
    predictions, metrics = final_evaluation(model, processor, options, setup, output_dir, monitor, total)
    return TrainResult(output_dir, predictions, metrics, total)
