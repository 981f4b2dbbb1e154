"""Frame diagnosis: would the same answers fit the ground truth clearly better in another coordinate frame?

The most common grounding bug report ("my IoU is always zero", "my boxes are shifted") is a frame or resize
mismatch. After a run is scored, :func:`frame_fit` re-scores the *same* raw boxes under every plausible frame
(:data:`CANDIDATES`: pixel, 0-1000, 0-1, Qwen2.5-VL's resized input with the processor's default and the common
``max_pixels`` values of public GRPO scripts, each read x first and y first) and :func:`frame_findings` turns a
clearly better fit into a :class:`Finding` that names the frame, both numbers and the option that selects it.
The diagnosis never changes the reported score.

"Clearly better" (:data:`MARGIN`, :data:`MIN_SAMPLES`, :data:`MAX_P_VALUE`): on at least 20 samples that have an
answer box and a known image size, the candidate's Acc@0.5 or mIoU is at least 0.10 higher than the frame used,
and a two-sided sign test on the per-sample IoU differences (ties left out) gives p < 0.001. A wrong frame moves
every box the same way, so it wins nearly every sample: 20 of 20 gives p = 1.9e-6. The 0.10 margin keeps two
near-identical frames (``max_pixels`` 1003520 vs 1254400 on images that both leave almost unchanged) from being
reported over a round-off; the p-value bound, below 0.01 / 16 candidates, keeps the family-wise false alarm rate
of a correct run under 1% even with a margin crossed by chance on a small set.

:func:`range_findings` needs no ground truth: every coordinate within 0-1 (or 0-1000) on images larger than that
under the ``pixel`` frame, and answers that leave the model's resized input while fitting the original image
under a ``resized`` frame (original pixels written to a Qwen2.5-VL reward).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import bdtr

from medground_eval import boxes as geometry
from medground_eval.frames import Frame, get_frame
from medground_eval.metrics import iou_hits
from medground_eval.regions import boxes_to_pixels

COMMON_MAX_PIXELS: tuple[int, ...] = (262144, 401408, 1003520, 1254400)
"""``max_pixels`` values of public GRPO scripts (VLM-R1, Visual-RFT, EasyR1 examples, R1-V), beside the default."""
CANDIDATES: tuple[str, ...] = tuple(
    spec + suffix
    for spec in ("pixel", "norm1000", "norm1", "resized", *(f"resized:max_pixels={m}" for m in COMMON_MAX_PIXELS))
    for suffix in ("", ",axes=yx" if ":" in spec else ":axes=yx")
)
"""Frames :func:`frame_fit` tries, as :attr:`Frame.spec` texts (y-first twins included: ``norm1000:axes=yx`` is the
``gemini`` preset)."""
MAX_FIT_SAMPLES = 2000
"""At most this many predictions (evenly spaced in file order) are re-scored per candidate: ample for a 0.10 margin
(the standard error of an Acc@0.5 on 2000 samples is at most 0.0112, a ninth of the margin; a wrong frame's sign test
on 2000 samples is far below the p-value bound) and bounded time: on 20,000 realistic predictions the diagnosis
took 8.8 s of a 15.8 s score with 20,000 and 0.9 s of 8.8 s with 2000."""
MARGIN = 0.10
"""Minimum gain in Acc@0.5 or mIoU over the frame used for a candidate to be reported."""
MIN_SAMPLES = 20
"""Minimum samples (with an answer box and a known image size) before the fit is judged."""
MAX_P_VALUE = 1e-3
"""Maximum two-sided sign-test p-value of a reported candidate (per-sample IoU, ties left out)."""
RANGE_SHARE = 0.95
"""Share of pixel-frame answers that must lie within 0-1 (or 0-1000, on images of 1500 px or more) to report it.
Answers in original pixels under a resized frame are reported when 20% of the boxes leave the input but fit the
image: a model that writes its input's pixels leaves the input only by its rare out-of-frame mistakes."""


