"""The checks every boundary shares: what a number is, what a valid true box and image size are.

Loaders, labels, the reward columns and the predictions reader validate their inputs once, with these rules, so that
a value one surface accepts another never refuses (or the reverse).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from medground_eval.structures import MAX_COORDINATE

EDGE_TOLERANCE = 1e-6
"""Pixels a box may pass the image edge by: float round-off of ``x + w`` in files that store x, y, w, h."""


def is_number(value: object) -> bool:
    """A finite real number: an int or float (numpy's included), not a bool, not NaN or infinite, not an integer
    too large for a float.

    >>> [is_number(v) for v in (3, 2.5, True, float("nan"), "4", 10**400, np.float32(1.5))]
    [True, True, False, False, False, False, True]
    """
    kind = type(value)
    if kind is not float and kind is not int:  # the common cases first: this runs once per coordinate
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def is_coordinate(value: object) -> bool:
    """A number (:func:`is_number`) of magnitude at most :data:`~medground_eval.structures.MAX_COORDINATE`: the test
    of every coordinate and size read from a file, a label or a column (``1e300`` would overflow areas to inf).

    >>> [is_coordinate(v) for v in (512, -3.5, 1e6, 1e300, 2e154)]
    [True, True, True, False, False]
    """
    return is_number(value) and abs(value) <= MAX_COORDINATE


def box_problem(box: Sequence[float], image_size: Sequence[float] | None = None) -> str | None:
    """What is wrong with a true corner box in pixels (2D ``[x1, y1, x2, y2]`` or 3D ``[x1, y1, z1, x2, y2, z2]``),
    as the expectation an error message states, or None when it is valid.

    Valid: 4 or 6 finite numbers, each upper corner >= the lower one (zero width is allowed), coordinates >= 0 and,
    when the image size ``(W, H)`` / ``(W, H, D)`` is known, inside it (up to :data:`EDGE_TOLERANCE`).

    >>> box_problem([10, 20, 30, 40], (100, 100)) is None
    True
    >>> box_problem([30, 20, 10, 40])
    'x2 >= x1 and y2 >= y1'
    >>> box_problem([10, 20, 130, 40], (100, 100))
    'a box inside the 100x100 image (x2 <= 100, y2 <= 100)'
    """
    if len(box) not in (4, 6) or not all(is_coordinate(v) for v in box):
        return f"4 finite numbers [x1, y1, x2, y2] (6 in 3D) of magnitude <= {MAX_COORDINATE:.0f}"
    dims = len(box) // 2
    axes = "xyz"[:dims]
    if any(box[dims + k] < box[k] for k in range(dims)):
        return " and ".join(f"{a}2 >= {a}1" for a in axes)
    if any(v < 0 for v in box[:dims]):
        return "coordinates >= 0"
    if image_size is not None:
        if len(image_size) != dims:
            return f"a box of {2 * len(image_size)} numbers for an image size of {len(image_size)}"
        if any(box[dims + k] > image_size[k] + EDGE_TOLERANCE for k in range(dims)):
            size = "x".join(_shown(v) for v in image_size)
            limits = ", ".join(f"{a}2 <= {_shown(v)}" for a, v in zip(axes, image_size))
            return f"a box inside the {size} image ({limits})"
    return None


def _shown(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def size_problem(size: object, dims: int = 2) -> str | None:
    """What is wrong with an image size (``[W, H]``, or ``[W, H, D]`` for ``dims=3``), or None when it is valid:
    ``dims`` finite positive numbers.

    >>> size_problem([1024, 768]) is None, size_problem([1024, 0]), size_problem([1, 2], dims=3)
    (True, '[W, H]: 2 positive numbers', '[W, H, D]: 3 positive numbers')
    """
    if not isinstance(size, (list, tuple)) or len(size) != dims or not all(is_coordinate(v) and v > 0 for v in size):
        return f"{'[W, H, D]' if dims == 3 else '[W, H]'}: {dims} positive numbers"
    return None
