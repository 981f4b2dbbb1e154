"""The ``medground-eval demo``: a synthetic grounding set and simulated models, scored with no data to download.

Everything is deterministic (numpy ``default_rng(seed)``) and uses the core only (numpy, rich via the CLI):

- :func:`demo_dataset`: phrases on chest X-rays of several sizes, some above Qwen2.5-VL's ``max_pixels`` (so its
  resized input frame differs from the original pixels), one or two true boxes per phrase.
- :func:`demo_runs`: simulated completions of three models, each scored in the frame it answers in, plus one
  scored in the wrong frame:

  - ``good``: Qwen2.5-VL style, Chain-of-Box reasoning, JSON answer in the resized input frame, small errors.
  - ``sloppy``: larger errors and a mix of dialects (JSON, bare list, ``<ref><box>``), some answers unclosed, in
    floats, or with coordinates past the image edge, some with no box at all; original pixels.
  - ``qwen2-vl``: answers in the 0-1000 frame; scored right (``norm1000``) and wrong (``pixel``).

:func:`run_demo` scores each run with the default rules and with the ``medground-r1`` compatibility preset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medground_eval.datasets.base import LoadedDataset
from medground_eval.evaluation.scorer import ScoreResult, score_predictions
from medground_eval.frames import get_frame
from medground_eval.outputs import open_atomic
from medground_eval.parsing import format_box
from medground_eval.structures import Sample

IMAGE_SIZES = ((2544, 3056), (3056, 2544), (1024, 1024), (4280, 3520), (3520, 4280))
"""(W, H): MIMIC-CXR-like portrait and landscape, NIH 1024 x 1024, and two above Qwen2.5-VL's 12.8 M pixel limit."""

FINDINGS = (
    ("Pneumothorax", "left apical pneumothorax", ((0.55, 0.08), (0.3, 0.2))),
    ("Effusion", "right pleural effusion", ((0.08, 0.55), (0.35, 0.3))),
    ("Cardiomegaly", "enlarged cardiac silhouette", ((0.3, 0.45), (0.45, 0.35))),
    ("Opacity", "left lower lobe opacity", ((0.55, 0.5), (0.3, 0.3))),
    ("Nodule", "right upper lobe nodule", ((0.2, 0.2), (0.08, 0.08))),
    ("Consolidation", "bilateral basal consolidation", ((0.1, 0.6), (0.25, 0.25))),
)
"""(category, phrase, ((x, y) of the typical top-left corner, (w, h) typical size) as fractions of the image)."""


@dataclass(frozen=True)
class DemoRun:
    """A simulated model's predictions (``records``: prediction-file objects) and the frame they are scored in."""

    name: str
    description: str
    frame: str
    records: list[dict]


@dataclass(frozen=True)
class DemoRow:
    """One run scored with the default rules (``result``) and with the medground-r1 preset (``compat``)."""

    run: DemoRun
    result: ScoreResult
    compat: ScoreResult


def demo_dataset(n: int = 120, seed: int = 0) -> LoadedDataset:
    """``n`` synthetic samples: ids ``demo-000``..., a phrase, 1 box (2 for consolidation: both bases), image size."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        width, height = IMAGE_SIZES[i % len(IMAGE_SIZES)]
        category, phrase, ((fx, fy), (fw, fh)) = FINDINGS[int(rng.integers(len(FINDINGS)))]
        size = np.array([width, height], dtype=float)
        corner = (np.array([fx, fy]) + rng.uniform(-0.05, 0.05, 2)) * size
        extent = np.array([fw, fh]) * rng.uniform(0.7, 1.3, 2) * size
        box = np.round(np.concatenate([corner, corner + extent]))
        boxes = [box]
        if category == "Consolidation":
            mirror = box.copy()
            mirror[[0, 2]] = width - box[[2, 0]]
            boxes.append(mirror)
        samples.append(Sample(id=f"demo-{i:03d}", phrase=phrase, boxes=np.array(boxes), image_size=(width, height),
                              category=category, split="test"))
    return LoadedDataset("demo", samples)


def _noisy(boxes: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Boxes with corners moved by normal noise of ``scale`` times the box size."""
    extent = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    noisy = boxes + rng.normal(0, scale, boxes.shape) * extent
    return np.concatenate([np.minimum(noisy[:, :2], noisy[:, 2:]), np.maximum(noisy[:, :2], noisy[:, 2:])], axis=1)


def _completion(sample: Sample, answer: str, steps: np.ndarray, closed: bool = True) -> str:
    """A Chain-of-Box completion: reasoning with intermediate boxes, then the answer."""
    first, second = (format_box(np.round(step).tolist(), dialect="list") for step in steps)
    think = (f"The query is '{sample.phrase}'. I first look at {first}, where the density changes, then refine "
             f"the region to {second}, which follows the visible margin.")
    return f"<think>{think}</think>\n<answer>{answer}" + ("</answer>" if closed else "")


