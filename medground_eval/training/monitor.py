"""What a training run shows while it runs: held-out scores every K steps, curves, and the zero-variance guard.

- :class:`RunMonitor` keeps the run's history in ``<run>/curves.jsonl`` (one JSON object per line: ``{"step",
  "kind": "train" | "eval", ...}``; train lines carry the trainer's logged values, eval lines the held-out ``n``,
  ``acc@0.5``, ``miou``, ``parse_failure_rate`` and the predictions file), and draws ``<run>/curves.png``: the
  training signal (reward per component for GRPO, loss for SFT) and held-out Acc@0.5 and mIoU against the step.
- Held-out evaluation (:meth:`RunMonitor.evaluate`): greedy predictions of the held-out split written to
  ``<run>/eval/step-<N>.jsonl``, scored by :func:`medground_eval.evaluation.scorer.score_files` against the same
  annotations; every number is the scorer's (parse failures count as IoU 0).
- :class:`ZeroVarianceGuard`: GRPO learns only from groups whose completions got different rewards (the advantage
  is the reward minus its group mean). When at least :data:`ZERO_STD_WARN_FRACTION` of a step's groups have
  identical rewards (TRL's ``frac_reward_zero_std``), it warns once with the likely cause read from the logged reward
  means; with ``stop_after = N > 0`` it ends the run after N consecutive steps in which every group had identical
  rewards or the gradient norm was 0 (nothing to learn from).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from medground_eval.frames import Frame
from medground_eval.structures import Sample

logger = logging.getLogger(__name__)

ZERO_STD_WARN_FRACTION = 0.9
"""The share of zero-variance groups in a step from which the guard warns."""
EVAL_KEYS = ("n", "acc@0.5", "miou", "parse_failure_rate")


class RunMonitor:
    """Curves and held-out evaluation of one run folder (see the module docstring)."""

    def __init__(self, run_dir: str | Path, *, eval_samples: Sequence[Sample] | None, dataset: str,
                 annotations: str | None, eval_split: str | None, image_root: str | None, template: str,
                 frame: Frame, batch_size: int = 32, max_new_tokens: int = 256):
        self.run_dir = Path(run_dir)
        self.eval_samples = list(eval_samples) if eval_samples else None
        self.dataset, self.annotations, self.eval_split = dataset, annotations, eval_split
        self.image_root, self.template, self.frame = image_root, template, frame
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.history: list[dict] = []
        self.curves = self.run_dir / "curves.jsonl"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.curves.write_text("", encoding="utf-8")

    def _append(self, record: dict) -> None:
        self.history.append(record)
        with self.curves.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def log_train(self, step: int, values: Mapping[str, object]) -> None:
        """Record the trainer's logged numbers at ``step`` (non-numbers are left out)."""
        numbers = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._append({"step": int(step), "kind": "train", **numbers})

    def evaluate(self, model, processor, step: int, *, path: Path | None = None, n_bootstrap: int = 0):
        """Predict and score the held-out split with ``model`` at ``step`` (predictions in ``path``, by default
        ``eval/step-<N>.jsonl``; bootstrap intervals of ``n_bootstrap`` resamples); returns the ``ScoreResult``
        (None without a held-out split). The model is put back in training mode afterwards."""
        if self.eval_samples is None:
            return None
        from medground_eval.evaluation.scorer import score_files
        from medground_eval.inference import predict_samples

        was_training = model.training
        path = predict_samples(
            model, processor, self.eval_samples, path or self.run_dir / "eval" / f"step-{step:06d}.jsonl",
            image_root=self.image_root, template=self.template, frame=self.frame,
            batch_size=self.batch_size, max_new_tokens=self.max_new_tokens, progress=False,
        )
        model.train(was_training)
        result = score_files(path, dataset=self.dataset, annotations=self.annotations, split=self.eval_split,
                             n_bootstrap=n_bootstrap)
        report = result.report
        record = {"step": int(step), "kind": "eval", "n": report.n, "acc@0.5": report.acc.get("0.5"),
                  "miou": report.miou, "parse_failure_rate": report.parse_failure_rate, "predictions": str(path)}
        self._append(record)
        logger.info("step %d held-out: Acc@0.5 %.3f, mIoU %.3f, parse failures %.3f (n = %d)", step,
                    record["acc@0.5"], record["miou"], record["parse_failure_rate"], report.n)
        return result

    def evaluations(self) -> list[dict]:
        return [r for r in self.history if r["kind"] == "eval"]

    def plot(self) -> Path:
        """Draw ``curves.png`` from the run's history (:func:`plot_curves`)."""
        return plot_curves(self.history, self.run_dir / "curves.png", title=self.eval_split or "all")


