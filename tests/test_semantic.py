"""The semantic reward reads what the model named, compares it with the report, and survives any input."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medground_eval.parsing import parse_completion
from medground_eval.rewards import RewardInputError, SemanticReward, SpatialSemanticReward, predicted_label
from medground_eval.rewards.encoders import get_text_encoder

BOX = "[100, 50, 300, 250]"


def answer(label: str) -> str:
    return f'<think>Looking at the apex.</think><answer>[{{"bbox_2d": {BOX}, "label": "{label}"}}]</answer>'


def test_predicted_label_order():
    json_label = answer("left apical pneumothorax")
    assert predicted_label(parse_completion(json_label)) == "left apical pneumothorax"
    ref = "<think>x</think><answer><ref>right pleural effusion</ref><box>(10,20),(30,40)</box></answer>"
    assert predicted_label(parse_completion(ref)) == "right pleural effusion"
    two = '<answer>[{"bbox_2d": [0,0,5,5], "label": "nodule"}, {"bbox_2d": [6,6,9,9], "label": "nodule"}, ' \
          '{"bbox_2d": [1,1,2,2], "label": "mass"}]</answer>'
    assert predicted_label(parse_completion(two)) == "nodule; mass"
    # No label: the sentence of the reasoning that writes the answer's box, box text removed.
    reasoning = (
        "<think>The right base [400, 400, 500, 500] looks clear. The left apex shows a pleural line "
        f"{BOX}. Nothing else.</think><answer>{BOX}</answer>"
    )
    assert predicted_label(parse_completion(reasoning)) == "The left apex shows a pleural line."
    # No sentence writes the answer's box: the last sentence that writes any box.
    other = "<think>First [1, 1, 2, 2] the hilum. Then [3, 3, 4, 4] the apex.</think><answer>[9, 9, 10, 10]</answer>"
    assert predicted_label(parse_completion(other)) == "Then the apex."
    assert predicted_label(parse_completion("<think>no boxes here</think><answer>[1, 2, 3, 4]</answer>")) is None
    assert predicted_label(parse_completion("<answer>nothing</answer>")) is None


def test_minilm_rewards_the_right_finding_over_a_wrong_one():
    reward = SemanticReward()  # the default: offline all-MiniLM-L6-v2
    completions = [answer("small left apical pneumothorax"), answer("cardiomegaly"), "<answer>no box</answer>"]
    values = reward(completions, phrase=["left apical pneumothorax"] * 3)
    assert values[0] > 0.8
    assert values[1] == 0.0  # unrelated finding: below the calibration floor
    assert values[2] == 0.0  # no label, no credit


def test_semantic_reward_reads_the_prediction_not_only_the_truth():
    reward = SemanticReward(encoder="lexical", floor=0.0, ceil=1.0)
    phrase = ["left pleural effusion"] * 2
    right, wrong = reward([answer("left pleural effusion"), answer("rib fracture")], phrase=phrase)
    assert right == pytest.approx(1.0) and wrong < 0.5


def test_bad_inputs_score_and_never_crash():
    reward = SemanticReward(encoder="lexical")
    long_label = "opacity " * 12_500  # 100 kB
    completions = [answer(""), answer("épanchement pleural gauche"), answer("左侧气胸"), answer(long_label), None, 7]
    values = reward(completions, phrase=["left pleural effusion", "", "pneumothorax", "opacity", "x", "y"])
    assert len(values) == 6 and all(0.0 <= v <= 1.0 for v in values)
    assert values[0] == 0.0 and values[4] == 0.0 and values[5] == 0.0


def test_missing_report_column_names_it():
    with pytest.raises(RewardInputError, match="missing column 'phrase'"):
        SemanticReward(encoder="lexical")([answer("x")], solution=[[0, 0, 1, 1]])
    assert SemanticReward(encoder="lexical")([answer("x")], report=["x"]) == [pytest.approx(1.0)]


def test_model_path_that_does_not_exist_fails_at_construction(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        SemanticReward(encoder=str(tmp_path / "no-such-model"))


def test_encoder_loads_once_and_caches_by_text():
    calls: list[list[str]] = []

    def encoder(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts])

    reward = SemanticReward(encoder=encoder, floor=0.0, ceil=1.0)
    completions = [answer("nodule")] * 4
    reward(completions, phrase=["nodule"] * 4)
    reward(completions, phrase=["nodule"] * 4)
    assert calls == [["nodule"]]  # one call, deduplicated; the second batch hits the cache


def test_pickled_reward_rebuilds_its_encoder():
    reward = SemanticReward(encoder="lexical")
    reward([answer("nodule")], phrase=["nodule"])
    clone = pickle.loads(pickle.dumps(reward))
    assert clone([answer("nodule")], phrase=["nodule"]) == [pytest.approx(1.0)]


def test_region_mode_with_a_tiny_clip(tiny_clip: Path):
    from PIL import Image

    image = Image.new("RGB", (64, 48), (30, 30, 30))
    reward = SemanticReward(mode="region", region_model=str(tiny_clip), floor=-1.0, ceil=1.0)
    completions = ["<answer>[8, 8, 40, 40]</answer>", "<answer>none</answer>"]
    values = reward(completions, phrase=["left pleural effusion"] * 2, image=[image, image],
                    solution=[[8, 8, 40, 40]] * 2)
    assert 0.0 < values[0] <= 1.0  # scored although the completion names nothing: the crop is compared
    assert values[1] == 0.0
    with pytest.raises(RewardInputError, match="image"):
        reward(completions, phrase=["x"] * 2)


def test_combined_default_config_is_documented_values():
    reward = SpatialSemanticReward()
    assert reward.weights == (1.0, 1.0, 1.0)
    assert (reward.semantic.floor, reward.semantic.ceil) == (0.3, 0.9)
    assert reward.semantic.encoder == "minilm" and reward.spatial.mode == "iou"


def test_worked_example_of_docs_rewards_md():
    from medground_eval.rewards import SpatialSemanticReward

    think = "<think>The left apex [110, 40, 290, 240] shows a thin pleural line.</think>\n"
    completions = [
        think + '<answer>[{"bbox_2d": [110, 40, 290, 240], "label": "left apical pneumothorax"}]</answer>',
        "<think>The left apex [110, 40, 290, 240] is abnormal.</think>\n"
        '<answer>[{"bbox_2d": [110, 40, 290, 240], "label": "cardiomegaly"}]</answer>',
        "<think>The right apex [700, 40, 880, 240] shows a pleural line.</think>\n"
        '<answer>[{"bbox_2d": [700, 40, 880, 240], "label": "apical pneumothorax"}]</answer>',
        '<answer>{"bbox_2d": [110, 40, 290, 240]}',
    ]
    columns = dict(solution=[[100, 50, 300, 250]] * 4, phrase=["small left apical pneumothorax"] * 4)
    table = SpatialSemanticReward().breakdown(completions, **columns)
    np.testing.assert_allclose(table.total, [2.818, 1.818, 1.982, 0.818], atol=5e-4)
    np.testing.assert_allclose(table.iou, [34_200 / 41_800, 34_200 / 41_800, 0, 34_200 / 41_800])
    paper = SpatialSemanticReward.paper().breakdown(completions, **columns)
    np.testing.assert_allclose(paper.total, [3.0, 2.0, 1.982, 1.0], atol=5e-4)
    negative = SpatialSemanticReward(semantic_policy="negative").breakdown(completions, **columns)
    np.testing.assert_allclose(negative.total, [2.818, 2.818, 1.982, 1.818], atol=5e-4)


def test_reasoning_box_of_another_dimension_neither_crashes_nor_names_the_region():
    # A 6-number box in the reasoning of a 2D answer (or the reverse) is not the answer's box: no label, score 0.
    two_d = "<think>The lesion [10, 20, 30, 40, 50, 60] is here.</think><answer>[10, 20, 30, 40]</answer>"
    assert predicted_label(parse_completion(two_d)) is None
    columns = dict(solution=[[10, 20, 30, 40]], phrase=["lesion"])
    assert SemanticReward(encoder="lexical")([two_d], **columns) == [0.0]
    assert SpatialSemanticReward(encoder="lexical")([two_d], **columns) == [pytest.approx(2.0)]


fragment = st.sampled_from([
    "<think>", "</think>", "<answer>", "</answer>", "The left apex ", "[10, 20, 30, 40]", "[10, 20, 30, 40, 50, 60]",
    "(10,20),(30,40)", '{"bbox_2d": [10, 20, 30, 40], "label": "nodule"}', '{"bbox_3d": [1, 2, 3, 4, 5, 6]}',
    "<ref>effusion</ref><box>(1,2),(3,4)</box>", ". ", "\n", ", ", "[", "]", '"label": ""', "épanchement ", "左肺",
])


@given(st.lists(fragment, max_size=14).map("".join), st.sampled_from([2, 3]))
@settings(max_examples=300, deadline=None)
def test_rewards_never_raise_on_any_completion_and_read_the_same_label(text: str, dims: int) -> None:
    box = [10, 20, 30, 40] if dims == 2 else [1, 2, 3, 4, 5, 6]
    columns = dict(solution=[box], phrase=["left apical nodule"])
    parts = SpatialSemanticReward(encoder="lexical", dims=dims).breakdown([text], **columns)
    assert parts.labels == [predicted_label(parse_completion(text, dims=dims))]
    assert np.isfinite(parts.total).all()
    assert SemanticReward(encoder="lexical", dims=dims)([text], **columns)[0] == pytest.approx(parts.semantic[0])


def test_semantic_and_combined_rewards_score_3d_completions():
    completions = [
        '<think>The liver [10, 10, 5, 50, 60, 20] is enlarged.</think><answer>[{"bbox_3d": [10, 10, 5, 50, 60, 20], '
        '"label": "enlarged liver"}]</answer>',
        "<think>The enlarged liver [10, 10, 5, 50, 60, 20].</think><answer>[10, 10, 5, 30, 60, 20]</answer>",
    ]
    columns = dict(solution=[[10, 10, 5, 50, 60, 20]] * 2, phrase=["enlarged liver"] * 2,
                   image_size=[[100, 100, 40]] * 2)
    semantic = SemanticReward(encoder="lexical", floor=0.0, ceil=1.0, dims=3)(completions, **columns)
    assert semantic[0] == pytest.approx(1.0) and 0.5 < semantic[1] < 1.0  # label, then the reasoning's sentence
    parts = SpatialSemanticReward(encoder="lexical", floor=0.0, ceil=1.0, dims=3).breakdown(completions, **columns)
    np.testing.assert_allclose(parts.format, [1.0, 1.0])
    np.testing.assert_allclose(parts.iou, [1.0, 0.5])
    np.testing.assert_allclose(parts.semantic, semantic)
    with pytest.raises(ValueError, match="region.*2D"):
        SemanticReward(mode="region", region_model="unused", dims=3)


def test_region_model_path_that_does_not_exist_fails_at_construction(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no-such-clip"):
        SemanticReward(mode="region", region_model=str(tmp_path / "no-such-clip"))
    with pytest.raises(FileNotFoundError, match="no-such-clip"):
        SpatialSemanticReward(semantic_mode="region", region_model=str(tmp_path / "no-such-clip"))


def test_missing_or_empty_report_text_is_a_ground_truth_error():
    reward = SemanticReward(encoder="lexical")
    with pytest.raises(RewardInputError, match="'phrase' \\(or its alias 'report'\\)"):
        reward([answer("x")], solution=[[0, 0, 1, 1]])
    with pytest.raises(RewardInputError, match="column 'phrase' row 1: value None: expected the report text"):
        reward([answer("x")] * 2, phrase=["x", None])
    with pytest.raises(RewardInputError, match="column 'report' row 0: value 3"):
        reward([answer("x")], report=[3])
    assert reward([answer("x")], phrase=[""]) == [0.0]  # an empty report is scored: nothing agrees with it


def test_text_encoder_is_built_once_under_concurrent_first_calls(monkeypatch: pytest.MonkeyPatch):
    import time
    from concurrent.futures import ThreadPoolExecutor

    from medground_eval.rewards import semantic

    built: list[object] = []

    def slow_get_text_encoder(spec: object) -> object:
        time.sleep(0.05)  # widen the window in which a second thread could build another encoder
        built.append(spec)
        return get_text_encoder(spec)

    monkeypatch.setattr(semantic, "get_text_encoder", slow_get_text_encoder)
    reward = SemanticReward(encoder="lexical")
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: reward([answer("nodule")], phrase=["nodule"]), range(4)))
    assert built == ["lexical"]
    clone = pickle.loads(pickle.dumps(reward))
    assert clone([answer("nodule")], phrase=["nodule"]) == [pytest.approx(1.0)]


def test_reward_with_an_encoder_object_pickles(tiny_clip: Path):
    from medground_eval.rewards.encoders import ClipRegionEncoder, SentenceTransformerEncoder

    reward = SemanticReward(encoder=SentenceTransformerEncoder("minilm"))
    reward([answer("left pleural effusion")], phrase=["left pleural effusion"])  # loads the model
    clone = pickle.loads(pickle.dumps(reward))
    assert clone([answer("left pleural effusion")], phrase=["left pleural effusion"]) == [pytest.approx(1.0)]
    clip = ClipRegionEncoder(tiny_clip)
    clip.similarity([np.zeros((8, 8, 3), dtype=np.uint8)], np.array([[0, 0, 8, 8]]), ["lung"])
    assert pickle.loads(pickle.dumps(clip)).path == clip.path
