"""The vlm-r1 preset: VLM-R1's regexes and IoU exactly, and the cases where it and the default rules disagree."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medground_eval.datasets import DataError, LoadedDataset
from medground_eval.evaluation.compat import get_compat, vlm_r1_extract, vlm_r1_iou
from medground_eval.evaluation.scorer import score_predictions
from medground_eval.structures import Sample


def their_extract(content: str) -> list[int]:
    """VLM-R1 src/eval/test_rec_r1.py ``extract_bbox_answer``, as written there (the reference for the port)."""
    answer_tag_pattern = r"<answer>(.*?)</answer>"
    bbox_pattern = r"\{.*\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]\s*.*\}"
    content_answer_match = re.search(answer_tag_pattern, content, re.DOTALL)
    if content_answer_match:
        content_answer = content_answer_match.group(1).strip()
        bbox_match = re.search(bbox_pattern, content_answer, re.DOTALL)
        if bbox_match:
            return [int(bbox_match.group(i)) for i in range(1, 5)]
    return [0, 0, 0, 0]


def their_iou(box1: list[float], box2: list[float]) -> float:
    """VLM-R1's ``iou`` (same in MedGround-R1's grpo_rec.py), as written there."""
    inter_x1 = max(box1[0], box2[0])
    inter_y1 = max(box1[1], box2[1])
    inter_x2 = min(box1[2] - 1, box2[2] - 1)
    inter_y2 = min(box1[3] - 1, box2[3] - 1)
    if inter_x1 < inter_x2 and inter_y1 < inter_y2:
        inter = (inter_x2 - inter_x1 + 1) * (inter_y2 - inter_y1 + 1)
    else:
        inter = 0
    union = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1]) - inter
    return float(inter) / union


coords = st.integers(0, 60)
boxes = st.tuples(coords, coords, coords, coords)


@given(st.lists(st.tuples(boxes, boxes), min_size=1, max_size=20))
def test_iou_matches_their_formula(pairs):
    pred = np.array([p for p, _ in pairs], dtype=float)
    true = np.array([t for _, t in pairs], dtype=float)
    ours = vlm_r1_iou(pred, true)
    for value, (p, t) in zip(ours, pairs):
        try:
            expected = their_iou(list(p), list(t))
        except ZeroDivisionError:
            expected = 0.0  # their script crashes; the preset scores 0 (documented)
        assert value == pytest.approx(expected)
    assert (ours >= 0).all() and (ours <= 1).all()


@given(st.text(alphabet="<>/answerthink{}[], 0123456789.-x\n", max_size=80))
def test_extraction_matches_their_function(text):
    box = vlm_r1_extract(text)
    assert (list(box) if box is not None else [0, 0, 0, 0]) == their_extract(text)


@pytest.mark.parametrize(("text", "expected"), [
    ('<answer>{"bbox_2d": [1, 2, 3, 4]}</answer>', (1, 2, 3, 4)),
    ('<answer>[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [5, 6, 7, 8]}]</answer>', (5, 6, 7, 8)),  # greedy: the last
    ('<answer>{"bbox_2d": [1.5, 2, 3, 4]}</answer>', None),  # floats
    ('<answer>{"bbox_2d": [-1, 2, 3, 4]}</answer>', None),  # negative
    ("<answer>[1, 2, 3, 4]</answer>", None),  # no braces
    ('<answer>{"bbox_2d": [1, 2, 3, 4]}', None),  # no closing tag
    ('<ANSWER>{"bbox_2d": [1, 2, 3, 4]}</ANSWER>', None),  # case-sensitive tags
])
def test_extraction_cases(text, expected):
    assert vlm_r1_extract(text) == expected
    assert list(expected or (0, 0, 0, 0)) == their_extract(text)


TRUTH = LoadedDataset("jsonl", [Sample(id="s", phrase="p", boxes=[[0, 0, 100, 100]], image_size=(1000, 1000))])


def acc(completion: str, **options) -> float:
    result = score_predictions([{"id": "s", "completion": completion}], TRUTH, n_bootstrap=0, **options)
    return result.report.acc["0.5"]


def wrap(answer: str) -> str:
    return f"<think>the region</think><answer>{answer}</answer>"


@pytest.mark.parametrize(("completion", "default", "compat", "why"), [
    (wrap('{"bbox_2d": [0, 0, 100, 50]}'), 1.0, 0.0, "IoU exactly 0.5: a hit with >=, a miss with their strict >"),
    (wrap('{"bbox_2d": [0.0, 0.0, 99.5, 99.5]}'), 1.0, 0.0, "floats: read by our parser, a parse failure for \\d+"),
    ('<think>t</think><answer>{"bbox_2d": [0, 0, 100, 100]}', 1.0, 0.0, "unclosed <answer>: we read it leniently"),
    (wrap("[0, 0, 100, 100]"), 1.0, 0.0, "a bare list: their pattern needs {...} around the box"),
    (wrap('[{"bbox_2d": [0, 0, 100, 100]}, {"bbox_2d": [500, 500, 550, 550]}]'), 1.0, 0.0,
     "two boxes: our union region has IoU 0.8; their greedy regex keeps only the last box, a miss"),
    (wrap('[{"bbox_2d": [500, 500, 550, 550]}, {"bbox_2d": [0, 0, 100, 100]}]'), 1.0, 1.0,
     "the same boxes reversed: now their last box is the right one"),
    (wrap('{"bbox_2d": [100, 100, 0, 0]}'), 1.0, 0.0, "swapped corners: we reorder them; their areas turn negative"),
])
def test_default_and_compat_disagree(completion, default, compat, why):
    assert acc(completion) == default, why
    assert acc(completion, compat="medground-r1") == compat, why


def test_compat_ignores_frames_and_clipping():
    """A 0-1000 answer: scored in norm1000 it is exact; the preset compares the raw numbers with pixels."""
    completion = wrap('{"bbox_2d": [0, 0, 100, 100]}')
    truth = LoadedDataset("jsonl", [Sample(id="s", phrase="p", boxes=[[0, 0, 200, 200]], image_size=(2000, 2000))])
    ours = score_predictions([{"id": "s", "completion": completion}], truth, frame="norm1000", n_bootstrap=0)
    theirs = score_predictions([{"id": "s", "completion": completion}], truth, compat="medground-r1", n_bootstrap=0)
    assert ours.report.miou == 1.0 and theirs.report.miou == pytest.approx(0.25)
    past_edge = score_predictions([{"id": "s", "completion": wrap('{"bbox_2d": [0, 0, 2400, 2400]}')}], truth,
                                  compat="medground-r1", n_bootstrap=0)
    assert past_edge.report.out_of_frame_rate == 1.0  # flagged, not clipped
    assert past_edge.per_sample.iou[0] == pytest.approx(their_iou([0, 0, 2400, 2400], [0, 0, 200, 200]))


def test_one_pixel_overlap_counts_zero_in_their_iou():
    truth = LoadedDataset("jsonl", [Sample(id="s", phrase="p", boxes=[[0, 0, 10, 10]], image_size=(100, 100))])
    records = [{"id": "s", "completion": wrap('{"bbox_2d": [9, 0, 10, 10]}')}]
    assert score_predictions(records, truth, n_bootstrap=0).per_sample.iou[0] == pytest.approx(0.1)
    assert score_predictions(records, truth, compat="medground-r1", n_bootstrap=0).per_sample.iou[0] == 0.0


def test_report_states_the_preset_and_rejects_what_it_cannot_do():
    result = score_predictions([{"id": "s", "completion": wrap("x")}], TRUTH, compat="medground-r1", n_bootstrap=0)
    assert result.config["compat"] == "medground-r1" and result.config["inclusive"] is False
    assert result.config["parse_rules"] == get_compat("medground-r1").parse_rules
    assert result.problems == ["vlm-r1: no {...[int, int, int, int]...} in the answer"]
    with pytest.raises(ValueError, match="unknown compat preset 'vlm-r2'"):
        get_compat("vlm-r2")
    with pytest.raises(ValueError, match="raw coordinates"):
        score_predictions([], TRUTH, compat="medground-r1", frame="norm1000")
    with pytest.raises(DataError, match=r"<records>:1: field 'pred_boxes'"):
        score_predictions([{"id": "s", "pred_boxes": [0, 0, 1, 1]}], TRUTH, compat="medground-r1")
    with pytest.raises(DataError, match=r"<records>:1: field 'frame' = 'norm1000': expected 'pixel' under --compat"):
        score_predictions([{"id": "s", "completion": "x", "frame": "norm1000"}], TRUTH, compat="medground-r1")


def test_multi_box_truth_is_compared_as_its_enclosing_box():
    truth = LoadedDataset("jsonl", [Sample(id="s", phrase="p", boxes=[[0, 0, 10, 10], [90, 90, 100, 100]],
                                           image_size=(100, 100))])
    result = score_predictions([{"id": "s", "completion": wrap('{"bbox_2d": [0, 0, 100, 100]}')}], truth,
                               compat="medground-r1", n_bootstrap=0)
    assert result.per_sample.iou[0] == 1.0


def test_compat_misses_and_parse_failures_pool_the_same_enclosing_area():
    """Under the preset a multi-box truth is its enclosing box, for a sample without prediction too (cIoU)."""
    boxes = [[0, 0, 10, 10], [90, 90, 100, 100]]  # union 200, enclosing box 10,000
    truth = LoadedDataset("jsonl", [Sample(id="a", phrase="p", boxes=boxes, image_size=(100, 100)),
                                    Sample(id="b", phrase="p", boxes=boxes, image_size=(100, 100))])
    result = score_predictions([{"id": "a", "completion": wrap("no box")}], truth, compat="medground-r1", n_bootstrap=0)
    assert result.config["missing_predictions"] == 1
    assert result.per_sample.union.tolist() == [10_000.0, 10_000.0]
    ours = score_predictions([{"id": "a", "completion": wrap("no box")}], truth, n_bootstrap=0)
    assert ours.per_sample.union.tolist() == [200.0, 200.0]
