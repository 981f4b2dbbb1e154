"""Reading release and prediction files as text, safely: gzip by name, undecodable bytes and runaway JSON nesting as
:class:`~medground_eval.datasets.base.DataError` naming the file and line.

- A path whose name ends in ``.gz`` is read through :mod:`gzip` (a truncated or corrupt archive is a DataError).
- Text is UTF-8 (a leading byte order mark is dropped). A line that is not UTF-8 (a latin-1 ``é``, one ``\\xff``) or
  holds a NUL byte is a DataError naming the file and the line: raised, or counted and skipped under
  ``on_error="skip"`` (the line is then read as blank, so line numbers stay right). A file that starts with a
  UTF-16 byte order mark is a DataError at once: every line of it would be wrong.
- JSON values are decoded by :func:`loads`, which first bounds their nesting depth (:data:`MAX_JSON_DEPTH`): 100,000
  nested ``[`` would otherwise crash the decoder with a RecursionError.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from medground_eval.datasets.base import DataError, RowErrors

MAX_JSON_DEPTH = 100
"""Deepest nesting of arrays and objects a JSON value may have (a prediction or label line needs about 6)."""

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*+"')
_BRACKET = re.compile(r"[\[\]{}]")


def open_binary(path: str | Path) -> IO[bytes]:
    """The file opened for reading bytes; decompressed when its name ends in ``.gz``."""
    path = Path(path)
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def is_gzip(path: str | Path) -> bool:
    return Path(path).name.endswith(".gz")


def gzip_error(path: str | Path, error: Exception) -> DataError:
    """The DataError of a gzip stream that cannot be read to its end."""
    return DataError(path, None, None, str(error), "a complete gzip file (it is truncated or not gzip)")


def _utf16_error(path: str | Path, head: bytes) -> DataError | None:
    if head.startswith(_UTF16_BOMS):
        return DataError(path, 1, None, head[:8], "a UTF-8 file (this one starts with a UTF-16 byte order mark: "
                                                  "re-save it as UTF-8)")
    return None


def decode_line(raw: bytes, path: str | Path, line: int) -> str:
    """One line as text; DataError naming the file and line when it is not UTF-8 or holds a NUL."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(path, line, None, raw[:200], f"UTF-8 text ({error.reason} at byte {error.start + 1} of the "
                                                     f"line; is the file latin-1 or UTF-16?)") from None
    if "\x00" in text:
        raise DataError(path, line, None, raw[:200], "text without NUL bytes (is the file UTF-16?)")
    return text


def text_lines(path: str | Path, errors: RowErrors) -> Iterator[str]:
    """The lines of a text file (each with its newline), for :mod:`csv` or line-by-line reading.

    A bad line goes to ``errors`` (raise, or skip and count) and is read as an empty line; a UTF-16 file or an
    unreadable gzip archive raises.
    """
    with open_binary(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if number == 1:
                    problem = _utf16_error(path, raw)
                    if problem is not None:
                        raise problem
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                try:
                    yield decode_line(raw, path, number)
                except DataError as error:
                    errors.handle(error)
                    yield "\n"
        except (OSError, EOFError, zlib.error) as error:
            if not is_gzip(path):
                raise
            raise gzip_error(path, error) from None


def check_utf16(path: str | Path, head: bytes) -> None:
    """Raise the DataError of a UTF-16 file from its first bytes (for readers with their own decoding)."""
    problem = _utf16_error(path, head)
    if problem is not None:
        raise problem


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[`` / ``{`` outside JSON strings; when the text holds at most MAX_JSON_DEPTH of
    them, their count (an upper bound, enough to pass the check without scanning)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return text.count("[") + text.count("{")
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def loads(text: str | bytes) -> object:
    """``json.loads`` with the nesting depth bounded first: a deeper value is a ``json.JSONDecodeError`` (so callers
    report it like any other malformed JSON), never a RecursionError."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    depth = nesting_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise json.JSONDecodeError(f"nested {depth} levels deep, more than the {MAX_JSON_DEPTH} allowed", text, 0)
    return json.loads(text)
