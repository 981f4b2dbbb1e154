"""The reward hot path: the canonical fast path equals the parser, and the columnar batch equals per-text parsing."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from medground_eval import boxes as geometry
from medground_eval.fastparse import canonical_boxes, fast_parse
from medground_eval.parsing import parse_completion, think_boxes
from medground_eval.regions import parse_batch, parse_many, predicted_regions
from medground_eval.rewards import FormatReward, SpatialReward, format_reward, predicted_label, spatial_reward
from medground_eval.rewards.combined import _predicted_labels
from medground_eval.structures import ParsedBox, ParsedCompletion

FIELDS = ("text", "think", "answer", "answer_boxes", "strict_format", "problems", "dims")
CANONICAL = (
    "<think>The left apex [100, 50, 300, 250] shows a pleural line.</think>\n"
    '<answer>```json\n[\n\t{"bbox_2d": [100, 50, 300, 250], "label": "left apical pneumothorax"}\n]\n```</answer>'
)

SPACES = st.sampled_from(["", " ", "\n", "\t", "  \n ", "\r\n", "\u00a0", "\u2003", "\x1c", "\u2028", "\f"])
JSON_SPACES = st.sampled_from(["", " ", "\n", "\t", "\r", "  "])
NUMBER = st.one_of(st.integers(0, 5000).map(str), st.floats(0, 5000, allow_nan=False).map(lambda v: f"{v:.3f}"))

# The canonical completion as a sequence of slots, each with a strategy for its usual (canonical) values and a list
# of odd values: a typo, another dialect, a character the parser treats specially, a case or whitespace variant.
SLOTS: dict[str, tuple[st.SearchStrategy[str], list[str]]] = {
    "lead": (st.sampled_from(["", "", " ", "\n", "\u00a0 "]), ["x", "<answer>", "a\n", "\ufeff"]),
    "think_open": (st.just("<think>"), ["<THINK>", "<Think>", "", "<think><think>", "<think >"]),
    "think": (
        st.text(alphabet=st.sampled_from(list("ab xyz.,;:[]()0123456789-\n\t\u00a0\"'{}`")), min_size=1, max_size=40),
        ["", " ", "\n\n", "\u00a0", "a < b", "x <think> y", "see </answer> here", "[5, 6, 7]", "```json", "{", "]",
         "ref <ref>lung</ref><box>(1,2),(3,4)</box>", "The opacity [12, 30, 80, 90] (1, 2), (3, 4)."],
    ),
    "think_close": (st.just("</think>"), ["</THINK>", "", "</think></think>", "</ think>"]),
    "between": (SPACES, ["x", "<think>", "</think>", "<answer>[1, 2, 3, 4]</answer>", "\ufeff"]),
    "answer_open": (st.just("<answer>"), ["<ANSWER>", "<Answer>", "", "<answer><answer>"]),
    "pre": (SPACES, ["x", "[", "{", "`"]),
    "fence_open": (st.sampled_from(["```json\n", "```json", "```\n", "```json\n\n"]),
                   ["```JSON\n", "```js\n", "``json\n", "```py thon\n", "```json```json\n", "~~~\n"]),
    "list_open": (st.sampled_from(["[", "[\n\t", "[ "]), ["[[", "[ [", "("]),
    "obj_open": (st.sampled_from(["{", "{ ", "{\n"]), ["", "{{", "["]),
    "key": (st.just('"bbox_2d"'),
            ['"bbox"', "'bbox_2d'", '"BBOX_2D"', '"point_2d"', "bbox_2d", '"size"', '"bbox_3d"', '"box_2d"',
             '"label": "x", "bbox_2d"']),
    "colon": (st.sampled_from([": ", ":", " : ", ":\n"]), [":" + " " * 20, " " * 60 + ":", "\u00a0:", "", "::"]),
    "box_open": (JSON_SPACES.map(lambda ws: "[" + ws), ["", "[[", "(", "{", "[\u00a0"]),
    "sep": (st.sampled_from([",", ", ", " , ", ",\n", ",\t"]), [", \u00a0", ";", " ", ",,", "", ", ,"]),
    "box_close": (JSON_SPACES.map(lambda ws: ws + "]"), ["", "]]", ")", ",]"]),
    "comma": (st.sampled_from([", ", ",", " ,\n"]), ["", ",,", " ; ", ', "extra": 1, ']),
    "label_key": (st.just('"label"'), ['"name"', '"Label"', '"labels"', "label", '"text"', '"phrase"']),
    "label_colon": (st.sampled_from([": ", ":", " : "]), [":" + " " * 70, "", "::"]),
    "label": (
        st.text(alphabet=st.sampled_from(list("ab c-'/:;,.é\t\r\x00 ")), max_size=12).map(lambda v: f'"{v}"'),
        ['""', '"  "', '"nodule [2]"', '"a (1, 2) b"', '"(3)"', r'"x\ny"', r'"say \"hi\""', '"<b>"', '"a`b"',
         '"{x}"', '"line\nbreak"', '" padded "', '"</answer>"', '"<answer>"', '"</think>"', '"<think>"', '"```"',
         '"\u00a0nbsp\u00a0"', '"label"', '"name: x"', "'single'", '"unterminated', '"a" "b"', '"\x00"'],
    ),
    "obj_close": (st.sampled_from(["}", " }", "\n}"]), ["", "}}", "]", '}, {"bbox_2d": [1, 2, 3, 4]}']),
    "list_close": (st.sampled_from(["]", "\n]", " ]"]), ["", "]]", "}", "],"]),
    "fence_close": (st.sampled_from(["```", "\n```"]), ["", "``` ```", "``", "```json"]),
    "post": (SPACES, ["x", "[1, 2, 3, 4]", "```", "{}", ","]),
    "answer_close": (st.just("</answer>"), ["</ANSWER>", "", "</answer></answer>", "</answer >"]),
    "trailing": (SPACES, ["x", "</answer>", "<answer>", "<think>", "[1, 2, 3, 4]", "\ufeff"]),
}
ODD_NUMBERS = ["05", "-3", "1e3", "nan", "inf", "12.", ".5", "+4", "1" * 16, "1" * 20, "7.000", "", "1 2", "0x1",
               "\u0661", "3,"]
WRAPS = {"plain": (), "list": ("list_open", "list_close"), "fence": ("fence_open", "fence_close"),
         "both": ("fence_open", "list_open", "list_close", "fence_close")}
ORDER = ["lead", "think_open", "think", "think_close", "between", "answer_open", "pre", "fence_open", "list_open",
         "obj_open", "key", "colon", "box", "comma", "label_key", "label_colon", "label", "obj_close", "list_close",
         "fence_close", "post", "answer_close", "trailing"]


def assemble(values: dict[str, str], numbers: list[str], wrap: str) -> str:
    """The completion of the slot values in ORDER; ``box`` is made of the numbers, and the wrap picks the optional
    list and fence slots."""
    box = values["box_open"] + values["sep"].join(numbers) + values["box_close"]
    left_out = {"fence_open", "list_open", "list_close", "fence_close"} - set(WRAPS[wrap])
    return "".join(box if name == "box" else values[name] for name in ORDER if name not in left_out)


@st.composite
def completions(draw: st.DrawFn) -> str:
    """Completions in and around the canonical shape: usual slot values with none, one or a few odd ones."""
    values = {name: draw(usual) for name, (usual, _) in SLOTS.items()}
    coords = [draw(NUMBER) for _ in range(4)]
    coords[0::2] = sorted(coords[0::2], key=float)
    coords[1::2] = sorted(coords[1::2], key=float)
    wrap = draw(st.sampled_from(list(WRAPS)))
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        name = draw(st.sampled_from([*SLOTS, "number", "swap", "count"]))
        if name == "number":
            coords[draw(st.integers(0, 3))] = draw(st.sampled_from(ODD_NUMBERS))
        elif name == "swap":
            coords = [coords[2], coords[1], coords[0], coords[3]]
        elif name == "count":
            coords = coords[: draw(st.sampled_from([3, 5]))] + (["9"] if len(coords) == 4 else [])
        else:
            values[name] = draw(st.sampled_from(SLOTS[name][1]))
    return assemble(values, coords, wrap)


BASE = {
    "lead": "", "think_open": "<think>", "think": "The apex [1, 2, 3, 4].", "think_close": "</think>",
    "between": "\n", "answer_open": "<answer>", "pre": "", "fence_open": "```json\n", "list_open": "[",
    "obj_open": "{", "key": '"bbox_2d"', "colon": ": ", "box_open": "[", "sep": ", ", "box_close": "]",
    "comma": ", ", "label_key": '"label"', "label_colon": ": ", "label": '"left lung"', "obj_close": "}",
    "list_close": "]", "fence_close": "\n```", "post": "", "answer_close": "</answer>", "trailing": "",
}
BASE_NUMBERS = ["10", "20", "30.5", "40"]


def single_changes() -> list[str]:
    """The canonical completion with exactly one slot (or one number) changed, for every odd value and wrap."""
    texts = []
    for wrap in WRAPS:
        texts.append(assemble(BASE, BASE_NUMBERS, wrap))
        for name, (_, odd) in SLOTS.items():
            texts.extend(assemble({**BASE, name: value}, BASE_NUMBERS, wrap) for value in odd)
        for i in range(4):
            texts.extend(assemble(BASE, BASE_NUMBERS[:i] + [v] + BASE_NUMBERS[i + 1 :], wrap) for v in ODD_NUMBERS)
    return texts


@st.composite
def canonical_completions(draw: st.DrawFn) -> str:
    """Completions of the canonical shape only (the fast path must take every one)."""
    x1, y1 = draw(st.integers(0, 2000)), draw(st.integers(0, 2000))
    x2, y2 = x1 + draw(st.integers(0, 500)), y1 + draw(st.integers(0, 500))
    think = draw(st.text(alphabet=st.sampled_from(list("ab .,[]()0123456789\n")), max_size=60).filter(str.strip))
    label = draw(st.text(alphabet=st.sampled_from(list("abc -é")), max_size=20))
    body = f'{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}], "label": "{label}"}}'
    body = draw(st.sampled_from([body, f"[{body}]", f"```json\n[{body}]\n```", f"```\n{body}\n```"]))
    return f"{draw(SPACES)}<think>{think}</think>{draw(SPACES)}<answer>{draw(SPACES)}{body}{draw(SPACES)}</answer>"


def assert_same(fast: ParsedCompletion, full: ParsedCompletion) -> None:
    for name in FIELDS:
        assert getattr(fast, name) == getattr(full, name), name
    assert think_boxes(fast) == think_boxes(full)


@pytest.mark.parametrize("dims", [2, None])
def test_fast_path_equals_parser_on_every_single_change_of_the_canonical_completion(dims: int | None) -> None:
    texts = single_changes()
    taken = 0
    for text in texts:
        fast = fast_parse(text, dims)
        if fast is not None:
            assert_same(fast, parse_completion(text, dims=dims))
            taken += 1
    assert fast_parse(assemble(BASE, BASE_NUMBERS, "both"), dims) is not None
    assert 0 < taken < len(texts)


@settings(max_examples=1500, deadline=None)
@given(completions())
def test_fast_path_equals_parser_field_by_field(text: str) -> None:
    for dims in (2, None):
        fast = fast_parse(text, dims)
        if fast is not None:
            assert_same(fast, parse_completion(text, dims=dims))


@settings(max_examples=300, deadline=None)
@given(canonical_completions())
@example(CANONICAL)
def test_fast_path_takes_every_canonical_completion(text: str) -> None:
    fast = fast_parse(text)
    assert fast is not None
    assert_same(fast, parse_completion(text, dims=2))


def test_fast_path_declines_what_it_cannot_prove() -> None:
    box = '{"bbox_2d": [1, 2, 3, 4], "label": "x"}'
    declined = [
        f"<think>a</think><answer>{box}</answer> more",  # text after </answer>
        f"<think> </think><answer>{box}</answer>",  # blank think
        f"<think>a < b</think><answer>{box}</answer>",  # '<' in think
        f"<THINK>a</THINK><answer>{box}</answer>",  # upper-case tags
        f"<think>a</think><answer>{box.replace('1, 2, 3', '3, 2, 1')}</answer>",  # swapped corners
        f"<think>a</think><answer>{box.replace('1,', '01,')}</answer>",  # not a JSON number
        f"<think>a</think><answer>[{box}, {box}]</answer>",  # two boxes
        f"<think>a</think><answer>{box}``` ```</answer>",  # two closing fences
    ]
    assert [fast_parse(text) for text in declined] == [None] * len(declined)
    assert fast_parse(CANONICAL, dims=3) is None


@pytest.mark.parametrize(("tail", "problems"), [
    ("```</answer>", ()),
    ("```json</answer>", ("``` fence opened twice", "unclosed ```json fence")),
    ("```", ("missing </answer>",)),
    ("```\n", ("missing </answer>",)),
    ("```json\n", ("missing </answer>", "``` fence opened twice", "unclosed ```json fence")),
    ("</answer>", ("unclosed ```json fence",)),
    ("", ("missing </answer>", "unclosed ```json fence")),
])
def test_fast_path_takes_the_near_canonical_forms_with_the_parsers_problems(tail: str, problems: tuple) -> None:
    """The forms real Qwen2.5-VL completions take besides the canonical one: a fence closed by ```json (5% of the
    MS-CXR test completions), no </answer> (2%)."""
    text = ('<think>The opacity is in the left lower lobe.</think>\n<answer>```json\n'
            '[{"bbox_2d": [10, 20, 30, 40], "label": "left lower lobe opacity"}]\n' + tail)
    fast = fast_parse(text)
    assert fast is not None and fast.problems == problems and fast.strict_format == (not problems)
    assert_same(fast, parse_completion(text, dims=2))
    for opening, closing in (("", "```"), ("", "```json"), ("```", "```json"), ("```", "")):
        variant = text.replace("```json\n[", opening + "\n[").replace("]\n" + tail, "]\n" + closing + "</answer>")
        assert_same(fast_parse(variant), parse_completion(variant, dims=2))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(completions(), canonical_completions()), max_size=12))
