"""EasyR1 batch reward function: ``worker.reward.reward_function=<this file>:compute_score``.

EasyR1 reads :data:`REWARD_TYPE` and, for ``"batch"``, calls ``compute_score(reward_inputs)`` with one dict per
response: ``response`` (decoded text), ``response_length`` and ``ground_truth`` (the data set's ``answer`` column:
the JSON label of :mod:`medground_eval.integrations.labels`). Returns one dict per input with ``overall`` (the weighted
total) and the components ``format``, ``iou``, ``spatial``, ``semantic``. The whole batch is scored in one core call.
The reward comes from ``$MEDGROUND_REWARD_CONFIG`` (see :mod:`medground_eval.integrations.engines`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medground_eval.integrations.engines import reward_from_env
from medground_eval.integrations.labels import COMPONENTS, score_labels

REWARD_TYPE = "batch"


def compute_score(reward_inputs: Sequence[Mapping[str, object]]) -> list[dict[str, float]]:
    """Score a batch of EasyR1 reward inputs."""
    if isinstance(reward_inputs, Mapping):
        raise TypeError("compute_score got one dict: expected a list of inputs; set worker.reward.reward_type=batch")
    responses = [str(item["response"]) for item in reward_inputs]
    breakdown = score_labels(reward_from_env(), responses, [item["ground_truth"] for item in reward_inputs])
    columns = {"overall": breakdown.total, **{name: getattr(breakdown, name) for name in COMPONENTS}}
    return [{name: float(values[i]) for name, values in columns.items()} for i in range(len(reward_inputs))]
