"""Atomic output writing: a file the project writes is complete under its final name, or absent.

Every output (metrics JSON, per-sample CSV, converted training data, predictions, report folders, run configs) is
written to a temporary name in the destination's own folder (same file system, so the final ``os.replace`` is atomic)
and renamed once it is complete and flushed to disk. A run killed mid-write leaves at most a hidden temporary
``.<name>.<random>.tmp`` beside the destination, never a truncated file that looks finished. Parent folders are
created. ``"-"`` means standard output for the file writers (nothing to rename there).

A report folder is built as a hidden temporary folder and renamed into place when every file in it is written
(:func:`atomic_directory`), so it appears whole or not at all. An existing folder is replaced only when it is empty
or was itself written by :func:`atomic_directory` (it carries the :data:`DIRECTORY_MARKER` file); any other
existing folder is refused, so ``--report .`` cannot delete a user's files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

STDOUT = "-"
"""The path that means standard output."""
DIRECTORY_MARKER = ".medground-eval-output"
"""File inside a folder written by :func:`atomic_directory`; such a folder may be replaced by the next run."""


def is_stdout(path: str | os.PathLike[str]) -> bool:
    """True for the path ``"-"`` (standard output)."""
    return os.fspath(path) == STDOUT


def _umask() -> int:
    """The process's umask (mkstemp / mkdtemp create 0600 / 0700; outputs get what open / mkdir would give)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def open_atomic(path: str | os.PathLike[str], mode: str = "w", *, encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[IO[Any]]:
    """Open ``path`` for writing through a temporary file in the same folder, renamed to ``path`` on success.

    ``mode`` is ``"w"`` (text, ``encoding`` / ``newline`` as for :func:`open`) or ``"wb"``. Parent folders are
    created. If the block raises (or the process dies), ``path`` is untouched: an existing file keeps its old
    content, a new one does not appear; the temporary file is removed on an exception. ``"-"`` yields standard
    output (``sys.stdout`` or its binary buffer), which is flushed and not closed.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"open_atomic mode {mode!r}: expected 'w' or 'wb'")
    binary = mode == "wb"
    if is_stdout(path):
        stream = sys.stdout.buffer if binary else sys.stdout
        yield stream
        stream.flush()
        return
    final = Path(path)
    if final.is_dir():
        raise IsADirectoryError(f"{final}: is a folder; expected a file path")
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    temp = Path(temp_name)
    try:
        with (os.fdopen(fd, mode) if binary else os.fdopen(fd, mode, encoding=encoding, newline=newline)) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`open_atomic`); ``"-"`` prints it to standard output."""
    with open_atomic(path, "w", encoding=encoding) as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`open_atomic`)."""
    with open_atomic(path, "wb") as handle:
        handle.write(data)


def _replaceable(folder: Path) -> bool:
    """An existing folder may be replaced when it is empty or was written by :func:`atomic_directory`."""
    return (folder / DIRECTORY_MARKER).is_file() or not any(folder.iterdir())


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``path``; rename it to ``path`` when the block completes.

    Yields the temporary folder: write every file into it. On success it gets the :data:`DIRECTORY_MARKER` and
    replaces ``path`` (an existing ``path`` must be empty or a previous output of this function, else
    FileExistsError before anything is written). On an exception the temporary folder is removed and ``path`` is
    untouched. Between removing an old folder and renaming the new one there is an instant with no folder, but
    never a partial one.
    """
    final = Path(path)
    if is_stdout(final):
        raise ValueError("a report folder cannot be standard output ('-'); give a folder path")
    if final.exists() and not final.is_dir():
        raise FileExistsError(f"{final}: exists and is not a folder")
    if final.is_dir() and not _replaceable(final):
        raise FileExistsError(f"{final}: folder exists and was not written by medground-eval (no "
                              f"{DIRECTORY_MARKER}); choose a new folder or empty it")
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield temp
        (temp / DIRECTORY_MARKER).write_text("written by medground-eval; this folder may be replaced by the next run\n",
                                            encoding="utf-8")
        os.chmod(temp, 0o777 & ~_umask())
        if final.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, old / final.name)
            os.replace(temp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
