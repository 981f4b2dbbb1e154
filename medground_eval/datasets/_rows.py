"""Row-level helpers shared by the 2D loaders: number parsing, box checks, split filtering, box grouping.

Release files that list one box per row (MS-CXR, ChestX-ray8) are grouped into samples with
:class:`SampleGroups`: a row that fails drops its whole sample, because a region missing one of its
boxes would be a wrong ground truth, not a smaller one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medground_eval.datasets.base import DataError, RowErrors, SkippedRow
from medground_eval.structures import MAX_COORDINATE, Sample
from medground_eval.validation import EDGE_TOLERANCE, box_problem  # noqa: F401  (the one box rule, used by the loaders)


def parse_number(text: str, *, path: str | Path, line: int | None, field: str) -> float:
    """A finite float from a CSV cell (``"225"``, ``"225.08"``, ``" 1e2 "``); anything else is a DataError."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DataError(path, line, field, text, "a number") from None
    if not math.isfinite(value):
        raise DataError(path, line, field, text, "a finite number")
    return value


def parse_size(value: object, *, path: str | Path, line: int | None, field: str) -> int:
    """A positive integer image dimension from a CSV cell or JSON value (``"1024"``, ``1024``, ``1024.0``)."""
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number != int(number) or not 0 < number <= MAX_COORDINATE:
        raise DataError(path, line, field, value, f"a positive integer number of pixels (at most {MAX_COORDINATE:.0f})")
    return int(number)


def require_rows(samples: Sequence[Sample], errors: RowErrors, path: str | Path, what: str) -> None:
    """DataError when a release file gave no sample and no row was skipped: the file is empty (or holds only a
    header), which would otherwise score an empty evaluation with exit 0."""
    if not samples and not errors.skipped:
        raise DataError(path, None, None, "no rows", f"at least one {what} (the file is empty or holds only a header)")


def filter_split(samples: list[Sample], split: str | None, *, path: str | Path) -> list[Sample]:
    """The samples of ``split`` (all of them when ``split`` is None).

    A split that matches no sample is an error naming the splits the file has, so that a typo never
    yields an empty evaluation.
    """
    if split is None:
        return samples
    kept = [sample for sample in samples if sample.split == split]
    if not kept:
        raise split_error(split, [sample.split for sample in samples], path=path)
    return kept


def split_error(split: str, splits: Iterable[str | None], *, path: str | Path | None) -> DataError:
    """The error for a ``split`` that matches none of ``splits`` (the samples' splits), naming those found."""
    found = sorted({s for s in splits if s is not None})
    expected = f"one of the splits in the file: {found}" if found else "a file with splits (no sample has one)"
    return DataError(path, None, "split", split, expected)


@dataclass(frozen=True)
class BoxRow:
    """One box of a sample as read from a release row.

    ``where`` names the row in messages ("line 12", "annotations[3]"); ``agree`` holds the fields every
    box of the same sample must share (image size, path, category, split).
    """

    where: str
    line: int | None
    key: tuple[str, str]
    box: tuple[float, float, float, float]
    agree: dict[str, object] = field(default_factory=dict)


class SampleGroups:
    """Boxes collected per sample key, in the order keys first appear; a bad row drops its whole sample."""

    def __init__(self, path: str | Path, errors: RowErrors):
        self.path = path
        self.errors = errors
        self._rows: dict[tuple[str, str], list[BoxRow]] = {}
        self._bad: dict[tuple[str, str], str] = {}
        self.duplicates: list[SkippedRow] = []
        """Rows identical to an earlier row of their sample (same box, same fields): dropped, each reported."""

    def add(self, row: BoxRow) -> None:
        """Add a parsed row; a field that differs from the sample's first row is a DataError; an exact duplicate
        of an earlier row is dropped and recorded in :attr:`duplicates`."""
        rows = self._rows.setdefault(row.key, [])
        same = next((r for r in rows if r.box == row.box and r.agree == row.agree), None)
        if same is not None:
            self.duplicates.append(SkippedRow(str(self.path), row.line, f"{row.where}: exact duplicate of "
                                                                        f"{same.where} (sample {row.key!r}), dropped"))
            return
        if rows:
            first = rows[0]
            for name, value in row.agree.items():
                if first.agree[name] != value:
                    expected = f"{first.agree[name]!r} as on {first.where} (same sample {row.key!r})"
                    self.reject(row.key, DataError(self.path, row.line, name, value, expected), row.where)
                    return
        rows.append(row)

    def reject(self, key: tuple[str, str], error: DataError, where: str) -> None:
        """Handle a bad row of sample ``key`` (raises under ``on_error="raise"``) and drop that sample."""
        self.errors.handle(error)
        self._rows.setdefault(key, [])
        self._bad.setdefault(key, where)

    def __iter__(self) -> Iterator[tuple[tuple[str, str], list[BoxRow]]]:
        """The good samples' keys and rows; the good rows of dropped samples are recorded as skipped."""
        for key, rows in self._rows.items():
            if key in self._bad:
                reason = f"sample {key!r} dropped, {self._bad[key]} is bad"
                for row in rows:
                    self.errors.skipped.append(SkippedRow(str(self.path), row.line, f"{row.where}: {reason}"))
            else:
                yield key, rows
