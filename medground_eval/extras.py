"""Optional dependencies: one rule for a missing extra, an ImportError that says what to install.

The core needs numpy and scipy only; the rest comes with an extra of ``pyproject.toml``. Every import of an optional
package goes through :func:`requires`, so a core-only install answers ``pip install 'medground-eval[report]'`` instead
of a traceback ending in ``ModuleNotFoundError: No module named 'matplotlib'``; the CLI prints that line alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

TORCH_NOTE = "install torch==2.13.0 first (the CPU build, see the README), then "
"""torch is in no extra: a bare ``torch`` requirement would pull a CUDA build of several GB."""


class MissingExtraError(ImportError):
    """An optional package is not installed; the message names it, what needs it and the install line."""

    def __init__(self, package: str, extra: str, purpose: str):
        self.package, self.extra, self.purpose = package, extra, purpose
        install = f"pip install 'medground-eval[{extra}]'"
        if package == "torch":
            install = TORCH_NOTE + install
        super().__init__(f"{purpose} needs the package {package!r}, which is not installed: {install}", name=package)


@contextmanager
def requires(extra: str, purpose: str) -> Iterator[None]:
    """Imports inside the block that fail for a missing package (not one of ours) raise :class:`MissingExtraError`.

    >>> with requires("report", "score --report"):
    ...     import medground_eval_no_such_package
    Traceback (most recent call last):
    ...
    medground_eval.extras.MissingExtraError: score --report needs the package 'medground_eval_no_such_package', \
which is not installed: pip install 'medground-eval[report]'
    """
    try:
        yield
    except ModuleNotFoundError as error:
        package = (error.name or "").split(".")[0]
        if not package or package == "medground_eval":
            raise
        raise MissingExtraError(package, extra, purpose) from error
