"""The calling convention every reward follows (TRL's): ``reward(completions, **columns) -> list[float]``.

A reward is a callable object with a ``__name__`` (TRL logs ``rewards/<name>/mean``), picklable (plain attributes,
no open models) and tolerant of columns it does not use (``prompts``, ``completion_ids``, ``trainer_state`` ...).
It never raises on a completion, however malformed: it scores it. It raises :class:`RewardInputError` on a missing
or malformed ground-truth column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Reward:
    """Base class: subclasses implement :meth:`scores` returning one float per completion as an array."""

    __name__ = "reward"

    def scores(self, completions: Sequence[object], **columns: object) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, completions: Sequence[object], **columns: object) -> list[float]:
        return self.scores(completions, **columns).tolist()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