def read_curves(path: str | Path) -> list[dict]:
    """The records of a ``curves.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_curves(history: Sequence[Mapping], path: str | Path, *, title: str = "test") -> Path:
    """Draw ``path`` (PNG): left, the training signal (reward per component for GRPO, else the loss); right, held-out
    Acc@0.5 and mIoU, against the step. ``history`` holds ``curves.jsonl`` records."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from medground_eval.outputs import atomic_write_bytes

    train = [r for r in history if r["kind"] == "train"]
    keys = sorted({k for r in train for k in r if k.startswith("rewards/") and k.endswith("/mean")})
    keys = keys or [k for k in ("loss",) if any(k in r for r in train)]
    figure = Figure(figsize=(10, 4))
    left, right = figure.subplots(1, 2)
    for key in keys:
        points = [(r["step"], r[key]) for r in train if key in r and math.isfinite(r[key])]
        if points:
            left.plot(*zip(*points), label=key.removeprefix("rewards/").removesuffix("/mean"))
    left.set_xlabel("step")
    left.set_title("training: " + ("reward per component (mean)" if keys != ["loss"] else "loss"))
    if keys:
        left.legend(fontsize=8)
    evals = [r for r in history if r["kind"] == "eval"]
    for key in ("acc@0.5", "miou"):
        points = [(r["step"], r[key]) for r in evals if r.get(key) is not None]
        if points:
            right.plot(*zip(*points), marker="o", label=key)
    right.set_xlabel("step")
    right.set_ylim(0, 1)
    right.set_title(f"held-out ({title}, n = {evals[-1]['n'] if evals else 0})")
    if evals:
        right.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def likely_cause(logs: Mapping[str, float]) -> str:
    """Why a GRPO step's groups have identical rewards, read from the logged reward means."""
    fmt = logs.get("rewards/format/mean")
    spatial = logs.get("rewards/spatial/mean")
    if fmt is not None and fmt == 0:
        return ("the format reward is never met: the model does not write <think>...</think><answer>box</answer> "
                "(an untrained model, the wrong --template, or --max-completion-length too short); "
                "warm-start it with `train --stage sft` first")
    if spatial is not None and spatial == 0:
        return ("no predicted box overlaps its target: check the frame (the model's coordinates against "
                "--frame / the processor's min_pixels and max_pixels) or warm-start with `train --stage sft`")
    return ("every completion of a group gets the same reward: the model answers deterministically (raise "
            "--temperature or --num-generations) or the rewards saturate (a threshold spatial reward gives 0 or 1)")


class ZeroVarianceGuard:
    """Warns once when most groups have zero reward variance; stops after ``stop_after`` steps without gradient."""

    def __init__(self, stop_after: int = 0):
        if stop_after < 0:
            raise ValueError(f"--stop-on-zero-gradient {stop_after}: expected 0 (off) or a positive number of steps")
        self.stop_after = stop_after
        self.messages: list[str] = []
        self.zero_steps = 0
        self.last_step = 0
        self.stopped_at: int | None = None

    def observe(self, step: int, logs: Mapping[str, float]) -> bool:
        """Read one logged step (TRL's ``frac_reward_zero_std``, ``grad_norm``); True when the run should stop."""
        fraction = logs.get("frac_reward_zero_std")
        if fraction is None:
            return False
        if fraction >= ZERO_STD_WARN_FRACTION and not self.messages:
            self.messages.append(f"step {step}: {100 * fraction:.0f}% of the groups have identical rewards, so GRPO "
                                 f"has (almost) no gradient; likely cause: {likely_cause(logs)}")
            logger.warning(self.messages[-1])
        grad_norm = logs.get("grad_norm")
        nothing = fraction >= 1.0 or (grad_norm is not None and grad_norm == 0)
        steps = max(1, step - self.last_step)
        self.last_step = step
        self.zero_steps = self.zero_steps + steps if nothing else 0
        if self.stop_after and self.zero_steps >= self.stop_after and self.stopped_at is None:
            self.stopped_at = step
            self.messages.append(f"step {step}: no gradient for {self.zero_steps} steps: stopped "
                                 f"(--stop-on-zero-gradient {self.stop_after})")
            logger.warning(self.messages[-1])
            return True
        return False
