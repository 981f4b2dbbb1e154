"""Test helper: import an engine's own package (openrlhf 0.11.2, verl 0.9.1), installed by `make test` with
``--no-deps`` plus the few modules their config, argument parsing and reward code import (see the Makefile).

A missing engine fails the test when ``$CI`` or ``$MEDGROUND_REQUIRE_ENGINES`` is set (``make test`` sets the latter),
so CI can never pass by skipping them; elsewhere it skips with the install line.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

INSTALL = "make test (or: see the Makefile's engine step)"


def require_engine(module: str) -> ModuleType:
    """``module`` imported, or a skip (a failure under CI) saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if os.environ.get("CI") or os.environ.get("MEDGROUND_REQUIRE_ENGINES"):
            raise AssertionError(f"{module} is required here (CI): {error}; install it as {INSTALL} does") from None
        pytest.skip(f"{module} not importable ({error}); install it as {INSTALL} does")
