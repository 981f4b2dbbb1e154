"""Adversarial numbers in a model's answer (issue 13, cases 2 and 3): every reward, mode and frame stays finite and in
its documented range (docs/rewards.md), and an absurd number is a parse problem of that completion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medground_eval.parsing import parse_completion, think_boxes
from medground_eval.rewards import AnatomyReward, FormatReward, SemanticReward, SpatialReward, SpatialSemanticReward
from medground_eval.structures import MAX_COORDINATE

ABSURD = ["1e300", "-1e300", "2e154", "1.7976931348623157e308", "1e309", "inf", "-inf", "nan", "Infinity", "NaN",
          "9" * 400, "1e-320", "-0", "0", "1000001", "1e6", "999999.999999", "5e-324", "1E+2", ".5", "3."]


def _number_text(value: float | str) -> str:
    return value if isinstance(value, str) else repr(value)


NUMBERS = st.one_of(st.sampled_from(ABSURD), st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(min_value=-10**30, max_value=10**30).map(str),
                    st.floats(min_value=-50, max_value=1100, allow_nan=False))
DIALECTS = [
    lambda n, label: '<answer>[{"bbox_2d": [%s], "label": "%s"}]</answer>' % (", ".join(n), label),
    lambda n, label: "<answer>[%s]</answer>" % ", ".join(n),
    lambda n, label: "<answer><|object_ref_start|>%s<|object_ref_end|><|box_start|>(%s),(%s)<|box_end|></answer>"
                     % (label, ",".join(n[: len(n) // 2]), ",".join(n[len(n) // 2:])),
    lambda n, label: "<answer><ref>%s</ref><box>[[%s]]</box></answer>" % (label, ", ".join(n)),
]


@st.composite
def completions(draw, dims: int = 2) -> str:
    numbers = [_number_text(draw(NUMBERS)) for _ in range(2 * dims)]
    think_numbers = [_number_text(draw(NUMBERS)) for _ in range(2 * dims)]
    label = draw(st.sampled_from(["left pleural effusion", "right apical pneumothorax", "cardiomegaly", ""]))
    answer = draw(st.sampled_from(DIALECTS))(numbers, label)
    second = draw(st.booleans())
    if second:  # a second box in the answer: multi-box regions and matching
        answer = answer.replace("</answer>", "[%s]</answer>" % ", ".join(reversed(numbers)))
    return f"<think>The {label} spans [{', '.join(think_numbers)}].</think>\n{answer}"


FRAMES_2D = ["pixel", "norm1000", "norm1", "qwen2.5-vl"]
SPATIAL = [(mode, multi) for mode in ("iou", "threshold", "giou") for multi in ("union", "match")
           if not (mode == "giou" and multi == "match")]


def _columns(n: int, dims: int, rng: np.random.Generator) -> dict[str, object]:
    if dims == 2:
        size = [[float(rng.integers(64, 4000)), float(rng.integers(64, 4000))] for _ in range(n)]
        solution = [[[0.1 * s[0], 0.2 * s[1], 0.5 * s[0], 0.6 * s[1]]] + ([[0, 0, 5, 5]] if k % 2 else [])
                    for k, s in enumerate(size)]
        return {"solution": solution, "image_size": size, "phrase": ["small left pleural effusion"] * n}
    size = [[256.0, 256.0, 64.0]] * n
    return {"solution": [[10, 20, 5, 100, 120, 30]] * n, "image_size": size, "input_size": [[0, 0, 0, 256, 256, 64]] * n,
            "phrase": ["left lung lesion"] * n}


def _check(values: object, lo: float, hi: float, name: str) -> None:
    array = np.asarray(values, dtype=np.float64)
    assert np.isfinite(array).all(), f"{name}: {array.tolist()}"
    assert ((array >= lo) & (array <= hi)).all(), f"{name}: {array.tolist()} outside [{lo}, {hi}]"


REWARDS_2D = [(f"spatial {mode}/{multi} {frame}", SpatialReward(mode=mode, multi=multi, frame=frame), 0.0, 1.0)
              for frame in FRAMES_2D for mode, multi in SPATIAL]
REWARDS_2D += [(f"format {frame}", FormatReward(), 0.0, 1.0) for frame in FRAMES_2D[:1]]
REWARDS_2D += [(f"semantic {frame}", SemanticReward(encoder="lexical", frame=frame), 0.0, 1.0) for frame in FRAMES_2D]
REWARDS_2D += [(f"anatomy {frame}", AnatomyReward(frame=frame), 0.0, 1.0) for frame in FRAMES_2D]
for _frame in FRAMES_2D:
    _combined = SpatialSemanticReward(encoder="lexical", frame=_frame, spatial_mode="giou")
    REWARDS_2D.append((f"combined giou {_frame}", _combined, 0.0, _combined.max_total))
    _combined = SpatialSemanticReward(encoder="lexical", frame=_frame, multi="match", semantic_policy="negative")
    REWARDS_2D.append((f"combined match {_frame}", _combined, 0.0, _combined.max_total))
FRAMES_3D = ["pixel", "norm1000", "m3d-npy"]
REWARDS_3D = [(f"spatial3d {mode}/{multi} {frame}", SpatialReward(mode=mode, multi=multi, frame=frame, dims=3), 0.0,
               1.0) for frame in FRAMES_3D for mode, multi in SPATIAL]
REWARDS_3D += [(f"combined3d {frame}", SpatialSemanticReward(encoder="lexical", frame=frame, dims=3), 0.0, 3.5)
               for frame in FRAMES_3D]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(completions(), min_size=1, max_size=6), st.integers(0, 2**31))
def test_every_2d_reward_is_finite_and_in_range_on_adversarial_numbers(batch, seed):
    columns = _columns(len(batch), 2, np.random.default_rng(seed))
    for name, reward, lo, hi in REWARDS_2D:
        _check(reward(batch, **columns), lo, hi, name)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(completions(dims=3), min_size=1, max_size=4))
def test_every_3d_reward_is_finite_and_in_range_on_adversarial_numbers(batch):
    columns = _columns(len(batch), 3, np.random.default_rng(0))
    for name, reward, lo, hi in REWARDS_3D:
        _check(reward(batch, **columns), lo, hi, name)


@settings(max_examples=300, deadline=None)
@given(completions())
def test_an_absurd_number_is_a_problem_of_the_completion_never_a_box(text):
    parsed = parse_completion(text)
    for box in parsed.answer_boxes + think_boxes(parsed):
        assert all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in box.coords)


@pytest.mark.parametrize("number", ["1e300", "2e154", "1e7", "-1e300"])
def test_out_of_range_answer_is_a_named_problem(number):
    parsed = parse_completion(f"<think>x</think><answer>[0, 0, {number}, {number}]</answer>")
    assert parsed.answer_boxes == ()
    assert any(f"out-of-range number ({number}, {number}" in p for p in parsed.problems)


def test_case_3_giou_of_a_huge_box_is_finite():
    reward = SpatialReward(mode="giou")(["<answer>[0, 0, 2e154, 2e154]</answer>"], solution=[[0, 0, 10, 10]])
    assert reward == [0.0]
    big = SpatialReward(mode="giou")(["<answer>[0, 0, 1000000, 1000000]</answer>"], solution=[[0, 0, 10, 10]])
    assert math.isfinite(big[0]) and 0.5 <= big[0] < 0.5 + 1e-9  # IoU 1e-10, C = U


def test_case_2_score_with_an_absurd_answer_counts_a_parse_failure(tmp_path):
    from medground_eval.datasets.base import LoadedDataset
    from medground_eval.evaluation.scorer import score_predictions
    from medground_eval.structures import Sample

    truth = LoadedDataset("synthetic", [Sample("a", "x", [[0, 0, 10, 10]], None), Sample("b", "y", [[0, 0, 4, 4]], None)])
    result = score_predictions([{"id": "a", "completion": "<answer>[0, 0, 1e300, 1e300]</answer>"},
                                {"id": "b", "completion": "<answer>[0, 0, 4, 4]</answer>"}], truth, n_bootstrap=0)
    assert result.per_sample.parse_failed.tolist() == [True, False]
    assert "out-of-range number" in result.problems[0]
    assert result.report.to_dict()["miou"] == pytest.approx(0.5)


def test_absurd_pred_boxes_and_sizes_in_a_predictions_line_are_data_errors(tmp_path):
    from medground_eval.datasets.base import DataError
    from medground_eval.evaluation.scorer import score_files

    truth = tmp_path / "truth.jsonl"
    truth.write_text('{"id": "a", "phrase": "x", "boxes": [[0, 0, 10, 10]]}\n{"id": "b", "phrase": "y", "boxes": '
                     '[[0, 0, 5, 5]]}\n')
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"id": "a", "pred_boxes": [[0, 0, 1e300, 1e300]]}\n{"id": "b", "pred_boxes": [[0, 0, 5, 5]]}\n')
    with pytest.raises(DataError, match=r"preds.jsonl:1: field 'pred_boxes\[0\]'.*magnitude <= 1000000"):
        score_files(preds, dataset="jsonl", annotations=truth, n_bootstrap=0)
    result = score_files(preds, dataset="jsonl", annotations=truth, n_bootstrap=0, on_error="skip")
    assert result.config["skipped_lines"] == 1 and math.isfinite(result.report.to_dict()["miou"])
    huge_truth = tmp_path / "huge.jsonl"
    huge_truth.write_text('{"id": "a", "phrase": "x", "boxes": [[0, 0, 2e154, 2e154]]}\n')
    with pytest.raises(DataError, match=r"huge.jsonl:1: field 'boxes\[0\]'"):
        score_files(preds, dataset="jsonl", annotations=huge_truth, n_bootstrap=0)
