"""The combined MedGround-R1 reward: ``R = w_format * R_format + w_spatial * R_spatial + w_semantic * R_semantic``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from medground_eval.fastparse import canonical_label
from medground_eval.frames import Frame
from medground_eval.regions import ParsedBatch
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

    ``iou`` is the raw IoU with the true region; ``spatial``, ``format`` and ``semantic`` are the component
    rewards in [0, 1]; ``total`` is their weighted sum. ``labels`` is what the model named its region (or None;
    all None when the semantic weight is 0, as labels are then not read).
    """

    format: np.ndarray
    iou: np.ndarray
    spatial: np.ndarray
    semantic: np.ndarray
    total: np.ndarray
    parse_failed: np.ndarray
    out_of_frame: np.ndarray
    labels: list[str | None]

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("format", "iou", "spatial", "semantic", "total")}

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
    - ``dims``: 2 for image boxes, 3 for volume boxes (all three terms; region mode is 2D only).

    Default (``spatial_semantic_reward``): weights (1, 1, 1), continuous IoU, union regions, pixel frame, MiniLM
    text encoder, calibration floor 0.3 / ceil 0.9, semantic term on every completion.
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
        self.weights = weights
        self.semantic_policy = semantic_policy
        self.negative_below = float(negative_below)
        self.format = FormatReward(require_think_box=require_think_box, dims=dims)
        self.spatial = SpatialReward(
            mode=spatial_mode, threshold=spatial_threshold, inclusive=spatial_inclusive, multi=multi, frame=frame,
            dims=dims,
        )
        self.semantic = SemanticReward(
            mode=semantic_mode, encoder=encoder, floor=floor, ceil=ceil, region_model=region_model, frame=frame,
            dims=dims,
        )
        self.__name__ = name

    @classmethod
    def paper(cls, **overrides: object) -> SpatialSemanticReward:
        """The released MedGround-R1 setting: binary spatial reward (IoU > 0.5), strict format, equal weights.

        The semantic term here reads the prediction (the released code does not; see docs/rewards.md).
        """
        settings: dict[str, object] = dict(
            weights=(1.0, 1.0, 1.0), spatial_mode="threshold", spatial_threshold=0.5, spatial_inclusive=False,
            name="medground_r1_reward",
        )
        settings.update(overrides)
        return cls(**settings)

    def breakdown(self, completions: Sequence[object], **columns: object) -> RewardBreakdown:
        """Every component per completion, for adapters that log them separately."""
        spatial = self.spatial.evaluate(completions, columns)
        fmt = self.format.scores(completions)
        active = None
        if self.semantic_policy == "negative":
            active = spatial.iou < self.negative_below
        w_format, w_spatial, w_semantic = self.weights
        if w_semantic > 0:
            semantic = self.semantic.evaluate(
                completions, columns, regions=spatial.regions, active=active, labels=_predicted_labels(spatial.batch)
            )
            semantic_reward, labels = semantic.reward, semantic.labels
            if active is not None:
                semantic_reward = np.where(active, semantic_reward, 1.0)
        else:
            semantic_reward, labels = np.zeros(len(completions)), [None] * len(completions)
        total = w_format * fmt + w_spatial * spatial.reward + w_semantic * semantic_reward
        return RewardBreakdown(
            format=fmt, iou=spatial.iou, spatial=spatial.reward, semantic=semantic_reward, total=total,
            parse_failed=spatial.parse_failed, out_of_frame=spatial.out_of_frame, labels=labels,
        )

    def scores(self, completions: Sequence[object], **columns: object) -> np.ndarray:
        return self.breakdown(completions, **columns).total


def _predicted_labels(batch: ParsedBatch) -> list[str | None]:
    """:func:`~medground_eval.rewards.semantic.predicted_label` of every completion of the batch.

    A canonical completion's one box label is that function's answer when it is not blank (rule 1, one label); it is
    read without making the ParsedCompletion, which in a 100k batch would cost more than the whole semantic step.
    """
    labels: list[str | None] = []
    for i, text in enumerate(batch.texts):
        label = canonical_label(text) if batch.canonical[i] else None
        labels.append(label[:MAX_LABEL_CHARS] if label is not None else predicted_label(batch.completion(i)))
    return labels


spatial_semantic_reward = SpatialSemanticReward()