FLIP_MIN_WRONG = 10
"""Wrong-side predictions needed before a left/right flip is reported."""
FLIP_MIN_MIRRORED = 0.6
"""Share of the wrong-side predictions that must mirror the truth (and share of one-sided phrases answered on the
wrong side, FLIP_MIN_RATE) to report a systematic flip: a model that only confuses sides now and then does neither."""
FLIP_MIN_RATE = 0.3
CONVENTION_MIN_SIDED = 10
CONVENTION_MIN_OTHER = 0.8
CONVENTION_MIN_GAIN = 0.3
"""A run is read under the wrong side convention when, on at least 10 sided phrases, the true regions lie on the
side their phrases name for at least 0.8 of them under the other convention and 0.3 more than under the run's (the
truth cannot be wrong about its own phrases that often; boxes unrelated to their phrases' sides fit neither)."""


@dataclass(frozen=True)
class Finding:
    """One thing a diagnosis found: a short ``title``, the ``numbers`` behind it and the ``advice`` that fixes it.

    ``code`` names the check (``frame-fit``, ``norm1-range``, ``norm1000-range``, ``original-pixels``, ``join``,
    ``degenerate-whole-image``, ...); ``severity`` is ``warning`` (a number may be wrong) or ``info``.
    """

    code: str
    title: str
    numbers: dict[str, Any] = field(default_factory=dict)
    advice: str = ""
    severity: str = "warning"

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "title": self.title, "numbers": self.numbers,
                "advice": self.advice}

    def sentence(self) -> str:
        """The finding on one line, as ``score`` and ``compare`` print it."""
        return f"{self.title}. {self.advice}".strip()


@dataclass(frozen=True)
class MatchedBoxes:
    """The raw answers of a scored run's matched predictions, as the scorer read them (2D only).

    ``flat`` ``(m, 4)`` boxes as written (in their line's frame), ``counts`` ``(k,)`` boxes per prediction,
    ``frames`` the frame spec applied per prediction, ``image_sizes`` ``(k, 2)`` (NaN: unknown), ``input_sizes``
    ``(k, 2)`` given per line (NaN rows: not given) or None, ``true_flat`` / ``true_counts`` the matched samples'
    true boxes in pixels, ``iou`` the IoU under the frames used, ``ids`` the sample ids.
    """

    ids: Sequence[str]
    flat: np.ndarray
    counts: np.ndarray
    frames: Sequence[str]
    image_sizes: np.ndarray
    input_sizes: np.ndarray | None
    true_flat: np.ndarray
    true_counts: np.ndarray
    iou: np.ndarray


@dataclass(frozen=True)
class FrameScore:
    """Acc@0.5 and mIoU of the same answers read in ``frame`` (a spec), on ``n`` samples."""

    frame: str
    acc50: float
    miou: float
    n: int
    p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        option = None if self.frame == "mixed" else frame_option(self.frame)
        return {"frame": self.frame, "option": option, "acc@0.5": self.acc50, "miou": self.miou,
                "n": self.n, "p_value": self.p_value}


@dataclass(frozen=True)
class FrameFit:
    """The frame used (``used``, its spec or ``"mixed"``), its score and every candidate's on the same samples."""

    used: FrameScore
    candidates: tuple[FrameScore, ...]
    skipped: int

    def best(self) -> FrameScore:
        """The candidate with the highest Acc@0.5, then mIoU (the first listed on a tie)."""
        return max(self.candidates, key=lambda c: (round(c.acc50, 12), round(c.miou, 12)))

    def to_dict(self) -> dict[str, Any]:
        return {"used": self.used.to_dict(), "candidates": [c.to_dict() for c in self.candidates],
                "samples_without_box_or_size": self.skipped}


def frame_option(spec: str) -> str:
    """The command-line options that select the frame ``spec``: ``--frame gemini``, ``--frame qwen2.5-vl
    --max-pixels 1003520``, or ``--frame`` with the spec text itself (``--frame pixel:axes=yx``)."""
    frame = get_frame(spec)
    for name in ("gemini", "paligemma", "florence-2"):
        if get_frame(name) == frame:
            return f"--frame {name}"
    if frame.kind == "resized" and frame.axes == "xy":
        default = get_frame("qwen2.5-vl")
        text = "--frame qwen2.5-vl"
        for name in ("min_pixels", "max_pixels"):
            if getattr(frame, name) != getattr(default, name):
                text += f" --{name.replace('_', '-')} {getattr(frame, name)}"
        return text
    return f"--frame {frame.spec}"


