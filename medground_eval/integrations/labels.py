"""One label format for every engine: the ground truth of one sample as a JSON object.

OpenRLHF passes the data set's label column to the reward unchanged, verl passes ``reward_model.ground_truth`` and
EasyR1 the ``answer`` column; `medground-eval convert` writes the same label into each of them::

    {"id": "case-7", "solution": [[10, 20, 110, 220]], "phrase": "left pleural effusion",
     "image_size": [1024, 1024], "frame": "qwen2.5-vl"}

- ``solution``: the true boxes in original-image pixels, corner form (4 numbers per box in 2D, 6 in 3D); several
  boxes form one region. Required.
- ``phrase``: the report text the semantic reward compares with. Required.
- ``image_size``: ``[W, H]`` (``[W, H, D]`` in 3D) or null; required by every frame but ``pixel``.
- ``frame``: the coordinate frame the model answers in (a preset of :func:`medground_eval.frames.get_frame`);
  the reward's frame when absent (`pixel` unless the reward config or `serve --frame` / `--max-pixels` sets one).
- ``id`` (optional, for logs) and ``input_size`` (optional ``[w, h]`` of the resized model input).

The names are the reward's column names, so :func:`label_columns` turns a batch of labels into the keyword
columns of :meth:`SpatialSemanticReward.breakdown <medground_eval.rewards.SpatialSemanticReward.breakdown>`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from medground_eval.datasets.textfile import loads
from medground_eval.extras import requires
from medground_eval.frames import Frame, get_frame, preset_name
from medground_eval.rewards import RewardBreakdown, SpatialSemanticReward
from medground_eval.structures import Sample
from medground_eval.validation import is_coordinate

COMPONENTS = ("format", "iou", "spatial", "semantic", "anatomy")
"""The reward components every adapter reports next to the total."""

_EXPECTED = "a JSON object with 'solution' (list of boxes) and 'phrase', optionally 'image_size', 'frame', 'id'"


class LabelError(ValueError):
    """A label that is not valid JSON or misses / mistypes a field; the message names the field and value."""


class BrokenLabel(BaseException):
    """A :class:`LabelError` raised inside an engine that turns every ``Exception`` of a reward call into a reward of
    None (OpenRLHF 0.11's ``SingleTurnAgentExecutor``): a ``BaseException`` passes its ``except Exception``."""


def sample_label(sample: Sample, frame: str | Frame = "pixel") -> dict:
    """The label of ``sample`` for a model answering in ``frame`` (a preset name, or the :class:`Frame` of
    :func:`~medground_eval.frames.resolve_model_frame`, written as its preset name).

    Raises ValueError for an unknown frame, and :class:`LabelError` when the frame needs the image size and the
    sample has none.
    """
    spec = get_frame(frame)
    frame = preset_name(spec, hint=frame if isinstance(frame, str) else None)
    if sample.image_size is None and spec.kind != "pixel":
        raise LabelError(
            f"sample {sample.id!r}: image_size is None: frame {frame!r} needs the image size [W, H]; "
            "give the data set image sizes or use frame 'pixel'"
        )
    return {
        "id": sample.id,
        "solution": sample.boxes.tolist(),
        "phrase": sample.phrase,
        "image_size": None if sample.image_size is None else list(sample.image_size),
        "frame": frame,
    }


def _fail(value: object, field: str, expected: str) -> LabelError:
    shown = repr(value)
    return LabelError(f"label field {field!r} = {shown[:200]}{'...' if len(shown) > 200 else ''}: expected {expected}")


def _solution(value: object) -> list[list[float]]:
    boxes = value if isinstance(value, list) and value and isinstance(value[0], list) else [value]
    expected = "a non-empty list of boxes [x1, y1, x2, y2] (or 6 numbers in 3D) with x2 >= x1, y2 >= y1"
    width = len(boxes[0]) if isinstance(boxes[0], list) else 0
    if width not in (4, 6):
        raise _fail(value, "solution", expected)
    dims = width // 2
    for box in boxes:
        if not isinstance(box, list) or len(box) != width or not all(is_coordinate(v) for v in box):
            raise _fail(value, "solution", expected)
        if any(box[dims + k] < box[k] for k in range(dims)):
            raise _fail(value, "solution", expected)
    return [[float(v) for v in box] for box in boxes]


def _size(value: object, field: str, widths: tuple[int, ...]) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) not in widths or not all(is_coordinate(v) and v > 0 for v in value):
        raise _fail(value, field, f"null or {' / '.join(map(str, widths))} positive numbers")
    return [float(v) for v in value]


