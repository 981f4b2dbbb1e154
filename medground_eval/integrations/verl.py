"""verl (0.9) custom reward function: ``reward.custom_reward_function.path=<this file>
reward.custom_reward_function.name=compute_score``.

verl calls ``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`` once per sample,
with keywords. ``solution_str`` is the decoded response alone; images are not passed, so the ground truth is the
label of :mod:`medground_eval.integrations.labels` (a JSON string, as `medground-eval convert` writes it in
``reward_model.ground_truth``, or the decoded dict). ``data_source`` and ``extra_info`` are not needed.
Returns ``{"score": total, "format", "iou", "spatial", "semantic"}``; verl logs the keys besides ``score``.
The reward comes from ``$MEDGROUND_REWARD_CONFIG`` (see :mod:`medground_eval.integrations.engines`).
"""

from __future__ import annotations

from collections.abc import Mapping

from medground_eval.integrations.engines import reward_from_env
from medground_eval.integrations.labels import COMPONENTS, score_labels


def compute_score(
    data_source: str | None,
    solution_str: str,
    ground_truth: str | Mapping[str, object],
    extra_info: Mapping[str, object] | None = None,
    **kwargs: object,
) -> dict[str, float]:
    """Score one response against its label; extra keyword arguments from verl are ignored."""
    breakdown = score_labels(reward_from_env(), [solution_str], [ground_truth])
    return {"score": float(breakdown.total[0]), **{name: float(getattr(breakdown, name)[0]) for name in COMPONENTS}}
