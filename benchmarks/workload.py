"""A realistic workload for the reward and scorer benchmarks: completions shaped like what real models write.

Shapes (one family per call, ``family=``):

- ``qwen2.5-vl``: ``<think>..</think>\\n<answer>```json\\n[{"bbox_2d": [..], "label": ".."}]\\n```</answer>``, boxes
  in absolute pixels of the model's resized input (``smart_resize`` of the image, the ``qwen2.5-vl`` frame).
- ``qwen2-vl``: ``<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`` in the answer,
  0-1000 (the ``norm1000`` frame).
- ``internvl``: ``<ref>label</ref><box>[[x1, y1, x2, y2]]</box>`` in the answer, 0-1000 (``norm1000``).

Mix (measured on real Qwen2.5-VL completions of the MS-CXR test set: 382 characters on average, 7.8%
non-canonical): 5% close their fence with ```` ```json ````, 2% lack ``</answer>``, 1% hold no box; 3% answer
several boxes (MS-CXR phrases with two regions); the think text is 1-4 sentences of radiology reasoning
(150-420 characters), a third of them with a Chain-of-Box step ``[x1, y1, x2, y2]``. Images have chest X-ray sizes
(2000-4300 px per side); every row carries ``image_size``. Completions come as plain strings (``completions``)
and as TRL conversational messages (``chats``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medground_eval.frames import get_frame

FINDINGS = ["left apical pneumothorax", "right lower lobe consolidation", "cardiomegaly", "left pleural effusion",
            "right upper lobe nodule", "bibasilar atelectasis", "left retrocardiac opacity", "right hilar mass"]
SENTENCES = [
    "The image is a frontal chest radiograph with adequate inspiration.",
    " I look for the {finding} in the {side} hemithorax, where the lung markings look {quality}.",
    " Compared with the contralateral side, the density near {box} is increased and its margin is {margin}.",
    " The costophrenic angle is {angle} and the mediastinal contours are unremarkable, so the region is there.",
]
FRAMES = {"qwen2.5-vl": "qwen2.5-vl", "qwen2-vl": "norm1000", "internvl": "norm1000"}
SHARES = {"fence_json": 0.05, "no_close": 0.02, "no_box": 0.01, "multi": 0.03}


@dataclass(frozen=True)
class Workload:
    """``n`` completions and their ground truth: ``solution`` (boxes in original pixels, a list of boxes per row),
    ``image_size`` ``[W, H]``, ``phrase``; ``frame`` is the frame the completions are written in."""

    family: str
    frame: str
    completions: list[str]
    solution: list[list[list[int]]]
    image_size: list[list[int]]
    phrase: list[str]

    @property
    def chats(self) -> list[list[dict[str, str]]]:
        """The completions as TRL's conversational format (one assistant message each)."""
        return [[{"role": "assistant", "content": text}] for text in self.completions]

    @property
    def columns(self) -> dict[str, list]:
        """The reward columns (TRL keyword convention)."""
        return {"solution": self.solution, "image_size": self.image_size, "phrase": self.phrase}

    def write_jsonl(self, folder: Path) -> tuple[Path, Path]:
        """``truth.jsonl`` (jsonl ground truth) and ``preds.jsonl`` (id + completion) in ``folder``."""
        truth, preds = folder / "truth.jsonl", folder / "preds.jsonl"
        with truth.open("w") as gt, preds.open("w") as out:
            for i, (text, boxes, size, phrase) in enumerate(zip(self.completions, self.solution, self.image_size,
                                                                self.phrase)):
                gt.write(json.dumps({"id": f"s{i}", "phrase": phrase, "boxes": boxes, "image_size": size,
                                     "category": phrase.split()[-1]}) + "\n")
                out.write(json.dumps({"id": f"s{i}", "completion": text}) + "\n")
        return truth, preds


def _answer(family: str, boxes: np.ndarray, label: str, kind: str) -> str:
    if kind == "no_box":
        return "No focal abnormality is visible, so there is no region to mark."
    if family == "qwen2.5-vl":
        items = ", ".join(f'{{"bbox_2d": [{b[0]}, {b[1]}, {b[2]}, {b[3]}], "label": "{label}"}}' for b in boxes)
        close = "```json" if kind == "fence_json" else "```"
        return f"```json\n[\n\t{items}\n]\n{close}"
    if family == "qwen2-vl":
        return "".join(f"<|object_ref_start|>{label}<|object_ref_end|><|box_start|>({b[0]},{b[1]}),({b[2]},{b[3]})"
                       "<|box_end|>" for b in boxes)
    return f"<ref>{label}</ref><box>[{', '.join(f'[{b[0]}, {b[1]}, {b[2]}, {b[3]}]' for b in boxes)}]</box>"


def make_workload(n: int, family: str = "qwen2.5-vl", seed: int = 0) -> Workload:
    """``n`` completions of ``family`` with the mix of the module docstring (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    frame = get_frame(FRAMES[family])
    sizes = rng.integers(2000, 4301, size=(n, 2))
    draw = rng.random(n)
    kinds = np.select([draw < 0.05, draw < 0.07, draw < 0.08, draw < 0.11],
                      ["fence_json", "no_close", "no_box", "multi"], "canonical")
    completions, solution, phrases = [], [], []
    corner = rng.uniform(0.05, 0.6, (n, 2, 2)) * sizes[:, None, :]
    extent = rng.uniform(0.08, 0.35, (n, 2, 2)) * sizes[:, None, :]
    noise = rng.normal(0, 0.04, (n, 2, 4))
    sentences = rng.integers(1, 5, n)
    for i in range(n):
        count = 2 if kinds[i] == "multi" else 1
        truth = np.concatenate([corner[i, :count], corner[i, :count] + extent[i, :count]], axis=1)
        truth = np.minimum(np.round(truth), np.tile(sizes[i], 2)).astype(int)
        pred = truth + noise[i, :count] * np.tile(extent[i, :count], 2)
        written = frame.from_pixels(pred, np.repeat(sizes[i][None], count, axis=0))
        written = np.round(np.clip(written, 0, None)).astype(int)
        written[:, 2:] = np.maximum(written[:, 2:], written[:, :2])
        finding = FINDINGS[i % len(FINDINGS)]
        x1, y1 = written[0, :2].tolist()
        think = "".join(SENTENCES[:sentences[i]]).format(
            finding=finding, side=("left", "right")[i % 2], quality=("coarse", "dense", "absent")[i % 3],
            margin=("sharp", "ill-defined")[i % 2], angle=("blunted", "sharp")[i % 2],
            box=f"[{x1}, {y1}, {x1 + 40}, {y1 + 30}]" if i % 3 == 0 else "the lower zone")
        answer = _answer(family, written, finding, kinds[i])
        closing = "" if kinds[i] == "no_close" else "</answer>"
        completions.append(f"<think>{think}</think>\n<answer>{answer}{closing}")
        solution.append(truth.tolist())
        phrases.append(finding)
    return Workload(family, FRAMES[family], completions, solution, sizes.tolist(), phrases)


def write_images(folder: Path, sizes: list[list[int]], count: int = 16) -> list[Path]:
    """``count`` grayscale PNG files of the first distinct sizes (for the references that open an image per
    completion); the i-th completion uses image ``i % count``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (width, height) in enumerate(sizes[:count]):
        path = folder / f"image_{i}.png"
        Image.new("L", (int(width), int(height))).save(path)
        paths.append(path)
    return paths