def sign_test(better: int, worse: int) -> float:
    """Two-sided exact binomial p-value of ``better`` wins against ``worse`` losses (ties left out), p = 1/2."""
    n = better + worse
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * bdtr(min(better, worse), n, 0.5)))


def _ious(boxes: MatchedBoxes, keep: np.ndarray, frame: Frame | Sequence[str], input_sizes: np.ndarray | None
          ) -> np.ndarray:
    """Per kept prediction, the IoU of its raw answer boxes read in ``frame`` against its true region."""
    owner = np.repeat(np.arange(len(boxes.counts)), boxes.counts)
    pred_flat = boxes.flat[keep[owner]]
    true_owner = np.repeat(np.arange(len(boxes.true_counts)), boxes.true_counts)
    true_flat = boxes.true_flat[keep[true_owner]]
    counts, true_counts = boxes.counts[keep], boxes.true_counts[keep]
    converted, _ = boxes_to_pixels(pred_flat, counts, frames=frame, image_sizes=boxes.image_sizes[keep],
                                   input_sizes=None if input_sizes is None else input_sizes[keep], dims=2)
    inter, union = geometry.region_overlap_columns(converted, counts, true_flat, true_counts)
    return np.clip(np.divide(inter, union, out=np.zeros(len(counts)), where=union > 0), 0.0, 1.0)


def _select(boxes: MatchedBoxes, rows: np.ndarray) -> MatchedBoxes:
    """The predictions ``rows`` (sorted indices) of ``boxes``."""
    def pick(flat: np.ndarray, counts: np.ndarray) -> np.ndarray:
        keep = np.zeros(len(counts), dtype=bool)
        keep[rows] = True
        return flat[np.repeat(keep, counts)]

    return MatchedBoxes([boxes.ids[i] for i in rows], pick(boxes.flat, boxes.counts), boxes.counts[rows],
                        [boxes.frames[i] for i in rows], boxes.image_sizes[rows],
                        None if boxes.input_sizes is None else boxes.input_sizes[rows],
                        pick(boxes.true_flat, boxes.true_counts), boxes.true_counts[rows], boxes.iou[rows])


def frame_fit(boxes: MatchedBoxes, candidates: Sequence[str] = CANDIDATES) -> FrameFit | None:
    """Every candidate frame's Acc@0.5 and mIoU on the predictions that have an answer box and a known image size,
    beside the frames used (with the lines' own input sizes); None when the boxes are not 2D or none qualifies."""
    if boxes.flat.shape[1] != 4 or not len(boxes.counts):
        return None
    keep = (boxes.counts > 0) & ~np.isnan(boxes.image_sizes).any(axis=1)
    qualified = int(keep.sum())
    if qualified == 0:
        return None
    if qualified > MAX_FIT_SAMPLES:  # evenly spaced, so the same file always gives the same fit
        chosen = np.flatnonzero(keep)[np.linspace(0, qualified - 1, MAX_FIT_SAMPLES).astype(np.int64)]
        keep = np.zeros_like(keep)
        keep[chosen] = True
    n = int(keep.sum())
    used_iou = boxes.iou[keep]
    used_frames = sorted({get_frame(f).spec for f in set(boxes.frames)})
    used = FrameScore(used_frames[0] if len(used_frames) == 1 else "mixed",
                      float(iou_hits(used_iou, 0.5).mean()), float(used_iou.mean()), n)
    scores = []
    for spec in candidates:
        frame = get_frame(spec)
        iou = _ious(boxes, keep, frame, None)
        diff = iou - used_iou
        p = sign_test(int((diff > 1e-9).sum()), int((diff < -1e-9).sum()))
        scores.append(FrameScore(frame.spec, float(iou_hits(iou, 0.5).mean()), float(iou.mean()), n, p))
    return FrameFit(used, tuple(scores), len(boxes.counts) - qualified)


