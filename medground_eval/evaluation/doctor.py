"""``medground-eval doctor``: everything that can make a grounding number wrong, found in one file.

Two inputs:

- a predictions file with its data set (as ``score`` reads them): the run is scored (partial joins allowed, so the
  join itself can be reported) and examined;
- a GRPO rollout log: JSON lines of completions each carrying its ground truth, as the engines log them::

      {"completion": "<think>..</think><answer>..</answer>", "solution": [[x1, y1, x2, y2]], "image_size": [W, H],
       "frame": "qwen2.5-vl", "group": 17, "reward": 0.42}

  The ground truth is the engine label (:mod:`medground_eval.integrations.labels`): ``solution`` (or ``boxes``) in
  original pixels, ``image_size``, optional ``frame``, ``input_size`` and ``phrase``, at the top level or as a
  ``label`` object (or JSON string). The group id is the first of :data:`GROUP_KEYS` present; ``reward`` is
  optional (without it, each completion's IoU stands for its reward in the group check).

The checks (:data:`CHECKS`) each take the :class:`DoctorInputs` and return :class:`~.diagnosis.Finding` records:
frame fit and coordinate ranges (:mod:`~medground_eval.evaluation.diagnosis`), the id join, parse failures,
degenerate answers (whole-image boxes, one box for every sample, zero-area boxes), out-of-frame answers and, for
rollouts with group ids, groups whose rewards have zero variance (no GRPO advantage, so no gradient). A new check is
a function appended to :data:`CHECKS`.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medground_eval.datasets.base import DataError, LoadedDataset, RowErrors
from medground_eval.datasets.jsonl import sample_from_record
from medground_eval.datasets.textfile import loads, text_lines
from medground_eval.evaluation.diagnosis import (
    MIN_SAMPLES,
    Finding,
    FrameFit,
    diagnose,
    join_numbers,
)
from medground_eval.evaluation.result import ScoreResult
from medground_eval.regions import boxes_to_pixels

GROUP_KEYS = ("group", "group_id", "prompt_id", "uid", "prompt_index")
"""Fields a rollout line may carry its GRPO group id in (verl keys its groups by ``uid``)."""
WHOLE_IMAGE_SHARE = 0.9
"""A predicted box covering at least this share of the image area counts as a whole-image box."""
DEGENERATE_SHARE = 0.1
"""Whole-image boxes are reported when at least this share of the answers are such boxes."""
SAME_BOX_SHARE = 0.5
"""One box written for at least this share of the answers (on at least :data:`MIN_SAMPLES`) is reported."""
ZERO_VARIANCE_SHARE = 0.5
"""Rollout groups whose rewards are all equal are reported when at least this share of the groups are."""
OUT_OF_FRAME_SHARE = 0.1
"""Answers with a coordinate outside the frame's extent are reported above this share."""


@dataclass(frozen=True)
class DoctorInputs:
    """What the checks examine: the scored run, and for a rollout log each matched sample's group id and logged
    reward (None when the log has none)."""

    source: str
    kind: str  # "predictions" or "rollouts"
    result: ScoreResult
    groups: Sequence[object] | None = None
    rewards: Sequence[float | None] | None = None


@dataclass
class DoctorReport:
    """The doctor's findings and the tables behind them (:meth:`to_dict` is ``--json``)."""

    source: str
    kind: str
    samples: int
    frame_fit: FrameFit | None
    join: dict[str, Any]
    parse_failures: list[dict[str, Any]]
    degenerate: dict[str, Any]
    out_of_frame: dict[str, Any]
    groups: dict[str, Any] | None
    findings: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "samples": self.samples,
                "frame_fit": None if self.frame_fit is None else self.frame_fit.to_dict(), "join": self.join,
                "parse_failures": self.parse_failures, "degenerate": self.degenerate,
                "out_of_frame": self.out_of_frame, "groups": self.groups,
                "findings": [f.to_dict() for f in self.findings]}


def _reason_key(reason: str) -> str:
    """A parse problem with its numbers replaced by N, so "box 2 has 3 numbers" and "box 1 has 5 numbers" group."""
    return re.sub(r"\d+(\.\d+)?", "N", reason)