def _json_answer(boxes: np.ndarray, label: str) -> str:
    body = ",\n  ".join(format_box(np.round(box).tolist(), label) for box in boxes)
    return f"```json\n[\n  {body}\n]\n```"


def demo_runs(dataset: LoadedDataset, seed: int = 0) -> list[DemoRun]:
    """The simulated runs on ``dataset`` (see the module docstring), deterministic in ``seed``."""
    rng = np.random.default_rng(seed + 1)
    resized, norm = get_frame("qwen2.5-vl"), get_frame("norm1000")
    good, sloppy, qwen2 = [], [], []
    for i, sample in enumerate(dataset.samples):
        truth, size = sample.boxes, sample.image_size
        steps = _noisy(np.repeat(truth[:1], 2, axis=0), 0.3, rng)

        pred = resized.from_pixels(_noisy(truth, 0.06, rng), size)
        good.append({"id": sample.id, "completion": _completion(
            sample, _json_answer(pred, sample.phrase), resized.from_pixels(steps, size))})

        pred = _noisy(truth, 0.15, rng)
        style = i % 10
        if style == 0:
            text = _completion(sample, "The finding is not visible on this image.", steps)
        elif style == 1:
            text = _completion(sample, _json_answer(pred, sample.phrase), steps, closed=False)
        elif style == 2:
            shown = ", ".join(f"{v:.1f}" for v in pred[0])
            text = _completion(sample, f'{{"bbox_2d": [{shown}]}}', steps)
        elif style == 3:
            past_edge = pred[0] + np.array([0, 0, size[0] * 0.5, 0])
            text = _completion(sample, _json_answer(past_edge[None], sample.phrase), steps)
        elif style in (4, 5):
            text = _completion(sample, format_box(np.round(pred[0]).tolist(), dialect="list"), steps)
        elif style == 6:
            text = _completion(sample, format_box(np.round(pred[0]).tolist(), sample.phrase, "ref-box"), steps)
        else:
            text = _completion(sample, _json_answer(pred, sample.phrase), steps)
        sloppy.append({"id": sample.id, "completion": text})

        pred = norm.from_pixels(_noisy(truth, 0.06, rng), size)
        qwen2.append({"id": sample.id, "completion": _completion(
            sample, _json_answer(pred, sample.phrase), norm.from_pixels(steps, size))})
    return [
        DemoRun("good", "Qwen2.5-VL JSON in its resized input frame", "qwen2.5-vl", good),
        DemoRun("sloppy", "mixed dialects, unclosed tags, floats, boxes past the edge, in pixels", "pixel", sloppy),
        DemoRun("qwen2-vl", "answers on the 0-1000 grid, scored in that frame", "norm1000", qwen2),
        DemoRun("qwen2-vl@pixel", "the same answers scored as pixels (wrong frame)", "pixel", qwen2),
    ]


def run_demo(n: int = 120, seed: int = 0) -> tuple[LoadedDataset, list[DemoRow]]:
    """The demo data set and every run scored with the default rules and the medground-r1 preset (no bootstrap)."""
    dataset = demo_dataset(n, seed)
    rows = [
        DemoRow(run, score_predictions(run.records, dataset, frame=run.frame, n_bootstrap=0),
                score_predictions(run.records, dataset, compat="medground-r1", n_bootstrap=0))
        for run in demo_runs(dataset, seed)
    ]
    return dataset, rows


def write_demo_files(output_dir: str | Path, dataset: LoadedDataset, rows: list[DemoRow]) -> list[str]:
    """Write ``truth.jsonl`` and ``preds_<run>.jsonl`` (one per distinct run) to ``output_dir``; return the
    ``medground-eval score`` command for each run."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    truth = folder / "truth.jsonl"
    with open_atomic(truth) as handle:
        for sample in dataset.samples:
            handle.write(json.dumps({"id": sample.id, "phrase": sample.phrase, "boxes": sample.boxes.tolist(),
                                     "image_size": list(sample.image_size), "category": sample.category,
                                     "split": sample.split}) + "\n")
    commands = []
    written: dict[int, Path] = {}
    for row in rows:
        key = id(row.run.records)
        if key not in written:
            written[key] = folder / f"preds_{row.run.name.replace('@', '_as_')}.jsonl"
            with open_atomic(written[key]) as handle:
                handle.writelines(json.dumps(record) + "\n" for record in row.run.records)
        commands.append(f"medground-eval score {written[key]} --dataset jsonl --annotations {truth} "
                        f"--frame {row.run.frame}")
    return commands