def test_canonical_boxes_lists_what_fast_parse_reads(texts: list[str]) -> None:
    fast = canonical_boxes(texts)
    expected = [(i, fast_parse(t)) for i, t in enumerate(texts) if fast_parse(t) is not None]
    assert fast.index.tolist() == [i for i, _ in expected]
    assert fast.boxes.shape == (len(expected), 4)
    assert fast.boxes.tolist() == [list(p.answer_boxes[0].coords) for _, p in expected]
    assert fast.labels == [p.answer_boxes[0].label for _, p in expected]
    assert fast.problems == [p.problems for _, p in expected]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(completions(), canonical_completions(), st.sampled_from(["", "[1, 2, 3, 4]"])), max_size=12),
       st.sampled_from([2, None]))
def test_parse_batch_columns_equal_per_text_parsing(texts: list[str], dims: int | None) -> None:
    batch = parse_batch(texts, dims)
    full = [parse_completion(t, dims=dims) for t in texts]
    assert batch.parsed == full
    assert batch.strict_format.tolist() == [p.strict_format for p in full]
    assert batch.counts.tolist() == [len(p.boxes(2)) for p in full]
    expected_flat = np.concatenate([p.boxes(2) for p in full]) if texts else np.zeros((0, 4))
    np.testing.assert_array_equal(batch.flat, expected_flat.reshape(-1, 4))
    assert batch.has_think_box.tolist() == [bool(think_boxes(p)) for p in full]


