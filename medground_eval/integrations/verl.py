"""verl (0.9) custom reward function: ``reward.custom_reward_function.path=<this file>
reward.custom_reward_function.name=compute_score``.

verl calls ``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`` once per sample,
with keywords. ``solution_str`` is the decoded response alone; images are not passed, so the ground truth is the
label of :mod:`medground_eval.integrations.labels` (a JSON string, as `medground-eval convert` writes it in
``reward_model.ground_truth``, or the decoded dict). ``data_source`` and ``extra_info`` are not needed.
Returns ``{"score", "format", "iou", "spatial", "semantic", "anatomy", "total_raw"}``: ``score`` is the weighted total
divided by its maximum, in [0, 1] (raw with ``normalize = false``); the components are in [0, 1] and ``total_raw`` is
the weighted total; verl logs the keys besides ``score``. The reward comes from ``$MEDGROUND_REWARD_CONFIG`` (see
:mod:`medground_eval.integrations.reward_config`); it is built when verl loads this file, so a broken config or label
file (``label_files``) stops the run before training.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from medground_eval.integrations.reward_config import REWARD_CONFIG_ENV, reward_from_env


def compute_score(
    data_source: str | None,
    solution_str: str,
    ground_truth: str | Mapping[str, object],
    extra_info: Mapping[str, object] | None = None,
    **kwargs: object,
) -> dict[str, float]:
    """Score one response against its label; extra keyword arguments from verl are ignored."""
    scores = reward_from_env().score([solution_str], [ground_truth])
    return {"score": float(scores.score[0]), **{name: float(value[0]) for name, value in scores.components.items()}}


if os.environ.get(REWARD_CONFIG_ENV):
    reward_from_env()  # verl loads this file before training: a broken config or label file fails here
