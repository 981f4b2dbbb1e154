"""The Chain-of-Box parser: read ``<think>`` / ``<answer>`` and the boxes a model wrote.

A MedGround-R1 completion looks like::

    <think>The opacity starts at [120, 110, 190, 150] and extends down ...</think>
    <answer>```json
    [{"bbox_2d": [135, 114, 200, 263], "label": "left apical pneumothorax"}]
    ```</answer>

:func:`parse_completion` returns a :class:`~medground_eval.structures.ParsedCompletion`: the think and answer text,
the answer boxes with their labels, the boxes written inside ``<think>`` (the Chain-of-Box steps, in order),
``strict_format`` and a human-readable reason for every problem.

Decisions
---------
- **Never raises** on a completion, whatever it holds; a wrong ``dims`` argument (configuration) raises ValueError.
- **Linear time.** Tags are found with ``re.search`` on literal patterns; bracketed number groups with one regular
  expression made of possessive runs over character classes, so nothing backtracks; labels are looked up in the
  text between neighbouring boxes only. A JSON block is never handed to ``json.loads`` or ``ast.literal_eval``:
  one scanner reads valid JSON, Python-style dicts, trailing commas and truncated output alike (a 1 MB worst case
  parses in milliseconds, see ``benchmarks/bench_parser.py``).
- **Tags** ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` are matched case-insensitively; a tag not written in
  lower case is used but recorded as a problem (so it is never ``strict_format``).
- **Lenient reading.** ``</think>`` missing: think runs to ``<answer>`` (or the end). ``<think>`` missing but
  ``</think>`` present: think is the text before ``</think>``. ``</answer>`` missing: the answer runs to the end and
  its boxes are kept. No ``<answer>`` at all: ``answer`` is None and there are no answer boxes. Each is a problem.
- **Untagged answers** (``answer_tag="optional"``, for zero-shot baselines that answer plain JSON or
  ``<ref>..</ref><box>..</box>``): when there is no ``<answer>`` tag, the answer is the text after ``</think>``, or
  the whole text when the completion has neither ``<think>`` nor ``</think>``; ``answer`` is that text and its boxes
  are read by the same rules. An unclosed ``<think>`` runs to the end, so it leaves no answer (None, no boxes).
  "missing <answer>" is still a problem, so such a completion is never ``strict_format``. With an ``<answer>`` tag
  both settings read the same. The default, ``"required"``, is what rewards use: a GRPO reward never credits an
  untagged answer.
- **Swapped corners** (x1 > x2, y1 > y2 or z1 > z2) are normalised (corners swapped) and recorded as a problem:
  the box is used, but the completion is not ``strict_format``.
- **Box candidates** (dialects, each with its source in ``tests/test_dialects.py`` and ``docs/parsing.md``):
  innermost bracketed number groups: ``[...]`` with at least one number (``;`` separates several boxes of one
  group, CogVLM / Shikra ``[[x1,y1,x2,y2;...]]``; ``_`` separates the numbers when there is no comma, VideoLLaMA3
  ``[[x1_y1_x2_y2]]``; zero-padded numbers like ``086`` are read as written), ``(...)`` with at least two, the pair
  ``(x1,y1),(x2,y2)`` and the pair ``[[x1,y1],[x2,y2]]`` (or 3-number points for 3D) read as one box; MiniCPM-V
  ``<box>x1 y1 x2 y2</box>``; Florence-2 ``<loc_N>`` and PaliGemma ``<locNNNN>`` runs, every four tokens one box.
  A group that is the value of a key other than a box key (``"size": [512, 512]``, ``"point_2d": [...]``) is not a
  candidate; box keys are recognised by pattern (:data:`BOX_KEY`: ``bbox_2d``, ``box_2d``, ``bounding_box_2d``,
  ``coordinates``...). In the answer a candidate with the wrong count of numbers, an invalid, a non-finite or an
  out-of-range number (magnitude above :data:`~medground_eval.structures.MAX_COORDINATE`, ``1e6``: ``1e300`` is
  garbage, and its square overflows) is a problem, not a box, and so is a group with a box's count of numbers under
  another key (``"crop": [...]``).
  ``<think>`` is free reasoning: there such candidates are skipped without a problem, and swapped corners are
  normalised silently. Prose coordinates (``(x1=630, y1=440) with a width of 200``) are never read.
- **Axis order** is recorded, never changed: PaliGemma's ``<locYYYY><locXXXX>...`` and Gemini's ``box_2d`` boxes
  get ``axes="yx"`` (their numbers stay in the written order); every other dialect is ``"xy"``.
- **Labels** come from a ``label`` / ``name`` / ``phrase`` / ``text`` key of the enclosing ``{...}`` object, else from
  a ``<|object_ref_start|>...<|object_ref_end|>`` or ``<ref>...</ref>`` written since the previous box. Boxes
  separated by only whitespace, commas and square brackets form one group, labelled as one box: InternVL's
  ``<ref>nodule</ref><box>[[...], [...]]</box>`` and ``{"bbox_2d": [[...], [...]], "label": "nodule"}`` give both
  boxes the label.
- Duplicate identical boxes are kept. At most :data:`MAX_BOXES` bracketed groups are read per section; more is a
  problem. Unclosed or doubly opened code fences and unbalanced ``[]`` / ``{}`` in the answer are problems.
- Known limit: the scanner does not track quotes, so a bracketed number inside a label string
  (``"label": "nodule [2]"``) is read as a candidate too.
- ``strict_format``: non-empty ``<think>...</think>``, then ``<answer>...</answer>`` with at least one valid box,
  nothing but whitespace before ``<think>``, between ``</think>`` and ``<answer>`` and after ``</answer>``, and
  no problem at all. Every violated condition records a problem, so it equals ``not problems``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from medground_eval.structures import MAX_COORDINATE, ParsedBox, ParsedCompletion

__all__ = [
    "ANSWER_TAGS", "FORMAT_DIALECTS", "MAX_BOXES", "completion_text", "format_box", "parse_completion",
    "read_think_boxes", "think_boxes",
]

MAX_BOXES = 1000
"""Bracketed number groups read per section (think or answer); later ones are ignored, with a problem."""

FORMAT_DIALECTS = ("qwen2.5-json", "list", "qwen2-tokens", "ref-box")

ANSWER_TAGS = ("required", "optional")
"""Values of ``answer_tag``: whether answer boxes are read only inside ``<answer>`` or also from untagged text."""

BOX_KEY = re.compile(
    r"(?:\w*_)?(?:bbox|box|bounding_?box|rect(?:angle)?|coordinates|coords|position)(?:es|s)?(?:_?[23]d)?",
    re.IGNORECASE,
)
"""JSON keys whose value is a box, by pattern (``fullmatch``, any letter case): ``bbox_2d`` (Qwen2.5-VL),
``box_2d`` (Gemini), ``bounding_box_2d`` (seen in a Qwen2.5-VL answer of the MedGround-R1 logs), ``bounding_box``,
``bbox``, ``box``, ``coordinates``, ``position``, ``rect``, with an optional ``prefix_``, plural and ``_2d``/``_3d``
suffix (``pred_bbox``, ``boxes``, ``bbox3d``). ``point_2d``, ``size``, ``crop`` are not box keys."""

BOX_KEYS_TEXT = "bbox, box, bounding_box, coordinates, coords, position, rect[angle], with prefix_ / _2d / _3d"
"""How problems name the box keys."""

Y_FIRST_KEYS = frozenset({"box_2d"})
"""Box keys whose dialect writes y first: Gemini's ``box_2d`` is ``[ymin, xmin, ymax, xmax]`` (0-1000). Its boxes
get ``axes="yx"``; the parser never swaps (the ``gemini`` frame does)."""

_AXES = "xyz"

# One number: int, float, exponent, sign, or nan / inf (which become a "non-finite" problem).
_NUMBER = re.compile(
    r"[-+]?+(?>[0-9]++(?:\.[0-9]*+)?+|\.[0-9]++)(?:[eE][-+]?+[0-9]++)?+|[-+]?+(?i:nan|inf(?:inity)?+)"
)
# An innermost bracketed group that starts like a number and holds only number characters, commas and spaces.
# Each quantifier is a possessive run over a character class: a failed start costs the length of that run, and
# runs of two starts never overlap (a run stops at any bracket), so a scan is linear in the text.
# Square groups also allow ';' (CogVLM / Shikra: several boxes in one [[...;...]]) and '_' (VideoLLaMA3:
# [[x1_y1_x2_y2]]). The token dialects are runs of one token shape; none of the runs can overlap another start.
_NUMBER_CHARS = r"[-+.0-9eEnNaAiIfFtTyY,\s]*+"
_SQUARE_CHARS = r"[-+.0-9eEnNaAiIfFtTyY,;_\s]*+"
_GROUP = re.compile(
    rf"\[\s*+(?P<sq>[-+.0-9nNiI]{_SQUARE_CHARS})\]"
    rf"|\(\s*+(?P<pa>[-+.0-9nNiI]{_NUMBER_CHARS})\)"
    r"|<box>\s*+(?P<sp>[-+.0-9][-+.0-9eE,\s]*+)</box>"
    r"|(?P<fl>(?:<loc_[0-9]++>)++)"
    r"|(?P<pg>(?:<loc[0-9]{4}+>)++)"
)
_DIGITS = re.compile(r"[0-9]++")
_SPACE_OR_COMMA = re.compile(r"[\s,]++")
_POINT_OPEN = re.compile(r"\[\s{0,16}+\Z")
_POINT_CLOSE = re.compile(r"\s{0,16}+\]")
_POINT_GAP = re.compile(r"\s*+,\s*+")
_KEY_BEFORE = re.compile(r"""["']?+([A-Za-z_][A-Za-z0-9_]*+)["']?+\s*+:\s*+\Z""")
_LABEL = re.compile(
    r"""(?<![A-Za-z0-9_])(?i:label|name|phrase|text)["']?+\s*+:\s*+"""
    r"""(?:"((?:[^"\\\n]|\\.)*+)"|'((?:[^'\\\n]|\\.)*+)')"""
)
_KEY_WINDOW = 64
_GROUP_GAP = re.compile(r"[\s,\[\]]*+")
"""What may separate two boxes of one group (which share a label)."""
_REF_TAGS = (("<|object_ref_start|>", "<|object_ref_end|>"), ("<ref>", "</ref>"))
_FENCE = re.compile(r"```([A-Za-z0-9_+-]*+)")
_TAGS = {name: re.compile(re.escape(name), re.IGNORECASE) for name in ("<think>", "</think>", "<answer>", "</answer>")}


def completion_text(completion: object) -> str:
    """The assistant text of a completion.

    - ``str``: itself; ``bytes``-like: decoded as UTF-8 (bad bytes replaced); None: ``""``.
    - a list of chat messages: the content of the last message whose role is ``"assistant"`` (``""`` if none).
    - a dict message: its ``content``; a list of content parts: the ``text`` of its text parts, concatenated.
    - content may be a string or a list of ``{"type": "text", "text": ...}`` parts (other parts are skipped).
    - anything else: ``""``.

    >>> completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "<answer>[1, 2, 3, 4]</answer>"}])
    '<answer>[1, 2, 3, 4]</answer>'
    """
    if isinstance(completion, Mapping):
        return _content_text(completion.get("content")) if "content" in completion else _content_text([completion])
    if isinstance(completion, (list, tuple)):
        messages = [m for m in completion if isinstance(m, Mapping) and "role" in m]
        if not messages:
            return _content_text(completion)
        replies = [m for m in messages if _is_str(m.get("role"), "assistant")]
        return _content_text(replies[-1].get("content")) if replies else ""
    return _content_text(completion)


def _content_text(content: object) -> str:
    """Text of a message content: a string, bytes, or a list of string / ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content).decode("utf-8", errors="replace")
    if isinstance(content, (list, tuple)):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and _is_str(part.get("type", "text"), "text"):
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
        return "".join(texts)
    return ""


def _is_str(value: object, expected: str) -> bool:
    """``value == expected`` for a string value; False for anything else (never an elementwise comparison)."""
    return isinstance(value, str) and value == expected


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A box candidate: its span in the section text, the numbers as written, the axis order of its dialect,
    whether it belongs to the group of the candidate before it (the boxes of one ``[[..;..]]`` or one run of loc
    tokens), and where a loc-token dialect writes its label (``"before"``: Florence-2, ``"after"``: PaliGemma)."""

    start: int
    end: int
    numbers: tuple[str, ...]
    axes: str = "xy"
    joined: bool = False
    label_side: str | None = None


def parse_completion(
    completion: object, *, dims: int | None = None, answer_tag: str = "required"
) -> ParsedCompletion:
    """Parse one completion (string, chat messages, a message dict, None or garbage) into a ParsedCompletion.

    ``dims=None`` accepts 4-number (2D) and 6-number (3D) boxes; ``dims=2`` or ``dims=3`` accepts only
    ``2 * dims`` numbers and reports other counts as problems. ``answer_tag="optional"`` reads the boxes of a
    completion without ``<answer>`` from its text after ``</think>`` (or its whole text), still recording
    "missing <answer>". Never raises on the completion; raises ValueError for a ``dims`` other than None, 2 or 3
    or an ``answer_tag`` not in :data:`ANSWER_TAGS`. See the module docstring for every decision.

    >>> parsed = parse_completion('<think>Apex.</think><answer>{"bbox_2d": [10, 20, 50, 80], "label": "nodule"}</answer>')
    >>> parsed.strict_format, parsed.boxes().tolist(), parsed.labels
    (True, [[10.0, 20.0, 50.0, 80.0]], ('nodule',))
    >>> parse_completion("<answer>[10, 20, 50]").problems
    ('missing <think>', 'missing </answer>', 'box 1 has 3 numbers (expected 4 or 6)', 'no box in <answer>')
    """
    if dims not in (None, 2, 3):
        raise ValueError(f"parse_completion: dims must be None, 2 or 3, got {dims!r}")
    if answer_tag not in ANSWER_TAGS:
        raise ValueError(f"parse_completion: answer_tag must be one of {', '.join(ANSWER_TAGS)}, got {answer_tag!r}")
    widths = (4, 6) if dims is None else (2 * dims,)
    text = completion_text(completion)
    if not text.strip():
        return ParsedCompletion(text, None, None, (), False, ("empty completion",), dims)

    problems: list[str] = []
    think_open = _TAGS["<think>"].search(text)
    think_close = _TAGS["</think>"].search(text, think_open.end() if think_open else 0)
    after_think = think_close.end() if think_close else (think_open.end() if think_open else 0)
    answer_open = _TAGS["<answer>"].search(text, after_think)
    if answer_open is None:
        answer_open = _TAGS["<answer>"].search(text)
        if answer_open is not None:
            problems.append("<answer> comes before </think>")
    answer_close = _TAGS["</answer>"].search(text, answer_open.end()) if answer_open else None

    for tag in (think_open, think_close, answer_open, answer_close):
        if tag is not None and tag.group() != tag.group().lower():
            problems.append(f"tag {tag.group()} should be lower case")
    for name, tag in (("<think>", think_open), ("</think>", think_close), ("<answer>", answer_open)):
        if tag is not None and _TAGS[name].search(text, tag.end()):
            problems.append(f"{name} appears more than once")
    if answer_close is not None and _TAGS["</answer>"].search(text, answer_close.end()):
        problems.append("</answer> appears more than once")

    think: str | None = None
    if think_open is None and think_close is None:
        problems.append("missing <think>")
    elif think_open is None:
        problems.append("missing <think>")
        think = text[: think_close.start()]
    else:
        if text[: think_open.start()].strip():
            problems.append("text before <think>")
        if think_close is not None:
            think = text[think_open.end() : think_close.start()]
        else:
            problems.append("missing </think>")
            end = answer_open.start() if answer_open and answer_open.start() > think_open.end() else len(text)
            think = text[think_open.end() : end]
        if not think.strip():
            problems.append("empty <think>")

    answer: str | None = None
    answer_boxes: tuple[ParsedBox, ...] = ()
    if answer_open is None:
        problems.append("missing <answer>")
        if answer_tag == "optional" and (think_close is not None or think_open is None):
            answer = text[think_close.end() :] if think_close is not None else text
            problems.extend(_structure_problems(answer))
            answer_boxes = _read_boxes(answer, widths, problems)
            if not answer_boxes:
                problems.append("no box in the untagged answer")
    else:
        if think_close is not None and answer_open.start() >= think_close.end():
            if text[think_close.end() : answer_open.start()].strip():
                problems.append("text between </think> and <answer>")
        if answer_close is None:
            problems.append("missing </answer>")
            answer = text[answer_open.end() :]
        else:
            answer = text[answer_open.end() : answer_close.start()]
            if text[answer_close.end() :].strip():
                problems.append("text after </answer>")
        problems.extend(_structure_problems(answer))
        answer_boxes = _read_boxes(answer, widths, problems)
        if not answer_boxes:
            problems.append("no box in <answer>")

    # think boxes are read on request (think_boxes): most callers never look at them.
    return ParsedCompletion(text, think, answer, answer_boxes, not problems, tuple(problems), dims)


def think_boxes(parsed: ParsedCompletion) -> tuple[ParsedBox, ...]:
    """The Chain-of-Box steps of a parsed completion: the boxes written inside its ``<think>``, in order, with the
    widths it was parsed for (``parsed.dims``). Read on each call, from ``parsed.think``.

    >>> parsed = parse_completion("<think>Apex [1, 2, 3, 4], base [5, 6, 7, 8].</think><answer>[5, 6, 7, 8]</answer>")
    >>> [box.coords for box in think_boxes(parsed)]
    [(1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.0)]
    """
    return read_think_boxes(parsed.think, dims=parsed.dims)


def read_think_boxes(think: str | None, *, dims: int | None = None) -> tuple[ParsedBox, ...]:
    """The Chain-of-Box steps of a ``<think>`` text, as :func:`parse_completion` reads them (no problems kept).

    >>> [box.coords for box in read_think_boxes("Apex [1, 2, 3, 4].")]
    [(1.0, 2.0, 3.0, 4.0)]
    """
    return _read_boxes(think, (4, 6) if dims is None else (2 * dims,), None) if think else ()


def _structure_problems(answer: str) -> list[str]:
    """Unclosed or doubly opened code fences and unbalanced brackets in the answer."""
    problems = []
    open_lang: str | None = None
    opened_twice = False
    for lang in _FENCE.findall(answer):
        if open_lang is None:
            open_lang = lang
        elif lang:
            opened_twice = True
        else:
            open_lang = None
    if opened_twice:
        problems.append("``` fence opened twice")
    if open_lang is not None:
        problems.append(f"unclosed ```{open_lang} fence")
    for left, right in ("[]", "{}"):
        n_left, n_right = answer.count(left), answer.count(right)
        if n_left != n_right:
            problems.append(f"unbalanced brackets in <answer>: {n_left} '{left}' but {n_right} '{right}'")
    return problems


def _candidates(section: str, widths: tuple[int, ...]) -> tuple[list[_Candidate], bool, list[tuple[str, int]]]:
    """Box candidates of a section in order, whether more than MAX_BOXES groups were found, and the
    ``(key, count)`` of each group of ``widths`` numbers left out because it is the value of a non-box key.

    - ``[...]``: numbers separated by commas; by ``_`` when there is no comma (VideoLLaMA3 ``[[x1_y1_x2_y2]]``);
      ``;`` separates several boxes of one group (CogVLM / Shikra ``[[x1,y1,x2,y2;x1,y1,x2,y2]]``).
    - ``(x1,y1),(x2,y2)`` and ``[[x1,y1],[x2,y2]]``: two points of 2 (or 3) numbers make one candidate; the
      square form only as the whole content of one ``[...]`` (so a list of three points is not a box).
    - ``<box>x1 y1 x2 y2</box>`` (MiniCPM-V): numbers separated by spaces (or commas) directly inside ``<box>``.
    - ``<loc_N>`` runs (Florence-2, x first, 0-999) and ``<locNNNN>`` runs (PaliGemma, y first, 0-1023, marked
      ``axes="yx"``): every 4 tokens are one box of the run's group; a run of another length is one candidate
      with the wrong count (a problem).
    A parenthesised single number, like ``(2)`` in prose, is not a candidate. Every match found counts towards
    MAX_BOXES, and so does every box it holds, so the Python work per section is bounded whatever the text holds.
    """
    found: list[_Candidate] = []
    other_keys: list[tuple[str, int]] = []
    point_end, point_kind = -1, ""  # end (and kind) of the last candidate when it is a lone point

    def add(candidate: _Candidate) -> bool:
        """Append a candidate; False once MAX_BOXES are held."""
        if len(found) >= MAX_BOXES:
            return False
        found.append(candidate)
        return True

    for n_groups, match in enumerate(_GROUP.finditer(section)):
        if n_groups == MAX_BOXES:
            return found, True, other_keys
        start, end = match.span()
        kind = match.lastgroup
        body = match.group(kind)
        if kind in ("fl", "pg"):
            numbers = [m.group() for _, m in zip(range(4 * MAX_BOXES + 1), _DIGITS.finditer(body))]
            axes, side = ("xy", "before") if kind == "fl" else ("yx", "after")
            chunks = [numbers[i : i + 4] for i in range(0, len(numbers), 4)] if len(numbers) % 4 == 0 else [numbers]
            for k, chunk in enumerate(chunks):
                if not add(_Candidate(start, end, tuple(chunk), axes, k > 0, side)):
                    return found, True, other_keys
            point_end = -1
            continue
        if kind == "sp":
            if not add(_Candidate(start, end, tuple(_SPACE_OR_COMMA.split(body.strip())))):
                return found, True, other_keys
            point_end = -1
            continue
        square = kind == "sq"
        parts = body.split(";", MAX_BOXES) if square else [body]  # more than MAX_BOXES: the rest is one bad part
        separator = "_" if square and "," not in body and "_" in body else ","
        groups = []
        for part in parts:
            numbers = [n.strip() for n in part.split(separator)]
            if len(numbers) > 1 and not numbers[-1]:
                numbers.pop()  # trailing comma
            groups.append(numbers)
        if len(groups) > 1 and groups[-1] == [""]:
            groups.pop()  # trailing ';'
        if not square and len(groups[0]) < 2:
            continue
        axes = "xy"
        head = section[max(0, start - _KEY_WINDOW) : start]
        key = _KEY_BEFORE.search(head)
        if key is not None:
            name = key.group(1)
            if BOX_KEY.fullmatch(name) is None:
                other_keys.extend((name, len(n)) for n in groups if len(n) in widths)
                continue
            if name.lower() in Y_FIRST_KEYS:
                axes = "yx"
        numbers = groups[0]
        previous = found[-1] if found else None
        if (
            len(groups) == 1
            and previous is not None
            and previous.end == point_end
            and point_kind == kind
            and len(previous.numbers) == len(numbers) <= 3
            and (
                (not square and section[previous.end : start].strip() in ("", ","))
                or (
                    square
                    and _POINT_GAP.fullmatch(section, previous.end, start) is not None
                    and _POINT_OPEN.search(section, max(0, previous.start - 17), previous.start) is not None
                    and _POINT_CLOSE.match(section, end) is not None
                )
            )
        ):
            found[-1] = _Candidate(previous.start, end, previous.numbers + tuple(numbers), previous.axes)
            point_end = -1
            continue
        for k, numbers in enumerate(groups):
            if not add(_Candidate(start, end, tuple(numbers), axes, k > 0)):
                return found, True, other_keys
        point_end, point_kind = (end, kind) if len(groups) == 1 and len(numbers) <= 3 else (-1, "")
    return found, False, other_keys


def _read_boxes(section: str, widths: tuple[int, ...], problems: list[str] | None) -> tuple[ParsedBox, ...]:
    """The valid boxes of a section; with ``problems`` given, each rejected or repaired candidate adds one."""
    found, truncated, other_keys = _candidates(section, widths)
    if problems is not None:
        if truncated:
            problems.append(f"more than {MAX_BOXES} bracketed groups in <answer>; the rest are ignored")
        for (key, count), times in Counter(other_keys).items():
            groups = "a group" if times == 1 else f"{times} groups"
            verb = "is not read as a box" if times == 1 else "are not read as boxes"
            problems.append(
                f"{groups} of {count} numbers under key {key!r} {verb} (box keys: {BOX_KEYS_TEXT})"
            )
    expected = " or ".join(str(w) for w in widths)
    kept: list[tuple[int, tuple[float, ...]]] = []  # (index in found, ordered coords) of each valid candidate
    for index, cand in enumerate(found):
        name = f"box {index + 1}"
        if len(cand.numbers) not in widths:
            if problems is not None:
                count = len(cand.numbers)
                problems.append(f"{name} has {count} number{'' if count == 1 else 's'} (expected {expected})")
            continue
        invalid = [n for n in cand.numbers if _NUMBER.fullmatch(n) is None]
        if invalid:
            if problems is not None:
                problems.append(f"{name} has an invalid number {invalid[0]!r}")
            continue
        values = [float(n) for n in cand.numbers]
        if not all(math.isfinite(v) for v in values):
            if problems is not None:
                bad = ", ".join(n for n, v in zip(cand.numbers, values) if not math.isfinite(v))
                problems.append(f"{name} has a non-finite number ({bad})")
            continue
        if not all(abs(v) <= MAX_COORDINATE for v in values):
            if problems is not None:
                bad = ", ".join(n for n, v in zip(cand.numbers, values) if abs(v) > MAX_COORDINATE)
                problems.append(f"{name} has an out-of-range number ({bad}; expected |value| <= {MAX_COORDINATE:.0f})")
            continue
        d = len(values) // 2
        swapped = [a for a in range(d) if values[a] > values[a + d]]
        if swapped and problems is not None:
            names = "yx" if cand.axes == "yx" else _AXES
            axes = ", ".join(f"{names[a]}2 < {names[a]}1" for a in swapped)
            problems.append(f"{name}: {axes}, corners swapped")
        low = [min(values[a], values[a + d]) for a in range(d)]
        high = [max(values[a], values[a + d]) for a in range(d)]
        kept.append((index, tuple(low + high)))

    # Consecutive valid candidates separated by _GROUP_GAP form one group, labelled as one box spanning them.
    boxes: list[ParsedBox] = []
    group_start = 0
    for k, (index, _) in enumerate(kept):
        following = kept[k + 1][0] if k + 1 < len(kept) else -1
        if following == index + 1 and (
            found[following].joined or _GROUP_GAP.fullmatch(section, found[index].end, found[following].start)
        ):
            continue
        first = kept[group_start][0]
        lo = found[first - 1].end if first else 0
        hi = found[index + 1].start if index + 1 < len(found) else len(section)
        label = _label(section, found[first].start, found[index].end, lo, hi, found[first].label_side)
        boxes.extend(ParsedBox(coords, label, found[i].axes) for i, coords in kept[group_start : k + 1])
        group_start = k + 1
    return tuple(boxes)


def _label(section: str, start: int, end: int, lo: int, hi: int, side: str | None = None) -> str | None:
    """Label of the box (or group of boxes) written in ``section[start:end]``: a label key of its enclosing
    ``{...}``, else a ref tag written since the previous box, else for loc tokens the text their dialect writes
    beside them: Florence-2 before (``car<loc_..>``; after the last ``>`` since the previous box, so special
    tokens like ``</s><s>`` are left out), PaliGemma after (``<loc..> car ; <loc..> dog``: up to ``;`` or ``<``).

    ``lo`` is the end of the previous candidate and ``hi`` the start of the next one, so each character is looked
    at for a bounded number of boxes and the whole lookup stays linear in the section length.
    """
    brace = section.rfind("{", lo, start)
    if brace >= 0:
        close = section.find("}", end, hi)
        match = _LABEL.search(section, brace, close + 1 if close >= 0 else hi)
        if match is not None:
            quoted = match.group(1) if match.group(1) is not None else match.group(2).replace("\\'", "'")
            return _unescape(quoted).strip() or None
    best_end = -1
    label: str | None = None
    for start_tag, end_tag in _REF_TAGS:
        ref_end = section.rfind(end_tag, lo, start)
        if ref_end > best_end:
            ref_start = section.rfind(start_tag, lo, ref_end)
            if ref_start >= 0:
                best_end, label = ref_end, section[ref_start + len(start_tag) : ref_end].strip() or None
    if label is None and side == "before":
        label = section[max(lo, section.rfind(">", lo, start) + 1) : start].strip() or None
    elif label is None and side == "after":
        stop = min((i for i in (section.find(";", end, hi), section.find("<", end, hi)) if i >= 0), default=hi)
        label = section[end:stop].strip() or None
    return label


def _unescape(quoted: str) -> str:
    """A JSON string body with its escapes decoded; the raw text when it is not valid JSON."""
    try:
        return json.loads(f'"{quoted}"')
    except ValueError:
        return quoted


def _number(value: float) -> str:
    """A coordinate as a model writes it: integral values without a decimal point."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def format_box(coords: Sequence[float], label: str | None = None, dialect: str = "qwen2.5-json") -> str:
    """One box written the way a model writes it, for demos and tests; :func:`parse_completion` reads it back.

    - ``"qwen2.5-json"``: ``{"bbox_2d": [x1, y1, x2, y2], "label": "..."}`` (``bbox_3d`` for 6 numbers).
    - ``"list"``: ``[x1, y1, x2, y2]`` (a list has no place for a label: ``label`` is dropped).
    - ``"qwen2-tokens"``: ``<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``.
    - ``"ref-box"``: ``<ref>label</ref><box>(x1,y1),(x2,y2)</box>``.
    Without a label the JSON has no label key and the ref part of the token dialects is left out.
    Raises ValueError for a count of coordinates other than 4 or 6, or an unknown dialect.

    >>> format_box([10, 20, 50, 80], "nodule")
    '{"bbox_2d": [10, 20, 50, 80], "label": "nodule"}'
    """
    values = [float(v) for v in coords]
    if len(values) not in (4, 6):
        raise ValueError(f"format_box: coords must have 4 (2D) or 6 (3D) numbers, got {len(values)}: {coords!r}")
    numbers = [_number(v) for v in values]
    d = len(values) // 2
    if dialect == "qwen2.5-json":
        obj = f'{{"bbox_{d}d": [{", ".join(numbers)}]'
        return obj + (f', "label": {json.dumps(label, ensure_ascii=False)}}}' if label is not None else "}")
    if dialect == "list":
        return f"[{', '.join(numbers)}]"
    corners = f"({','.join(numbers[:d])}),({','.join(numbers[d:])})"
    if dialect == "qwen2-tokens":
        ref = f"<|object_ref_start|>{label}<|object_ref_end|>" if label is not None else ""
        return f"{ref}<|box_start|>{corners}<|box_end|>"
    if dialect == "ref-box":
        ref = f"<ref>{label}</ref>" if label is not None else ""
        return f"{ref}<box>{corners}</box>"
    raise ValueError(f"format_box: unknown dialect {dialect!r}; known: {', '.join(FORMAT_DIALECTS)}")