def fit_findings(fit: FrameFit | None) -> list[Finding]:
    """A ``frame-fit`` finding when a candidate fits clearly better than the frame used (module doc), else none."""
    if fit is None or fit.used.n < MIN_SAMPLES:
        return []
    used = fit.used
    clear = [c for c in fit.candidates if c.p_value is not None and c.p_value < MAX_P_VALUE
             and (c.acc50 - used.acc50 >= MARGIN or c.miou - used.miou >= MARGIN)]
    if not clear:
        return []
    best = max(clear, key=lambda c: (round(c.acc50, 12), round(c.miou, 12)))
    return [Finding(
        "frame-fit",
        f"the answers fit frame {best.frame} clearly better than the frame used ({used.frame}): Acc@0.5 "
        f"{best.acc50:.3f} vs {used.acc50:.3f}, mIoU {best.miou:.3f} vs {used.miou:.3f} on {used.n} samples "
        f"(sign test p = {best.p_value:.2g})",
        {"used": used.to_dict(), "best": best.to_dict()},
        f"If the model writes boxes that way, rescore with {frame_option(best.frame)} (or --model / --processor "
        "PATH to read the frame from the checkpoint). The reported score is unchanged.",
    )]


def range_findings(boxes: MatchedBoxes) -> list[Finding]:
    """Findings on where the raw coordinates lie, without the ground truth (see the module doc); on at most
    :data:`MAX_FIT_SAMPLES` predictions, evenly spaced."""
    if boxes.flat.shape[1] != 4 or not len(boxes.counts):
        return []
    if len(boxes.counts) > MAX_FIT_SAMPLES:
        boxes = _select(boxes, np.linspace(0, len(boxes.counts) - 1, MAX_FIT_SAMPLES).astype(np.int64))
    specs = sorted(set(boxes.frames), key=str)
    code = {spec: i for i, spec in enumerate(specs)}
    frame_codes = np.fromiter((code[f] for f in boxes.frames), dtype=np.int64, count=len(boxes.frames))
    owner = np.repeat(np.arange(len(boxes.counts)), boxes.counts)
    kinds = np.array([get_frame(spec).kind for spec in specs], dtype=object)[frame_codes][owner]
    sizes = boxes.image_sizes[owner]
    known = ~np.isnan(sizes).any(axis=1)
    top = boxes.flat.max(axis=1)
    findings = []
    pixel = (kinds == "pixel") & known
    # (limit, frame, boxes that could show it: images clearly larger than the range)
    for limit, name, larger in ((1.0, "norm1", pixel & (sizes.min(axis=1, initial=np.inf) > 2)),
                                (1000.0, "norm1000", pixel & (sizes.max(axis=1, initial=0) >= 1500))):
        inside = larger & (top <= limit)
        if larger.sum() >= MIN_SAMPLES and inside.sum() >= RANGE_SHARE * larger.sum():
            findings.append(Finding(
                f"{name}-range", f"{int(inside.sum())} of {int(larger.sum())} answer boxes under frame pixel lie "
                f"within 0-{limit:g} on images of up to {int(sizes[larger].max())} px: the model probably writes {name}",
                {"boxes": int(larger.sum()), "within": int(inside.sum()), "limit": limit},
                f"Rescore with --frame {name} (or --model PATH) if the model writes that frame.",
            ))
            break  # answers within 0-1 also lie within 0-1000
    is_resized = np.array([get_frame(spec).kind == "resized" for spec in specs])[frame_codes]
    resized = is_resized & ~np.isnan(boxes.image_sizes).any(axis=1)
    if resized[owner].sum() < MIN_SAMPLES:
        return findings
    # Each resized prediction's input size: the line's own, else its frame's smart_resize of the image size.
    extent = np.full((len(boxes.counts), 2), np.inf)
    for spec in specs:
        rows = resized & (frame_codes == code[spec])
        if rows.any():
            extent[rows] = get_frame(spec).input_sizes(boxes.image_sizes[rows])
    if boxes.input_sizes is not None:
        given = resized & ~np.isnan(boxes.input_sizes).all(axis=1)
        extent[given] = boxes.input_sizes[given]
    b, box_extent, in_resized = boxes.flat, extent[owner], resized[owner]
    beyond = in_resized & ((b[:, 2] > box_extent[:, 0]) | (b[:, 3] > box_extent[:, 1]))
    fits = beyond & (b[:, 2] <= sizes[:, 0]) & (b[:, 3] <= sizes[:, 1])
    total = int(in_resized.sum())
    if fits.sum() >= 0.2 * total:
        findings.append(Finding(
            "original-pixels", f"{int(fits.sum())} of {total} answer boxes under a resized frame leave the model's "
            "input size but fit the original image: they look like original pixels",
            {"boxes": total, "beyond_input_within_image": int(fits.sum())},
            "If the answers are in original pixels, rescore with --frame pixel; if the model's input was larger, "
            "give --max-pixels / --processor as it was run (or each line's input_size).",
        ))
    return findings


