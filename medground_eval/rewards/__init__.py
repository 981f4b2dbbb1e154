"""Trainer-agnostic rewards following TRL's convention ``reward(completions, **columns) -> list[float]``.

``from medground_eval.rewards import spatial_semantic_reward`` is a ready TRL reward function; the classes build
configured, picklable instances. Definitions and defaults: docs/rewards.md.
"""

from medground_eval.rewards.anatomy import AnatomyReward, anatomy_reward
from medground_eval.rewards.base import Reward
from medground_eval.rewards.columns import RewardInputError
from medground_eval.rewards.combined import RewardBreakdown, SpatialSemanticReward, spatial_semantic_reward
from medground_eval.rewards.format import FormatReward, format_reward
from medground_eval.rewards.semantic import SemanticReward, predicted_label, semantic_reward
from medground_eval.rewards.spatial import SpatialReward, spatial_reward

__all__ = [
    "AnatomyReward",
    "FormatReward",
    "Reward",
    "RewardBreakdown",
    "RewardInputError",
    "SemanticReward",
    "SpatialReward",
    "SpatialSemanticReward",
    "anatomy_reward",
    "format_reward",
    "predicted_label",
    "semantic_reward",
    "spatial_reward",
    "spatial_semantic_reward",
]
