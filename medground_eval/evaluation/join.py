"""The truth/prediction join: ground truth and predictions kept as columns, each prediction joined to its sample.

Rules: a repeated ground-truth id or prediction id is a DataError on the later line (the first one is kept); a
prediction whose id is not in the ground truth is left out and counted (``unmatched``); a non-pixel frame with no
image size (neither the sample's nor the line's) is a DataError, and so is an ``m3d-npy`` line without a crop box
(its own or the sample's) or with one that leaves the volume. Ground-truth samples without a prediction are the
scorer's misses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medground_eval.anatomy import ORIENTATION_FIELDS
from medground_eval.datasets._rows import split_error
from medground_eval.datasets.base import DataError, LoadedDataset, RowErrors
from medground_eval.datasets.jsonl import TruthRecord
from medground_eval.datasets.m3d_refseg import view_sample
from medground_eval.evaluation.predictions import Line, PredictionRecord
from medground_eval.frames import get_frame
from medground_eval.structures import Sample


@dataclass
class TruthTable:
    """Ground truth in columns: ids, phrases, box coordinates (flat floats, ``counts[i]`` boxes per sample), image
    sizes (None: unknown), categories, splits; ``index`` maps an id to its row, ``first_line`` to its line, ``crops`` a
    row to its sample's ``extra["npy_crop_box"]`` (the ``m3d-npy`` frame's default ``input_size``), ``orientation``
    a row to its sample's side-convention fields (``laterality_convention``, ``view``, ``axcodes``: see
    :func:`medground_eval.anatomy.sample_left_on_right`)."""

    dims: int | None = None
    ids: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    first_line: dict[str, int] = field(default_factory=dict)
    flat: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    sizes: list[tuple[float, ...] | None] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
    crops: dict[int, list[float]] = field(default_factory=dict)
    orientation: dict[int, dict[str, object]] = field(default_factory=dict)

    def add(self, row: TruthRecord, path: Path | str | None, line: int | None) -> None:
        """Add a validated ground-truth line; a repeated id is a DataError (the first one is kept)."""
        if row.id in self.index:
            raise DataError(path, line, "id", row.id,
                            f"a unique id (already used on line {self.first_line.get(row.id)})")
        self.index[row.id] = len(self.ids)
        if line is not None:
            self.first_line[row.id] = line
        self.ids.append(row.id)
        self.phrases.append(row.phrase)
        self.flat.extend(row.coords)
        self.counts.append(row.count)
        self.sizes.append(row.image_size)
        self.categories.append(row.category)
        self.splits.append(row.split)

    def add_sample(self, sample: Sample) -> None:
        dims = sample.dims
        if self.dims is None:
            self.dims = dims
        elif dims != self.dims:
            raise DataError(None, None, "boxes", sample.boxes.tolist(), f"{2 * self.dims} numbers per box like the "
                            "other samples of the data set")
        crop = sample.extra.get("npy_crop_box")
        if crop is not None:
            self.crops[len(self.ids)] = [float(v) for v in crop]
        orientation = {k: sample.extra[k] for k in ORIENTATION_FIELDS if sample.extra.get(k) is not None}
        if orientation:
            self.orientation[len(self.ids)] = orientation
        self.add(TruthRecord(sample.id, sample.phrase, sample.boxes.ravel().tolist(), len(sample.boxes),
                             sample.image_size, sample.category, sample.image, sample.split), None, None)

    def keep_split(self, split: str | None, path: Path | str | None) -> TruthTable:
        """This table restricted to ``split`` (the jsonl loader's rule: a split that matches nothing is an error)."""
        if split is None:
            return self
        kept = TruthTable(dims=self.dims)
        width = 2 * (self.dims or 2)
        start = 0
        for i, sample_id in enumerate(self.ids):
            end = start + self.counts[i] * width
            if self.splits[i] == split:
                if i in self.orientation:
                    kept.orientation[len(kept.ids)] = self.orientation[i]
                kept.add(TruthRecord(sample_id, self.phrases[i], self.flat[start:end], self.counts[i],
                                     self.sizes[i], self.categories[i], None, self.splits[i]), None,
                         self.first_line.get(sample_id))
            start = end
        if not kept.ids:
            raise split_error(split, self.splits, path=path)
        return kept


def truth_from_dataset(dataset: LoadedDataset, view: str) -> TruthTable:
    """The samples' ground truth, or that of their 2D ``view`` (ValueError when the data set has none)."""
    if view != "volume" and any(sample.dims != 3 for sample in dataset.samples):
        raise ValueError(f"--view {view}: data set {dataset.name} has 2D boxes; the views (slice, projection) are "
                         "2D views of 3D samples (m3d-refseg)")
    truth = TruthTable()
    for sample in dataset.samples:
        truth.add_sample(view_sample(sample, view))
    return truth


@dataclass
class PredictionTable:
    """Per prediction line kept: the truth row it answers, its raw boxes (flat), frame, sizes and problems;
    ``seen`` maps an id to its line, ``unmatched`` lists the ids not in the ground truth."""

    truth_rows: list[int] = field(default_factory=list)
    flat: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    image_sizes: list[list[float] | None] = field(default_factory=list)
    input_sizes: list[list[float] | None] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)

    def add(self, row: PredictionRecord, truth: TruthTable, path: Path | str | None, line: int,
            truth_row: int | None = None) -> None:
        """Join a validated prediction with the ground truth (row ``truth_row`` when the line carried it): see the
        module docstring for the rules."""
        sample_id = row.id
        if sample_id in self.seen:
            raise DataError(path, line, "id", sample_id, f"a unique prediction id (already used on line "
                            f"{self.seen[sample_id]})")
        index = truth.index.get(sample_id) if truth_row is None else truth_row
        if index is None:
            self.seen[sample_id] = line
            self.unmatched.append(sample_id)
            return
        kind = get_frame(row.frame).kind
        if kind != "pixel" and row.image_size is None and truth.sizes[index] is None:
            raise DataError(path, line, "image_size", None, f"the original image size (frame {row.frame!r} needs it "
                            f"and the ground truth of id {sample_id!r} has none)")
        if kind == "m3d-npy":
            _check_crop(row.input_size, truth.crops.get(index), truth.sizes[index] or row.image_size, sample_id,
                        path, line)
        self.seen[sample_id] = line
        self.truth_rows.append(index)
        self.flat.extend(row.coords)
        self.counts.append(row.count)
        self.frames.append(row.frame)
        self.image_sizes.append(row.image_size)
        self.input_sizes.append(row.input_size)
        self.problems.append(row.problems)


