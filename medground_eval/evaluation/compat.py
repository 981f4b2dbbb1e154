"""Compatibility presets: score exactly as a published evaluation script does, to compare with reported numbers.

``vlm-r1`` reproduces the REC evaluation of VLM-R1 (``om-ai-lab/VLM-R1``, ``src/eval/test_rec_r1.py``:
``extract_bbox_answer`` and ``iou``), which MedGround-R1 (``bio-mlhui/MedGround-R1``) reuses for its published
evaluation logs (``eval/logs/rec*_results_*.json``: multi-line ``<answer>`` blocks read, so the ``re.DOTALL`` version).
Its training reward ``open-r1-multimodal/src/open_r1/grpo_rec.py`` (``iou_reward``) shares the ``iou`` function and
the ``> 0.5`` rule but not the box pattern: it takes the *first* ``[\\d+, \\d+, \\d+, \\d+]``, braces or not; the
preset follows the evaluation script. (Early VLM-R1 versions of the script searched without ``re.DOTALL``, so an
answer spanning lines was a parse failure there.) The rules, as the evaluation script runs them:

- **Answer**: the first ``<answer>(.*?)</answer>`` (``re.DOTALL``, case-sensitive), stripped. No closing tag: no answer.
- **Box**: ``re.search(r"\\{.*\\[(\\d+),\\s*(\\d+),\\s*(\\d+),\\s*(\\d+)]\\s*.*\\}", answer, re.DOTALL)``: four
  unsigned integers in ``[...]`` with a ``{`` somewhere before and a ``}`` somewhere after. The leading ``.*`` is
  greedy, so with several such boxes it is the **last** one that has a ``}`` after it, not the first.
  Floats, negative numbers, a bare list without braces, or no answer: a parse failure. The script then uses
  ``[0, 0, 0, 0]``, which scores IoU 0 and stays in the denominator.
- **Coordinates** are compared with the ground truth as written: no rescaling from any model frame, no clipping,
  no reordering of swapped corners.
- **IoU** (their ``iou``), with a ``-1`` on the lower-right corner in the intersection and a ``+1`` back::

      ix1, iy1 = max(a.x1, b.x1), max(a.y1, b.y1)
      ix2, iy2 = min(a.x2 - 1, b.x2 - 1), min(a.y2 - 1, b.y2 - 1)
      inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
      union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter

  For an overlap wider and taller than 1 pixel this equals the continuous IoU; an overlap of at most 1 pixel on an
  axis counts as 0 (strict ``<``). The union has no ``+1``.
- **Hit**: IoU ``> 0.5`` (strict), so IoU exactly 0.5 is a miss.

Where their code would crash or could not apply, these decisions are ours (and stated in every report):
a zero (or negative) union, which raises ZeroDivisionError there, scores IoU 0; a ground truth of several boxes (their
``solution`` is one box) is compared as the one box enclosing them; 3D boxes are not supported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medground_eval.parsing import completion_text

VLM_R1_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
"""``answer_tag_pattern`` of ``extract_bbox_answer`` in VLM-R1's ``src/eval/test_rec_r1.py``."""

VLM_R1_BOX = re.compile(r"\{.*\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]\s*.*\}", re.DOTALL)
"""``bbox_pattern`` of ``extract_bbox_answer`` in VLM-R1's ``src/eval/test_rec_r1.py``."""


@dataclass(frozen=True)
class CompatPreset:
    """A published evaluation's rules: its hit rule (``threshold``, ``inclusive``) and a description of its parser."""

    name: str
    threshold: float
    inclusive: bool
    parse_rules: str
    source: str


VLM_R1 = CompatPreset(
    name="vlm-r1",
    threshold=0.5,
    inclusive=False,
    parse_rules=(
        "vlm-r1: first <answer>(.*?)</answer>; box = the 4 unsigned integers matched by "
        r"\{.*\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]\s*.*\} (greedy: the last such box); anything else is a parse "
        "failure scored IoU 0; raw coordinates (no frame, no clipping); IoU with the -1/+1 pixel convention of "
        "VLM-R1; hit when IoU > 0.5; multi-box ground truth compared as its enclosing box"
    ),
    source=(
        "om-ai-lab/VLM-R1 src/eval/test_rec_r1.py; "
        "bio-mlhui/MedGround-R1 open-r1-multimodal/src/open_r1/grpo_rec.py"
    ),
)

COMPAT_PRESETS: dict[str, CompatPreset] = {VLM_R1.name: VLM_R1}


def get_compat(name: str) -> CompatPreset:
    """The preset called ``name``; ValueError listing the known presets otherwise."""
    try:
        return COMPAT_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown compat preset {name!r}: expected one of {', '.join(COMPAT_PRESETS)}") from None


def vlm_r1_extract(completion: object) -> tuple[int, int, int, int] | None:
    """The box VLM-R1's ``extract_bbox_answer`` reads from a completion (text or chat messages), or None where it
    falls back to ``[0, 0, 0, 0]`` (no closed answer, or no match of :data:`VLM_R1_BOX`)."""
    answer = VLM_R1_ANSWER.search(completion_text(completion))
    if answer is None:
        return None
    box = VLM_R1_BOX.search(answer.group(1).strip())
    if box is None:
        return None
    x1, y1, x2, y2 = (int(box.group(i)) for i in range(1, 5))
    return x1, y1, x2, y2


def vlm_r1_problem(completion: object) -> str | None:
    """Why :func:`vlm_r1_extract` finds no box (for per-sample reports), or None when it finds one."""
    text = completion_text(completion)
    if VLM_R1_ANSWER.search(text) is None:
        return "vlm-r1: no <answer>...</answer>"
    if vlm_r1_extract(text) is None:
        return "vlm-r1: no {...[int, int, int, int]...} in the answer"
    return None


def vlm_r1_overlap(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """VLM-R1's intersection and union for paired (n, 4) boxes, in their arithmetic (see the module docstring).

    The union may be 0 or negative for boxes with swapped corners; :func:`vlm_r1_iou` scores those 0.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    true = np.asarray(true, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(pred[:, 0], true[:, 0])
    iy1 = np.maximum(pred[:, 1], true[:, 1])
    ix2 = np.minimum(pred[:, 2] - 1, true[:, 2] - 1)
    iy2 = np.minimum(pred[:, 3] - 1, true[:, 3] - 1)
    overlaps = (ix1 < ix2) & (iy1 < iy2)
    inter = np.where(overlaps, (ix2 - ix1 + 1) * (iy2 - iy1 + 1), 0.0)
    area_pred = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_true = (true[:, 2] - true[:, 0]) * (true[:, 3] - true[:, 1])
    return inter, area_pred + area_true - inter


def vlm_r1_iou(
    pred: np.ndarray | Sequence[Sequence[float]], true: np.ndarray | Sequence[Sequence[float]]
) -> np.ndarray:
    """VLM-R1's ``iou`` for paired (n, 4) boxes; 0 where their code would divide by a zero union.

    Values lie in [0, 1]: a positive intersection implies both boxes have positive area, so the union covers it.
    """
    inter, union = vlm_r1_overlap(np.asarray(pred), np.asarray(true))
    return np.divide(inter, union, out=np.zeros(len(inter)), where=union > 0)


def enclosing_box(boxes: np.ndarray) -> np.ndarray:
    """The (4,) box enclosing (K, 4) corner boxes (how the compat preset reads a multi-box ground truth)."""
    return np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])
