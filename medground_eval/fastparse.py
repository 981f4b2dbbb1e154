"""A fast path for the canonical Qwen2.5-VL completion: an optimisation of the parser, not a second rule book.

:func:`medground_eval.parsing.parse_completion` is the one definition of how a completion is read. Most completions
a trained model writes have one shape, though::

    <think>free text without '<'</think>
    <answer>```json
    [{"bbox_2d": [x1, y1, x2, y2], "label": "..."}]
    ```</answer>

and reading that shape needs no general scanner. This module recognises it, and the near-canonical forms that make
most of the rest of what models write (measured on real Qwen2.5-VL completions: 5% close their fence with
```` ```json ````, 2% lack ``</answer>``), and returns exactly what the parser would return, or declines (None / not
listed) so that the caller runs the parser. ``tests/test_fast_path.py`` proves the equivalence field by field on
generated completions in and around the shape.

The canonical shape, precisely (``\\s`` is any Unicode whitespace, ``ws`` is JSON whitespace ``[ \\t\\n\\r]``):

- optional ``\\s`` then ``<think>`` (lower case); a think text with no ``<`` and at least one non-``\\s`` character;
  ``</think>``, ``\\s``, ``<answer>``;
- in the answer: optional ```` ```json ```` or ```` ``` ```` fence (then a closing ```` ``` ````), optional ``[``
  (then a closing ``]``), one object ``{"bbox_2d": [n, n, n, n], "label": "..."}`` with keys in this order, at most
  16 ``\\s`` around the key's colon, ``ws`` around the numbers;
- a number is ``0`` or ``[1-9]`` followed by at most 5 digits, with an optional fraction of 1 to 15 digits (so it
  is valid JSON and below the parser's ``MAX_COORDINATE`` of 1e6); corners are in order (``x1 <= x2`` and
  ``y1 <= y2``);
- the label holds none of ``" \\ < > [ ] ( ) { } ` `` and no newline;
- ``</answer>`` then only ``\\s`` to the end.

Why each rule keeps the parser's answer unchanged: one lower-case tag of each kind, and no ``<`` anywhere else, so
the parser finds the same tags and no problem with them; balanced fences and brackets; the label holds no bracket,
so the box is the answer's only candidate, its key ``bbox_2d`` lies within the parser's 64-character key window and
the label is the parser's label (no escapes, so its JSON decoding is itself); the numbers are valid, finite, in
range and ordered. Such a completion is ``strict_format`` with no problem and one answer box. Only 2D boxes are read here
(``dims`` None or 2).

The near-canonical forms differ from it in the fence and the closing tag only, and the parser's problems for them
are fixed strings (:func:`_problems`): no ``</answer>`` (the answer runs to the end of the text: "missing
</answer>"); a fence closed by ```` ```json ```` ("``` fence opened twice", "unclosed ```json fence"), an opened
fence never closed ("unclosed ```json fence"), a closing fence never opened ("unclosed ``` fence"). Their box and
label are read as in the canonical shape; they are not ``strict_format``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medground_eval.structures import ParsedBox, ParsedCompletion

__all__ = ["FastColumns", "canonical_boxes", "canonical_label", "fast_parse"]

_WS = r"[ \t\n\r]*+"
_NUM = r"(?:0|[1-9][0-9]{0,5})(?:\.[0-9]{1,15})?+"
_CANONICAL_TAIL = re.compile(
    r"</think>\s*+<answer>(?P<answer>\s*+(?P<fence>```(?P<fence_json>json)?+\s*+)?+(?P<list>\[\s*+)?+"
    r'\{\s*+"bbox_2d"\s{0,16}+:\s{0,16}+\['
    rf"{_WS}(?P<numbers>{_NUM}{_WS},{_WS}{_NUM}{_WS},{_WS}{_NUM}{_WS},{_WS}{_NUM}){_WS}"
    r'\]\s*+,\s*+"label"\s*+:\s*+"(?P<label>[^"\\<>\[\](){}`\n]*+)"\s*+\}'
    r"(?(list)\s*+\])\s*+(?P<close>```(?P<close_json>json)?+)?+\s*+)(?P<end></answer>\s*+)?+"
)
"""The answer part of the (near-)canonical shape, matched from ``</think>`` to the end of the text."""

_NON_SPACE = re.compile(r"\s*+[^\s<]")


def _canonical_tail(text: str) -> re.Match[str] | None:
    """The match of :data:`_CANONICAL_TAIL` when ``text`` has a (near-)canonical shape up to the corner order.

    ``match.string`` is ``text`` without leading whitespace: ``<think>`` at 0, ``</think>`` at ``match.start()``.
    """
    if not text.startswith("<think>"):
        text = text.lstrip()
        if not text.startswith("<think>"):
            return None
    end = text.find("<", 7)  # the first '<' after <think> must open </think>
    if end <= 7 or (text[7].isspace() and _NON_SPACE.match(text, 7, end) is None):
        return None
    return _CANONICAL_TAIL.fullmatch(text, end)


def _problems(match: re.Match[str]) -> tuple[str, ...]:
    """The parser's problems for a matched text: none for the canonical shape, fixed strings for the near-canonical
    forms (see the module docstring)."""
    closed_answer, opened, closed = match["end"] is not None, match["fence"] is not None, match["close"]
    if closed_answer and ((opened and closed == "```") or (not opened and closed is None)):
        return ()
    problems = [] if closed_answer else ["missing </answer>"]
    if opened:
        fence = "```json" if match["fence_json"] else "```"
        if closed is None:
            problems.append(f"unclosed {fence} fence")
        elif match["close_json"]:
            problems += ["``` fence opened twice", f"unclosed {fence} fence"]
    elif closed is not None:
        problems.append(f"unclosed {closed} fence")
    return tuple(problems)


def fast_parse(text: str, dims: int | None = 2) -> ParsedCompletion | None:
    """``parse_completion(text, dims=dims)`` for a completion text of a (near-)canonical shape, else None."""
    if dims not in (None, 2):
        return None
    match = _canonical_tail(text)
    if match is None:
        return None
    coords = tuple(float(v) for v in match["numbers"].split(","))
    if coords[2] < coords[0] or coords[3] < coords[1]:
        return None
    box = ParsedBox(coords, match["label"].strip() or None)
    think = match.string[7 : match.start()]
    problems = _problems(match)
    return ParsedCompletion(text, think, match["answer"], (box,), not problems, problems, dims)


def canonical_label(text: str) -> str | None:
    """The label of the answer box of a text that :func:`fast_parse` reads (its ``answer_boxes[0].label``)."""
    match = _canonical_tail(text)
    return None if match is None else match["label"].strip() or None


@dataclass(frozen=True)
class FastColumns:
    """What the fast path read from a batch, in columns: ``index`` (int64, ascending) lists the positions of the texts
    it read, ``boxes[j]`` (float64, (k, 4)) is the one answer box of ``texts[index[j]]``, ``labels[j]`` its label
    (None when blank) and ``problems[j]`` its parser problems (``()`` for the canonical shape), as :func:`fast_parse`
    reads them. A text left out needs the parser."""

    index: np.ndarray
    boxes: np.ndarray
    labels: list[str | None]
    problems: list[tuple[str, ...]]


_SEPARATOR = "\x00"
_BATCH = re.compile(
    _SEPARATOR + r"\s*+<think>(?=\s*+[^\s<])[^<\x00]*+" + _CANONICAL_TAIL.pattern + r"(?=\x00)"
)
"""The (near-)canonical shape inside texts joined by :data:`_SEPARATOR` (a character no text of the batch holds):
the shape of :func:`_canonical_tail`, a whole text between two separators."""


def _batch_matches(texts: Sequence[str]) -> tuple[list[int], list[re.Match[str]]]:
    """The positions and matches of the (near-)canonical texts: one regex scan of the joined batch, each match then
    placed at its text by its offset (texts holding the separator are read one by one)."""
    joined = _SEPARATOR + _SEPARATOR.join(texts) + _SEPARATOR
    if joined.count(_SEPARATOR) != len(texts) + 1:
        pairs = [(i, _canonical_tail(t)) for i, t in enumerate(texts)]
        return [i for i, m in pairs if m is not None], [m for _, m in pairs if m is not None]
    starts = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    matches = list(_BATCH.finditer(joined))
    index = np.searchsorted(starts, [m.start() for m in matches]).tolist()
    return index, matches


def canonical_boxes(texts: Sequence[str]) -> FastColumns:
    """The texts of (near-)canonical shape and their answer boxes, labels and problems (:class:`FastColumns`)."""
    index, matches = _batch_matches(texts)
    numbers = [match["numbers"] for match in matches]
    # The numbers are JSON by construction: one C-level decode for the batch.
    boxes = np.array(json.loads(f"[{','.join(numbers)}]"), dtype=np.float64).reshape(-1, 4)
    ordered = (boxes[:, 0] <= boxes[:, 2]) & (boxes[:, 1] <= boxes[:, 3])
    kept = [m for m, keep in zip(matches, ordered.tolist()) if keep]
    return FastColumns(
        np.array(index, dtype=np.int64)[ordered], boxes[ordered], [m["label"].strip() or None for m in kept],
        [_problems(m) for m in kept],
    )
