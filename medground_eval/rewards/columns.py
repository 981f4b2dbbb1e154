"""Reading the ground-truth columns a trainer passes to a reward (TRL's keyword-column convention).

Columns (one value per completion):

- ``solution``: one box ``[x1, y1, x2, y2]`` or a list of boxes, original-image pixels (6 numbers per box in 3D);
  a JSON string of the same is accepted (data sets often store nested lists as strings).
- ``image_size``: ``[W, H]`` (``[W, H, D]`` in 3D); required by every frame but ``pixel``.
- ``phrase``: the report text the semantic reward compares with, a string per row (``report`` is accepted as an
  alias); an empty string is scored (nothing agrees with it), a None is an error.
- ``frame``: optional, per sample: a frame preset name overriding the reward's configured frame.
- ``input_size``: optional, per sample: ``[w, h]`` of the model's resized input (``resized`` frame).

A missing or malformed column raises :class:`RewardInputError` on the first call, naming the column, the row and
the value: a broken ground truth must stop training, while a broken completion only scores 0. Every row is checked,
whether or not the model wrote a box for it: box and size magnitudes are at most
:data:`~medground_eval.structures.MAX_COORDINATE`, and with the reward's ``frame`` given, each row's frame
conversion is tried on a probe box (an image size Qwen2.5-VL's resize refuses, a 3D-only frame on a 2D row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from medground_eval.datasets.textfile import loads
from medground_eval.frames import Frame, get_frame
from medground_eval.structures import MAX_COORDINATE

PHRASE_COLUMNS = ("phrase", "report")


class RewardInputError(ValueError):
    """A ground-truth column is missing or malformed."""


@dataclass(frozen=True)
class GroundTruthBatch:
    """The ground truth of one batch, validated.

    ``flat`` (M, 2d) holds the true boxes of all rows in order, ``counts[i] >= 1`` of them row i's; ``boxes[i]``
    is the same as a (K_i, 2d) array per row (made on first access). Without a solution column both are empty.
    """

    flat: np.ndarray
    counts: np.ndarray
    image_sizes: np.ndarray | None
    frames: list[str] | None
    input_sizes: np.ndarray | None
    phrases: list[str] | None

    @cached_property
    def boxes(self) -> list[np.ndarray]:
        return np.split(self.flat, np.cumsum(self.counts)[:-1]) if len(self.counts) else []


def _decode(value: object) -> object:
    if isinstance(value, (str, bytes)):
        try:
            return loads(value)
        except ValueError:
            return value
    return value


def _column(columns: Mapping[str, object], name: str, n: int) -> Sequence[object]:
    values = columns[name]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray):
        raise RewardInputError(f"column {name!r} = {values!r:.200}: expected one value per completion (a list of {n})")
    if len(values) != n:
        raise RewardInputError(f"column {name!r} has {len(values)} values for {n} completions: expected one each")
    return values


def _boxes(value: object, row: int, dims: int) -> np.ndarray:
    width = 2 * dims
    expected = f"a box [{', '.join(['x1', 'y1', 'z1'][:dims] + ['x2', 'y2', 'z2'][:dims])}] or a list of such boxes"
    try:
        array = np.asarray(_decode(value), dtype=np.float64)
    except (TypeError, ValueError):
        raise RewardInputError(f"column 'solution' row {row}: value {value!r:.200}: expected {expected}") from None
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != width or array.shape[0] == 0:
        raise RewardInputError(f"column 'solution' row {row}: value {value!r:.200}: expected {expected}")
    if not _bounded(array).all() or (array[:, dims:] < array[:, :dims]).any():
        raise RewardInputError(
            f"column 'solution' row {row}: value {value!r:.200}: expected finite corners with x2 >= x1 and y2 >= y1"
            f" and |value| <= {MAX_COORDINATE:.0f}"
        )
    return array


def _bounded(array: np.ndarray) -> np.ndarray:
    """Elementwise: finite with magnitude at most MAX_COORDINATE."""
    return np.abs(np.nan_to_num(array, nan=np.inf)) <= MAX_COORDINATE


def _all_boxes(values: Sequence[object], dims: int) -> tuple[np.ndarray, np.ndarray]:
    """``(flat boxes, count per row)``. A column of valid lists (one box, or a list of boxes per row) converts in
    one or two numpy calls; anything else row by row, with an error naming the first bad row."""
    width, n = 2 * dims, len(values)
    flat, counts = _rectangular_boxes(values, width)
    if flat is None and all(type(v) is list for v in values):  # lists of boxes of several lengths: one flat list
        nested = [v if v and type(v[0]) is list else [v] for v in values]
        counts = np.fromiter((len(v) for v in nested), dtype=np.int64, count=n)
        try:
            flat = np.asarray([box for v in nested for box in v], dtype=np.float64)
        except (TypeError, ValueError):
            flat = None
        if flat is not None and (flat.shape != (int(counts.sum()), width) or (counts == 0).any()):
            flat = None
    if flat is not None and _bounded(flat).all() and (flat[:, dims:] >= flat[:, :dims]).all():
        return flat, counts
    rows = [_boxes(v, row, dims) for row, v in enumerate(values)]
    counts = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    return (np.concatenate(rows) if rows else np.zeros((0, 2 * dims))), counts


def _rectangular_boxes(values: Sequence[object], width: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A column of one box per row, or of the same number of boxes per row, in one numpy call; (None, None) else."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None, None
    n = len(values)
    if array.shape == (n, width):
        return array, np.ones(n, dtype=np.int64)
    if array.ndim == 3 and array.shape[0] == n and array.shape[1] >= 1 and array.shape[2] == width:
        return array.reshape(-1, width), np.full(n, array.shape[1], dtype=np.int64)
    return None, None


_SIZE_SHAPES = {2: "[W, H]", 3: "[W, H, D]", 6: "a crop box [x1, y1, z1, x2, y2, z2]"}


def _sizes(values: Sequence[object], name: str, width: int) -> np.ndarray:
    """(n, width) floats; a None row is NaN (the caller decides whether it may be missing).

    Width 2 or 3: positive sizes. Width 6: a crop box in original voxels, with x1 >= 0 and x2 > x1 on every axis.
    A column of valid number rows converts in one numpy call; anything else (None rows, JSON strings, a bad value)
    row by row, with an error naming the first bad row.
    """
    try:
        array = np.array(values, dtype=np.float64)  # a copy: the caller's column is never aliased
    except (TypeError, ValueError):
        array = None
    if array is not None and array.shape == (len(values), width) and _bounded(array).all():
        valid = (array > 0).all() if width != 6 else (array >= 0).all() and (array[:, 3:] > array[:, :3]).all()
        if valid:
            return array
    out = np.full((len(values), width), np.nan)
    for row, value in enumerate(values):
        if value is None:
            continue
        try:
            size = np.asarray(_decode(value), dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            size = np.empty(0)
        valid = size.shape == (width,) and bool(_bounded(size).all())
        if valid:
            valid = bool((size > 0).all()) if width != 6 else bool((size >= 0).all() and (size[3:] > size[:3]).all())
        if not valid:
            raise RewardInputError(
                f"column {name!r} row {row}: value {value!r:.200}: expected {width} numbers, {_SIZE_SHAPES[width]}"
            )
        out[row] = size
    return out


def read_ground_truth(
    n: int,
    columns: Mapping[str, object],
    *,
    dims: int = 2,
    need_image_size: bool = False,
    need_phrase: bool = False,
    need_solution: bool = True,
    frame: Frame | None = None,
) -> GroundTruthBatch:
    """Validate and convert the ground-truth columns of a batch of ``n`` completions.

    ``frame``: the reward's frame (a row's ``frame`` column value overrides it); when given, every row's conversion
    to pixels is checked here, so a size or frame a conversion refuses stops the first call, not the first call in
    which the model happens to write a box for that row.

    >>> truth = read_ground_truth(2, {"solution": [[0, 0, 10, 10], [[0, 0, 5, 5], [6, 6, 9, 9]]]})
    >>> truth.counts.tolist(), truth.flat.shape
    ([1, 2], (3, 4))
    """
    flat, counts = np.zeros((0, 2 * dims)), np.zeros(0, dtype=np.int64)
    if need_solution:
        if "solution" not in columns:
            raise RewardInputError(_missing("solution", columns, "the true box(es) per completion, original pixels"))
        flat, counts = _all_boxes(_column(columns, "solution", n), dims)

    frames = None
    needs_size = np.full(n, need_image_size)
    if columns.get("frame") is not None:
        frames = [str(v) for v in _column(columns, "frame", n)]
        kinds = {}
        for row, spec in enumerate(frames):
            try:
                kinds.setdefault(spec, get_frame(spec).kind)
            except ValueError as error:
                raise RewardInputError(f"column 'frame' row {row}: {error}") from None
        needs_size = np.array([kinds[spec] != "pixel" for spec in frames], dtype=bool).reshape(n)

    image_sizes = None
    if columns.get("image_size") is not None:
        image_sizes = _sizes(_column(columns, "image_size", n), "image_size", dims)
        missing = needs_size & np.isnan(image_sizes).any(axis=1)
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise RewardInputError(f"column 'image_size' row {row}: value None: expected [W, H] (its frame needs it)")
    elif needs_size.any():
        raise RewardInputError(_missing("image_size", columns, "[W, H] per completion, needed by this frame"))

    input_sizes = None
    if columns.get("input_size") is not None:
        # [w, h] of a resized 2D input; in 3D the m3d-npy frame's crop box [x1, y1, z1, x2, y2, z2]
        input_sizes = _sizes(_column(columns, "input_size", n), "input_size", 2 if dims == 2 else 6)

    phrases = None
    if need_phrase:
        name = next((c for c in PHRASE_COLUMNS if columns.get(c) is not None), None)
        if name is None:
            raise RewardInputError(_missing("phrase", columns, "the report text per completion", alias="report"))
        phrases = list(_column(columns, name, n))
        bad = next((row for row, value in enumerate(phrases) if not isinstance(value, str)), None)
        if bad is not None:
            raise RewardInputError(
                f"column {name!r} row {bad}: value {phrases[bad]!r:.200}: expected the report text (a string)"
            )

    truth = GroundTruthBatch(flat, counts, image_sizes, frames, input_sizes, phrases)
    if frame is not None and n:
        _check_conversions(truth, frame, dims, n)
    return truth


def _check_conversions(truth: GroundTruthBatch, frame: Frame, dims: int, n: int) -> None:
    """Convert one probe box per row as the reward would; RewardInputError naming the first row a conversion
    refuses (found row by row only once the batch failed)."""
    from medground_eval.regions import boxes_to_pixels

    def convert(rows: np.ndarray) -> None:
        boxes_to_pixels(np.zeros((len(rows), 2 * dims)), np.ones(len(rows), dtype=np.int64),
                        frames=frame if truth.frames is None else [truth.frames[i] for i in rows],
                        image_sizes=None if truth.image_sizes is None else truth.image_sizes[rows],
                        input_sizes=None if truth.input_sizes is None else truth.input_sizes[rows], dims=dims)

    try:
        convert(np.arange(n))
        return
    except ValueError:
        pass
    for row in range(n):
        try:
            convert(np.array([row]))
        except ValueError as error:
            raise RewardInputError(_conversion_error(truth, frame, row, str(error))) from None


def _conversion_error(truth: GroundTruthBatch, frame: Frame, row: int, error: str) -> str:
    """The message of a refused conversion, naming the column the conversion blamed (a size, else the frame)."""
    spec = truth.frames[row] if truth.frames is not None else None
    shown = {"frame": spec if spec is not None else f"{frame.kind} (the reward's frame)"}
    for name, column in (("image_size", truth.image_sizes), ("input_size", truth.input_sizes)):
        if column is not None:
            shown[name] = column[row].tolist()
    blamed = ("input_size" if "input_size" in error else
              "image_size" if "image_size" in error or "smart_resize" in error else "frame")
    context = ", ".join(f"{name} {value!r}" for name, value in shown.items() if name != blamed)
    return f"column {blamed!r} row {row}: value {shown.get(blamed)!r}: {error} ({context})"


def _missing(name: str, columns: Mapping[str, object], what: str, alias: str | None = None) -> str:
    given = sorted(k for k in columns if k not in ("trainer_state", "log_extra", "log_metric", "completion_ids"))
    called = f"{name!r}" if alias is None else f"{name!r} (or its alias {alias!r})"
    return f"missing column {called} ({what}); the reward was given columns {given}"
