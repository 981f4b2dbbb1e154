"""``make learn``: synthetic data -> tiny model -> SFT -> GRPO -> held-out table, on the CPU with one torch thread.

``python -m medground_eval.training.learn --output runs/learn`` writes, under ``--output``:

- ``data/`` (:mod:`medground_eval.synth`, plain finding words, no laterality), ``model/`` (the random tiny
  Qwen2.5-VL of :mod:`medground_eval.tiny_model`, size ``learn``);
- ``random/`` (held-out predictions and metrics of the random model), ``sft/`` and ``grpo/`` (the runs: model,
  ``curves.png``, ``curves.jsonl``, ``eval_predictions.jsonl``, ``eval_metrics.json``, ``run.json``);
- ``learn.json`` and ``learn.md``: the table (held-out Acc@0.5 and mIoU with 95 % bootstrap intervals for the random
  model, after SFT and after GRPO) and the paired differences GRPO - SFT (paired bootstrap over the same samples).

The SFT stage is deliberately short (``--sft-steps``) so that GRPO starts from a model that grounds some of the
held-out images (Acc@0.5 around 0.3-0.5), and has room to improve. Settings are in :data:`DEFAULTS`; docs/training.md
lists what was tried and what each did.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

LEARN_TEMPLATE = 'Locate "{phrase}": <think>...</think><answer>[{{"bbox_2d": [x1, y1, x2, y2]}}]</answer>'
"""A short prompt (the tokenizer is byte-level: every character is a token, and the prompt is in every step)."""

DEFAULTS: dict[str, object] = {
    "n": 1200, "n_test": 200, "seed": 0,
    "sft_steps": 600, "sft_lr": 2e-3, "sft_batch": 8, "sft_eval_steps": 100,
    "grpo_steps": 40, "grpo_lr": 2e-5, "grpo_generations": 8, "grpo_prompts": 2, "grpo_beta": 0.04,
    "grpo_temperature": 0.7, "spatial_mode": "iou", "reward_weights": (1.0, 1.0, 0.0), "grpo_eval_steps": 20,
    "save_steps": 0, "max_completion_length": 100,
}


def _run_options(args: argparse.Namespace, out: Path, stage: str, **fields: object):
    from medground_eval.integrations.options import load_options

    common = dict(
        stage=stage, dataset="jsonl", data_dir=str(out / "data" / "data.jsonl"), image_root=str(out / "data"),
        output_dir=str(out / stage), template=LEARN_TEMPLATE, max_completion_length=args.max_completion_length,
        use_cpu=True, seed=args.seed, save_steps=args.save_steps or 10**6, logging_steps=5,
        semantic_encoder="lexical", anatomy_weight=0.0, extra={"report_to": "none", "eval_batch_size": 50},
    )
    common.update(fields)
    return load_options(None, **common)


def _interval(report, key: str) -> str:
    value = report.miou if key == "miou" else report.acc["0.5"]
    lo, hi = report.ci["miou" if key == "miou" else "acc@0.5"]
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def run(args: argparse.Namespace) -> dict:
    import torch

    from medground_eval.evaluation.scorer import score_files
    from medground_eval.frames import resolve_model_frame
    from medground_eval.inference import load_model_and_processor, predict_samples
    from medground_eval.metrics import paired_bootstrap
    from medground_eval.outputs import atomic_write_text
    from medground_eval.synth import SynthOptions, synthesize
    from medground_eval.tiny_model import build_tiny_qwen
    from medground_eval.training.run import train

    torch.set_num_threads(1)
    out = Path(args.output)
    clock = {}
    start = time.perf_counter()
    annotations = synthesize(out / "data", SynthOptions(n=args.n, n_test=args.n_test, seed=args.seed,
                                                        laterality=False, shape_words=False))
    build_tiny_qwen(out / "model", size="learn", seed=args.seed)
    clock["data_and_model_s"] = time.perf_counter() - start

    start = time.perf_counter()
    model, processor = load_model_and_processor(out / "model")
    from medground_eval.datasets import get_loader

    test = get_loader("jsonl")(annotations, split="test").samples
    predictions = predict_samples(model, processor, test, out / "random" / "eval_predictions.jsonl",
                                  image_root=out / "data", frame=resolve_model_frame(out / "model"),
                                  template=LEARN_TEMPLATE, batch_size=50,
                                  max_new_tokens=args.max_completion_length, progress=False)
    clock["random_eval_s"] = time.perf_counter() - start

    start = time.perf_counter()
    sft = train(_run_options(args, out, "sft", model=str(out / "model"), learning_rate=args.sft_lr,
                                 max_steps=args.sft_steps, per_device_train_batch_size=args.sft_batch,
                                 eval_steps=args.sft_eval_steps))
    clock["sft_s"] = time.perf_counter() - start
    start = time.perf_counter()
    grpo = train(_run_options(
        args, out, "grpo", init_from=str(sft.output_dir), learning_rate=args.grpo_lr, max_steps=args.grpo_steps,
        num_generations=args.grpo_generations, per_device_train_batch_size=args.grpo_generations * args.grpo_prompts,
        beta=args.grpo_beta, temperature=args.grpo_temperature, spatial_mode=args.spatial_mode,
        reward_weights=tuple(args.reward_weights), stop_on_zero_gradient=20, eval_steps=args.grpo_eval_steps,
    ))
    clock["grpo_s"] = time.perf_counter() - start

    results = {name: score_files(path, dataset="jsonl", annotations=annotations, split="test")
               for name, path in (("random", predictions), ("sft", sft.predictions), ("grpo", grpo.predictions))}
    table = {name: {"n": r.report.n, "acc@0.5": r.report.acc["0.5"], "acc@0.5_ci": list(r.report.ci["acc@0.5"]),
                    "miou": r.report.miou, "miou_ci": list(r.report.ci["miou"]),
                    "parse_failure_rate": r.report.parse_failure_rate} for name, r in results.items()}
    a, b = results["sft"], results["grpo"]
    if list(a.per_sample.ids) != list(b.per_sample.ids):
        raise ValueError("the SFT and GRPO evaluations scored different samples: cannot pair them")
    differences = {
        "miou": paired_bootstrap(a.per_sample.iou, b.per_sample.iou),
        "acc@0.5": paired_bootstrap(a.hits(0.5).astype(float), b.hits(0.5).astype(float)),
    }
    summary = {"settings": {k: getattr(args, k) for k in DEFAULTS}, "table": table,
               "grpo_minus_sft": {k: dict(zip(("diff", "lo", "hi"), v)) for k, v in differences.items()},
               "grpo_messages": list(grpo.messages), "grpo_steps_run": grpo.global_step, "seconds": clock}
    atomic_write_text(out / "learn.json", json.dumps(summary, indent=2) + "\n")
    lines = ["| model | n | Acc@0.5 [95% CI] | mIoU [95% CI] | parse failures |", "|---|---|---|---|---|"]
    names = {"random": "random init", "sft": f"after SFT ({args.sft_steps} steps)",
             "grpo": f"after GRPO ({grpo.global_step} steps)"}
    for name, result in results.items():
        lines.append(f"| {names[name]} | {result.report.n} | {_interval(result.report, 'acc')} | "
                     f"{_interval(result.report, 'miou')} | {result.report.parse_failure_rate:.3f} |")
    for key, (diff, lo, hi) in differences.items():
        lines.append(f"\nGRPO - SFT, {key}: {diff:+.3f} (paired bootstrap 95% CI [{lo:+.3f}, {hi:+.3f}])")
    lines.append("\n" + ", ".join(f"{k} {v:.0f}" for k, v in clock.items()))
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "learn.md", text)
    print(text)
    for message in grpo.messages:
        print(f"warning: {message}")
    return summary


def main(argv: list[str] | None = None) -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="runs/learn")
    for key, value in DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, tuple):
            parser.add_argument(flag, type=float, nargs=3, default=list(value))
        else:
            parser.add_argument(flag, type=type(value), default=value)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