def test_parse_batch_keeps_no_state_between_calls() -> None:
    """No cache: a caller that edits its list (or a returned batch's texts) gets the parse of what it passes."""
    texts = [CANONICAL, "<answer>[1, 2, 3, 4]</answer>", CANONICAL.replace("100, 50", "101, 51")]
    batch = parse_batch(texts)
    assert parse_batch(list(texts)) is not batch
    texts[0] = "<think>a</think><answer>[9, 9, 10, 10]</answer>"  # the caller reuses its list
    assert parse_batch(texts).flat.tolist()[0] == [9.0, 9.0, 10.0, 10.0]
    batch.texts[1] = "junk"
    assert parse_batch(texts[:1] + ["<answer>[1, 2, 3, 4]</answer>"]).counts.tolist() == [1, 1]
    assert parse_many(texts) == [parse_completion(t, dims=2) for t in texts]
    import medground_eval.regions as regions

    assert not [name for name, value in vars(regions).items() if hasattr(value, "cache_info") or
                type(value).__name__ == "deque"]


def test_parse_batch_3d_and_chat_messages_go_through_the_parser() -> None:
    volume = "<think>a</think><answer>[1, 2, 3, 4, 5, 6]</answer>"
    batch = parse_batch([volume, CANONICAL], dims=3)
    assert batch.counts.tolist() == [1, 0]
    assert batch.flat.tolist() == [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]
    chat = [[{"role": "user", "content": "q"}, {"role": "assistant", "content": CANONICAL}]]
    assert parse_batch(chat).parsed == [parse_completion(CANONICAL, dims=2)]


