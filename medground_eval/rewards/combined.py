"""The combined MedGround-R1 reward: ``R = w_format * R_format + w_spatial * R_spatial + w_semantic * R_semantic
+ w_anatomy * R_anatomy`` (the anatomy term: :mod:`medground_eval.rewards.anatomy`)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from medground_eval.frames import Frame
from medground_eval.regions import ParsedBatch, parse_batch
from medground_eval.rewards.anatomy import AnatomyReward
from medground_eval.rewards.base import Reward
from medground_eval.rewards.format import FormatReward
from medground_eval.rewards.semantic import (
    DEFAULT_CEIL,
    DEFAULT_FLOOR,
    MAX_LABEL_CHARS,
    EncoderSpec,
    SemanticReward,
    predicted_label,
)
from medground_eval.rewards.spatial import MultiBox, SpatialMode, SpatialReward

SemanticPolicy = Literal["all", "negative"]


@dataclass(frozen=True)
class RewardBreakdown:
    """Per completion, each component and the weighted total (arrays of equal length).

    ``iou`` is the raw IoU with the true region; ``spatial``, ``format``, ``semantic`` and ``anatomy`` are the
    component rewards in [0, 1] (``anatomy`` all 0 when its weight is 0); ``total`` is their weighted sum.
    ``labels`` is what the model named its region (or None; all None when the semantic weight is 0, as labels are
    then not read).
    """

    format: np.ndarray
    iou: np.ndarray
    spatial: np.ndarray
    semantic: np.ndarray
    anatomy: np.ndarray
    total: np.ndarray
    parse_failed: np.ndarray
    out_of_frame: np.ndarray
    labels: list[str | None]

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("format", "iou", "spatial", "semantic", "anatomy", "total")}

    def summary(self) -> dict[str, float]:
        """Batch means, for a trainer's log: component means plus parse-failure and out-of-frame rates."""
        out = {f"{k}_mean": float(np.mean(v)) if len(v) else 0.0 for k, v in self.as_dict().items()}
        out["parse_failure_rate"] = float(np.mean(self.parse_failed)) if len(self.parse_failed) else 0.0
        out["out_of_frame_rate"] = float(np.mean(self.out_of_frame)) if len(self.out_of_frame) else 0.0
        return out