JOIN_MIN_SHARE = 0.5
"""A run whose matched predictions are fewer than this share of its predictions (or of its ground-truth samples)
stops with :class:`JoinError` unless partial joins are allowed."""


class JoinError(ValueError):
    """Too few predictions matched a ground-truth id: the ids are probably keyed differently."""


def closest_ids(given: Sequence[str], expected: Sequence[str], limit: int = 3) -> list[tuple[str, str | None]]:
    """For up to ``limit`` given ids, the most similar expected id (difflib ratio >= 0.6 among the first 5000
    expected ids and those sharing the given id's prefix before ':'), or None."""
    import difflib

    pool = list(expected[:5000])
    by_prefix: dict[str, list[str]] = {}
    for sample_id in expected:
        by_prefix.setdefault(str(sample_id).split(":", 1)[0], []).append(sample_id)
    out = []
    for sample_id in given[:limit]:
        candidates = by_prefix.get(str(sample_id).split(":", 1)[0], []) + pool
        match = difflib.get_close_matches(str(sample_id), candidates, n=1, cutoff=0.6)
        out.append((sample_id, match[0] if match else None))
    return out


def join_numbers(result: Any) -> dict[str, Any]:
    """The join of a :class:`~medground_eval.evaluation.scorer.ScoreResult`: predictions, matched, unmatched,
    ground-truth samples and missing ones, expected and given id examples, and the closest expected id of each
    given example."""
    config = result.config
    matched, unmatched = config.get("matched_predictions", 0), config.get("unmatched_predictions", 0)
    expected = [str(i) for i in result.per_sample.ids[:5000].tolist()]
    given = list(config.get("unmatched_examples", []))
    return {"predictions": matched + unmatched, "matched": matched, "unmatched": unmatched,
            "ground_truth": config.get("ground_truth_samples", len(result.per_sample.ids)),
            "missing": config.get("missing_predictions", 0), "expected_examples": expected[:3],
            "given_examples": given[:3], "missing_examples": list(config.get("missing_examples", []))[:3],
            "closest": [{"given": g, "closest_expected": c} for g, c in closest_ids(given, expected)]}


def join_finding(result: Any) -> Finding | None:
    """A ``join`` finding for a :class:`~medground_eval.evaluation.scorer.ScoreResult` whose matched predictions
    are under :data:`JOIN_MIN_SHARE` of its predictions or of its ground-truth samples, else None."""
    config = result.config
    matched, unmatched = config.get("matched_predictions", 0), config.get("unmatched_predictions", 0)
    samples, predictions = config.get("ground_truth_samples", len(result.per_sample.ids)), matched + unmatched
    if predictions and matched >= JOIN_MIN_SHARE * predictions and matched >= JOIN_MIN_SHARE * samples:
        return None
    numbers = join_numbers(result)
    shown = "; ".join(f"given {p['given']!r} (closest expected: {p['closest_expected']!r})" if p["closest_expected"]
                      else f"given {p['given']!r}" for p in numbers["closest"])
    hint = ""
    if config.get("dataset") == "mscxr":
        hint = (" MS-CXR ids are 'dicom_id:sha256(label_text)[:12]' (medground-eval ids --dataset mscxr "
                "--annotations F lists them); lines may instead carry 'dicom_id' and 'phrase'.")
    advice = ("Key each prediction line by the data set's id (medground-eval ids writes them), or pass "
              "--allow-partial to score a partial run (missing samples count as misses)." + hint)
    if predictions and matched == predictions:  # every line joined: the file covers too few of the samples
        missing = ", ".join(repr(m) for m in numbers["missing_examples"])
        title = (f"the {predictions} predictions cover only {matched} of {samples} ground-truth samples "
                 f"({numbers['missing']} without a prediction" + (f", such as {missing})" if missing else ")"))
        advice = ("Score the split the predictions were made for (--split), or pass --allow-partial to score a "
                  "partial run (missing samples count as misses).")
    else:
        title = (f"only {matched} of {predictions} predictions matched a ground-truth id ({samples} samples): "
                 f"expected ids such as {', '.join(repr(e) for e in numbers['expected_examples'])}"
                 + (f"; {shown}" if shown else ""))
    return Finding("join", title, numbers, advice)


