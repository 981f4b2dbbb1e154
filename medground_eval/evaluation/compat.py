"""Scoring rules as values: the default rules and the compatibility presets that score exactly as a published
evaluation script does, to compare with reported numbers.

A :class:`ScoringRules` value says which box is read from a completion, whether coordinates go through the frame
(and are clipped), how a multi-box ground truth is compared, which overlap arithmetic and which hit rule apply. The
scorer reads these fields and has no branch per preset: adding a preset is adding a value to
:data:`COMPAT_PRESETS` (and, when its script reads boxes its own way, an extraction function).

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

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from medground_eval.parsing import completion_text

VLM_R1_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
"""``answer_tag_pattern`` of ``extract_bbox_answer`` in VLM-R1's ``src/eval/test_rec_r1.py``."""

VLM_R1_BOX = re.compile(r"\{.*\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]\s*.*\}", re.DOTALL)
"""``bbox_pattern`` of ``extract_bbox_answer`` in VLM-R1's ``src/eval/test_rec_r1.py``."""

Extraction = tuple[tuple[float, ...] | None, str]
"""What a preset's extraction reads from a completion text: its one box (None: a parse failure) and the reason
for a failure ("" when a box was read)."""
Overlap = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Paired (k, 4) predicted and true boxes -> (intersection, union), in a preset's arithmetic."""

DEFAULT_PARSE_RULES = (
    "medground-eval Chain-of-Box parser: <think>/<answer> read leniently (missing closing tags tolerated), every "
    "valid box of the answer in JSON, list, Qwen2 token or <ref><box> dialects, swapped corners reordered; boxes "
    "converted from the frame to original pixels and clipped; multi-box regions scored as unions"
)


@dataclass(frozen=True)
class ScoringRules:
    """How a run reads and compares boxes.

    - ``name``: the preset name (``config["compat"]``), None for the default rules.
    - ``extract``: None: the medground-eval parser (every answer box, ``answer_tag`` and ``pred_boxes`` lines
      allowed); else the preset's own reading of one box per completion text (:data:`Extraction`); such a preset
      takes completions only and has its own tag rules.
    - ``raw_coordinates``: compare coordinates as written (no frame conversion, no clipping; the frame must be
      ``pixel``); False: convert from the line's frame to original pixels and clip.
    - ``truth_region``: ``"union"`` (several true boxes form one region) or ``"enclosing"`` (the one box around
      them, for scripts whose ground truth is one box).
    - ``overlap``: None: continuous region overlap (:func:`medground_eval.boxes.region_overlap_columns`); else the
      preset's paired one-box arithmetic (:data:`Overlap`), a parse failure scored as ``failure_box``.
    - ``inclusive``: the hit rule (IoU >= t when True, > t when False); None: the run's ``inclusive`` option.
    - ``rescale``: with ``raw_coordinates``, ``"resized"`` multiplies each answer by image / model input per axis
      (VLM-R1's ``resize_bbox``; input = ``smart_resize`` of the image), still unclipped; ``"none"``: as written.
    - ``parse_rules`` / ``source``: what the run records in ``config`` (``source``: the script and its commit).
    """

    name: str | None
    parse_rules: str
    source: str
    extract: Callable[[str], Extraction] | None = None
    raw_coordinates: bool = False
    truth_region: Literal["union", "enclosing"] = "union"
    overlap: Overlap | None = None
    failure_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    inclusive: bool | None = None
    rescale: Literal["none", "resized"] = "none"

    @property
    def own_parser(self) -> bool:
        """The preset reads completions its own way (no ``--answer-tag``, no ``pred_boxes`` lines)."""
        return self.extract is not None


def vlm_r1_read(text: str) -> Extraction:
    """VLM-R1's ``extract_bbox_answer`` on a completion text: its box, or None (their ``[0, 0, 0, 0]``) and why."""
    answer = VLM_R1_ANSWER.search(text)
    if answer is None:
        return None, "vlm-r1: no <answer>...</answer>"
    box = VLM_R1_BOX.search(answer.group(1).strip())
    if box is None:
        return None, "vlm-r1: no {...[int, int, int, int]...} in the answer"
    return tuple(int(box.group(i)) for i in range(1, 5)), ""


def vlm_r1_extract(completion: object) -> tuple[int, int, int, int] | None:
    """The box VLM-R1's ``extract_bbox_answer`` reads from a completion (text or chat messages), or None where it
    falls back to ``[0, 0, 0, 0]`` (no closed answer, or no match of :data:`VLM_R1_BOX`)."""
    return vlm_r1_read(completion_text(completion))[0]


def vlm_r1_problem(completion: object) -> str | None:
    """Why :func:`vlm_r1_extract` finds no box (for per-sample reports), or None when it finds one."""
    return vlm_r1_read(completion_text(completion))[1] or None


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


DEFAULT_RULES = ScoringRules(name=None, parse_rules=DEFAULT_PARSE_RULES, source="medground-eval")
"""The rules of a run without ``compat``: our parser, frames and clipping, union regions, the run's hit rule."""

_VLM_R1_RAW = ScoringRules(
    name="vlm-r1",
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
    extract=vlm_r1_read,
    raw_coordinates=True,
    truth_region="enclosing",
    overlap=vlm_r1_overlap,
    inclusive=False,
)

