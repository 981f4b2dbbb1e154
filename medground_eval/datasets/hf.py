"""Ground truth from a Hugging Face ``datasets`` folder (``save_to_disk``), such as ``convert --format trl`` writes.

``--dataset hf --data-dir DIR`` scores predictions against the very rows a model was trained or evaluated on. One
sample per row, from the columns :mod:`medground_eval.integrations.hf_data` and ``convert --format trl`` write:

- ``id`` (string or integer) and ``phrase`` (non-empty string): required;
- ``solution``: the true boxes ``[[x1, y1, x2, y2], ...]`` in original-image pixels (or one box): required
  (``boxes`` is accepted in its place, for a folder saved from the jsonl layout);
- ``image_size`` ``[W, H]``, ``image`` (a path; a decoded image column is not a path and is left out),
  ``category`` and ``split``: optional.

Every row is checked by the jsonl loader's one rule (:func:`medground_eval.datasets.jsonl.read_truth_record`), so
errors read ``DIR:N: field 'boxes' = ...: expected ...`` (N the 1-based row). Other columns (``prompt``, ``frame``,
``input_size``) go to ``Sample.extra``. A folder holding a ``DatasetDict`` needs ``split`` to pick one of its
splits; in a single ``Dataset`` folder ``split`` filters on a ``split`` column, as for jsonl. Needs the
``datasets`` package (``pip install "medground-eval[convert]"``).
"""

from __future__ import annotations

from pathlib import Path

from medground_eval.datasets._rows import filter_split
from medground_eval.datasets.base import DataError, LoadedDataset, OnError, RowErrors, register_dataset
from medground_eval.datasets.jsonl import sample_from_record
from medground_eval.structures import Sample


def _dataset(path: Path, split: str | None) -> tuple[object, bool]:
    """The folder's ``Dataset`` (the ``split`` of a ``DatasetDict``) and whether ``split`` was used to pick it."""
    try:
        import datasets
    except ImportError:
        raise ValueError("--dataset hf needs the 'datasets' package: pip install \"medground-eval[convert]\"") from None
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder (expected a Hugging Face datasets folder written by "
                                "save_to_disk, e.g. by `medground-eval convert --format trl`)")
    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as error:
        raise DataError(path, None, None, path.name, f"a Hugging Face datasets folder written by save_to_disk "
                        f"({error})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split is None or split not in loaded:
            raise DataError(path, None, "split", split, f"one of the folder's splits {sorted(loaded)}")
        return loaded[split], True
    return loaded, False


@register_dataset("hf")
def load_hf(path: str | Path, *, split: str | None = None, on_error: OnError = "raise") -> LoadedDataset:
    """Read a ``datasets`` folder (see the module docstring); a repeated ``id`` is an error on the later row."""
    if path is None:
        raise ValueError("--dataset hf needs --data-dir: the folder written by save_to_disk")
    path = Path(path)
    table, picked = _dataset(path, split)
    columns = set(table.column_names)
    if "solution" not in columns and "boxes" not in columns:
        raise DataError(path, None, "solution", None, f"a column of true boxes 'solution' (or 'boxes'); the folder "
                        f"has {sorted(columns)}")
    errors = RowErrors(on_error)
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for row_number, row in enumerate(table, start=1):
        record = {name: value for name, value in row.items() if name not in ("solution", "image")}
        record["boxes"] = row["solution"] if "solution" in row else row.get("boxes")
        if isinstance(row.get("image"), str):
            record["image"] = row["image"]
        try:
            sample = sample_from_record(record, path=path, line=row_number)
            if sample.id in seen:
                raise DataError(path, row_number, "id", sample.id, f"a unique id (already used on row "
                                f"{seen[sample.id]})")
        except DataError as error:
            errors.handle(error)
            continue
        seen[sample.id] = row_number
        samples.append(sample)
    if not picked:
        samples = filter_split(samples, split, path=path)
    return LoadedDataset("hf", samples, errors.skipped)
