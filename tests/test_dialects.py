"""Real answer dialects of public models: each parses to the box a person reads (issue 14).

Every case names where its format is documented; the parser records the numbers as written (no frame, no swap):
``axes="yx"`` marks the dialects that write y first, for the y-first frame presets to swap once.
"""

from __future__ import annotations

import pytest

from medground_eval.parsing import parse_completion, think_boxes
from medground_eval.structures import ParsedBox


def wrap(answer: str) -> str:
    return f"<think>looking</think><answer>{answer}</answer>"


def boxes(answer: str) -> list[tuple[tuple[float, ...], str | None, str]]:
    parsed = parse_completion(wrap(answer))
    assert parsed.strict_format, parsed.problems
    return [(b.coords, b.label, b.axes) for b in parsed.answer_boxes]


def test_minicpm_v_space_separated_box() -> None:
    # OpenBMB/MiniCPM-V issue #982 (maintainer, 2025-08-29): MiniCPM-V 4.5 answers "<box>x1 y1 x2 y2</box>",
    # corners normalised to 1000; issue #185 lists "<box>xmin ymin xmax ymax</box>" as the training format and
    # OpenSQZ/MiniCPM-V-CookBook issue #39 writes "<ref>object_name</ref><box>xmin ymin xmax ymax</box>".
    assert boxes("<ref>left apical pneumothorax</ref><box>135 114 200 263</box>") == [
        ((135.0, 114.0, 200.0, 263.0), "left apical pneumothorax", "xy")
    ]
    assert boxes("<box> 12 34 56 78 </box>") == [((12.0, 34.0, 56.0, 78.0), None, "xy")]
    two = boxes("<ref>a</ref><box>1 2 3 4</box> and <ref>b</ref><box>5 6 7 8</box>")
    assert two == [((1.0, 2.0, 3.0, 4.0), "a", "xy"), ((5.0, 6.0, 7.0, 8.0), "b", "xy")]


def test_minicpm_v_wrong_count_is_a_problem() -> None:
    parsed = parse_completion(wrap("<box>1 2 3</box>"))
    assert parsed.answer_boxes == ()
    assert "box 1 has 3 numbers (expected 4 or 6)" in parsed.problems


def test_cogvlm_shikra_group_and_zero_padding() -> None:
    # THUDM/CogVLM README.md (commit f7283b2c, 2024-05-29): boxes are "[[x1, y1, x2, y2]]", "relative
    # coordinates multiplied by 1000, prefixed with zeros to three digits" ("*[[086,540,400,760]]*");
    # utils/utils/grounding_parser.py splits one group on ';' into several boxes; CogVLM issue #25: "It's
    # [[coord_1;coord_2]]" for one phrase with several boxes.
    assert boxes("the cat [[086,540,400,760]]") == [((86.0, 540.0, 400.0, 760.0), None, "xy")]
    assert boxes("<ref>dogs</ref>[[086,540,400,760;001,002,090,099]]") == [
        ((86.0, 540.0, 400.0, 760.0), "dogs", "xy"),
        ((1.0, 2.0, 90.0, 99.0), "dogs", "xy"),
    ]
    parsed = parse_completion(wrap("[[1,2,3,4;5,6,7]]"))
    assert [b.coords for b in parsed.answer_boxes] == [(1.0, 2.0, 3.0, 4.0)]
    assert "box 2 has 3 numbers (expected 4 or 6)" in parsed.problems


def test_videollama3_underscore_box() -> None:
    # DAMO-NLP-SG/VideoLLaMA3 issue #50 (2025-03-07): the normal grounding answer is "476_496_698_728" inside
    # [[...]]; its notebook inference/notebooks/03_visual_referring_and_grounding.ipynb (commit 05cee23d) also
    # shows "<ref>the white car</ref>[[56, 42, 390, 484]]".
    assert boxes("[[476_496_698_728]]") == [((476.0, 496.0, 698.0, 728.0), None, "xy")]
    assert boxes("<ref>the white car</ref>[[56, 42, 390, 484]]") == [
        ((56.0, 42.0, 390.0, 484.0), "the white car", "xy")
    ]


def test_two_corner_points_are_one_box() -> None:
    # Groma / Ferret-style answers write the two corners as points: [[x1, y1], [x2, y2]].
    assert boxes("[[10, 20], [30, 40]]") == [((10.0, 20.0, 30.0, 40.0), None, "xy")]
    assert boxes('{"bbox_2d": [[10, 20], [30, 40]], "label": "mass"}') == [((10.0, 20.0, 30.0, 40.0), "mass", "xy")]
    # three points are a polygon, not a box: each point is a problem
    parsed = parse_completion(wrap("[[10, 20], [30, 40], [50, 60]]"))
    assert parsed.answer_boxes == ()
    assert parsed.problems.count("box 1 has 2 numbers (expected 4 or 6)") == 1
    # a square point and a parenthesised point do not pair
    assert parse_completion(wrap("[1, 2], (3, 4)")).answer_boxes == ()