def check_join(result: Any, allow_partial: bool = False) -> None:
    """Raise :class:`JoinError` with the :func:`join_finding` sentence unless the join is fine or allowed."""
    finding = join_finding(result)
    if finding is not None and not allow_partial:
        raise JoinError(f"{finding.title}. {finding.advice}")


def diagnose(result: Any) -> tuple[FrameFit | None, list[Finding]]:
    """The frame fit and the findings of a scored run (:class:`~medground_eval.evaluation.scorer.ScoreResult`):
    frame fit, coordinate ranges and the join. Changes nothing in ``result``."""
    findings: list[Finding] = []
    join = join_finding(result)
    if join is not None:
        findings.append(join)
    fit = None
    if result.matched is not None:
        fit = frame_fit(result.matched)
        findings += fit_findings(fit) + range_findings(result.matched)
    findings += anatomy_findings(getattr(result, "anatomy", None), result.config.get("convention", "radiological"))
    return fit, findings


def anatomy_findings(anatomy: Any, convention: str = "radiological") -> list[Finding]:
    """A systematic left/right flip (most wrong-side predictions mirror the truth: an image flipped or a convention
    mixed up) and a side convention that contradicts the ground truth itself, from a run's
    :class:`~medground_eval.anatomy.LateralityReport` (thresholds: :data:`FLIP_MIN_WRONG` and the constants below it)."""
    if anatomy is None:
        return []
    findings: list[Finding] = []
    wrong, mirrored = anatomy.wrong_side, anatomy.mirrored
    if (wrong >= FLIP_MIN_WRONG and mirrored >= FLIP_MIN_MIRRORED * wrong
            and (anatomy.wrong_side_rate or 0.0) >= FLIP_MIN_RATE):
        findings.append(Finding(
            "left-right-flip",
            f"systematic left/right flip: {mirrored} of {wrong} wrong-side predictions mirror the true region "
            f"(wrong-side rate {anatomy.wrong_side_rate:.3f} of {anatomy.n_one_sided} one-sided phrases)",
            {"wrong_side": wrong, "mirrored": mirrored, "wrong_side_rate": anatomy.wrong_side_rate,
             "n_one_sided": anatomy.n_one_sided},
            "the model saw the images mirrored (a horizontal flip in preprocessing or augmentation), or its side "
            "convention differs from the data's; check the image pipeline before reading the scores",
        ))
    truth, other = anatomy.truth_laterality_accuracy, anatomy.truth_laterality_other
    if (truth is not None and other is not None and anatomy.n_sided >= CONVENTION_MIN_SIDED
            and other >= CONVENTION_MIN_OTHER and other - truth >= CONVENTION_MIN_GAIN):
        findings.append(Finding(
            "side-convention",
            f"the true regions lie on the side their phrases name for only {truth:.3f} of {anatomy.n_sided} sided "
            f"phrases under the {convention} side convention, {other:.3f} under the other",
            {"truth_laterality_accuracy": truth, "truth_laterality_other": other, "n_sided": anatomy.n_sided,
             "convention": convention},
            "the images are stored with the other convention: score with --convention "
            f"{'neurological' if convention == 'radiological' else 'radiological'}, or set a laterality_convention "
            "field per sample",
        ))
    return findings


def record_diagnosis(result: Any) -> None:
    """Run :func:`diagnose` and record it in ``result.config["diagnosis"]``: ``frame_fit`` (the table) and
    ``findings`` (the join is reported by :func:`check_join` and ``config``'s join counts instead). The score is
    unchanged."""
    fit, findings = diagnose(result)
    result.config["diagnosis"] = {"frame_fit": None if fit is None else fit.to_dict(),
                                  "findings": [f.to_dict() for f in findings if f.code != "join"]}
