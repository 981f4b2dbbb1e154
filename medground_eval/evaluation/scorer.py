"""Score a predictions file against a data set's ground truth: the engine of ``medground-eval score``.

Predictions are JSON lines, one per sample::

    {"id": "case-7", "completion": "<think>...</think><answer>...</answer>"}    # text or chat messages
    {"id": "case-8", "pred_boxes": [[10, 20, 110, 220]], "frame": "norm1000"}  # boxes already extracted

- ``frame`` (optional, per line) overrides the run's frame; ``image_size`` ``[W, H(, D)]`` (optional) is used when
  the data set lacks it (``resized`` needs the original size). ``input_size`` (optional) is the frame's second
  size: ``[w, h]`` of the model input for ``resized``; for ``m3d-npy`` the crop box ``[x1, y1, z1, x2, y2, z2]`` in
  original voxels, by default the sample's ``extra["npy_crop_box"]`` (M3D-RefSeg loaded with ``npy_crop=True``,
  which :func:`score_files` does when the run's frame is ``m3d-npy``).
- ``pred_boxes`` is a list of boxes (or one box) in the line's frame; ``[]`` means no prediction (a parse failure).
- With ``dataset="jsonl"`` and no ``annotations``, each prediction line also carries its ground truth
  (``phrase``, ``boxes``, ... as in :mod:`medground_eval.datasets.jsonl`).
- ``view`` (M3D-RefSeg): ``volume`` scores 3D boxes against the 3D ground truth; ``slice`` / ``projection`` score
  2D boxes ``[x1, y1, x2, y2]`` against the 2D view of each sample
  (:func:`medground_eval.datasets.m3d_refseg.view_sample`), image size ``[X, Y]``.

Joining: a ground-truth sample with no prediction scores as a miss (IoU 0, counted in ``missing_predictions``,
not a parse failure); a prediction whose id is not in the ground truth is left out and counted in
``unmatched_predictions``; a repeated prediction id is an error. A bad line raises
:class:`~medground_eval.datasets.DataError` naming the file, line, field and value, or under ``on_error="skip"``
is left out and counted in ``skipped_lines``. A line that carries valid ground truth and a bad prediction keeps
its ground truth: the sample is a miss, as with a separate annotations file.

Completions without an ``<answer>`` tag (zero-shot baselines answering plain JSON or ``<ref>..</ref><box>..</box>``)
are parse failures by default; ``answer_tag="optional"`` (``--answer-tag optional``) reads their boxes from the text
after ``</think>`` (or the whole text) as :func:`~medground_eval.parsing.parse_completion` documents; the run's
``config`` records the setting, and it cannot be combined with a ``compat`` preset (which has its own parse rules).

The path from completion to pixels is the one of the rewards: :func:`medground_eval.regions.parse_batch` (with its
canonical Qwen2.5-VL fast path) and :func:`medground_eval.regions.boxes_to_pixels`. The work is split by job:
:mod:`~medground_eval.evaluation.predictions` reads and validates lines (each completion parsed once),
:mod:`~medground_eval.evaluation.join` joins predictions with the ground truth,
:mod:`~medground_eval.evaluation.overlaps` computes the per-sample scores under the run's
:class:`~medground_eval.evaluation.compat.ScoringRules`, and :mod:`~medground_eval.evaluation.result` holds the
result; this module checks the options and wires them together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medground_eval.anatomy import LateralityReport, convention_name, laterality_columns, sample_left_on_right
from medground_eval.datasets.base import DataError, LoadedDataset, OnError, RowErrors, SkippedRow, get_loader
from medground_eval.datasets.m3d_refseg import VIEWS
from medground_eval.evaluation.compat import DEFAULT_PARSE_RULES, ScoringRules, get_rules
from medground_eval.evaluation.diagnosis import record_diagnosis
from medground_eval.evaluation.join import PredictionTable, TruthTable, join_lines, truth_from_dataset
from medground_eval.evaluation.overlaps import ScoredSamples, score_samples
from medground_eval.evaluation.predictions import RECORDS, ReadTask, frame_dims_problem, read_block, read_file
from medground_eval.evaluation.result import (
    EXAMPLES_KEPT,
    UNTAGGED_PARSE_RULES,
    ScoreResult,
    join_notes,
    run_config,
)
from medground_eval.frames import Frame, get_frame
from medground_eval.metrics import DEFAULT_THRESHOLDS, grounding_report
from medground_eval.parsing import ANSWER_TAGS

__all__ = [
    "DEFAULT_PARSE_RULES", "EXAMPLES_KEPT", "RECORDS", "UNTAGGED_PARSE_RULES", "ScoreResult", "join_notes",
    "score_files", "score_predictions",
]


def _check_run(frame: str, compat: str | None, on_error: str, view: str, answer_tag: str) -> tuple[str, ScoringRules]:
    """The frame's text (a preset name in lower case, or a :class:`Frame`'s spec) and the run's rules; ValueError
    for a bad option."""
    frame = get_frame(frame).spec if isinstance(frame, Frame) else frame.strip().lower()
    get_frame(frame)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error = {on_error!r}: expected 'raise' or 'skip'")
    if answer_tag not in ANSWER_TAGS:
        raise ValueError(f"--answer-tag {answer_tag!r}: expected one of {', '.join(ANSWER_TAGS)}")
    if answer_tag != "required" and compat is not None:
        raise ValueError(f"--answer-tag {answer_tag} with --compat {compat}: the compat preset has its own parse "
                         "rules; drop --answer-tag, or drop --compat to score untagged answers")
    if view not in VIEWS:
        raise ValueError(f"--view {view!r}: expected one of {', '.join(VIEWS)}")
    if view != "volume" and get_frame(frame).kind == "m3d-npy":
        raise ValueError(f"--frame m3d-npy with --view {view}: the frame writes 3D boxes; the {view} view scores 2D "
                         "boxes (use --view volume, or a 2D frame such as voxel or norm1000)")
    rules = get_rules(compat)
    if rules.raw_coordinates and get_frame(frame).kind != "pixel":
        raise ValueError(f"--frame {frame!r} with --compat {rules.name}: the preset compares raw coordinates with the "
                         "ground truth (no rescaling); use --frame pixel")
    return frame, rules


def _check_frame_dims(frame: str, truth: TruthTable) -> None:
    """ValueError when the run's frame cannot write the ground truth's boxes."""
    problem = None if truth.dims is None else frame_dims_problem(frame, truth.dims)
    if problem is not None:
        raise ValueError(f"--frame {frame}: the ground truth has {truth.dims}D boxes; expected {problem}")


def _anatomy(truth: TruthTable, scored: ScoredSamples, convention: str) -> LateralityReport:
    """The run's laterality and zone metrics (docs/metrics.md, "Anatomy"), against the samples' own true boxes."""
    width = 2 * (truth.dims or 2)
    left_on_right = np.array([sample_left_on_right(truth.orientation.get(i), convention) for i in range(len(truth.ids))]
                             if truth.orientation else [convention_name(convention) == "radiological"], dtype=bool)
    return laterality_columns(
        truth.phrases, scored.pred_flat, scored.pred_counts,
        np.asarray(truth.flat, dtype=np.float64).reshape(-1, width),
        np.asarray(truth.counts, dtype=np.int64), scored.image_sizes, left_on_right=left_on_right,
        categories=truth.categories,
    )


def _result(truth: TruthTable, preds: PredictionTable, rules: ScoringRules, config: dict[str, Any]) -> ScoreResult:
    """Score the join and summarise it; fills ``config`` with the join counts (and ``view`` None for 2D ground truth
    read as is: the M3D-RefSeg view only applies to 3D samples)."""
    scored = score_samples(truth, preds, rules)
    # A compat preset compares its script's own coordinates (raw, or rescaled inside its arithmetic): sides read from
    # them against the image's midline would be wrong, so its runs report no anatomy.
    anatomy = None if rules.name is not None else _anatomy(truth, scored, config["convention"])
    if (truth.dims or 2) == 2 and config["view"] == "volume":
        config["view"] = None
    config["unmatched_predictions"] = len(preds.unmatched)
    config["unmatched_examples"] = preds.unmatched[:EXAMPLES_KEPT]
    config["missing_predictions"] = int(scored.missing.sum())
    config["missing_examples"] = [truth.ids[i] for i in scored.missing.nonzero()[0][:EXAMPLES_KEPT]]
    config["matched_predictions"] = len(preds.truth_rows)
    config["ground_truth_samples"] = len(truth.ids)
    if preds.unmatched:
        config["expected_id_examples"] = truth.ids[:3]
    config["frames_used"] = dict(Counter(get_frame(f).spec for f in preds.frames).most_common())
    config["input_sizes_given"] = sum(s is not None for s in preds.input_sizes)
    report = grounding_report(scored.scores, thresholds=config["thresholds"], inclusive=config["inclusive"],
                              n_bootstrap=config["n_bootstrap"], seed=config["seed"])
    result = ScoreResult(report=report, per_sample=scored.scores, problems=scored.problems, config=config,
                         anatomy=anatomy, matched=scored.matched)
    record_diagnosis(result)
    return result


def score_files(
    predictions_path: str | Path,
    *,
    dataset: str,
    annotations: str | Path | None = None,
    split: str | None = None,
    frame: str = "pixel",
    compat: str | None = None,
    on_error: OnError = "raise",
    thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
    inclusive: bool = True,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    progress: Callable[[int], None] | None = None,
    view: str = "volume",
    answer_tag: str = "required",
    convention: str = "radiological",
) -> ScoreResult:
    """Score the predictions file against ``dataset`` (a loader name) read from ``annotations``.

    ``dataset="jsonl"`` reads ``annotations`` as jsonl ground truth, or, when it is None, the ground-truth fields
    of the prediction lines themselves; other data sets need ``annotations`` (their loader's path). ``frame`` is
    the default frame of the predictions (a :data:`~medground_eval.frames.FRAME_PRESETS` name); ``compat`` a
    :mod:`medground_eval.evaluation.compat` preset name, whose rules then decide parsing, IoU and the hit rule
    (``inclusive`` is ignored). ``progress`` is called with the bytes read, of a jsonl ``annotations`` file first,
    then of the predictions file (:func:`progress_total` is their sum); once with 0 between
    the two. ``view`` picks the target of 3D samples
    (``volume``, ``slice``, ``projection``; see the module doc); under the ``m3d-npy`` frame, ``m3d-refseg`` is
    loaded with ``npy_crop=True``. ``answer_tag``: "required" (default) or "optional" (read completions without
    ``<answer>``; not with ``compat``). ``convention``: the side convention of the anatomy metrics ("radiological",
    the default, or "neurological"; a sample's own ``laterality_convention``, ``axcodes`` or ``view`` field wins).
    Raises DataError for a bad line (unless ``on_error="skip"``), ValueError for a bad option, FileNotFoundError
    for a missing file.
    """
    frame, rules = _check_run(frame, compat, on_error, view, answer_tag)
    convention = convention_name(convention)
    if view != "volume" and dataset == "jsonl":
        raise ValueError(f"--view {view}: data set jsonl has 2D boxes; the views (slice, projection) are 2D views of "
                         "3D samples (m3d-refseg)")
    predictions_path = Path(predictions_path)
    if not predictions_path.is_file():
        raise FileNotFoundError(f"{predictions_path}: no such predictions file")
    carried = dataset == "jsonl" and annotations is None
    truth = TruthTable(dims=2 if dataset == "jsonl" else None)
    truth_errors = RowErrors(on_error)
    duplicates: list[SkippedRow] = []
    if dataset == "jsonl" and annotations is not None:
        annotations = Path(annotations)
        if not annotations.is_file():
            raise FileNotFoundError(f"{annotations}: no such jsonl ground-truth file")
        task = ReadTask("truth", 2, frame, rules)
        join_lines(read_file(annotations, task, progress), truth, None, truth_errors, annotations)
        truth = truth.keep_split(split, annotations)
    elif not carried:
        if annotations is None:
            raise ValueError(f"--dataset {dataset} needs --annotations (alias --data-dir): the data set's file or "
                             "folder")
        # The m3d-npy frame's default input_size is each CT's crop box, which only reading the CT data gives.
        options = {"npy_crop": True} if dataset == "m3d-refseg" and get_frame(frame).kind == "m3d-npy" else {}
        loaded = get_loader(dataset)(annotations, split=split, on_error=on_error, **options)
        truth = truth_from_dataset(loaded, view)
        truth_errors.skipped.extend(loaded.skipped)
        duplicates = loaded.duplicates
    _check_frame_dims(frame, truth)

    errors = RowErrors(on_error)
    preds = PredictionTable()
    task = ReadTask("both" if carried else "prediction", truth.dims or 2, frame, rules, split if carried else None,
                    answer_tag, mscxr_keys=dataset == "mscxr")
    if progress is not None:
        progress(0)  # the ground truth is loaded: the predictions are read next
    join_lines(read_file(predictions_path, task, progress), truth, preds, errors, predictions_path)
    if not preds.seen and not errors.skipped:
        raise DataError(predictions_path, None, None, "no lines", "at least one prediction line (the file is empty)")
    if carried and split is not None and not truth.ids:
        raise DataError(predictions_path, None, "split", split, "a split that some prediction line has")
    return _result(truth, preds, rules, run_config(
        dataset=dataset, annotations=annotations, predictions=predictions_path, split=split, frame=frame,
        rules=rules, thresholds=thresholds, inclusive=inclusive, n_bootstrap=n_bootstrap, seed=seed,
        on_error=on_error, skipped=truth_errors.skipped + errors.skipped, view=view, answer_tag=answer_tag,
        convention=convention,
        duplicates=duplicates,
    ))


def progress_total(predictions_path: str | Path, *, dataset: str, annotations: str | Path | None = None) -> int:
    """The bytes :func:`score_files` reports to ``progress``: the predictions file, plus a jsonl annotations file."""
    total = Path(predictions_path).stat().st_size
    if dataset == "jsonl" and annotations is not None and Path(annotations).is_file():
        total += Path(annotations).stat().st_size
    return total


def score_predictions(
    records: Iterable[Mapping[str, Any]],
    dataset: LoadedDataset,
    *,
    frame: str = "pixel",
    compat: str | None = None,
    on_error: OnError = "raise",
    thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
    inclusive: bool = True,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    view: str = "volume",
    answer_tag: str = "required",
    convention: str = "radiological",
) -> ScoreResult:
    """Score in-memory prediction records (the objects of a predictions file) against a loaded data set.

    Errors name the record as ``<records>:N`` (N its 1-based position). Same rules as :func:`score_files`
    (the ``m3d-npy`` frame's crop boxes come from the records or the samples' ``extra["npy_crop_box"]``).
    """
    frame, rules = _check_run(frame, compat, on_error, view, answer_tag)
    convention = convention_name(convention)
    errors = RowErrors(on_error)
    truth = truth_from_dataset(dataset, view)
    _check_frame_dims(frame, truth)
    task = ReadTask("prediction", truth.dims or 2, frame, rules, answer_tag=answer_tag,
                    mscxr_keys=dataset.name == "mscxr")
    preds = PredictionTable()
    join_lines([read_block(enumerate(records, start=1), task, RECORDS)], truth, preds, errors, RECORDS)
    return _result(truth, preds, rules, run_config(
        dataset=dataset.name, annotations=None, predictions=None, split=None, frame=frame, rules=rules,
        thresholds=thresholds, inclusive=inclusive, n_bootstrap=n_bootstrap, seed=seed, on_error=on_error,
        skipped=list(dataset.skipped) + errors.skipped, view=view, answer_tag=answer_tag, convention=convention,
        duplicates=dataset.duplicates,
    ))