def _check_crop(crop: list[float] | None, default: list[float] | None, size: Sequence[float] | None,
                sample_id: str, path: Path | str | None, line: int) -> None:
    """DataError unless an ``m3d-npy`` line has a crop box (``crop``, else the sample's ``default``) inside the
    volume of ``size`` voxels."""
    if crop is None and default is None:
        raise DataError(path, line, "input_size", None, f"the crop box [x1, y1, z1, x2, y2, z2] of id {sample_id!r} "
                        "(frame 'm3d-npy' needs it; --dataset m3d-refseg with --frame m3d-npy computes it from the CT)")
    if crop is not None and size is not None and any(hi > n for hi, n in zip(crop[3:], size)):
        raise DataError(path, line, "input_size", crop, f"a crop box inside the volume {list(size)} of id "
                        f"{sample_id!r}")


def join_lines(blocks: Iterable[list[Line]], truth: TruthTable, preds: PredictionTable | None, errors: RowErrors,
               path: Path | str | None) -> None:
    """Add validated lines in file order: their ground truth to ``truth``, their predictions (joined) to ``preds``,
    their errors to ``errors`` (raised or counted). A line's truth is added before its prediction error is handled,
    so a carried-truth line with a bad prediction is a miss."""
    for block in blocks:
        for line in block:
            try:
                truth_row = None
                if line.truth is not None:
                    truth.add(line.truth, path, line.number)
                    truth_row = len(truth.ids) - 1
                if line.error is not None:
                    raise line.error
                if line.prediction is not None:
                    preds.add(line.prediction, truth, path, line.number, truth_row)
            except DataError as error:
                errors.handle(error)