MEDGROUND_R1 = dataclasses.replace(
    _VLM_R1_RAW,
    name="medground-r1",
    parse_rules=_VLM_R1_RAW.parse_rules.replace("vlm-r1:", "medground-r1:", 1),
    source=(
        "bio-mlhui/MedGround-R1 evaluation (VLM-R1's src/eval/test_rec_r1.py before om-ai-lab/VLM-R1 commit 00755a2, "
        "2025-06-26: raw coordinates, no resize_bbox); open-r1-multimodal/src/open_r1/grpo_rec.py"
    ),
)
"""The MedGround-R1 fork's evaluation: the rules ``vlm-r1`` has meant so far (raw coordinates, greedy ``{...[int x4]
...}``, the -1/+1 IoU, hit when IoU > 0.5). VLM-R1's own script rescales since commit 00755a2 (2025-06-26)."""

VLM_R1 = dataclasses.replace(
    _VLM_R1_RAW,
    parse_rules=_VLM_R1_RAW.parse_rules.replace(
        "raw coordinates (no frame, no clipping)",
        "answer rescaled from the model's resized input (smart_resize of the image, Qwen2.5-VL default pixel "
        "limits) to original pixels by resize_bbox, no clipping",
    ),
    source="om-ai-lab/VLM-R1 src/eval/test_rec_r1.py since commit 00755a2 (2025-06-26): extract_bbox_answer, "
           "resize_bbox (input = image_grid_thw * 14), iou, > 0.5",
    rescale="resized",
)
"""Today's VLM-R1 REC evaluation: MedGround-R1's rules plus ``resize_bbox`` before the IoU. Until issue 14 this name
meant :data:`MEDGROUND_R1`; ``score`` prints a notice when it is used."""

RENAMED_NOTICE = {
    "vlm-r1": "note: --compat vlm-r1 now follows VLM-R1's current src/eval/test_rec_r1.py (answers rescaled from the "
              "model's resized input, commit 00755a2, 2025-06-26); the raw-coordinate protocol it meant before is "
              "--compat medground-r1",
}
"""A one-line notice printed when a preset whose meaning changed is used."""

LMMS_EVAL_BOX = re.compile(
    r"\[\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)\s*\]"
)
"""``parse_float_sequence_within`` of lmms-eval's ``lmms_eval/tasks/refcoco/utils_rec.py`` (0.7.3)."""


def lmms_eval_read(text: str) -> Extraction:
    """lmms-eval refcoco ``bbox_rec``'s reading: the first ``[a, b, c, d]`` of signed decimals anywhere in the text
    (no tags); none: their ``[0, 0, 0, 0]``, which their Center_ACC still tests (it is returned as the box, and the
    reason is kept for the per-sample report)."""
    match = LMMS_EVAL_BOX.search(text)
    if match is None:
        return (0.0, 0.0, 0.0, 0.0), "lmms-eval: no [x1, y1, x2, y2] in the completion (scored as [0, 0, 0, 0])"
    return tuple(float(match.group(i)) for i in range(1, 5)), ""


def lmms_eval_overlap(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lmms-eval refcoco ``compute_iou``'s intersection and union for paired (n, 4) boxes: continuous,
    ``max(0, w) * max(0, h)`` of the overlap, ``union = area(a) + area(b) - inter`` with signed areas (a swapped box
    has a negative area there; a union <= 0, a ZeroDivisionError or a negative IoU there, scores 0 here)."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    true = np.asarray(true, dtype=np.float64).reshape(-1, 4)
    width = np.maximum(0.0, np.minimum(pred[:, 2], true[:, 2]) - np.maximum(pred[:, 0], true[:, 0]))
    height = np.maximum(0.0, np.minimum(pred[:, 3], true[:, 3]) - np.maximum(pred[:, 1], true[:, 1]))
    inter = width * height
    area_pred = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_true = (true[:, 2] - true[:, 0]) * (true[:, 3] - true[:, 1])
    return inter, area_pred + area_true - inter


LMMS_EVAL = ScoringRules(
    name="lmms-eval",
    parse_rules=(
        "lmms-eval: the first [a, b, c, d] of signed decimals anywhere in the completion (no tags), else [0, 0, 0, 0] "
        "(still scored, also by the centre test); raw coordinates (the ground truth's own units); continuous IoU; "
        "Acc@t with IoU >= t; centre accuracy = pointing (centre of the box within the truth, inclusive); "
        "multi-box ground truth compared as its enclosing box"
    ),
    source="EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/refcoco/utils_rec.py (bbox_rec; 0.7.3, commit 75571cf)",
    extract=lmms_eval_read,
    raw_coordinates=True,
    truth_region="enclosing",
    overlap=lmms_eval_overlap,
    inclusive=True,
)

CompatPreset = ScoringRules
"""The former name of :class:`ScoringRules` (a compat preset is a rules value)."""

COMPAT_PRESETS: dict[str, ScoringRules] = {p.name: p for p in (VLM_R1, MEDGROUND_R1, LMMS_EVAL)}


def get_compat(name: str) -> ScoringRules:
    """The preset called ``name``; ValueError listing the known presets otherwise."""
    try:
        return COMPAT_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown compat preset {name!r}: expected one of {', '.join(COMPAT_PRESETS)}") from None


def get_rules(compat: str | None) -> ScoringRules:
    """The rules of a run: :data:`DEFAULT_RULES` without ``compat``, else the preset (ValueError when unknown)."""
    return DEFAULT_RULES if compat is None else get_compat(compat)
