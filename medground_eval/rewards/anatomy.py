"""The anatomy reward: is the predicted region on the side, and in the zone, that the report phrase names?

Per completion, in [0, 1] (:func:`medground_eval.anatomy.region_agreement`): 0 when the region lies on the other side
of the patient than the phrase names, whatever its zone; the side agreement (1, or 0.5 for a one-sided region for a
bilateral phrase and the reverse) times ``(1 + zone agreement) / 2`` when the phrase names a zone; 1 when the phrase
names neither (nothing to contradict); 0 when no valid box was predicted. A wrong-side box and a right-side near miss
both have IoU 0; this term tells them apart.

Columns: ``phrase`` (or ``report``), ``image_size`` (required: the midline is half the width), ``solution`` is not
read; optional per row ``laterality_convention`` or ``view`` ("PA", "AP", "radiological", "neurological") and
``axcodes`` (a volume's orientation codes), else the reward's ``convention`` (default radiological: the patient's
left on the image's right, as on PA and AP chest radiographs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from medground_eval.anatomy import (
    ORIENTATION_FIELDS,
    convention_name,
    read_qualifiers,
    region_agreement,
    region_qualifiers,
    sample_left_on_right,
)
from medground_eval.frames import Frame, get_frame
from medground_eval.regions import PredictedRegions, parse_batch, predicted_regions
from medground_eval.rewards.base import Reward
from medground_eval.rewards.columns import RewardInputError, read_ground_truth


class AnatomyReward(Reward):
    """Side and zone agreement of the predicted region with the phrase (module docstring); a TRL reward function.

    >>> reward = AnatomyReward()
    >>> reward(["<answer>[700, 500, 900, 800]</answer>", "<answer>[100, 500, 300, 800]</answer>"],
    ...        phrase=["left lower lobe opacity"] * 2, image_size=[[1000, 1000]] * 2)
    [1.0, 0.0]
    """

    def __init__(self, *, frame: str | Frame = "pixel", convention: str = "radiological", dims: int = 2,
                 name: str = "anatomy_reward"):
        self.frame = get_frame(frame)
        self.convention = convention_name(convention)
        self.dims = dims
        self.__name__ = name

    def evaluate(self, completions: Sequence[object], **columns: object) -> np.ndarray:
        """One value per completion (see the class docstring)."""
        return self._evaluate(completions, columns)

    def _evaluate(self, completions: Sequence[object], columns: Mapping[str, object], *,
                  regions: PredictedRegions | None = None) -> np.ndarray:
        """One value per completion; ``regions``, when given, are the completions' predicted regions in original
        pixels (the combined reward passes the spatial term's)."""
        n = len(completions)
        truth = read_ground_truth(n, columns, dims=self.dims, need_image_size=True, need_phrase=True,
                                  need_solution=False, frame=self.frame)
        if regions is None:
            regions = predicted_regions(parse_batch(completions, self.dims), frames=truth.frames or self.frame,
                                        image_sizes=truth.image_sizes, input_sizes=truth.input_sizes, dims=self.dims)
        conventions = _row_conventions(columns, n)
        expected: dict[str, object] = {}
        out = np.zeros(n)
        for i in range(n):
            boxes = regions.boxes[i]
            if not len(boxes):
                continue
            phrase = truth.phrases[i]
            if phrase not in expected:
                expected[phrase] = read_qualifiers(phrase)
            left_on_right = sample_left_on_right(conventions[i], self.convention)
            region = region_qualifiers(boxes, truth.image_sizes[i], left_on_right=left_on_right)
            out[i] = region_agreement(expected[phrase], region)
        return out

    def scores(self, completions: Sequence[object], **columns: object) -> np.ndarray:
        return self._evaluate(completions, columns)


def _row_conventions(columns: Mapping[str, object], n: int) -> list[dict[str, object]]:
    """Per row, the convention columns present (``laterality_convention``, ``view``, ``axcodes``)."""
    rows: list[dict[str, object]] = [{} for _ in range(n)]
    for name in ORIENTATION_FIELDS:
        values = columns.get(name)
        if values is None:
            continue
        if len(values) != n:
            raise RewardInputError(f"column {name!r} has {len(values)} values for {n} completions")
        for row, value in enumerate(values):
            if name == "laterality_convention" and value is not None:
                try:
                    convention_name(value)
                except ValueError as error:
                    raise RewardInputError(f"column {name!r} row {row}: {error}") from None
            rows[row][name] = value
    return rows


anatomy_reward = AnatomyReward()