def test_parsed_completion_is_plain_frozen_data_and_think_boxes_a_function() -> None:
    import dataclasses

    eager = parse_completion(CANONICAL, dims=2)
    fast = fast_parse(CANONICAL)
    assert fast == eager and hash(fast) == hash(eager) and repr(fast) == repr(eager)
    assert [f.name for f in dataclasses.fields(ParsedCompletion)] == list(FIELDS)
    assert think_boxes(fast) == (ParsedBox((100.0, 50.0, 300.0, 250.0)),)
    assert pickle.loads(pickle.dumps(fast)) == eager
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.think = "x"  # type: ignore[misc]
    assert not hasattr(fast, "__dict__")  # slots: nothing hidden can be stored on it
    built = ParsedCompletion("t", None, None, (), False, ("missing <think>",))
    assert think_boxes(built) == () and built != eager


def test_format_reward_columns_match_the_parser() -> None:
    texts = [CANONICAL, CANONICAL.replace("[100, 50, 300, 250] ", ""), "<think>a</think><answer>[1, 2, 3, 4]",
             "<think>x</think><answer>[1, 2, 3, 4]</answer>"]
    assert format_reward(texts) == [1.0, 1.0, 0.0, 1.0]
    assert FormatReward(require_think_box=True)(texts) == [1.0, 0.0, 0.0, 0.0]


