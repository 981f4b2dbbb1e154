"""The spatial reward: how well the predicted region overlaps the true one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from medground_eval import boxes as geometry
from medground_eval.frames import Frame, get_frame
from medground_eval.metrics import iou_hits
from medground_eval.regions import ParsedBatch, PredictedRegions, parse_batch, predicted_regions
from medground_eval.rewards.base import Reward
from medground_eval.rewards.columns import GroundTruthBatch, read_ground_truth
from medground_eval.structures import ParsedCompletion

SpatialMode = Literal["iou", "threshold", "giou"]
MultiBox = Literal["union", "match"]


@dataclass(frozen=True)
class SpatialResult:
    """Per completion: the IoU (union regions, or matched), the reward value, and what went wrong; ``batch`` is the
    parsed batch (``parsed`` its ParsedCompletion objects, made on first access)."""

    iou: np.ndarray
    reward: np.ndarray
    parse_failed: np.ndarray
    out_of_frame: np.ndarray
    batch: ParsedBatch
    regions: PredictedRegions
    truth: GroundTruthBatch

    @property
    def parsed(self) -> list[ParsedCompletion]:
        return self.batch.parsed


class SpatialReward(Reward):
    """Overlap of the predicted region with the true region, in original-image pixels.

    - ``mode="iou"``: the IoU itself, in [0, 1].
    - ``mode="threshold"``: 1.0 when IoU >= ``threshold`` (``inclusive=True``) or > ``threshold``, else 0.0.
    - ``mode="giou"``: ``(GIoU + 1) / 2``, in [0, 1]; GIoU of the union regions
      (:func:`medground_eval.boxes.region_giou_columns`: the enclosing box is the box around all predicted and true
      boxes; for one box each it is :func:`~medground_eval.boxes.generalized_box_iou`). A zero-area answer on a
      zero-area true box has GIoU -1, reward 0 (the boxes module's degenerate rule).
    - ``multi="union"`` (default, the MS-CXR convention): several boxes on either side form one region (their
      union); ``multi="match"``: one-to-one Hungarian matching, sum of matched IoU / max(#pred, #true).
      GIoU is defined on union regions only.
    - ``frame``: the frame the model writes boxes in (a preset such as ``"qwen2.5-vl"`` or a :class:`Frame`);
      a per-sample ``frame`` column overrides it. Boxes are clipped to the image after conversion.
    A completion with no valid answer box scores 0.

    >>> SpatialReward()(["<answer>[0, 0, 10, 10]</answer>"], solution=[[0, 0, 10, 20]])
    [0.5]
    """

    def __init__(
        self,
        *,
        mode: SpatialMode = "iou",
        threshold: float = 0.5,
        inclusive: bool = True,
        multi: MultiBox = "union",
        frame: str | Frame = "pixel",
        dims: int = 2,
        name: str | None = None,
    ):
        if mode not in ("iou", "threshold", "giou"):
            raise ValueError(f"mode = {mode!r}: expected 'iou', 'threshold' or 'giou'")
        if multi not in ("union", "match"):
            raise ValueError(f"multi = {multi!r}: expected 'union' or 'match'")
        if mode == "giou" and multi == "match":
            raise ValueError("mode='giou' is defined on union regions: use multi='union'")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold = {threshold!r}: expected a number in [0, 1]")
        self.mode = mode
        self.threshold = float(threshold)
        self.inclusive = inclusive
        self.multi = multi
        self.frame = get_frame(frame)
        self.dims = dims
        self.__name__ = name or "spatial_reward"

    def __call__(self, completions: Sequence[object], **columns: object) -> list[float]:
        """The rewards as a list (TRL's reward-function shape). When TRL passes its ``log_metric`` callback (TRL >=
        1.16 gives every reward function one), the batch's ``grounding/mean_iou``, ``grounding/parse_failure_rate``
        and ``grounding/out_of_frame_rate`` are logged through it."""
        log_metric = columns.pop("log_metric", None)
        result = self._evaluate(completions, columns)
        if callable(log_metric) and len(completions):
            log_metric("grounding/mean_iou", float(result.iou.mean()))
            log_metric("grounding/parse_failure_rate", float(result.parse_failed.mean()))
            log_metric("grounding/out_of_frame_rate", float(result.out_of_frame.mean()))
        return result.reward.tolist()

    def evaluate(self, completions: Sequence[object], **columns: object) -> SpatialResult:
        """Parse, convert and compare a batch: IoU, reward, parse failures, out-of-frame flags and the regions.

        >>> completions = ["<answer>[0, 0, 10, 10]</answer>", "no box"]
        >>> result = SpatialReward().evaluate(completions, solution=[[0, 0, 10, 20]] * 2)
        >>> result.iou.tolist(), result.parse_failed.tolist()
        ([0.5, 0.0], [False, True])
        """
        return self._evaluate(completions, columns)

    def _evaluate(self, completions: Sequence[object], columns: Mapping[str, object], *,
                  batch: ParsedBatch | None = None) -> SpatialResult:
        """:meth:`evaluate` with the columns as a mapping and, optionally, the completions' parse ``batch`` (the
        combined reward shares one parse between its terms)."""
        truth = read_ground_truth(
            len(completions), columns, dims=self.dims, need_image_size=self.frame.kind != "pixel", frame=self.frame
        )
        if batch is None:
            batch = parse_batch(completions, self.dims)
        regions = predicted_regions(
            batch,
            frames=truth.frames or self.frame,
            image_sizes=truth.image_sizes,
            input_sizes=truth.input_sizes,
            dims=self.dims,
        )
        if self.multi == "match":
            iou = np.array([geometry.matched_iou(p, t) for p, t in zip(regions.boxes, truth.boxes)], dtype=np.float64)
            iou = iou.reshape(len(completions))
        else:
            intersection, union = geometry.region_overlap_columns(
                regions.flat, regions.counts, truth.flat, truth.counts
            )
            iou = geometry.safe_divide(intersection, union)
        if self.mode == "iou":
            reward = iou
        elif self.mode == "threshold":
            reward = iou_hits(iou, self.threshold, self.inclusive).astype(np.float64)
        else:
            giou = geometry.region_giou_columns(
                regions.flat, regions.counts, truth.flat, truth.counts, overlap=(intersection, union)
            )
            reward = (giou + 1.0) / 2.0
        reward = np.where(regions.parse_failed, 0.0, reward)
        return SpatialResult(iou, reward, regions.parse_failed, regions.out_of_frame, batch, regions, truth)

    def scores(self, completions: Sequence[object], **columns: object) -> np.ndarray:
        """The rewards as an array (see :meth:`evaluate`)."""
        columns.pop("log_metric", None)
        return self._evaluate(completions, columns).reward


spatial_reward = SpatialReward()
