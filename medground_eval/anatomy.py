"""Anatomical qualifiers: which side and which vertical zone a report phrase, a model's label or a region names.

General-purpose sentence embeddings barely see "left" against "right" ("small left pleural effusion" and "small right
pleural effusion" are cosine 0.97 under all-MiniLM-L6-v2), so the semantic reward gives full credit to the wrong
side unless the qualifiers are read explicitly. This module reads them, with no model, in one pass over the words.

Text (:func:`read_qualifiers`):

- side: ``left`` / ``right`` (also ``left-sided``, ``leftward``, capital ``L`` / ``R`` / ``Lt`` / ``Rt`` written
  alone), ``bilateral`` / ``bilaterally`` / ``both`` / ``bibasilar`` / ``biapical`` (both sides);
- zone: ``upper`` (``apical``, ``apex``, ``apices``, ``upper``, ``biapical``), ``mid`` (``mid``, ``middle``,
  ``midlung``, ``perihilar``, ``hilar``), ``lower`` (``lower``, ``base``, ``bases``, ``basal``, ``basilar``,
  ``bibasilar``, ``costophrenic``, ``hemidiaphragm``, ``diaphragmatic``, ``cardiophrenic``, ``infrahilar``);
- landmarks with a known side or zone: ``retrocardiac`` (left, lower), ``lingula`` / ``lingular`` (left; mid and
  lower), and the lobe abbreviations ``RUL`` ``RML`` ``RLL`` ``LUL`` ``LLL`` (side and zone).

Negation ("no left effusion") is not read: report phrases for grounding name findings that are present.

Regions (:func:`region_qualifiers`): a box lies on the side of its centre, or on both sides when it reaches past
the midline by more than :data:`MIDLINE_MARGIN` of the width on each side; its zone is the band of its centre's
height (:data:`ZONE_BOUNDS`, fractions of the image height that approximate the thirds of the lung fields on a
frontal chest radiograph). A region's sides and zones are those of its boxes. Which image side is the patient's
left depends on the convention (:func:`patient_left_on_image_right`): ``radiological`` (PA and AP chest
radiographs, axial CT as displayed: the patient's left on the image's right, the default), ``neurological`` (the
patient's left on the image's left), or, for volumes, the NIfTI orientation codes of the array's first axis.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medground_eval.boxes import owned_rows, region_overlap_columns, safe_divide

LEFT, RIGHT = "left", "right"
UPPER, MID, LOWER = "upper", "mid", "lower"
BILATERAL_CREDIT = 0.5
"""Agreement of "bilateral" with one side (either way round): the side named is half of what the other names."""
MIRROR_IOU = 0.1
"""A wrong-side prediction *mirrors* the truth when its left-right mirror image has at least this IoU with it."""
MIDLINE_MARGIN = 0.125
"""A box covers both sides when it extends past the midline by more than this share of the width on each side."""
ZONE_BOUNDS = (0.35, 0.6)
"""Zone of a box centre by its height from the top: upper below 0.35, mid below 0.6, lower from 0.6 of the height."""

_BOTH = frozenset((LEFT, RIGHT))
_SIDE_WORDS: dict[str, frozenset[str]] = {
    "left": frozenset((LEFT,)), "leftward": frozenset((LEFT,)), "sinistral": frozenset((LEFT,)),
    "right": frozenset((RIGHT,)), "rightward": frozenset((RIGHT,)), "dextral": frozenset((RIGHT,)),
    "bilateral": _BOTH, "bilaterally": _BOTH, "both": _BOTH, "bibasilar": _BOTH, "bibasal": _BOTH,
    "biapical": _BOTH, "lt": frozenset((LEFT,)), "rt": frozenset((RIGHT,)),
}
_ZONE_WORDS: dict[str, frozenset[str]] = {
    **{w: frozenset((UPPER,)) for w in ("apical", "apex", "apices", "upper", "biapical", "apicolateral")},
    **{w: frozenset((MID,)) for w in ("mid", "middle", "midlung", "perihilar", "hilar", "midzone")},
    **{w: frozenset((LOWER,)) for w in (
        "lower", "base", "bases", "basal", "basilar", "bibasilar", "bibasal", "costophrenic", "hemidiaphragm",
        "hemidiaphragms", "diaphragmatic", "cardiophrenic", "infrahilar", "retrocardiac",
    )},
    "lingula": frozenset((MID, LOWER)), "lingular": frozenset((MID, LOWER)),
}
_LANDMARK_SIDES = {"retrocardiac": frozenset((LEFT,)), "lingula": frozenset((LEFT,)), "lingular": frozenset((LEFT,))}
_LOBES = {
    "RUL": (RIGHT, UPPER), "RML": (RIGHT, MID), "RLL": (RIGHT, LOWER), "LUL": (LEFT, UPPER), "LLL": (LEFT, LOWER),
}
_CASED_SIDES = {"L": LEFT, "R": RIGHT}
_WORD = re.compile(r"[A-Za-z]+")
CONVENTIONS = ("radiological", "neurological")
ORIENTATION_FIELDS = ("laterality_convention", "view", "axcodes")
"""The sample fields that set its side convention (:func:`sample_left_on_right`)."""
_CONVENTION_ALIASES = {"radiological": "radiological", "pa": "radiological", "ap": "radiological",
                       "neurological": "neurological", "anatomical": "neurological"}


@dataclass(frozen=True)
class Qualifiers:
    """The sides (subset of {"left", "right"}; both = bilateral) and zones (subset of {"upper", "mid", "lower"})
    something names; empty sets when it names none.

    >>> q = read_qualifiers("small left apical pneumothorax")
    >>> q.side, sorted(q.zones)
    ('left', ['upper'])
    """

    sides: frozenset[str] = frozenset()
    zones: frozenset[str] = frozenset()

    @property
    def side(self) -> str | None:
        """``"left"``, ``"right"``, ``"bilateral"`` or None."""
        if not self.sides:
            return None
        return "bilateral" if self.sides == _BOTH else next(iter(self.sides))


def read_qualifiers(text: str | None) -> Qualifiers:
    """The side and zone words of a phrase or label (rules in the module docstring); linear in the text length.

    >>> read_qualifiers("R pleural effusion").side
    'right'
    >>> q = read_qualifiers("bibasilar atelectasis")
    >>> q.side, sorted(q.zones)
    ('bilateral', ['lower'])
    >>> read_qualifiers("cardiomegaly")
    Qualifiers(sides=frozenset(), zones=frozenset())
    """
    if not text:
        return Qualifiers()
    sides: set[str] = set()
    zones: set[str] = set()
    for match in _WORD.finditer(text):
        word = match.group()
        if word in _CASED_SIDES:
            sides.add(_CASED_SIDES[word])
            continue
        if word in _LOBES:
            side, zone = _LOBES[word]
            sides.add(side)
            zones.add(zone)
            continue
        lower = word.lower()
        sides.update(_SIDE_WORDS.get(lower, ()))
        sides.update(_LANDMARK_SIDES.get(lower, ()))
        zones.update(_ZONE_WORDS.get(lower, ()))
    return Qualifiers(frozenset(sides), frozenset(zones))


def side_agreement(expected: frozenset[str], given: frozenset[str]) -> float | None:
    """1 for the same side(s), 0 for the other side, :data:`BILATERAL_CREDIT` for bilateral against one side;
    None when either names no side (nothing to compare).

    >>> side_agreement(frozenset({"left"}), frozenset({"right"}))
    0.0
    >>> side_agreement(frozenset({"left"}), frozenset({"left", "right"}))
    0.5
    """
    if not expected or not given:
        return None
    if expected == given:
        return 1.0
    return BILATERAL_CREDIT if expected & given else 0.0


def zone_agreement(expected: frozenset[str], given: frozenset[str]) -> float | None:
    """1 when the zones overlap, 0 when they are disjoint, None when either names no zone.

    >>> zone_agreement(frozenset({"upper"}), frozenset({"lower"}))
    0.0
    """
    if not expected or not given:
        return None
    return 1.0 if expected & given else 0.0


def label_agreement(phrase: str | None, label: str | None) -> float:
    """The factor the semantic reward multiplies its embedding score by: the side agreement times the zone
    agreement of the label with the phrase, each 1 when either names none. A label naming the other side, or another
    zone, gets 0; "bilateral" against one side :data:`BILATERAL_CREDIT`.

    >>> label_agreement("small left pleural effusion", "small right pleural effusion")
    0.0
    >>> label_agreement("small left pleural effusion", "bilateral pleural effusions")
    0.5
    >>> label_agreement("small left pleural effusion", "pleural effusion")
    1.0
    """
    expected, given = read_qualifiers(phrase), read_qualifiers(label)
    side = side_agreement(expected.sides, given.sides)
    zone = zone_agreement(expected.zones, given.zones)
    return (1.0 if side is None else side) * (1.0 if zone is None else zone)


def convention_name(value: object) -> str:
    """The canonical convention name of ``value`` ("radiological", "neurological"; "PA" and "AP" are radiological);
    ValueError naming the accepted values otherwise.

    >>> convention_name("PA")
    'radiological'
    """
    name = _CONVENTION_ALIASES.get(str(value).strip().lower())
    if name is None:
        raise ValueError(f"laterality convention {value!r}: expected one of radiological (PA, AP), neurological")
    return name


def patient_left_on_image_right(convention: str = "radiological", axcodes: Sequence[str] | None = None) -> bool:
    """Whether the patient's left lies towards larger x. ``axcodes`` (nibabel's orientation codes of a volume's
    array axes, e.g. ``("R", "A", "S")``: where each axis points) decides when given: ``"L"`` first means x grows
    towards the patient's left. Otherwise the convention: radiological (default) True, neurological False.

    >>> patient_left_on_image_right(axcodes=("R", "A", "S"))
    False
    """
    if axcodes is not None and len(axcodes) and str(axcodes[0]).upper() in ("L", "R"):
        return str(axcodes[0]).upper() == "L"
    return convention_name(convention) == "radiological"


_ZONE_BITS = {UPPER: 1, MID: 2, LOWER: 4}


def box_flags(
    flat: np.ndarray, sizes: np.ndarray, left_on_right: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per box: on the patient's left, on the patient's right, and its zone as a bit (upper 1, mid 2, lower 4; 0
    for 3D boxes or an unknown height) - the one rule behind :func:`region_qualifiers` and the run metrics.

    ``flat`` (M, 2d) boxes in original pixels, ``sizes`` (M, >= 2) the image size of each box's image,
    ``left_on_right`` (M,) the convention of each box's image (:func:`sample_left_on_right`).
    """
    flat = np.asarray(flat, dtype=np.float64)
    d = flat.shape[1] // 2 if flat.ndim == 2 and flat.shape[1] else 2
    width, height = sizes[:, 0], sizes[:, 1]
    x1, x2 = flat[:, 0], flat[:, d]
    mid, margin = width / 2.0, MIDLINE_MARGIN * width
    both = (x1 < mid - margin) & (x2 > mid + margin)
    centre = (x1 + x2) / 2.0
    image_right, image_left = both | (centre > mid), both | (centre <= mid)
    left = np.where(left_on_right, image_right, image_left)
    right = np.where(left_on_right, image_left, image_right)
    zone = np.zeros(len(flat), dtype=np.int64)
    if d == 2:
        with np.errstate(invalid="ignore", divide="ignore"):
            y = (flat[:, 1] + flat[:, 3]) / 2.0 / height
        band = np.searchsorted(np.asarray(ZONE_BOUNDS), y, side="right")
        zone = np.where(np.isfinite(y) & (height > 0), np.left_shift(1, band), 0)
    return left, right, zone


