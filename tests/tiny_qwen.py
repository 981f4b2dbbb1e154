"""Test helpers: the package's tiny Qwen2.5-VL at its "test" size, and a reward test double.

``text_hash_reward``: random-weight completions score 0 on every grounding reward, which gives GRPO zero advantages
and so zero policy gradient; this reward varies with the completion text, so a training step has a gradient and the
test can check that parameters move.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from medground_eval.tiny_model import SIZES
from medground_eval.tiny_model import build_tiny_qwen as _build

MIN_PIXELS = SIZES["test"].min_pixels  # 56 x 56 images: 4 x 4 patches of 14 pixels, merged 2 x 2 into 4 image tokens
MAX_PIXELS = SIZES["test"].max_pixels


def text_hash_reward(completions: list, **columns: object) -> list[float]:
    """A value in [0, 1) per completion from the CRC-32 of its text: deterministic, and varied across a group."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [zlib.crc32(t.encode("utf-8")) / 2**32 for t in texts]


def build_tiny_qwen(path: str | Path, *, seed: int = 0) -> Path:
    """The "test" size tiny Qwen2.5-VL (hidden 32, 1 text layer, 1 vision block) saved in ``path``."""
    return _build(path, size="test", seed=seed)
