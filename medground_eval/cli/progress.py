"""Progress shown from the first second of a long command: a spinner with the stage ("loading ground truth",
"scoring", "writing report") and, where the size is known, a bar of bytes read.

It is drawn on standard error and erased when done (``transient``), so standard output stays the table (or the
``-`` output). Rich draws nothing when standard error is not a terminal (pipes, CI logs); ``TTY_INTERACTIVE=1``
forces it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Stage:
    """The live progress line: :meth:`describe` names the stage, :meth:`advance` adds bytes done."""

    bar: Any
    task: Any

    def describe(self, text: str, total: float | None = None) -> None:
        self.bar.update(self.task, description=text, **({} if total is None else {"total": total, "completed": 0}))
        self.bar.refresh()  # drawn now: a stage shorter than the refresh period still shows

    def advance(self, amount: float) -> None:
        self.bar.advance(self.task, amount)


@contextmanager
def progress(description: str, total: float | None = None) -> Iterator[Stage]:
    """A transient progress line on standard error, shown from the start (the spinner and elapsed time move while
    a stage without a known size runs)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True, refresh_per_second=8) as bar:
        yield Stage(bar, bar.add_task(description, total=total))