def parse_failure_table(result: ScoreResult) -> list[dict[str, Any]]:
    """Per kind of parse problem of the matched predictions: count and one example (id and the exact text),
    most frequent first. A sample without prediction is the join's, not listed here."""
    counts: Counter = Counter()
    examples: dict[str, tuple[str, str]] = {}
    for sample_id, problems in zip(result.per_sample.ids.tolist(), result.problems):
        if not problems or problems == "no prediction":
            continue
        for reason in problems.split("; "):
            key = _reason_key(reason)
            counts[key] += 1
            examples.setdefault(key, (sample_id, reason))
    return [{"reason": key, "count": n, "example_id": examples[key][0], "example": examples[key][1]}
            for key, n in counts.most_common()]


def _converted(inputs: DoctorInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The matched answers' boxes in pixels, their owner prediction and image size per box (2D, known sizes)."""
    boxes = inputs.result.matched
    if boxes is None or not len(boxes.flat):
        return None
    known = ~np.isnan(boxes.image_sizes).any(axis=1)
    owner = np.repeat(np.arange(len(boxes.counts)), boxes.counts)
    keep = known[owner]
    specs = list(boxes.frames)
    converted, _ = boxes_to_pixels(boxes.flat[keep], boxes.counts[known],
                                   frames=[specs[i] for i in np.flatnonzero(known)],
                                   image_sizes=boxes.image_sizes[known],
                                   input_sizes=None if boxes.input_sizes is None else boxes.input_sizes[known], dims=2)
    return converted, owner[keep], boxes.image_sizes[owner[keep]]


def degenerate_table(inputs: DoctorInputs) -> dict[str, Any]:
    """Counts of whole-image boxes, zero-area boxes and the most repeated raw box among the answers."""
    boxes = inputs.result.matched
    if boxes is None or not len(boxes.flat):
        return {"answers": 0, "whole_image": 0, "zero_area": 0, "most_common_box": None, "most_common_count": 0}
    answered = int((boxes.counts > 0).sum())
    zero_area = int(((boxes.flat[:, 2] <= boxes.flat[:, 0]) | (boxes.flat[:, 3] <= boxes.flat[:, 1])).sum())
    whole = 0
    converted = _converted(inputs)
    if converted is not None:
        pixels, owner, sizes = converted
        area = (pixels[:, 2] - pixels[:, 0]) * (pixels[:, 3] - pixels[:, 1])
        whole_box = area >= WHOLE_IMAGE_SHARE * sizes.prod(axis=1)
        whole = len(np.unique(owner[whole_box]))
    first = np.concatenate([[0], np.cumsum(boxes.counts)[:-1]])[boxes.counts > 0]
    common = Counter(map(tuple, boxes.flat[first].tolist())).most_common(1)
    return {"answers": answered, "whole_image": whole, "zero_area": zero_area,
            "most_common_box": list(common[0][0]) if common else None,
            "most_common_count": common[0][1] if common else 0}


def group_table(inputs: DoctorInputs) -> dict[str, Any] | None:
    """For a rollout log with group ids: groups (of 2 or more completions), those whose rewards are all equal, and
    which reward was used (``logged`` or ``iou``)."""
    if inputs.groups is None or all(g is None for g in inputs.groups):
        return None
    logged = inputs.rewards is not None and all(r is not None for r in inputs.rewards)
    rewards = np.asarray(inputs.rewards if logged else inputs.result.per_sample.iou, dtype=np.float64)
    members: dict[object, list[float]] = {}
    for group, reward in zip(inputs.groups, rewards.tolist()):
        members.setdefault(group, []).append(reward)
    sized = [values for values in members.values() if len(values) >= 2]
    flat = [values for values in sized if max(values) - min(values) <= 1e-12]
    all_zero = sum(1 for values in flat if max(values) == 0)
    return {"groups": len(sized), "zero_variance": len(flat), "all_zero": all_zero,
            "share": len(flat) / len(sized) if sized else 0.0, "reward": "logged" if logged else "iou",
            "singletons": len(members) - len(sized)}


def frame_checks(inputs: DoctorInputs) -> list[Finding]:
    """Frame fit, coordinate ranges and the join (:func:`~.diagnosis.diagnose`)."""
    return diagnose(inputs.result)[1]


def parse_check(inputs: DoctorInputs) -> list[Finding]:
    table = parse_failure_table(inputs.result)
    failed = int(inputs.result.per_sample.parse_failed.sum())
    if not failed:
        return []
    top = table[0] if table else None
    return [Finding("parse-failures", f"{failed} of {len(inputs.result.per_sample.ids)} answers have no valid box"
                    + (f"; most common problem: {top['reason']!r} ({top['count']}x, e.g. {top['example_id']})"
                       if top else ""),
                    {"failed": failed, "reasons": table[:10]},
                    "See the parse-failure table for every reason with an example; a format the parser does not "
                    "read is an issue to report.", severity="warning" if failed else "info")]


def degenerate_check(inputs: DoctorInputs) -> list[Finding]:
    table = degenerate_table(inputs)
    answers, findings = table["answers"], []
    if answers and table["whole_image"] >= max(1, DEGENERATE_SHARE * answers):
        findings.append(Finding(
            "degenerate-whole-image", f"{table['whole_image']} of {answers} answers are whole-image boxes "
            f"(>= {WHOLE_IMAGE_SHARE:.0%} of the image)", {k: table[k] for k in ("answers", "whole_image")},
            "A model that boxes the whole image collects IoU for large findings without locating anything; "
            "check the prompt, and the reward's shaping (reward hacking)."))
    if answers >= MIN_SAMPLES and table["most_common_count"] >= SAME_BOX_SHARE * answers:
        findings.append(Finding(
            "degenerate-same-box", f"{table['most_common_count']} of {answers} answers write the same box "
            f"{table['most_common_box']}", {k: table[k] for k in ("answers", "most_common_box", "most_common_count")},
            "The model ignores the image and phrase (a collapsed policy or a template answer)."))
    if table["zero_area"]:
        findings.append(Finding(
            "degenerate-zero-area", f"{table['zero_area']} answer boxes have zero area (x2 = x1 or y2 = y1)",
            {"zero_area": table["zero_area"]}, "They score IoU 0; points written as boxes are a format problem.",
            severity="info"))
    return findings


def out_of_frame_check(inputs: DoctorInputs) -> list[Finding]:
    out = int(inputs.result.per_sample.out_of_frame.sum())
    n = len(inputs.result.per_sample.ids)
    if not n or out < OUT_OF_FRAME_SHARE * n:
        return []
    return [Finding("out-of-frame", f"{out} of {n} answers have a coordinate outside their frame (clipped to the "
                    "image before scoring)", {"out_of_frame": out, "samples": n},
                    "Many answers outside the frame usually mean another frame; see the frame-fit table.")]


def group_check(inputs: DoctorInputs) -> list[Finding]:
    table = group_table(inputs)
    if table is None or not table["groups"] or table["share"] < ZERO_VARIANCE_SHARE:
        return []
    return [Finding("zero-variance-groups", f"{table['zero_variance']} of {table['groups']} rollout groups have "
                    f"rewards that are all equal ({table['all_zero']} all zero, reward: {table['reward']}): GRPO's "
                    "advantage is 0 there, so they give no gradient", table,
                    "All-zero groups usually mean a frame or format error (see above); all-equal non-zero ones a "
                    "saturated or too coarse reward.")]


CHECKS: list[Callable[[DoctorInputs], list[Finding]]] = [
    frame_checks, parse_check, degenerate_check, out_of_frame_check, group_check,
]
"""The doctor's checks, in report order; each returns its findings (append a function to add a check)."""


def examine(inputs: DoctorInputs) -> DoctorReport:
    """Run every check of :data:`CHECKS` on ``inputs`` and collect the tables."""
    result = inputs.result
    fit, _ = diagnose(result)
    join = join_numbers(result)
    out = {"out_of_frame": int(result.per_sample.out_of_frame.sum()), "samples": len(result.per_sample.ids)}
    findings = [finding for check in CHECKS for finding in check(inputs)]
    return DoctorReport(inputs.source, inputs.kind, len(result.per_sample.ids), fit, join,
                        parse_failure_table(result), degenerate_table(inputs), out, group_table(inputs), findings)


def _label_fields(record: Mapping[str, Any], path: Path, line: int) -> dict[str, Any]:
    """A rollout line's ground truth as a jsonl record (``boxes``, ``phrase``, ``image_size``), plus its frame and
    input size; DataError naming the line when it has none."""
    label: Any = record.get("label", record)
    if isinstance(label, str):
        try:
            label = loads(label)
        except ValueError:
            raise DataError(path, line, "label", label[:200], "a JSON object (the engine label)") from None
    if not isinstance(label, Mapping):
        raise DataError(path, line, "label", label, "a JSON object (the engine label)")
    boxes = label.get("solution", label.get("boxes"))
    if boxes is None:
        raise DataError(path, line, "solution", None, "the ground truth: 'solution' (or 'boxes') in original pixels, "
                        "at the top level or in 'label'")
    if isinstance(boxes, list) and boxes and not isinstance(boxes[0], list):
        boxes = [boxes]
    fields = {"id": f"line-{line}", "phrase": label.get("phrase") or "(rollout)", "boxes": boxes,
              "image_size": label.get("image_size", record.get("image_size"))}
    return {**fields, "frame": label.get("frame", record.get("frame")),
            "input_size": label.get("input_size", record.get("input_size"))}


def read_rollouts(path: str | Path) -> tuple[LoadedDataset, list[dict[str, Any]], list[object], list[float | None]]:
    """A rollout log as a data set (one sample per line, id ``line-N``), its prediction records, group ids and
    logged rewards. Raises DataError naming the file, line, field and value."""
    path = Path(path)
    samples, records, groups, rewards = [], [], [], []
    for line, text in enumerate(text_lines(path, RowErrors("raise")), start=1):
        if not text.strip():
            continue
        try:
            record = loads(text)
        except ValueError as error:
            raise DataError(path, line, None, text.strip()[:200], f"a JSON object ({error})") from None
        if not isinstance(record, dict) or "completion" not in record:
            raise DataError(path, line, "completion", None, "a rollout line with 'completion' and its ground "
                            "truth ('solution', 'image_size', ...)")
        fields = _label_fields(record, path, line)
        truth = {k: fields[k] for k in ("id", "phrase", "boxes", "image_size") if fields[k] is not None}
        samples.append(sample_from_record(truth, path=path, line=line))
        prediction = {"id": fields["id"], "completion": record["completion"]}
        for name in ("frame", "input_size"):
            if fields[name] is not None:
                prediction[name] = fields[name]
        records.append(prediction)
        groups.append(next((record[k] for k in GROUP_KEYS if record.get(k) is not None), None))
        reward = record.get("reward")
        rewards.append(float(reward) if isinstance(reward, (int, float)) and not isinstance(reward, bool)
                       else None)
    if not samples:
        raise DataError(path, None, None, None, "at least one rollout line")
    return LoadedDataset("rollouts", samples), records, groups, rewards


def is_rollout_log(path: str | Path) -> bool:
    """The first non-blank line of ``path`` carries a completion and ground truth (``solution`` or ``label``)."""
    with contextlib.closing(text_lines(path, RowErrors("skip"))) as handle:
        for text in handle:
            if text.strip():
                try:
                    record = loads(text)
                except ValueError:
                    return False
                return isinstance(record, dict) and "completion" in record and (
                    "solution" in record or "label" in record)
    return False


def doctor_rollouts(path: str | Path, *, frame: str = "pixel", answer_tag: str = "required",
                    convention: str = "radiological") -> DoctorReport:
    """Examine a GRPO rollout log (module doc); ``convention`` is the side convention of the anatomy checks."""
    from medground_eval.evaluation.scorer import score_predictions

    dataset, records, groups, rewards = read_rollouts(path)
    result = score_predictions(records, dataset, frame=frame, n_bootstrap=0, answer_tag=answer_tag,
                               convention=convention)
    return examine(DoctorInputs(str(path), "rollouts", result, groups, rewards))


def doctor_predictions(path: str | Path, **score_options: Any) -> DoctorReport:
    """Examine a predictions file scored against its data set (``score_files`` options)."""
    from medground_eval.evaluation.scorer import score_files

    result = score_files(path, n_bootstrap=0, **score_options)
    return examine(DoctorInputs(str(path), "predictions", result))