def test_spatial_reward_mixed_batch_equals_per_row_region_iou() -> None:
    one = '<think>a</think><answer>{"bbox_2d": [%s], "label": "x"}</answer>'
    texts = [one % "0, 0, 10, 10", "<answer>[0, 0, 10, 10] [10, 0, 20, 10]</answer>", "junk", one % "5, 5, 15, 15",
             one % "0, 0, 4, 4"]
    solution = [[0, 0, 10, 20], [0, 0, 20, 10], [0, 0, 5, 5], [[0, 0, 10, 10], [10, 10, 20, 20]], [0, 0, 4, 4]]
    expected = []
    for text, truth in zip(texts, solution):
        pred = parse_completion(text, dims=2).boxes(2)
        expected.append(geometry.region_iou(pred, np.atleast_2d(truth)) if len(pred) else 0.0)
    assert spatial_reward(texts, solution=solution) == pytest.approx(expected)
    regions = SpatialReward().evaluate(texts, solution=solution).regions
    assert [len(b) for b in regions.boxes] == [1, 2, 0, 1, 1]
    direct = predicted_regions(parse_many(texts), frames="pixel", image_sizes=None)
    np.testing.assert_array_equal(direct.flat, regions.flat)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(completions(), canonical_completions()), max_size=12))
@example([CANONICAL, CANONICAL.replace("left apical pneumothorax", " "), "<answer><ref>lung</ref>[1, 2, 3, 4]</answer>",
          "<think>a</think><answer>" + '{"bbox_2d": [1, 2, 3, 4], "label": "' + "x" * 1500 + '"}</answer>'])
def test_combined_reward_reads_the_labels_predicted_label_reads(texts: list[str]) -> None:
    batch = parse_batch(texts)
    assert _predicted_labels(batch) == [predicted_label(p) for p in batch.parsed]


def test_parse_batch_never_raises_on_array_completions() -> None:
    """A batch of the same length as a remembered one is compared with it; array items must not break that."""
    parse_batch(["a", "b"])
    batch = parse_batch([np.array([1, 2]), "b"])
    assert batch.counts.tolist() == [0, 0]
    assert batch.parsed[0].problems == ("empty completion",)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=20),
    st.builds(lambda role, content: [{"role": role, "content": content}],
              st.sampled_from(["assistant", "user", "Assistant"]),
              st.one_of(st.text(max_size=20), st.none(), st.just([{"type": "text", "text": "a"}]))),
    st.builds(lambda a, b: [{"role": "user", "content": a}, {"role": "assistant", "content": b}],
              st.text(max_size=5), st.text(max_size=5)),
    st.just({"content": "x"}), st.just([{"role": np.array([1, 2]), "content": "y"}]),
), max_size=6))
def test_chat_texts_fast_path_equals_completion_text(completions: list) -> None:
    """TRL's one-assistant-message completions are read without the general walk, to the same text."""
    from medground_eval.parsing import completion_text
    from medground_eval.regions import completion_texts

    assert completion_texts(completions) == [completion_text(c) for c in completions]
