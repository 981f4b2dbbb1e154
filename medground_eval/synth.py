"""A synthetic grounding data set: bright shapes on a dark noisy background, with phrases that name them.

Each image is ``size x size`` RGB (grey): Gaussian noise around a dark level, one bright filled ellipse or
rectangle (sides ``min_side .. max_side`` pixels, scaled with ``size / 224``), and with probability ``two_regions``
a second shape of the same kind: the phrase then names both (``"bilateral round opacities"``) and the sample has
two boxes, scored as their union like MS-CXR's multi-box phrases. The phrase names the shape (``round`` for an
ellipse, ``rectangular`` for a rectangle, or one of ``plain_words`` when ``shape_words=False``) and, when
``laterality=True``, its side: **radiological convention** as in chest X-rays, the patient's right is on the image's
left, so a shape whose centre is left of the midline is "right".

Ground truth is the tight box of the drawn shape in original pixels (``[x1, y1, x2, y2]``, upper edge exclusive), in
the generic JSON-lines format (:mod:`medground_eval.datasets.jsonl`, images relative to the output folder). The first
``n - n_test`` samples are split ``train``, the rest ``test``. Every sample is drawn from its own generator seeded
by ``(seed, index)``: the same seed gives the same files byte for byte, and a larger ``n`` adds samples without
changing the first ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHAPES = ("ellipse", "rectangle")
SHAPE_WORDS = {"ellipse": "round", "rectangle": "rectangular"}
PLAIN_WORDS = ("opacity", "nodule", "mass")


@dataclass(frozen=True)
class SynthOptions:
    """Settings of :func:`synthesize` (see the module docstring)."""

    n: int = 2000
    size: int = 224
    seed: int = 0
    n_test: int = 200
    two_regions: float = 0.0
    laterality: bool = True
    shape_words: bool = True
    min_side: int = 40
    max_side: int = 100

    def check(self) -> None:
        if self.n < 1:
            raise ValueError(f"--n {self.n}: expected at least one sample")
        if not 0 <= self.n_test < self.n:
            raise ValueError(f"--n-test {self.n_test}: expected 0 <= n_test < n = {self.n}")
        if not 0.0 <= self.two_regions <= 1.0:
            raise ValueError(f"--two-regions {self.two_regions}: expected a probability in [0, 1]")
        if self.size < 28:
            raise ValueError(f"--size {self.size}: expected at least 28 pixels")
        if not 1 <= self.min_side <= self.max_side <= 224:
            raise ValueError(f"sides {self.min_side}..{self.max_side}: expected 1 <= min_side <= max_side <= 224")


def _shape_box(rng: np.random.Generator, size: int, low: int, high: int, half: int | None) -> list[int]:
    """A box ``[x1, y1, x2, y2]`` of sides in ``[low, high]`` inside the image; ``half`` 0 / 1 keeps it inside the
    left / right half (for two regions), None anywhere."""
    width, height = (int(v) for v in rng.integers(low, high + 1, size=2))
    x_low, x_high = {None: (0, size - width), 0: (0, size // 2 - width), 1: (size // 2, size - width)}[half]
    x1 = int(rng.integers(x_low, x_high + 1))
    y1 = int(rng.integers(0, size - height + 1))
    return [x1, y1, x1 + width, y1 + height]


def _draw(pixels: np.ndarray, shape: str, box: list[int], level: float) -> list[int]:
    """Fill ``shape`` inscribed in ``box`` with ``level``; returns the tight box of the pixels set."""
    x1, y1, x2, y2 = box
    ys, xs = np.mgrid[y1:y2, x1:x2]
    if shape == "ellipse":
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        inside = ((xs + 0.5 - cx) / rx) ** 2 + ((ys + 0.5 - cy) / ry) ** 2 <= 1.0
    else:
        inside = np.ones(xs.shape, dtype=bool)
    pixels[ys[inside], xs[inside]] = level
    rows, cols = np.nonzero(inside)
    return [int(x1 + cols.min()), int(y1 + rows.min()), int(x1 + cols.max() + 1), int(y1 + rows.max() + 1)]


def make_sample(index: int, options: SynthOptions) -> tuple[np.ndarray, dict]:
    """The image (uint8, ``size x size x 3``) and the ground-truth record of sample ``index``."""
    rng = np.random.default_rng([options.seed, index])
    size = options.size
    scale = size / 224
    low, high = max(2, round(options.min_side * scale)), max(2, round(options.max_side * scale))
    pixels = rng.normal(40.0, 12.0, size=(size, size))
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    two = bool(rng.random() < options.two_regions)
    level = float(rng.uniform(170, 240))
    if two:
        boxes = [_draw(pixels, shape, _shape_box(rng, size, min(low, size // 2 - 2), min(high, size // 2 - 2), half), level)
                 for half in (0, 1)]
    else:
        boxes = [_draw(pixels, shape, _shape_box(rng, size, low, high, None), level)]
    word = SHAPE_WORDS[shape] if options.shape_words else PLAIN_WORDS[int(rng.integers(len(PLAIN_WORDS)))]
    if two:
        phrase = f"bilateral {word} opacities" if options.shape_words else f"bilateral {word}"
    else:
        phrase = f"{word} opacity" if options.shape_words else word
        if options.laterality:
            centre = (boxes[0][0] + boxes[0][2]) / 2
            phrase = f"{'right' if centre < size / 2 else 'left'} {phrase}"  # radiological: patient's right = image left
    image = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    record = {
        "id": f"synth-{index:05d}",
        "phrase": phrase,
        "boxes": boxes,
        "image_size": [size, size],
        "category": shape,
        "image": f"images/{index:05d}.png",
        "split": "train" if index < options.n - options.n_test else "test",
    }
    return np.repeat(image[:, :, None], 3, axis=2), record


def synthesize(output: str | Path, options: SynthOptions = SynthOptions()) -> Path:
    """Write ``output/images/*.png`` and ``output/data.jsonl`` (train and test splits); returns the jsonl path."""
    from PIL import Image

    from medground_eval.outputs import atomic_write_text

    options.check()
    output = Path(output)
    (output / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(options.n):
        pixels, record = make_sample(index, options)
        Image.fromarray(pixels).save(output / record["image"], optimize=False)
        lines.append(json.dumps(record) + "\n")
    annotations = output / "data.jsonl"
    atomic_write_text(annotations, "".join(lines))
    return annotations