class SpatialSemanticReward(Reward):
    """Format + spatial + semantic reward, configurable; instances are picklable TRL reward functions.

    - ``weights``: ``(w_format, w_spatial, w_semantic)``.
    - ``semantic_policy="all"`` scores the semantic term on every completion; ``"negative"`` scores it only on
      spatially negative ones (IoU below ``negative_below``), and spatially positive ones receive
      ``R_semantic = 1``: the term then grades the misses (right finding, wrong place earns partial credit)
      without ever ranking a hit below a miss.
    - ``spatial_*`` and ``frame`` configure the :class:`SpatialReward`; ``encoder``, ``floor``, ``ceil`` the
      :class:`SemanticReward`; ``require_think_box`` the :class:`FormatReward`.
    - ``anatomy``: ``"gate"`` zeroes the semantic credit of a label naming the other side or zone than the phrase,
      ``"ignore"`` keeps the plain embedding score (:class:`SemanticReward`); ``anatomy_weight`` weighs the anatomy
      term (side and zone of the predicted region, :class:`~medground_eval.rewards.anatomy.AnatomyReward`;
      ``convention`` its default side convention). The anatomy term needs the ``image_size`` column: a batch
      without it gets anatomy 0 and one warning.
    - ``dims``: 2 for image boxes, 3 for volume boxes (all terms; region mode is 2D only).

    Default (``spatial_semantic_reward``): weights (1, 1, 1), anatomy gate on, anatomy weight 0.5, continuous IoU,
    union regions, pixel frame, MiniLM text encoder, calibration floor 0.3 / ceil 0.9, semantic term on every
    completion. ``max_total`` is the largest total (the sum of the weights).

    >>> reward = SpatialSemanticReward(encoder="lexical", anatomy_weight=0.0)
    >>> answer = '<think>Left base.</think><answer>{"bbox_2d": [0, 0, 10, 10], "label": "left pleural effusion"}</answer>'
    >>> parts = reward.breakdown([answer], solution=[[0, 0, 10, 20]], phrase=["left pleural effusion"])
    >>> parts.format.tolist(), parts.iou.tolist(), parts.total.round(2).tolist()
    ([1.0], [0.5], [2.5])
    """

    def __init__(
        self,
        *,
        weights: Sequence[float] = (1.0, 1.0, 1.0),
        spatial_mode: SpatialMode = "iou",
        spatial_threshold: float = 0.5,
        spatial_inclusive: bool = True,
        multi: MultiBox = "union",
        frame: str | Frame = "pixel",
        encoder: EncoderSpec = "minilm",
        floor: float = DEFAULT_FLOOR,
        ceil: float = DEFAULT_CEIL,
        semantic_mode: Literal["text", "region"] = "text",
        region_model: str | None = None,
        semantic_policy: SemanticPolicy = "all",
        negative_below: float = 0.5,
        require_think_box: bool = False,
        anatomy: Literal["gate", "ignore"] = "gate",
        anatomy_weight: float = 0.5,
        convention: str = "radiological",
        dims: int = 2,
        name: str = "spatial_semantic_reward",
    ):
        weights = tuple(float(w) for w in weights)
        if len(weights) != 3 or any(not np.isfinite(w) or w < 0 for w in weights):
            raise ValueError(f"weights = {weights!r}: expected three non-negative numbers (format, spatial, semantic)")
        if semantic_policy not in ("all", "negative"):
            raise ValueError(f"semantic_policy = {semantic_policy!r}: expected 'all' or 'negative'")
        if not 0.0 <= negative_below <= 1.0:
            raise ValueError(f"negative_below = {negative_below!r}: expected an IoU in [0, 1]")
        if not (np.isfinite(anatomy_weight) and anatomy_weight >= 0):
            raise ValueError(f"anatomy_weight = {anatomy_weight!r}: expected a non-negative number")
        self.weights = weights
        self.anatomy_weight = float(anatomy_weight)
        self.semantic_policy = semantic_policy
        self.negative_below = float(negative_below)
        self.format = FormatReward(require_think_box=require_think_box, dims=dims)
        self.spatial = SpatialReward(
            mode=spatial_mode, threshold=spatial_threshold, inclusive=spatial_inclusive, multi=multi, frame=frame,
            dims=dims,
        )
        self.semantic = SemanticReward(
            mode=semantic_mode, encoder=encoder, floor=floor, ceil=ceil, region_model=region_model, frame=frame,
            dims=dims, anatomy=anatomy,
        )
        self.anatomy = AnatomyReward(frame=frame, convention=convention, dims=dims)
        self.__name__ = name
        self._warned_no_size = False

    @property
    def max_total(self) -> float:
        """The largest total a completion can get: the sum of the weights (anatomy included)."""
        return float(sum(self.weights) + self.anatomy_weight)

    @classmethod
    def paper(cls, **overrides: object) -> SpatialSemanticReward:
        """The released MedGround-R1 setting: binary spatial reward (IoU > 0.5), strict format, equal weights.

        The semantic term here reads the prediction (the released code does not; see docs/rewards.md). The paper has
        no anatomy: the plain embedding score (``anatomy="ignore"``) and no anatomy term (``anatomy_weight=0``).
        """
        settings: dict[str, object] = dict(
            weights=(1.0, 1.0, 1.0), spatial_mode="threshold", spatial_threshold=0.5, spatial_inclusive=False,
            anatomy="ignore", anatomy_weight=0.0, name="medground_r1_reward",
        )
        settings.update(overrides)
        return cls(**settings)

    def breakdown(self, completions: Sequence[object], **columns: object) -> RewardBreakdown:
        """Every component per completion, for adapters that log them separately."""
        # One text extraction and one parse for every term.
        batch = parse_batch(completions, self.spatial.dims)
        completions = batch.texts
        spatial = self.spatial._evaluate(completions, columns, batch=batch)
        fmt = self.format.score_batch(batch)
        active = None
        if self.semantic_policy == "negative":
            active = spatial.iou < self.negative_below
        w_format, w_spatial, w_semantic = self.weights
        if w_semantic > 0:
            semantic = self.semantic._evaluate(
                completions, columns, regions=spatial.regions, active=active, labels=_predicted_labels(batch),
                parsed=batch.parsed if self.semantic.mode == "region" else None,
            )
            semantic_reward, labels = semantic.reward, semantic.labels
            if active is not None:
                semantic_reward = np.where(active, semantic_reward, 1.0)
        else:
            semantic_reward, labels = np.zeros(len(completions)), [None] * len(completions)
        anatomy = np.zeros(len(completions))
        if self.anatomy_weight > 0:
            if columns.get("image_size") is None:
                if not self._warned_no_size:
                    warnings.warn("the anatomy reward needs the 'image_size' column (the midline is half the width): "
                                  "without it the anatomy term is 0; pass image_size, or anatomy_weight=0",
                                  stacklevel=2)
                    self._warned_no_size = True
            else:
                anatomy = self.anatomy._evaluate(completions, columns, regions=spatial.regions)
        total = w_format * fmt + w_spatial * spatial.reward + w_semantic * semantic_reward
        total = total + self.anatomy_weight * anatomy
        return RewardBreakdown(
            format=fmt, iou=spatial.iou, spatial=spatial.reward, semantic=semantic_reward, anatomy=anatomy,
            total=total,
            parse_failed=spatial.parse_failed, out_of_frame=spatial.out_of_frame, labels=labels,
        )

    def scores(self, completions: Sequence[object], **columns: object) -> np.ndarray:
        return self.breakdown(completions, **columns).total


def _predicted_labels(batch: ParsedBatch) -> list[str | None]:
    """:func:`~medground_eval.rewards.semantic.predicted_label` of every completion of the batch.

    A fast-path completion's one box label is that function's answer when it is not blank (rule 1, one label); it is
    taken from the batch (the fast path read it), without making the ParsedCompletion, which in a 100k batch would
    cost more than the whole semantic step.
    """
    labels: list[str | None] = []
    for i, label in enumerate(batch.fast_labels):
        labels.append(label[:MAX_LABEL_CHARS] if label is not None else predicted_label(batch.completion(i)))
    return labels


spatial_semantic_reward = SpatialSemanticReward()
