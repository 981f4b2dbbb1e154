"""OpenRLHF (0.11) reward function: pass this file's path as ``--reward.remote_url`` (``--remote_rm_url`` < 0.10.2).

OpenRLHF loads the file with ``importlib.util.spec_from_file_location`` (so every import here is absolute) and
calls ``reward_func(queries, prompts, labels)`` in a thread, one sample at a time (lists of length 1):

- ``queries[i]``: prompt plus response, decoded with special tokens kept. For a VLM the prompt's image placeholder
  is expanded into many ``<|image_pad|>`` tokens, so ``query[len(prompt):]`` is not the response: the response is
  the text after the last assistant header (:data:`ASSISTANT_HEADERS`), with trailing end-of-turn and padding
  tokens (:data:`END_TOKENS`) removed. Without any header, the text after ``prompt`` when the query starts with it,
  else the whole query.
- ``labels[i]``: the data set's ``label`` column unchanged: the JSON label of :mod:`medground_eval.integrations.labels`.

Returns ``{"rewards", "scores", "extra_logs"}``, one value per query: ``rewards`` and ``scores`` are both the
engine score (OpenRLHF uses ``rewards`` for advantages, ``scores`` for dynamic filtering, whose range defaults to
(0, 1)): the weighted total divided by its maximum, in [0, 1], unless the reward config sets ``normalize = false``
(see :mod:`medground_eval.integrations.reward_config`). ``extra_logs`` holds the components ``format``, ``iou``,
``spatial``, ``semantic``, ``anatomy`` (each in [0, 1]) and ``total_raw`` (the weighted total, in [0, max_total]).
They are float32 torch tensors, as in OpenRLHF's own examples: 0.11 wraps each sample's value as
``torch.tensor([value])``, which gives the expected shape ``(1,)`` for a tensor but ``(1, 1)`` for a list. torch is
imported inside the call (it is already loaded in any OpenRLHF worker).

Broken labels. OpenRLHF 0.11's ``SingleTurnAgentExecutor.execute`` catches every ``Exception`` of the reward call,
logs it at INFO and keeps a reward of None (batching then fails later with an unrelated TypeError). A label the
reward cannot read is therefore logged at ERROR with its reason and raised as :class:`BrokenLabel`, a
``BaseException`` that the executor's ``except Exception`` does not swallow: the rollout stops with the reason.
The reward (and the ``label_files`` of its config) is built when OpenRLHF loads this file, so a broken config or
data file stops the run before the first rollout.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from medground_eval.integrations.labels import BrokenLabel, LabelError
from medground_eval.integrations.reward_config import REWARD_CONFIG_ENV, EngineReward, reward_from_env
from medground_eval.rewards import SpatialSemanticReward

logger = logging.getLogger("medground_eval.integrations.openrlhf")

ASSISTANT_HEADERS = (
    "<|im_start|>assistant\n",  # Qwen2/2.5/3-VL, InternVL
    "<|start_header_id|>assistant<|end_header_id|>\n\n",  # Llama 3
    "<start_of_turn>model\n",  # Gemma
)
"""The chat templates' assistant headers, with the newlines the templates write after them."""
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>", "<eos>", "</s>", "<pad>")
"""End-of-turn and padding tokens removed from the end of a response (other special tokens, such as Qwen2-VL's
``<|box_end|>``, are part of the answer and kept)."""


def response_text(query: str, prompt: str = "") -> str:
    """The model's response inside an OpenRLHF query (rules in the module docstring)."""
    starts = [query.rfind(header) + len(header) for header in ASSISTANT_HEADERS if header in query]
    if starts:
        text = query[max(starts):]
    elif prompt and query.startswith(prompt):
        text = query[len(prompt):]
    else:
        text = query
    stripped = text.rstrip()
    while stripped.endswith(END_TOKENS):
        token = next(t for t in END_TOKENS if stripped.endswith(t))
        stripped = stripped[: -len(token)].rstrip()
    return stripped


def score_queries(
    reward: EngineReward | SpatialSemanticReward, queries: Sequence[str], prompts: Sequence[str],
    labels: Sequence[object],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Engine score and components per query: the core call shared by :func:`reward_func` and the HTTP server."""
    if isinstance(reward, SpatialSemanticReward):
        reward = EngineReward(reward)
    completions = [response_text(query, prompt) for query, prompt in zip(queries, prompts, strict=True)]
    scores = reward.score(completions, labels)
    return scores.score, scores.components


def reward_func(queries: list[str], prompts: list[str], labels: list[str], **kwargs: object) -> dict:
    """OpenRLHF's custom reward entry point (extra keyword arguments of newer OpenRLHF releases are ignored)."""
    import torch

    try:
        total, components = score_queries(reward_from_env(), queries, prompts, labels)
    except LabelError as error:
        logger.error("medground-eval reward: broken label, training cannot score this sample: %s", error)
        raise BrokenLabel(f"medground-eval reward: broken label: {error}") from None
    rewards = torch.as_tensor(total, dtype=torch.float32)
    return {
        "rewards": rewards,
        "scores": rewards.clone(),
        "extra_logs": {name: torch.as_tensor(value, dtype=torch.float32) for name, value in components.items()},
    }


if os.environ.get(REWARD_CONFIG_ENV):
    reward_from_env()  # OpenRLHF loads this file before training: a broken config or label file fails here
