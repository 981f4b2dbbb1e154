"""Format, spatial and combined rewards: TRL calling convention, frames, multi-box regions, bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from medground_eval.frames import get_frame, smart_resize
from medground_eval.rewards import (
    FormatReward,
    RewardInputError,
    SpatialReward,
    SpatialSemanticReward,
    format_reward,
    spatial_reward,
)

GOOD = (
    "<think>The left apex [100, 50, 300, 250] shows a pleural line.</think>\n"
    '<answer>```json\n[{"bbox_2d": [100, 50, 300, 250], "label": "left apical pneumothorax"}]\n```</answer>'
)


def chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_format_reward_strict_and_lenient_cases():
    completions = [
        GOOD,
        "<think>x</think><answer>[1, 2, 3, 4]</answer> trailing text",
        "<think>x</think><answer>[1, 2, 3, 4]",
        "<think></think><answer>[1, 2, 3, 4]</answer>",
        "<think>x</think><answer>no box</answer>",
        "",
    ]
    assert format_reward(completions) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_format_reward_can_require_chain_of_box_step():
    no_step = "<think>Looks like the left apex.</think><answer>[1, 2, 3, 4]</answer>"
    reward = FormatReward(require_think_box=True)
    assert reward([GOOD, no_step]) == [1.0, 0.0]
    assert format_reward([no_step]) == [1.0]


def test_rewards_accept_trl_keyword_call_with_unknown_columns():
    values = spatial_reward(
        prompts=["p"], completions=[chat(GOOD)], completion_ids=[[1, 2]], solution=[[100, 50, 300, 250]],
        trainer_state=None, log_metric=lambda *a: None, some_column=["x"],
    )
    assert values == [1.0]


def test_spatial_modes():
    completion = ["<answer>[0, 0, 10, 10]</answer>"]
    truth = {"solution": [[0, 0, 10, 20]]}
    assert SpatialReward()(completion, **truth) == [0.5]
    assert SpatialReward(mode="threshold", threshold=0.5)(completion, **truth) == [1.0]
    assert SpatialReward(mode="threshold", threshold=0.5, inclusive=False)(completion, **truth) == [0.0]
    # GIoU of nested boxes equals IoU (enclosing box = true box), rescaled to (giou + 1) / 2.
    assert SpatialReward(mode="giou")(completion, **truth) == [pytest.approx(0.75)]
    far = ["<answer>[100, 100, 110, 110]</answer>"]
    giou_far = SpatialReward(mode="giou")(far, **truth)[0]
    assert 0.0 < giou_far < 0.5


def test_spatial_reward_malformed_completion_scores_zero_never_raises():
    junk = [None, "", "<answer>[1, 2, 3]</answer>", "<answer>{'bbox_2d': [nan, 1, 2, 3]}</answer>", 42, "[" * 10_000]
    values = SpatialReward()(junk, solution=[[0, 0, 10, 10]] * len(junk))
    assert values == [0.0] * len(junk)


def test_multibox_union_region_and_matching():
    # Two true boxes side by side; one prediction covering both exactly: union IoU 1; matching pairs it with one
    # true box (IoU 0.5) and divides by max(#pred, #true) = 2.
    truth = {"solution": [[[0, 0, 10, 10], [10, 0, 20, 10]]]}
    completion = ["<answer>[0, 0, 20, 10]</answer>"]
    assert SpatialReward()(completion, **truth) == [pytest.approx(1.0)]
    assert SpatialReward(multi="match")(completion, **truth) == [pytest.approx(0.25)]
    two = ['<answer>[{"bbox_2d": [0, 0, 10, 10]}, {"bbox_2d": [10, 0, 20, 10]}]</answer>']
    assert SpatialReward(multi="match")(two, **truth) == [pytest.approx(1.0)]


def test_frames_norm1000_and_qwen25_resized():
    w, h = 8000, 4000  # above Qwen2.5-VL's default max_pixels: the model sees a smaller image
    truth = {"solution": [[2000, 1000, 4000, 3000]], "image_size": [[w, h]]}
    norm = ["<answer>[250, 250, 500, 750]</answer>"]
    assert SpatialReward(frame="qwen2-vl")(norm, **truth) == [pytest.approx(1.0)]
    rh, rw = smart_resize(h, w)
    box = [2000 * rw / w, 1000 * rh / h, 4000 * rw / w, 3000 * rh / h]
    resized = [f"<answer>[{box[0]:.3f}, {box[1]:.3f}, {box[2]:.3f}, {box[3]:.3f}]</answer>"]
    assert SpatialReward(frame="qwen2.5-vl")(resized, **truth) == [pytest.approx(1.0, abs=1e-4)]
    # The same numbers read in the wrong frame score far lower: this is why frames are declared.
    assert SpatialReward(frame="pixel")(resized, **truth)[0] < 0.5


def test_per_sample_frame_column_overrides_configured_frame():
    truth = {"solution": [[0, 0, 50, 50]] * 2, "image_size": [[100, 100]] * 2, "frame": ["norm1000", "norm1"]}
    completions = ["<answer>[0, 0, 500, 500]</answer>", "<answer>[0, 0, 0.5, 0.5]</answer>"]
    assert SpatialReward()(completions, **truth) == [pytest.approx(1.0), pytest.approx(1.0)]


def test_out_of_frame_boxes_are_clipped_and_flagged():
    reward = SpatialReward(frame="norm1000")
    result = reward.evaluate(["<answer>[0, 0, 1200, 1000]</answer>"], solution=[[0, 0, 100, 100]],
                             image_size=[[100, 100]])
    assert result.out_of_frame.tolist() == [True]
    assert result.iou[0] == pytest.approx(1.0)


def test_solution_as_json_string_and_missing_columns():
    assert spatial_reward(["<answer>[0, 0, 10, 10]</answer>"], solution=["[0, 0, 10, 10]"]) == [1.0]
    with pytest.raises(RewardInputError, match="missing column 'solution'"):
        spatial_reward(["<answer>[0, 0, 10, 10]</answer>"])
    with pytest.raises(RewardInputError, match="row 1"):
        spatial_reward(["a", "b"], solution=[[0, 0, 1, 1], [0, 0, 1]])
    with pytest.raises(RewardInputError, match="x2 >= x1"):
        spatial_reward(["a"], solution=[[5, 0, 1, 1]])
    with pytest.raises(RewardInputError, match="image_size"):
        SpatialReward(frame="norm1000")(["a"], solution=[[0, 0, 1, 1]])
    with pytest.raises(RewardInputError, match="2 values for 1"):
        spatial_reward(["a"], solution=[[0, 0, 1, 1], [0, 0, 1, 1]])


def test_bad_configuration_raises_at_construction():
    with pytest.raises(ValueError, match="mode"):
        SpatialReward(mode="dice")
    with pytest.raises(ValueError, match="unknown|expected"):
        SpatialReward(frame="qwen9")
    with pytest.raises(ValueError, match="weights"):
        SpatialSemanticReward(weights=(1, 1), encoder="lexical")
    with pytest.raises(ValueError, match="negative_below = nan"):
        SpatialSemanticReward(semantic_policy="negative", negative_below=float("nan"), encoder="lexical")


def test_rewards_pickle_and_keep_their_names():
    reward = SpatialSemanticReward(encoder="lexical", name="my_reward")
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.__name__ == "my_reward"
    assert pickle.loads(pickle.dumps(spatial_reward)).__name__ == "spatial_reward"


def test_combined_breakdown_and_weights():
    reward = SpatialSemanticReward(weights=(0.5, 2.0, 1.0), encoder="lexical")
    columns = {"solution": [[100, 50, 300, 250]] * 2, "phrase": ["left apical pneumothorax"] * 2}
    completions = [GOOD, GOOD.replace("left apical pneumothorax", "cardiomegaly")]
    parts = reward.breakdown(completions, **columns)
    assert parts.format.tolist() == [1.0, 1.0]
    assert parts.spatial.tolist() == [1.0, 1.0]
    assert parts.semantic[0] == pytest.approx(1.0, abs=1e-6)
    assert parts.semantic[1] < parts.semantic[0]
    np.testing.assert_allclose(parts.total, 0.5 * parts.format + 2.0 * parts.spatial + 1.0 * parts.semantic)
    assert reward(completions, **columns) == parts.total.tolist()
    summary = parts.summary()
    assert summary["iou_mean"] == pytest.approx(1.0) and summary["parse_failure_rate"] == 0.0


def test_semantic_policy_negative_only_grades_misses():
    reward = SpatialSemanticReward(encoder="lexical", semantic_policy="negative", negative_below=0.5)
    miss = GOOD.replace("[100, 50, 300, 250]", "[400, 400, 500, 500]")
    parts = reward.breakdown([GOOD.replace("left apical pneumothorax", "cardiomegaly"), miss],
                             solution=[[100, 50, 300, 250]] * 2, phrase=["left apical pneumothorax"] * 2)
    assert parts.semantic[0] == 1.0  # a hit is never ranked below a miss by the semantic term
    assert parts.semantic[1] == pytest.approx(1.0, abs=1e-6)  # right finding, wrong place: partial credit
    assert parts.total[0] > parts.total[1]


def test_paper_preset_is_binary_strict_iou():
    paper = SpatialSemanticReward.paper(encoder="lexical")
    assert paper.spatial.mode == "threshold" and paper.spatial.inclusive is False
    assert paper.weights == (1.0, 1.0, 1.0)
    exactly_half = ["<think>x</think><answer>[0, 0, 10, 10]</answer>"]
    parts = paper.breakdown(exactly_half, solution=[[0, 0, 10, 20]], phrase=["x"])
    assert parts.spatial.tolist() == [0.0]  # IoU 0.5 is not > 0.5


def test_frame_objects_are_accepted():
    frame = get_frame("qwen2.5-vl", max_pixels=256 * 28 * 28)
    assert SpatialReward(frame=frame).frame == frame


def test_image_size_may_be_missing_only_where_the_frame_does_not_need_it():
    truth = {"solution": [[0, 0, 50, 50]] * 2, "frame": ["pixel", "norm1000"], "image_size": [None, [100, 100]]}
    completions = ["<answer>[0, 0, 50, 50]</answer>", "<answer>[0, 0, 500, 500]</answer>"]
    assert SpatialReward()(completions, **truth) == [pytest.approx(1.0), pytest.approx(1.0)]
    truth["image_size"] = [[100, 100], None]
    with pytest.raises(RewardInputError, match="'image_size' row 1"):
        SpatialReward()(completions, **truth)
    with pytest.raises(RewardInputError, match="'image_size' row 0"):
        SpatialReward(frame="norm1")(completions[:1], solution=[[0, 0, 1, 1]], image_size=[None])


def test_3d_reward_in_the_m3d_npy_frame_reads_the_crop_box_from_input_size():
    # npy axes are (D, H, W) = (z, x, y); a crop box of exactly 256 x 256 x 32 voxels maps npy indices 1:1.
    completion = ['<answer>{"bbox_3d": [0, 10, 20, 16, 100, 120]}</answer>']
    columns = {"solution": [[10, 20, 0, 100, 120, 16]], "image_size": [[256, 256, 32]],
               "frame": ["m3d-npy"], "input_size": [[0, 0, 0, 256, 256, 32]]}
    assert SpatialReward(dims=3)(completion, **columns) == [pytest.approx(1.0)]
    columns["input_size"] = [[0, 0, 0, 256, 256]]
    with pytest.raises(RewardInputError, match="crop box"):
        SpatialReward(dims=3)(completion, **columns)


# One GIoU: the reward's is the boxes module's -----------------------------------------------------------------------

def test_giou_reward_is_the_boxes_modules_giou_on_degenerate_and_random_boxes() -> None:
    """Issue 11: rewards/spatial once had its own GIoU and gave 0.5 for a zero-width box on the same zero-width true
    box, boxes.generalized_box_iou -1 (reward 0). The rule decided: -1, so the reward is 0, as for any flat answer."""
    from medground_eval.boxes import generalized_box_iou

    reward = SpatialReward(mode="giou")
    flat = [5.0, 0.0, 5.0, 10.0]
    assert reward([f"<answer>{flat}</answer>"], solution=[[flat]]) == [0.0]
    rng = np.random.default_rng(7)
    lo = rng.integers(0, 50, (200, 2)).astype(float)
    pred = np.hstack([lo, lo + rng.integers(0, 30, (200, 2))])  # zero widths and heights included
    lo = rng.integers(0, 50, (200, 2)).astype(float)
    true = np.hstack([lo, lo + rng.integers(0, 30, (200, 2))])
    pred[:20, 2] = pred[:20, 0]
    true[:20] = pred[:20]  # a zero-width box on the same zero-width true box
    completions = [f"<answer>{box.tolist()}</answer>" for box in pred]
    values = reward(completions, solution=[[box.tolist()] for box in true])
    np.testing.assert_allclose(values, (generalized_box_iou(pred, true) + 1) / 2, atol=1e-12)


@pytest.mark.parametrize("reward, columns, match", [
    # Issue 13 case 7: checks that fired only once the model wrote a box, as a bare ValueError.
    (SpatialReward(frame="qwen2.5-vl"), {"image_size": [[1, 300]]},
     r"column 'image_size' row 0: value \[1.0, 300.0\]: smart_resize: absolute aspect ratio"),
    (SpatialReward(frame="m3d-npy"), {"image_size": [[10, 10]]}, r"column 'frame' row 0: .*3D only"),
    (SpatialReward(dims=3, frame="m3d-npy"), {"image_size": [[10, 10, 10]], "solution": [[0, 0, 0, 1, 1, 1]]},
     r"column 'input_size' row 0: value None: the 'm3d-npy' frame needs the foreground crop box"),
    (SpatialReward(), {"solution": [[0, 0, 1e300, 1]]}, r"column 'solution' row 0: .*\|value\| <= 1000000"),
    (SpatialReward(frame="norm1000"), {"image_size": [[512, 2e200]]}, r"column 'image_size' row 0"),
])
def test_ground_truth_is_validated_on_every_row_without_a_predicted_box(reward, columns, match):
    columns = {"solution": [[0, 0, 1, 1]], **columns}
    with pytest.raises(RewardInputError, match=match):
        reward(["no box at all"], **columns)


def test_the_first_bad_row_is_named_in_a_batch():
    sizes = [[512, 512]] * 5 + [[1, 300]] + [[512, 512]]
    with pytest.raises(RewardInputError, match="row 5"):
        SpatialReward(frame="qwen2.5-vl")(["none"] * 7, solution=[[0, 0, 1, 1]] * 7, image_size=sizes)


def test_spatial_reward_logs_its_grounding_metrics_through_trls_callback() -> None:
    """TRL 1.16's GRPOTrainer passes ``log_metric`` to every reward function (trl/trainer/grpo_trainer.py,
    ``reward_kwargs["log_metric"] = self._log_metric``): the spatial reward logs itself, no wrapper class."""
    logged: dict[str, float] = {}
    completions = ["<answer>[0, 0, 10, 10]</answer>", "no box", "<answer>[0, 0, 10, 2000]</answer>"]
    truth = {"solution": [[0, 0, 10, 20]] * 3, "image_size": [[100, 100]] * 3}
    values = spatial_reward(completions, log_metric=logged.__setitem__, trainer_state=None, **truth)
    assert values == spatial_reward(completions, **truth)
    assert logged == {"grounding/mean_iou": pytest.approx(np.mean(values)),
                      "grounding/parse_failure_rate": pytest.approx(1 / 3),
                      "grounding/out_of_frame_rate": pytest.approx(1 / 3)}
    clone = pickle.loads(pickle.dumps(SpatialReward(mode="giou", name="spatial")))
    assert clone.__name__ == "spatial" and clone(completions, **truth) == SpatialReward(mode="giou")(completions,
                                                                                                    **truth)