def test_florence2_loc_tokens() -> None:
    # microsoft/Florence-2-large-ft processing_florence2.py (BoxQuantizer: xmin, ymin, xmax, ymax quantised into
    # 1000 bins, 0-999; post_process_generation reads "label<loc_x1><loc_y1><loc_x2><loc_y2>"): x first.
    assert boxes("</s><s>car<loc_52><loc_333><loc_932><loc_774></s>") == [((52.0, 333.0, 932.0, 774.0), "car", "xy")]
    # several boxes of one phrase follow each other; each phrase labels its own run
    assert boxes("car<loc_1><loc_2><loc_3><loc_4><loc_5><loc_6><loc_7><loc_8>door<loc_9><loc_10><loc_11><loc_12>") == [
        ((1.0, 2.0, 3.0, 4.0), "car", "xy"),
        ((5.0, 6.0, 7.0, 8.0), "car", "xy"),
        ((9.0, 10.0, 11.0, 12.0), "door", "xy"),
    ]
    parsed = parse_completion(wrap("car<loc_1><loc_2><loc_3>"))
    assert parsed.answer_boxes == () and "box 1 has 3 numbers (expected 4 or 6)" in parsed.problems


def test_paligemma_loc_tokens_are_y_first() -> None:
    # PaliGemma detect output (big_vision's paligemma parser as in huggingface.co/spaces/Nymbo/paligemma
    # paligemma_parse.py, EXAMPLE_STRING "<loc0000><loc0000><loc0930><loc1012> ... wall ; <loc0722>..."; model cards:
    # "four location coordinates in the order y_min, x_min, y_max, x_max ... divide the numbers by 1024").
    assert boxes("<loc0246><loc0229><loc0872><loc0904> car ; <loc0010><loc0020><loc0030><loc0040> dog") == [
        ((246.0, 229.0, 872.0, 904.0), "car", "yx"),
        ((10.0, 20.0, 30.0, 40.0), "dog", "yx"),
    ]


def test_box_keys_by_pattern() -> None:
    # One real Qwen2.5-VL answer in the MedGround-R1 logs writes "bounding_box_2d" (issue 14).
    for key in ("bbox_2d", "bounding_box_2d", "bounding_box", "coordinates", "bbox", "BBox", "pred_bbox", "boxes"):
        assert boxes(f'{{"{key}": [1, 2, 3, 4], "label": "m"}}') == [((1.0, 2.0, 3.0, 4.0), "m", "xy")], key
    for key in ("crop", "size", "point_2d", "region_of_interest"):
        parsed = parse_completion(wrap(f'{{"{key}": [1, 2, 3, 4]}}'))
        assert parsed.answer_boxes == (), key


def test_gemini_box_2d_is_marked_y_first() -> None:
    # Gemini API docs, quoted in huggingface.co/google/gemma-3-4b-it/discussions/38: "Bounding boxes in the
    # [y_min, x_min, y_max, x_max] format ... normalized to 0-1000"; the JSON key is "box_2d".
    assert boxes('[{"box_2d": [20, 10, 40, 30], "label": "nodule"}]') == [((20.0, 10.0, 40.0, 30.0), "nodule", "yx")]
    # swapped corners of a y-first box are reported by their own axis names
    parsed = parse_completion(wrap('{"box_2d": [40, 10, 20, 30]}'))
    assert parsed.answer_boxes == (ParsedBox((20.0, 10.0, 40.0, 30.0), None, "yx"),)
    assert "box 1: y2 < y1, corners swapped" in parsed.problems


def test_prose_coordinates_stay_out() -> None:
    # Named coordinates and a width in prose are not a box: nothing is guessed from them (docs/parsing.md).
    parsed = parse_completion(wrap("The opacity is at (x1=630, y1=440) with a width of 200 and a height of 120."))
    assert parsed.answer_boxes == ()
    assert parsed.problems == ("no box in <answer>",)


@pytest.mark.parametrize(
    "think",
    ["first <box>1 2 3 4</box> then", "[[1,2,3,4;5,6,7,8]]", "car<loc_1><loc_2><loc_3><loc_4>", "[[1_2_3_4]]"],
)
def test_dialects_in_think_are_chain_of_box_steps(think: str) -> None:
    parsed = parse_completion(f"<think>{think}</think><answer>[1, 2, 3, 4]</answer>")
    assert think_boxes(parsed) and think_boxes(parsed)[0].coords == (1.0, 2.0, 3.0, 4.0)