def _zones_of(bits: int) -> frozenset[str]:
    return frozenset(name for name, bit in _ZONE_BITS.items() if bits & bit)


def region_qualifiers(
    boxes: np.ndarray, image_size: Sequence[float] | None, *, left_on_right: bool = True
) -> Qualifiers:
    """The patient sides and zones a region covers (rules in the module docstring, :func:`box_flags`). ``boxes``
    (K, 4) or (K, 6) in original pixels / voxels, ``image_size`` ``(W, H[, D])``; zones are read for 2D images only
    (a volume's vertical axis is not the array's y). An empty region, or no image size, names nothing.

    >>> region_qualifiers(np.array([[700, 100, 900, 300]]), (1000, 1000)).side  # image right, radiological
    'left'
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0 or image_size is None:
        return Qualifiers()
    boxes = boxes.reshape(-1, boxes.shape[-1])
    k = len(boxes)
    sizes = np.tile(np.asarray(image_size, dtype=np.float64)[:2], (k, 1))
    left, right, zone = box_flags(boxes, sizes, np.full(k, left_on_right))
    sides = {name for name, flags in ((LEFT, left), (RIGHT, right)) if flags.any()}
    return Qualifiers(frozenset(sides), _zones_of(int(np.bitwise_or.reduce(zone))))


def region_agreement(expected: Qualifiers, region: Qualifiers) -> float:
    """The anatomy reward of a region for a phrase's qualifiers, in [0, 1]: 0 on the wrong side whatever the zone;
    else the side agreement (1, or :data:`BILATERAL_CREDIT`) times ``(1 + zone agreement) / 2`` when the phrase names
    a zone. A phrase naming neither side nor zone gives 1 (nothing to contradict); an empty region gives 0.

    >>> region_agreement(read_qualifiers("left lower lobe opacity"), Qualifiers(frozenset({"left"}), frozenset({"upper"})))
    0.5
    """
    if not region.sides and not region.zones:
        return 0.0
    side = side_agreement(expected.sides, region.sides)
    zone = zone_agreement(expected.zones, region.zones)
    value = 1.0 if side is None else side
    if zone is not None:
        value *= (1.0 + zone) / 2.0
    return value


def sample_left_on_right(extra: Mapping[str, object] | None, convention: str = "radiological") -> bool:
    """The side convention of one sample, in this order: its ``laterality_convention`` field, its volume's
    ``axcodes``, its ``view`` ("PA", "AP": radiological), else ``convention``.

    >>> sample_left_on_right({"view": "AP"}), sample_left_on_right({"axcodes": ("R", "A", "S"), "view": "PA"})
    (True, False)
    """
    extra = extra or {}
    explicit = extra.get("laterality_convention")
    if explicit is not None:
        return convention_name(explicit) == "radiological"
    axcodes = extra.get("axcodes")
    if isinstance(axcodes, (list, tuple)) and axcodes:
        return patient_left_on_image_right(convention, axcodes)
    view = extra.get("view")
    if isinstance(view, str) and view.strip().lower() in _CONVENTION_ALIASES:
        return convention_name(view) == "radiological"
    return convention_name(convention) == "radiological"


def mirror_boxes(boxes: np.ndarray, width: float | np.ndarray) -> np.ndarray:
    """The boxes mirrored left-right in an image (or volume) of the given width (one for all boxes, or one per
    box): ``x -> width - x``.

    >>> mirror_boxes(np.array([[100.0, 5.0, 300.0, 9.0]]), 1000).tolist()
    [[700.0, 5.0, 900.0, 9.0]]
    """
    boxes = np.array(boxes, dtype=np.float64, copy=True)
    d = boxes.shape[1] // 2
    boxes[:, 0], boxes[:, d] = width - boxes[:, d], width - boxes[:, 0].copy()
    return boxes


@dataclass(frozen=True)
class LateralityReport:
    """Laterality and zone metrics of a run (definitions in docs/metrics.md, "Anatomy").

    - ``laterality_accuracy``: among samples whose phrase names a side (left, right or bilateral), the share whose
      predicted region covers exactly the sides named (no prediction counts as not on the side);
    - ``wrong_side_rate``: among samples whose phrase names one side, the share whose predicted region lies only on
      the other side; ``mirrored``: how many of those mirror the truth (:data:`MIRROR_IOU`);
    - ``zone_agreement``: among samples whose phrase names a zone, the share whose predicted region has a box
      centre in one of the zones named;
    - ``truth_laterality_accuracy``: ``laterality_accuracy`` of the true regions themselves, a check of the side
      convention (well below 1: the images or the convention are not what the run assumes), and
      ``truth_laterality_other``: the same under the other convention (left and right swapped);
    - ``n_sided``, ``n_one_sided``, ``n_zoned``: the denominators; ``n_no_size``: samples naming a side or zone that
      could not be placed (no image size), left out and counted. Rates are None when their denominator is 0.
    """

    n_sided: int
    n_one_sided: int
    n_zoned: int
    n_no_size: int
    laterality_accuracy: float | None
    wrong_side_rate: float | None
    zone_agreement: float | None
    truth_laterality_accuracy: float | None
    truth_laterality_other: float | None
    wrong_side: int
    mirrored: int
    per_category: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _rate(hits: np.ndarray, mask: np.ndarray) -> float | None:
    return float(hits[mask].mean()) if mask.any() else None


def _per_sample_any(flags: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(owner, weights=flags.astype(np.float64), minlength=n) > 0


def _per_sample_bits(bits: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    np.bitwise_or.at(out, owner, bits)
    return out


def laterality_columns(
    phrases: Sequence[str],
    pred_flat: np.ndarray,
    pred_counts: np.ndarray,
    true_flat: np.ndarray,
    true_counts: np.ndarray,
    image_sizes: np.ndarray,
    *,
    left_on_right: np.ndarray | bool = True,
    categories: Sequence[str | None] | None = None,
) -> LateralityReport:
    """:func:`laterality_report` on columns: ``pred_flat`` (M, 2d) boxes in original pixels, ``pred_counts[i]`` of
    them sample i's (0: no prediction), the same for the truth, ``image_sizes`` (n, >= 2) with NaN rows where
    unknown. Phrases are read once per distinct text; the boxes in one vectorized pass."""
    n = len(phrases)
    conventions = np.broadcast_to(np.asarray(left_on_right, dtype=bool), (n,))
    sizes = np.asarray(image_sizes, dtype=np.float64).reshape(n, -1)
    known = ~np.isnan(sizes[:, :2]).any(axis=1) if n else np.zeros(0, dtype=bool)
    read: dict[str, tuple[bool, bool, int]] = {}
    expected = np.zeros((n, 3), dtype=np.int64)
    for i, phrase in enumerate(phrases):
        q = read.get(phrase)
        if q is None:
            qualifiers = read_qualifiers(phrase)
            bits = sum(_ZONE_BITS[z] for z in qualifiers.zones)
            q = read[phrase] = (LEFT in qualifiers.sides, RIGHT in qualifiers.sides, bits)
        expected[i] = q
    exp_left, exp_right, exp_zone = expected[:, 0] > 0, expected[:, 1] > 0, expected[:, 2]
    dims = 2
    for flat in (pred_flat, true_flat):
        if np.ndim(flat) == 2 and np.shape(flat)[1]:
            dims = np.shape(flat)[1] // 2
    if dims == 3:
        exp_zone = np.zeros(n, dtype=np.int64)  # a volume's zones are not read (see region_qualifiers)

    def region(flat: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counts = np.asarray(counts, dtype=np.int64)
        owner = np.repeat(np.arange(n), counts)
        flat = np.asarray(flat, dtype=np.float64).reshape(len(owner), 2 * dims)
        box_sizes = np.nan_to_num(sizes[owner, :2], nan=0.0)
        left, right, zone = box_flags(flat, box_sizes, conventions[owner])
        return _per_sample_any(left, owner, n), _per_sample_any(right, owner, n), _per_sample_bits(zone, owner, n)

    p_left, p_right, p_zone = region(pred_flat, pred_counts)
    t_left, t_right, _ = region(true_flat, true_counts)
    named = exp_left | exp_right | (exp_zone > 0)
    no_size = named & ~known
    sided = (exp_left | exp_right) & known
    one_sided = (exp_left ^ exp_right) & known
    zoned = (exp_zone > 0) & known
    on_side = (p_left | p_right) & (p_left == exp_left) & (p_right == exp_right)
    truth_on_side = (t_left == exp_left) & (t_right == exp_right)
    truth_on_other = (t_right == exp_left) & (t_left == exp_right)
    wrong = one_sided & (p_left | p_right) & ~((p_left & exp_left) | (p_right & exp_right))
    in_zone = (p_zone & exp_zone) > 0
    mirrored = 0
    if wrong.any():  # the wrong-side predictions mirrored left-right against their truth, in one pass
        rows = np.flatnonzero(wrong)
        pred_counts, true_counts = np.asarray(pred_counts, np.int64), np.asarray(true_counts, np.int64)
        pred = owned_rows(np.asarray(pred_flat, dtype=np.float64).reshape(-1, 2 * dims), pred_counts, rows)
        truth = owned_rows(np.asarray(true_flat, dtype=np.float64).reshape(-1, 2 * dims), true_counts, rows)
        mirror = mirror_boxes(pred, np.repeat(sizes[rows, 0], pred_counts[rows]))
        inter, union = region_overlap_columns(mirror, pred_counts[rows], truth, true_counts[rows])
        mirrored = int(np.count_nonzero(safe_divide(inter, union) >= MIRROR_IOU))

    def rates(mask: np.ndarray) -> dict[str, Any]:
        return {
            "n_sided": int((sided & mask).sum()), "n_one_sided": int((one_sided & mask).sum()),
            "n_zoned": int((zoned & mask).sum()),
            "laterality_accuracy": _rate(on_side, sided & mask), "wrong_side_rate": _rate(wrong, one_sided & mask),
            "zone_agreement": _rate(in_zone, zoned & mask),
        }

    per_category: dict[str, dict[str, Any]] = {}
    if categories is not None:
        names = np.array([str(c) if c is not None else "" for c in categories], dtype=object)
        for name in sorted(set(names.tolist()) - {""}):
            per_category[name] = rates(names == name)
    return LateralityReport(
        n_sided=int(sided.sum()), n_one_sided=int(one_sided.sum()), n_zoned=int(zoned.sum()),
        n_no_size=int(no_size.sum()), laterality_accuracy=_rate(on_side, sided), wrong_side_rate=_rate(wrong, one_sided),
        zone_agreement=_rate(in_zone, zoned), truth_laterality_accuracy=_rate(truth_on_side, sided),
        truth_laterality_other=_rate(truth_on_other, sided),
        wrong_side=int(wrong.sum()), mirrored=mirrored, per_category=per_category,
    )


def laterality_report(
    phrases: Sequence[str],
    pred_boxes: Sequence[np.ndarray],
    true_boxes: Sequence[np.ndarray],
    image_sizes: Sequence[Sequence[float] | None],
    *,
    left_on_right: Sequence[bool] | bool = True,
    categories: Sequence[str | None] | None = None,
) -> LateralityReport:
    """Laterality accuracy, wrong-side rate and zone agreement of predicted regions against their phrases.

    ``pred_boxes[i]`` / ``true_boxes[i]``: (K, 2d) boxes in original pixels (an empty array: no prediction);
    ``image_sizes[i]``: ``(W, H[, D])`` or None; ``left_on_right``: per sample or for all, whether the patient's
    left lies towards larger x (:func:`sample_left_on_right`).

    >>> r = laterality_report(["left effusion", "right effusion"], [np.array([[100, 0, 300, 9]])] * 2,
    ...                       [np.array([[700, 0, 900, 9]]), np.array([[100, 0, 300, 9]])], [(1000, 1000)] * 2)
    >>> r.laterality_accuracy, r.wrong_side_rate, r.mirrored
    (0.5, 0.5, 1)
    """
    n = len(phrases)

    def columns(boxes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        arrays = [np.asarray(b, dtype=np.float64) for b in boxes]
        width = next((a.shape[-1] for a in arrays if a.size), 4)
        arrays = [a.reshape(-1, width) for a in arrays]
        counts = np.array([len(a) for a in arrays], dtype=np.int64)
        return (np.concatenate(arrays) if arrays else np.zeros((0, width))), counts

    widths = [len(s) for s in image_sizes if s is not None]
    sizes = np.full((n, max(widths, default=2)), np.nan)
    for i, size in enumerate(image_sizes):
        if size is not None:
            sizes[i, : len(size)] = size
    return laterality_columns(phrases, *columns(pred_boxes), *columns(true_boxes), sizes,
                              left_on_right=np.asarray(left_on_right, dtype=bool), categories=categories)
