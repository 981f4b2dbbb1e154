"""What every data set loader returns, the error it raises, and the registry of loaders by name.

A loader reads release files into :class:`~medground_eval.structures.Sample` objects. A bad row raises
:class:`DataError` naming the file, line, field and value, unless the caller asked ``on_error="skip"``:
then the row is recorded in ``LoadedDataset.skipped`` (never silently dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from medground_eval.structures import Sample

OnError = Literal["raise", "skip"]


class DataError(ValueError):
    """A bad input row: says where (file, line), which field, the value, and what was expected."""

    def __init__(self, path: str | Path | None, line: int | None, field: str | None, value: object, expected: str):
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.value = value
        self.expected = expected
        where = ":".join(str(part) for part in (self.path, line) if part is not None) or "<input>"
        what = f"field {field!r}" if field else "row"
        shown = repr(value)
        if len(shown) > 200:
            shown = shown[:200] + "..."
        super().__init__(f"{where}: {what} = {shown}: expected {expected}")


@dataclass(frozen=True)
class SkippedRow:
    """A row left out under ``on_error="skip"``, with the error that excluded it."""

    path: str | None
    line: int | None
    reason: str


@dataclass
class LoadedDataset:
    """Samples in file order plus the rows that were skipped, and the exact duplicate rows that were dropped (a
    release row repeated verbatim would otherwise be a second, identical true box: under one-to-one matching a
    perfect answer would score 0.5)."""

    name: str
    samples: list[Sample]
    skipped: list[SkippedRow] = field(default_factory=list)
    duplicates: list[SkippedRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)


class RowErrors:
    """Collects or raises :class:`DataError` according to ``on_error``; one helper for every loader."""

    def __init__(self, on_error: OnError):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error = {on_error!r}: expected 'raise' or 'skip'")
        self.on_error = on_error
        self.skipped: list[SkippedRow] = []

    def handle(self, error: DataError) -> None:
        if self.on_error == "raise":
            raise error
        self.skipped.append(SkippedRow(error.path, error.line, str(error)))


Loader = Callable[..., LoadedDataset]
_LOADERS: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator: make a loader available by name (``--dataset NAME``)."""

    def decorate(loader: Loader) -> Loader:
        _LOADERS[name] = loader
        return loader

    return decorate


def get_loader(name: str) -> Loader:
    from medground_eval import datasets  # noqa: F401  (importing the package registers every loader)

    try:
        return _LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}: expected one of {sorted(_LOADERS)}") from None


def dataset_names() -> list[str]:
    from medground_eval import datasets  # noqa: F401

    return sorted(_LOADERS)