def read_label(value: str | bytes | Mapping[str, object], default_frame: str = "pixel") -> dict:
    """Decode (JSON string or bytes) and validate one label; returns a new dict with every field present.
    ``default_frame`` is the frame of a label that names none (:func:`score_labels` passes the reward's).

    Raises :class:`LabelError` naming the field, its value and what was expected.
    """
    if isinstance(value, (str, bytes)):
        try:
            value = loads(value)
        except ValueError as error:
            shown = repr(value)[:200]
            raise LabelError(f"label {shown}: not JSON ({error}); expected {_EXPECTED}") from None
    if not isinstance(value, Mapping):
        raise LabelError(f"label {value!r:.200}: expected {_EXPECTED}")
    for name in ("solution", "phrase"):
        if name not in value:
            raise LabelError(f"label {dict(value)!r:.200}: field {name!r} missing; expected {_EXPECTED}")
    phrase = value["phrase"]
    if not isinstance(phrase, str):
        raise _fail(phrase, "phrase", "a string")
    frame = value.get("frame") or default_frame
    if not isinstance(frame, str):
        raise _fail(frame, "frame", "a frame preset name")
    try:
        kind = get_frame(frame).kind
    except ValueError as error:
        raise LabelError(f"label field 'frame': {error}") from None
    solution = _solution(value["solution"])
    image_size = _size(value.get("image_size"), "image_size", (2, 3))
    if image_size is None and kind != "pixel":
        raise _fail(None, "image_size", f"[W, H]: frame {frame!r} needs the image size")
    label = {
        "id": None if value.get("id") is None else str(value["id"]),
        "solution": solution,
        "phrase": phrase,
        "image_size": image_size,
        "frame": frame,
    }
    input_size = _size(value.get("input_size"), "input_size", (2,))
    if input_size is not None:
        label["input_size"] = input_size
    return label


def label_columns(labels: Sequence[Mapping[str, object]]) -> dict[str, list]:
    """The reward's keyword columns for a batch of labels already read by :func:`read_label`.

    ``image_size`` and ``input_size`` are passed when any label has them (a missing one in a batch that needs it
    is then reported by the reward, naming the row).
    """
    columns: dict[str, list] = {
        "solution": [label["solution"] for label in labels],
        "phrase": [label["phrase"] for label in labels],
        "frame": [label["frame"] for label in labels],
    }
    for name in ("image_size", "input_size"):
        if any(label.get(name) is not None for label in labels):
            columns[name] = [label.get(name) for label in labels]
    return columns


def score_labels(
    reward: SpatialSemanticReward, completions: Sequence[str], labels: Sequence[str | bytes | Mapping[str, object]]
) -> RewardBreakdown:
    """Read every label and score the completions against them: the one core call behind every adapter. A label
    without a ``frame`` is read in the reward's frame (``serve --frame`` / ``--max-pixels`` set it)."""
    if len(completions) != len(labels):
        raise LabelError(f"{len(completions)} completions and {len(labels)} labels: expected one label each")
    default = reward.spatial.frame.spec
    return reward.breakdown(list(completions), **label_columns([read_label(label, default) for label in labels]))


LABEL_FIELDS = ("label", "answer")
"""The label's field in an engine's JSON lines: ``label`` (OpenRLHF), ``answer`` (EasyR1); in Parquet (verl) the
label is ``reward_model.ground_truth``."""


def _file_labels(path: Path):
    """``(row name, label)`` of every record of an engine data file (see :data:`LABEL_FIELDS`)."""
    if path.suffix == ".parquet":
        with requires("convert", "reading a verl Parquet label file"):
            import pyarrow.parquet as pq

        column = pq.read_table(path, columns=["reward_model"]).column("reward_model").to_pylist()
        for row, value in enumerate(column):
            yield f"row {row} field 'reward_model.ground_truth'", (value or {}).get("ground_truth")
        return
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = loads(line)
            except ValueError as error:
                raise LabelError(f"{path}:{line_number}: not JSON ({error})") from None
            field = next((name for name in LABEL_FIELDS if isinstance(record, dict) and name in record), None)
            if field is None:
                raise LabelError(f"{path}:{line_number}: no label field: expected one of {list(LABEL_FIELDS)}")
            yield f"line {line_number} field {field!r}", record[field]


def validate_label_files(paths: Sequence[str | Path]) -> int:
    """Read every label of the engine data files ``paths`` (``.jsonl`` or ``.parquet``); returns how many.

    Raises :class:`LabelError` naming the file, the row or line, the field and what is wrong with the first broken
    label, and FileNotFoundError for a missing file.
    """
    count = 0
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"label file {path}: not found")
        for where, label in _file_labels(path):
            try:
                read_label(label)
            except LabelError as error:
                raise LabelError(f"{path}: {where}: {error}") from None
            count += 1
    return count
