"""Tests for the Chain-of-Box parser (medground_eval.parsing)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medground_eval.parsing import (
    ANSWER_TAGS,
    FORMAT_DIALECTS,
    MAX_BOXES,
    completion_text,
    format_box,
    parse_completion,
    think_boxes,
)
from medground_eval.regions import parse_batch, parse_many
from medground_eval.structures import ParsedBox

NO_BOX = "no box in <answer>"
QWEN25 = '```json\n[\n\t{"bbox_2d": [135, 114, 200, 263], "label": "left apical pneumothorax"}\n]\n```'


def wrap(answer: str, think: str = "The apex of the left lung is lucent.") -> str:
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


def answer_boxes(answer: str, **kwargs: object) -> list[tuple[tuple[float, ...], str | None]]:
    parsed = parse_completion(wrap(answer), **kwargs)
    return [(b.coords, b.label) for b in parsed.answer_boxes]


# --- realistic output and strict format -------------------------------------------------------------------------


def test_qwen25_vl_output_is_strict() -> None:
    parsed = parse_completion(wrap(QWEN25))
    assert parsed.strict_format
    assert parsed.problems == ()
    assert parsed.think == "The apex of the left lung is lucent."
    assert parsed.answer == QWEN25
    assert parsed.answer_boxes == (ParsedBox((135.0, 114.0, 200.0, 263.0), "left apical pneumothorax"),)
    assert parsed.labels == ("left apical pneumothorax",)
    np.testing.assert_array_equal(parsed.boxes(), [[135, 114, 200, 263]])


def test_whitespace_around_tags_is_strict() -> None:
    assert parse_completion("\n  <think>a</think>\n\n<answer>\n[1, 2, 3, 4]\n</answer>\n\n").strict_format


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"<think>a</think><answer>{QWEN25}", "missing </answer>"),
        (f"<think>a<answer>{QWEN25}</answer>", "missing </think>"),
        (f"<answer>{QWEN25}</answer>", "missing <think>"),
        (f"a</think><answer>{QWEN25}</answer>", "missing <think>"),
        (f"<think>a</think><answer>{QWEN25}</answer> Done.", "text after </answer>"),
        (f"<think> \n</think><answer>{QWEN25}</answer>", "empty <think>"),
    ],
)
def test_lenient_reading_keeps_answer_boxes(text: str, problem: str) -> None:
    parsed = parse_completion(text)
    assert not parsed.strict_format
    assert problem in parsed.problems
    assert parsed.answer_boxes == (ParsedBox((135.0, 114.0, 200.0, 263.0), "left apical pneumothorax"),)


def test_missing_answer_gives_no_boxes_and_none_answer() -> None:
    parsed = parse_completion("<think>It is at [1, 2, 3, 4].</think> [1, 2, 3, 4]")
    assert parsed.answer is None
    assert parsed.answer_boxes == ()
    assert not parsed.has_answer_box
    assert parsed.problems == ("missing <answer>",)
    assert think_boxes(parsed) == (ParsedBox((1.0, 2.0, 3.0, 4.0)),)


def test_unclosed_think_runs_to_end_without_answer() -> None:
    parsed = parse_completion("<think>first [1, 2, 3, 4]")
    assert parsed.think == "first [1, 2, 3, 4]"
    assert parsed.problems == ("missing </think>", "missing <answer>")


def test_swapped_corners_are_normalised_but_not_strict() -> None:
    parsed = parse_completion(wrap("[30, 40, 10, 20]"))
    assert parsed.answer_boxes == (ParsedBox((10.0, 20.0, 30.0, 40.0)),)
    assert parsed.problems == ("box 1: x2 < x1, y2 < y1, corners swapped",)
    assert not parsed.strict_format


def test_swapped_3d_axis_named() -> None:
    parsed = parse_completion(wrap("[1, 2, 9, 4, 5, 6]"))
    assert parsed.answer_boxes[0].coords == (1.0, 2.0, 6.0, 4.0, 5.0, 9.0)
    assert parsed.problems == ("box 1: z2 < z1, corners swapped",)


def test_upper_case_tags_are_read_but_not_strict() -> None:
    parsed = parse_completion("<THINK>a</Think><Answer>[1, 2, 3, 4]</ANSWER>")
    assert parsed.think == "a"
    assert parsed.answer_boxes == (ParsedBox((1.0, 2.0, 3.0, 4.0)),)
    assert parsed.problems == (
        "tag <THINK> should be lower case",
        "tag </Think> should be lower case",
        "tag <Answer> should be lower case",
        "tag </ANSWER> should be lower case",
    )


# --- every problem message ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("empty completion",)),
        ("  \n", ("empty completion",)),
        ("[1, 2, 3, 4]", ("missing <think>", "missing <answer>")),
        ("<think>a</think>", ("missing <answer>",)),
        ("<think></think><answer>[1, 2, 3, 4]</answer>", ("empty <think>",)),
        ("Sure! <think>a</think><answer>[1, 2, 3, 4]</answer>", ("text before <think>",)),
        ("<think>a</think> so <answer>[1, 2, 3, 4]</answer>", ("text between </think> and <answer>",)),
        ("<think>a</think><answer>[1, 2, 3, 4]</answer>ok", ("text after </answer>",)),
        (
            "<answer>[1, 2, 3, 4]</answer><think>a</think>",
            ("<answer> comes before </think>", "text before <think>", "text after </answer>"),
        ),
        ("<think>a<think>b</think><answer>[1, 2, 3, 4]</answer>", ("<think> appears more than once",)),
        (
            "<think>a</think>b</think><answer>[1, 2, 3, 4]</answer>",
            ("</think> appears more than once", "text between </think> and <answer>"),
        ),
        (
            "<think>a</think><answer>[1, 2, 3, 4]</answer><answer>",
            ("<answer> appears more than once", "text after </answer>"),
        ),
        (
            "<think>a</think><answer>[1, 2, 3, 4]</answer></answer>",
            ("</answer> appears more than once", "text after </answer>"),
        ),
        ("<think>a</think><answer>none</answer>", ("no box in <answer>",)),
        ("<think>a</think><answer></answer>", ("no box in <answer>",)),
        (
            "<think>a</think><answer>[1, 2, 3]</answer>",
            ("box 1 has 3 numbers (expected 4 or 6)", "no box in <answer>"),
        ),
        ("<think>a</think><answer>[5]</answer>", ("box 1 has 1 number (expected 4 or 6)", NO_BOX)),
        (
            "<think>a</think><answer>[1, 2, 3, 4] [5, 6, 7]</answer>",
            ("box 2 has 3 numbers (expected 4 or 6)",),
        ),
        ("<think>a</think><answer>[1, 2, nan, 4]</answer>", ("box 1 has a non-finite number (nan)", NO_BOX)),
        (
            "<think>a</think><answer>[-inf, 2, 3, Infinity]</answer>",
            ("box 1 has a non-finite number (-inf, Infinity)", "no box in <answer>"),
        ),
        ("<think>a</think><answer>[1, 2, 3e999, 4]</answer>", ("box 1 has a non-finite number (3e999)", NO_BOX)),
        ("<think>a</think><answer>[1, 2, 3e, 4]</answer>", ("box 1 has an invalid number '3e'", "no box in <answer>")),
        ("<think>a</think><answer>[1, , 3, 4]</answer>", ("box 1 has an invalid number ''", "no box in <answer>")),
        ("<think>a</think><answer>[5, 2, 3, 4]</answer>", ("box 1: x2 < x1, corners swapped",)),
        ("<think>a</think><answer>```json\n[1, 2, 3, 4]</answer>", ("unclosed ```json fence",)),
        ("<think>a</think><answer>```json\n```json\n[1, 2, 3, 4]\n```</answer>", ("``` fence opened twice",)),
        (
            '<think>a</think><answer>[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [5, 6</answer>',
            ("unbalanced brackets in <answer>: 3 '[' but 1 ']'", "unbalanced brackets in <answer>: 2 '{' but 1 '}'"),
        ),
    ],
)
def test_problem_messages(text: str, expected: tuple[str, ...]) -> None:
    parsed = parse_completion(text)
    assert parsed.problems == expected
    assert not parsed.strict_format


def test_too_many_groups_is_a_problem_and_bounded() -> None:
    parsed = parse_completion(wrap("[1, 2, 3, 4] " * (MAX_BOXES + 5)))
    assert len(parsed.answer_boxes) == MAX_BOXES
    assert parsed.problems == (f"more than {MAX_BOXES} bracketed groups in <answer>; the rest are ignored",)


def test_dims_restricts_the_count() -> None:
    assert parse_completion(wrap("[1, 2, 3, 4, 5, 6]"), dims=2).problems == (
        "box 1 has 6 numbers (expected 4)",
        "no box in <answer>",
    )
    assert parse_completion(wrap("[1, 2, 3, 4]"), dims=3).problems == (
        "box 1 has 4 numbers (expected 6)",
        "no box in <answer>",
    )
    assert parse_completion(wrap("[1, 2, 3, 4, 5, 6]"), dims=3).strict_format
    assert parse_completion(wrap("[1, 2, 3, 4]"), dims=2).strict_format


@pytest.mark.parametrize("dims", [0, 1, 4, "2"])
def test_bad_dims_is_a_configuration_error(dims: object) -> None:
    with pytest.raises(ValueError, match="dims must be None, 2 or 3"):
        parse_completion("x", dims=dims)  # type: ignore[arg-type]


# --- dialects -----------------------------------------------------------------------------------------------------


B1 = (10.0, 20.0, 30.0, 40.0)
B2 = (50.0, 60.0, 70.0, 80.0)
JSON_A = '{"bbox_2d": [10, 20, 30, 40], "label": "a"}'
JSON_B = '{"bbox_2d": [50, 60, 70, 80], "label": "b"}'


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"bbox_2d": [10, 20, 30, 40], "label": "mass"}', [(B1, "mass")]),
        (f"[{JSON_A}, {JSON_B}]", [(B1, "a"), (B2, "b")]),
        ('```json\n{"bbox_2d": [10, 20, 30, 40], "label": "mass"}\n```', [(B1, "mass")]),
        ('{"label": "mass", "bbox_2d": [10, 20, 30, 40]}', [(B1, "mass")]),
        ('{"bbox": [10, 20, 30, 40], "name": "mass"}', [(B1, "mass")]),
        ('{"box": [10, 20, 30, 40], "phrase": "mass"}', [(B1, "mass")]),
        ('{"Position": [10, 20, 30, 40], "text": "mass"}', [(B1, "mass")]),
        ("{'bbox_2d': [10, 20, 30, 40], 'label': 'left lung'}", [(B1, "left lung")]),
        ("{'bbox_2d': [10, 20, 30, 40], 'label': 'patient\\'s lung'}", [(B1, "patient's lung")]),
        ('{"bbox_2d": [10, 20, 30, 40], "label": "the \\"apex\\" \\u00e9"}', [(B1, 'the "apex" \u00e9')]),
        ('[{"bbox_2d": [10, 20, 30, 40], "label": "a"}, {"bbox_2d": [50, 60, 70, 80]}]', [(B1, "a"), (B2, None)]),
        ('{"bbox_2d": [10, 20, 30, 40], "point_2d": [15, 25], "label": "a"}', [(B1, "a")]),
        ('{"size": [512, 512], "bbox_2d": [10, 20, 30, 40]}', [(B1, None)]),
        ("[10, 20, 30, 40]", [(B1, None)]),
        ("[[10, 20, 30, 40], [50, 60, 70, 80]]", [(B1, None), (B2, None)]),
        ("[10.0, 20.5, 30, 40]", [((10.0, 20.5, 30.0, 40.0), None)]),
        ("[1.5e1, .5, +30, 4E1]", [((15.0, 0.5, 30.0, 40.0), None)]),
        ("[-10, -20.5, 30, 40]", [((-10.0, -20.5, 30.0, 40.0), None)]),
        ("[10, 20, 30, 40,]", [(B1, None)]),
        ("[ 10 ,\n 20 ,\n 30 ,\n 40 ]", [(B1, None)]),
        (
            "<|object_ref_start|>mass<|object_ref_end|><|box_start|>(10,20),(30,40)<|box_end|>",
            [(B1, "mass")],
        ),
        ("<|box_start|>(10,20),(30,40)<|box_end|>", [(B1, None)]),
        ("(10, 20), (30, 40)", [(B1, None)]),
        ("(10,20)(30,40)", [(B1, None)]),
        ("(10, 20, 30, 40)", [(B1, None)]),
        ("<ref>mass</ref><box>(10,20),(30,40)</box>", [(B1, "mass")]),
        ("<ref>mass</ref><box>[10,20,30,40]</box>", [(B1, "mass")]),
        ("<ref>mass</ref><box>[[10,20,30,40]]</box>", [(B1, "mass")]),
        ("<ref>a</ref><box>[10,20,30,40]</box> and <ref>b</ref><box>[50,60,70,80]</box>", [(B1, "a"), (B2, "b")]),
        ("[1, 2, 3, 4, 5, 6]", [((1.0, 2.0, 3.0, 4.0, 5.0, 6.0), None)]),
        ('{"bbox_3d": [1, 2, 3, 4, 5, 6], "label": "liver"}', [((1.0, 2.0, 3.0, 4.0, 5.0, 6.0), "liver")]),
        ("(1,2,3),(4,5,6)", [((1.0, 2.0, 3.0, 4.0, 5.0, 6.0), None)]),
        ("[10, 20, 30, 40] [10, 20, 30, 40]", [(B1, None), (B1, None)]),
        ("The mass (2 cm) is at [10, 20, 30, 40] (see (1)).", [(B1, None)]),
    ],
)
def test_dialects(answer: str, expected: list[tuple[tuple[float, ...], str | None]]) -> None:
    parsed = parse_completion(wrap(answer))
    assert [(b.coords, b.label) for b in parsed.answer_boxes] == expected
    assert parsed.strict_format, parsed.problems


@pytest.mark.parametrize(
    "answer",
    [
        '```json\n[\n\t{"bbox_2d": [10, 20, 30, 40], "label": "a"},\n\t{"bbox_2d": [50, 60, 70, 80], "label": "b"}\n]',
        f"```json\n```json\n[{JSON_A}, {JSON_B}]\n```",
    ],
)
def test_broken_fences_still_yield_boxes(answer: str) -> None:
    assert answer_boxes(answer) == [(B1, "a"), (B2, "b")]


def test_truncated_json_yields_complete_boxes() -> None:
    text = f'<think>a</think><answer>```json\n[{JSON_A}, {{"bbox_2d": [50, 60, 70, 80], "lab'
    parsed = parse_completion(text)
    assert [(b.coords, b.label) for b in parsed.answer_boxes] == [(B1, "a"), (B2, None)]
    assert "missing </answer>" in parsed.problems
    assert "unclosed ```json fence" in parsed.problems


def test_trailing_commas_json_yields_boxes() -> None:
    answer = '[{"bbox_2d": [10, 20, 30, 40,], "label": "a",}, {"bbox_2d": [50, 60, 70, 80], "label": "b",},]'
    assert answer_boxes(answer) == [(B1, "a"), (B2, "b")]


def test_label_does_not_leak_to_the_next_object() -> None:
    answer = '{"bbox_2d": [10, 20, 30, 40], "label": "a"} {"bbox_2d": [50, 60, 70, 80]} <ref>c</ref>'
    assert answer_boxes(answer) == [(B1, "a"), (B2, None)]


def test_think_boxes_in_order_across_dialects() -> None:
    think = (
        "Step 1: the left lung is [0, 0, 100, 200]. "
        "Step 2: <|object_ref_start|>apex<|object_ref_end|><|box_start|>(10,20),(30,40)<|box_end|>. "
        'Step 3: {"bbox_2d": [12, 22, 28, 38], "label": "lucency"}, (2 cm) and [1, 2, 3]. '
        "Step 4: <ref>rim</ref><box>[15, 25, 5, 35]</box>"
    )
    parsed = parse_completion(wrap(QWEN25, think=think))
    assert parsed.strict_format
    assert [(b.coords, b.label) for b in think_boxes(parsed)] == [
        ((0.0, 0.0, 100.0, 200.0), None),
        (B1, "apex"),
        ((12.0, 22.0, 28.0, 38.0), "lucency"),
        ((5.0, 25.0, 15.0, 35.0), "rim"),
    ]


# --- inputs -----------------------------------------------------------------------------------------------------


STRICT = wrap(QWEN25)


@pytest.mark.parametrize(
    "completion",
    [
        STRICT,
        [{"role": "assistant", "content": STRICT}],
        [{"role": "user", "content": "Where?"}, {"role": "assistant", "content": STRICT}],
        [{"role": "assistant", "content": "old"}, {"role": "assistant", "content": STRICT}],
        {"role": "assistant", "content": STRICT},
        [{"role": "assistant", "content": [{"type": "text", "text": STRICT[:20]}, {"text": STRICT[20:]}]}],
        [{"role": "assistant", "content": [{"type": "image"}, {"type": "text", "text": STRICT}]}],
        [{"type": "text", "text": STRICT}],
        {"type": "text", "text": STRICT},
        STRICT.encode(),
        bytearray(STRICT.encode()),
    ],
)
def test_completion_forms(completion: object) -> None:
    assert completion_text(completion) == STRICT
    assert parse_completion(completion).strict_format


@pytest.mark.parametrize(
    "completion",
    [
        None,
        3,
        [],
        {},
        [{"role": "user", "content": STRICT}],
        [{"role": "assistant", "content": None}],
        [{"role": np.array(["assistant", "user"]), "content": STRICT}],
        [{"role": "assistant", "content": [{"type": np.array([1, 2]), "text": STRICT}]}],
        [{"role": "assistant", "content": [{"type": "image_url", "text": STRICT}]}],
        object(),
    ],
)
def test_completions_without_text(completion: object) -> None:
    assert completion_text(completion) == ""
    assert parse_completion(completion).problems == ("empty completion",)


def test_invalid_utf8_bytes_are_replaced() -> None:
    assert completion_text(b"<think>\xff</think>") == "<think>\ufffd</think>"


# --- format_box ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        ("qwen2.5-json", '{"bbox_2d": [10, 20, 30.5, 40], "label": "mass"}'),
        ("list", "[10, 20, 30.5, 40]"),
        ("qwen2-tokens", "<|object_ref_start|>mass<|object_ref_end|><|box_start|>(10,20),(30.5,40)<|box_end|>"),
        ("ref-box", "<ref>mass</ref><box>(10,20),(30.5,40)</box>"),
    ],
)
def test_format_box_dialects(dialect: str, expected: str) -> None:
    assert format_box([10, 20, 30.5, 40], "mass", dialect) == expected


def test_format_box_without_label_and_3d() -> None:
    assert format_box((1, 2, 3, 4, 5, 6)) == '{"bbox_3d": [1, 2, 3, 4, 5, 6]}'
    assert format_box((1, 2, 3, 4), dialect="qwen2-tokens") == "<|box_start|>(1,2),(3,4)<|box_end|>"
    assert format_box((1, 2, 3, 4), dialect="ref-box") == "<box>(1,2),(3,4)</box>"


def test_format_box_errors() -> None:
    with pytest.raises(ValueError, match="4 \\(2D\\) or 6 \\(3D\\) numbers, got 3"):
        format_box([1, 2, 3])
    with pytest.raises(ValueError, match="unknown dialect 'xml'; known: qwen2.5-json, list"):
        format_box([1, 2, 3, 4], dialect="xml")


# --- properties ------------------------------------------------------------------------------------------------------

FRAGMENTS = [
    "<think>", "</think>", "<answer>", "</answer>", "<THINK>", "```json", "```", "<|box_start|>", "<|box_end|>",
    "<|object_ref_start|>", "<|object_ref_end|>", "<ref>", "</ref>", "<box>", "</box>", '"bbox_2d": ', "'label': ",
    '"label": "', "nan", "inf", "1e5", "-", "\\", "\n",
]
ALPHABET = st.sampled_from(list("<>[]{}(),.:\"'`/|\\ \n\t0123456789-+eE") + ["é", "\x00", "\ud800"] + FRAGMENTS)
RANDOM_TEXT = st.lists(ALPHABET, max_size=200).map("".join)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | RANDOM_TEXT | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["role", "content", "type", "text"]), children, max_size=4),
    max_leaves=12,
)


def _check_invariants(parsed: object) -> None:
    assert parsed.strict_format == (not parsed.problems)
    for box in parsed.answer_boxes + think_boxes(parsed):
        assert len(box.coords) in (4, 6)
        assert all(math.isfinite(v) for v in box.coords)
        d = len(box.coords) // 2
        assert all(box.coords[a] <= box.coords[a + d] for a in range(d))
    if parsed.answer is None:
        assert parsed.answer_boxes == ()


@settings(max_examples=400, deadline=None)
@given(RANDOM_TEXT, st.sampled_from([None, 2, 3]))
def test_never_raises_on_random_text(text: str, dims: int | None) -> None:
    _check_invariants(parse_completion(text, dims=dims))


@settings(max_examples=200, deadline=None)
@given(JSONISH)
def test_never_raises_on_random_objects(completion: object) -> None:
    assert isinstance(completion_text(completion), str)
    _check_invariants(parse_completion(completion))


COORD = st.one_of(
    st.integers(-5000, 5000).map(float),
    st.floats(-9.9e5, 9.9e5, allow_nan=False, allow_infinity=False),  # |x2| stays <= MAX_COORDINATE
)
LABEL = st.text(st.sampled_from(list("abcdefghij XYZ-'")), min_size=1, max_size=20).map(str.strip).filter(bool)


@st.composite
def boxes(draw: st.DrawFn) -> tuple[tuple[float, ...], str | None]:
    d = draw(st.sampled_from([2, 3]))
    low = [draw(COORD) for _ in range(d)]
    high = [lo + draw(st.floats(0, 1e4, allow_nan=False)) for lo in low]
    return tuple(low + high), draw(st.none() | LABEL)


@settings(max_examples=300, deadline=None)
@given(st.lists(boxes(), min_size=1, max_size=5), st.sampled_from(FORMAT_DIALECTS), st.booleans())
def test_format_then_parse_round_trips(
    written: list[tuple[tuple[float, ...], str | None]], dialect: str, fenced: bool
) -> None:
    parts = [format_box(coords, label, dialect) for coords, label in written]
    if dialect == "qwen2.5-json":
        body = "[\n\t" + ",\n\t".join(parts) + "\n]"
        answer = f"```json\n{body}\n```" if fenced else body
    else:
        answer = " ".join(parts)
    parsed = parse_completion(wrap(answer, think=answer))
    expected_labels = [None if dialect == "list" else label for _, label in written]
    assert [b.coords for b in parsed.answer_boxes] == [coords for coords, _ in written]
    assert list(parsed.labels) == expected_labels
    assert think_boxes(parsed) == parsed.answer_boxes
    assert parsed.strict_format, parsed.problems


# --- review: several boxes written as one group share its label; keyed groups that are not boxes are reported -----


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("<ref>nodule</ref><box>[[10,20,30,40], [50,60,70,80]]</box>", [(B1, "nodule"), (B2, "nodule")]),
        ('{"label": "mass", "boxes": [[10, 20, 30, 40], [50, 60, 70, 80]]}', [(B1, "mass"), (B2, "mass")]),
        ('{"bbox_2d": [[10, 20, 30, 40], [50, 60, 70, 80]], "label": "mass"}', [(B1, "mass"), (B2, "mass")]),
        ("[[10, 20, 30, 40], [50, 60, 70, 80]]", [(B1, None), (B2, None)]),
        # a box in a separate tag or object is its own group: no label is carried over
        ("<ref>a</ref><box>[10,20,30,40]</box> <box>[50,60,70,80]</box>", [(B1, "a"), (B2, None)]),
        ('[{"bbox_2d": [10, 20, 30, 40], "label": "a"}, [50, 60, 70, 80]]', [(B1, "a"), (B2, None)]),
    ],
)
def test_boxes_of_one_group_share_its_label(answer: str, expected: list[tuple[tuple[float, ...], str | None]]) -> None:
    parsed = parse_completion(wrap(answer))
    assert [(b.coords, b.label) for b in parsed.answer_boxes] == expected
    assert parsed.strict_format, parsed.problems


def test_box_shaped_group_under_another_key_is_a_problem() -> None:
    parsed = parse_completion(wrap('{"crop_region": [10, 20, 30, 40], "label": "mass"}'))
    assert parsed.answer_boxes == ()
    assert parsed.problems == (
        "a group of 4 numbers under key 'crop_region' is not read as a box"
        " (box keys: bbox, box, bounding_box, coordinates, coords, position, rect[angle], with prefix_ / _2d / _3d)",
        NO_BOX,
    )
    repeated = parse_completion(wrap('[{"crop": [1, 2, 3, 4]}, {"crop": [5, 6, 7, 8]}, [1, 2, 3, 4]]'))
    assert repeated.problems[0].startswith("2 groups of 4 numbers under key 'crop' are not read as boxes (box keys: ")
    # other keyed groups (a size, a point) are not box-shaped: no problem
    assert parse_completion(wrap('{"bbox_2d": [1, 2, 3, 4], "size": [512, 512], "point_2d": [2, 3]}')).strict_format
    # in <think>, free reasoning, nothing is reported
    assert parse_completion(wrap("[1, 2, 3, 4]", think='"crop": [1, 2, 3, 4]')).strict_format


# --- untagged answers (answer_tag="optional", zero-shot baselines) ------------------------------------------------

PLAIN_JSON = '[{"bbox_2d": [135, 114, 200, 263], "label": "left apical pneumothorax"}]'
PNEUMOTHORAX = (ParsedBox((135.0, 114.0, 200.0, 263.0), "left apical pneumothorax"),)


@pytest.mark.parametrize("text", [PLAIN_JSON, QWEN25, f"Sure! Here it is:\n{QWEN25}\n"])
def test_untagged_qwen25_json_is_read_when_the_tag_is_optional(text: str) -> None:
    parsed = parse_completion(text, answer_tag="optional")
    assert parsed.answer_boxes == PNEUMOTHORAX
    assert parsed.answer == text
    assert parsed.think is None
    assert parsed.problems == ("missing <think>", "missing <answer>")
    assert not parsed.strict_format


def test_untagged_internvl_ref_box_is_read_when_the_tag_is_optional() -> None:
    text = "<ref>nodule</ref><box>[[100, 200, 300, 400], [500, 510, 600, 620]]</box>"
    parsed = parse_completion(text, answer_tag="optional")
    assert parsed.answer_boxes == (
        ParsedBox((100.0, 200.0, 300.0, 400.0), "nodule"),
        ParsedBox((500.0, 510.0, 600.0, 620.0), "nodule"),
    )
    assert parsed.problems == ("missing <think>", "missing <answer>")


def test_untagged_answer_after_think_leaves_the_reasoning_boxes_out() -> None:
    text = f"<think>The apex [1, 2, 3, 4] then lower.</think>\n{PLAIN_JSON}"
    parsed = parse_completion(text, answer_tag="optional")
    assert parsed.answer == f"\n{PLAIN_JSON}"
    assert parsed.answer_boxes == PNEUMOTHORAX
    assert think_boxes(parsed) == (ParsedBox((1.0, 2.0, 3.0, 4.0)),)
    assert parsed.problems == ("missing <answer>",)
    assert not parsed.strict_format


def test_untagged_answer_problems() -> None:
    assert parse_completion("<think>a</think> I cannot tell.", answer_tag="optional").problems == (
        "missing <answer>", "no box in the untagged answer",
    )
    unclosed = parse_completion("<think>The apex [1, 2, 3, 4]", answer_tag="optional")
    assert (unclosed.answer, unclosed.answer_boxes) == (None, ())  # an unclosed <think> is all reasoning
    assert "missing <answer>" in unclosed.problems
    swapped = parse_completion("[30, 40, 10, 20]", answer_tag="optional")
    assert swapped.answer_boxes == (ParsedBox((10.0, 20.0, 30.0, 40.0)),)
    assert "box 1: x2 < x1, y2 < y1, corners swapped" in swapped.problems


@pytest.mark.parametrize(
    "text",
    [PLAIN_JSON, QWEN25, "<ref>nodule</ref><box>[[100, 200, 300, 400]]</box>", f"<think>a</think>{PLAIN_JSON}"],
)
def test_default_still_requires_the_answer_tag(text: str) -> None:
    parsed = parse_completion(text)
    assert parsed == parse_completion(text, answer_tag="required")
    assert (parsed.answer, parsed.answer_boxes) == (None, ())
    assert "missing <answer>" in parsed.problems


@settings(max_examples=300, deadline=None)
@given(RANDOM_TEXT, st.sampled_from([None, 2, 3]))
def test_optional_tag_changes_nothing_when_answer_is_tagged_and_never_the_format(text: str, dims: int | None) -> None:
    required = parse_completion(text, dims=dims)
    optional = parse_completion(text, dims=dims, answer_tag="optional")
    _check_invariants(optional)
    assert optional.strict_format == required.strict_format
    if "<answer>" in text.lower():
        assert optional == required
    else:
        assert set(required.problems) <= set(optional.problems)


def test_answer_tag_is_checked() -> None:
    assert ANSWER_TAGS == ("required", "optional")
    for call in (parse_completion, parse_many, parse_batch):
        with pytest.raises(ValueError, match="answer_tag must be one of required, optional, got 'maybe'"):
            call(["x"] if call is not parse_completion else "x", answer_tag="maybe")


def test_parse_batch_reads_by_answer_tag() -> None:
    texts = [PLAIN_JSON, wrap(QWEN25)]
    required = parse_batch(texts)
    optional = parse_batch(texts, answer_tag="optional")
    assert required.counts.tolist() == [0, 1] and optional.counts.tolist() == [1, 1]
    assert optional.canonical.tolist() == [False, True]
    assert [p.answer_boxes for p in parse_many(texts, answer_tag="optional")] == [PNEUMOTHORAX, PNEUMOTHORAX]
    assert parse_many(texts)[0].answer_boxes == ()
