"""EasyR1 batch reward function: ``worker.reward.reward_function=<this file>:compute_score``.

EasyR1 reads :data:`REWARD_TYPE` and, for ``"batch"``, calls ``compute_score(reward_inputs)`` with one dict per
response: ``response`` (decoded text), ``response_length`` and ``ground_truth`` (the data set's ``answer`` column:
the JSON label of :mod:`medground_eval.integrations.labels`). Returns one dict per input with ``overall`` (the weighted
total divided by its maximum, in [0, 1], as EasyR1's online filtering ``filter_low`` / ``filter_high`` expect; raw
with ``normalize = false``), the components ``format``, ``iou``, ``spatial``, ``semantic``, ``anatomy`` (in [0, 1])
and ``total_raw``. The whole batch is scored in one core call. The reward comes from ``$MEDGROUND_REWARD_CONFIG``
(see :mod:`medground_eval.integrations.reward_config`); it is built when EasyR1 loads this file, so a broken config or
label file stops the run before training.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from medground_eval.integrations.reward_config import REWARD_CONFIG_ENV, reward_from_env

REWARD_TYPE = "batch"


def compute_score(reward_inputs: Sequence[Mapping[str, object]]) -> list[dict[str, float]]:
    """Score a batch of EasyR1 reward inputs."""
    if isinstance(reward_inputs, Mapping):
        raise TypeError("compute_score got one dict: expected the list of a batch call (EasyR1 reads REWARD_TYPE = "
                        "'batch' from this file; a copy without it is called once per sample)")
    responses = [str(item["response"]) for item in reward_inputs]
    scores = reward_from_env().score(responses, [item["ground_truth"] for item in reward_inputs])
    columns = {"overall": scores.score, **scores.components}
    return [{name: float(values[i]) for name, values in columns.items()} for i in range(len(reward_inputs))]


if os.environ.get(REWARD_CONFIG_ENV):
    reward_from_env()  # EasyR1 loads this file before training: a broken config or label file fails here
