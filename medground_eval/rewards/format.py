"""The format reward: does the completion follow the Chain-of-Box format?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medground_eval.regions import ParsedBatch, parse_batch
from medground_eval.rewards.base import Reward


class FormatReward(Reward):
    """1.0 when the completion follows the strict Chain-of-Box format, else 0.0.

    Strict format (see :func:`medground_eval.parsing.parse_completion`): a non-empty ``<think>``, then an
    ``<answer>`` that parses to at least one valid box, nothing but whitespace after ``</answer>``, and no problem
    found by the parser. With ``require_think_box=True`` the ``<think>`` must also hold at least one box (the
    Chain-of-Box steps). ``dims`` is 2 for image boxes, 3 for volume boxes.

    >>> FormatReward()(["<think>Left apex.</think><answer>[10, 20, 50, 80]</answer>", "[10, 20, 50, 80]"])
    [1.0, 0.0]
    """

    def __init__(self, *, require_think_box: bool = False, dims: int = 2, name: str = "format_reward"):
        self.require_think_box = require_think_box
        self.dims = dims
        self.__name__ = name

    def scores(self, completions: Sequence[object], **columns: object) -> np.ndarray:
        return self.score_batch(parse_batch(completions, self.dims))

    def score_batch(self, batch: ParsedBatch) -> np.ndarray:
        """The reward of an already parsed batch (a combined reward shares one parse between its terms)."""
        ok = batch.strict_format & batch.has_think_box if self.require_think_box else batch.strict_format
        return ok.astype(np.float64)


format_reward = FormatReward()
