"""One rule in one place (issue 11): every boundary applies the same number, box, division and image-path rules.

Each test feeds the same values to every surface that once had its own copy of the rule, so a copy that drifts
(accepts what another refuses) fails here. The model-frame resolver and GIoU have their own tests
(test_model_frame.py, test_rewards.py).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from medground_eval.boxes import safe_divide
from medground_eval.datasets.base import DataError
from medground_eval.datasets.jsonl import read_truth_record
from medground_eval.evaluation.compat import DEFAULT_RULES
from medground_eval.evaluation.predictions import ReadTask, read_prediction
from medground_eval.integrations.labels import LabelError, read_label
from medground_eval.integrations.options import load_options
from medground_eval.structures import Sample
from medground_eval.validation import box_problem, is_number

NOT_NUMBERS = [float("nan"), float("inf"), -float("inf"), True, False, "3", None, 10**400, [1]]
NUMBERS = [0, 3, 2.5, 1e-9, 4096.0]


def _surfaces(value: object) -> dict[str, bool]:
    """Whether each surface accepts ``value`` as a box coordinate (or option number)."""
    box = [0, 0, 5, value] if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value \
        or abs(value) == float("inf") or value > 10**300 else [0, 0, 5 + value, 5 + value]
    accepted = {}
    try:
        read_truth_record({"id": "a", "phrase": "p", "boxes": [box]}, path="gt.jsonl", line=1)
        accepted["jsonl ground truth"] = True
    except DataError:
        accepted["jsonl ground truth"] = False
    try:
        read_label({"solution": [box], "phrase": "p"})
        accepted["engine label"] = True
    except LabelError:
        accepted["engine label"] = False
    try:
        read_prediction({"id": "a", "pred_boxes": [box]}, ReadTask("prediction", 2, "pixel", DEFAULT_RULES),
                        "preds.jsonl", 1)
        accepted["prediction line"] = True
    except DataError:
        accepted["prediction line"] = False
    if value is not None:  # an override of None means "not given"
        try:
            load_options(None, beta=value)
            accepted["train option"] = True
        except (ValueError, TypeError):
            accepted["train option"] = False
    accepted["validation.is_number"] = is_number(value)
    return accepted


@pytest.mark.parametrize("value", NOT_NUMBERS + NUMBERS, ids=repr)
def test_every_boundary_agrees_on_what_a_number_is(value):
    """The train options once took beta = nan (isinstance without isfinite), the prediction reader raised an
    OverflowError on 10**400: one is_number now decides for all."""
    accepted = _surfaces(value)
    expected = value in NUMBERS and not isinstance(value, bool)
    assert accepted == dict.fromkeys(accepted, expected)


@pytest.mark.parametrize(
    ("box", "size", "problem"),
    [([0, 0, 10, 10], (10, 10), None), ([0, 0, 0, 10], None, None), ([5, 0, 4, 1], None, "x2 >= x1"),
     ([-1, 0, 4, 1], None, ">= 0"), ([0, 0, 11, 5], (10, 10), "inside the 10x10 image"),
     ([0, 0, 0, 1, 1, 1], (2, 2, 2), None), ([0, 0, 2, 1, 1, 1], None, "z2 >= z1"),
     ([0, 0, 0, 1, 1, 3], (2, 2, 2), "inside the 2x2x2 image")],
)
def test_one_box_validator_for_every_loader(box, size, problem, tmp_path):
    """validation.box_problem is the loaders' rule: the jsonl loader reports exactly its verdict."""
    found = box_problem(box, size)
    assert (found is None) == (problem is None) and (problem is None or problem in found)
    if len(box) == 4:
        record = {"id": "a", "phrase": "p", "boxes": [box], **({"image_size": list(size)} if size else {})}
        try:
            read_truth_record(record, path="gt.jsonl", line=1)
            loader = None
        except DataError as error:
            loader = error.expected
        assert loader == found


def test_one_safe_division_never_warns_and_gives_zero():
    from medground_eval.metrics import grounding_report, score_samples
    from medground_eval.rewards import SpatialReward

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert safe_divide([0.0, 1.0], [0.0, 2.0]).tolist() == [0.0, 0.5]
        flat = [[5, 5, 5, 5]]  # zero area on both sides: union 0, IoU 0
        assert SpatialReward()(["<answer>[5, 5, 5, 5]</answer>"], solution=[flat]) == [0.0]
        scores = score_samples(["a"], [np.array(flat, float)], [np.array(flat, float)])
        assert scores.iou.tolist() == [0.0]
        assert grounding_report(scores).to_dict()["ciou"] == 0.0


def test_one_image_path_rule_for_training_predict_and_convert(tmp_path):
    """Training, predict and convert join the image root alike; only convert keeps a root-less relative path (the
    engine reads it from its working folder), and every surface refuses a sample without an image alike."""
    from medground_eval.datasets import LoadedDataset
    from medground_eval.integrations.convert import convert_records
    from medground_eval.integrations.hf_data import MissingImageError, image_path

    relative = Sample(id="a", phrase="p", boxes=[[0, 0, 1, 1]], image_size=(4, 4), image="img/a.png")
    absolute = Sample(id="b", phrase="p", boxes=[[0, 0, 1, 1]], image_size=(4, 4), image=str(tmp_path / "b.png"))
    assert image_path(relative, tmp_path) == tmp_path / "img/a.png"
    assert image_path(absolute, "/elsewhere") == tmp_path / "b.png"
    dataset = LoadedDataset(name="jsonl", samples=[relative, absolute])
    records = convert_records(dataset, "openrlhf", image_root=tmp_path, frame="pixel")
    assert [r["images"][0] for r in records] == [str(image_path(s, tmp_path)) for s in dataset.samples]
    with pytest.raises(MissingImageError, match="relative path"):
        image_path(relative, None)
    kept = convert_records(LoadedDataset(name="jsonl", samples=[relative]), "openrlhf", image_root=None, frame="pixel")
    assert kept[0]["images"] == ["img/a.png"]
    no_image = Sample(id="c", phrase="p", boxes=[[0, 0, 1, 1]], image_size=(4, 4), image=None)
    for call in (lambda: image_path(no_image, tmp_path),
                 lambda: convert_records(LoadedDataset(name="jsonl", samples=[no_image]), "openrlhf", frame="pixel")):
        with pytest.raises(MissingImageError, match="sample 'c': field 'image' is None"):
            call()
    assert json.loads(records[0]["label"])["frame"] == "pixel"
    assert Path(records[1]["images"][0]).is_absolute()
