"""Tests for medground_eval.rewards.encoders: text encoders, the LRU cache, the CLIP region encoder, calibration."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medground_eval.rewards.encoders import (
    CachedEncoder,
    CacheInfo,
    CallableEncoder,
    ClipRegionEncoder,
    LexicalEncoder,
    SentenceTransformerEncoder,
    TextEncoder,
    _crop_square,
    calibrate,
    get_text_encoder,
    l2_normalize,
)

HUGE = "pleural effusion " * 6000  # ~100 kB


class CountingEncoder:
    """A deterministic fake encoder: the vector of a text depends on the text alone; records every call."""

    name = "counting"

    def __init__(self, max_chars: int | None = None, delay: float = 0.0) -> None:
        self.max_chars = max_chars
        self.delay = delay
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def encode(self, texts):
        with self._lock:
            self.calls.append(list(texts))
        time.sleep(self.delay)
        rows = [np.random.default_rng(list(t.encode()) or [0]).normal(size=8) for t in texts]
        return l2_normalize(np.array(rows).reshape(len(texts), 8))


def unit_or_zero(emb: np.ndarray) -> bool:
    norms = np.linalg.norm(emb, axis=1)
    return bool(np.all(np.isclose(norms, 1.0, atol=1e-5) | (norms == 0)))


def test_import_pulls_no_heavy_library() -> None:
    code = (
        "import sys, medground_eval.rewards.encoders; "
        "heavy = {'torch', 'transformers', 'sentence_transformers', 'sklearn', 'PIL'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@given(st.lists(st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3), min_size=1, max_size=20))
def test_l2_normalize_rows_unit_or_zero(rows: list[list[float]]) -> None:
    x = np.array(rows)
    out = l2_normalize(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert unit_or_zero(out)
    assert np.all(out[~x.any(axis=1)] == 0)


@given(st.lists(st.floats(-2, 2), max_size=30), st.floats(-1, 0.5), st.floats(0.01, 1.0))
def test_calibrate_matches_definition(sims: list[float], floor: float, width: float) -> None:
    s = np.array(sims)
    out = calibrate(s, floor=floor, ceil=floor + width)
    np.testing.assert_allclose(out, np.clip((s - floor) / width, 0, 1))


def test_calibrate_edges() -> None:
    np.testing.assert_array_equal(calibrate(np.array([np.nan, -1.0, 0.25, 2.0]), 0.0, 0.5), [0.0, 0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="ceil > floor"):
        calibrate([0.5], floor=0.5, ceil=0.5)


# ---------------------------------------------------------------- lexical


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_lexical_embedding_independent_of_batch(texts: list[str], rnd) -> None:
    enc = LexicalEncoder(dim=2**10)
    together = enc.encode(texts)
    shuffled = list(range(len(texts)))
    rnd.shuffle(shuffled)
    np.testing.assert_array_equal(enc.encode([texts[i] for i in shuffled]), together[shuffled])
    for i, text in enumerate(texts):
        np.testing.assert_array_equal(enc.encode([text])[0], together[i])
    assert together.dtype == np.float32 and together.shape == (len(texts), 2**10)
    assert unit_or_zero(together)


def test_lexical_ranks_spelling_variants_and_survives_odd_input() -> None:
    enc = LexicalEncoder()
    e = enc.encode(["left pleural effusion", "Left pleural effusions", "cardiomegaly", "", "胸腔积液", HUGE])
    assert e[0] @ e[1] > 0.8 > e[0] @ e[2]
    assert not e[3].any()
    assert np.linalg.norm(e[4]) == pytest.approx(1.0) and np.linalg.norm(e[5]) == pytest.approx(1.0)
    assert enc.encode([]).shape == (0, enc.dim)
    with pytest.raises(ValueError, match="ngram_range"):
        LexicalEncoder(ngram_range=(3, 2))


# ---------------------------------------------------------------- callable


def test_callable_encoder_normalises_and_checks_output() -> None:
    enc = CallableEncoder(lambda texts: [[3.0, 4.0] if t else [0.0, 0.0] for t in texts], name="toy")
    assert isinstance(enc, TextEncoder)
    np.testing.assert_allclose(enc.encode(["a", ""]), [[0.6, 0.8], [0.0, 0.0]])
    assert enc.encode([]).shape == (0, 2)
    with pytest.raises(ValueError, match=r"shape \(2,\) for 2 texts; expected \(2, dim\)"):
        CallableEncoder(lambda texts: np.ones(len(texts))).encode(["a", "b"])
    with pytest.raises(ValueError, match="non-finite"):
        CallableEncoder(lambda texts: np.full((len(texts), 2), np.nan)).encode(["a"])
    with pytest.raises(TypeError, match="single str"):
        enc.encode("a")


# ---------------------------------------------------------------- cache


def test_cache_sends_only_deduplicated_misses_in_one_call() -> None:
    inner = CountingEncoder()
    enc = CachedEncoder(inner)
    first = enc.encode(["a", "b", "a"])
    assert inner.calls == [["a", "b"]]
    np.testing.assert_array_equal(first, inner.encode(["a", "b", "a"]))
    inner.calls.clear()
    second = enc.encode(["b", "c", "a", "c", "d"])
    assert inner.calls == [["c", "d"]]
    np.testing.assert_array_equal(second, inner.encode(["b", "c", "a", "c", "d"]))
    assert enc.cache_info() == CacheInfo(hits=1 + 3, misses=2 + 2, maxsize=100_000, currsize=4)
    second[:] = 0  # the caller owns its array
    assert enc.encode(["b"]).any()


def test_cache_lru_eviction_bound() -> None:
    inner = CountingEncoder()
    enc = CachedEncoder(inner, maxsize=3)
    enc.encode(["a", "b", "c"])
    enc.encode(["a"])  # a is now most recent; b is least recent
    enc.encode(["d"])  # evicts b
    assert enc.cache_info().currsize == 3
    inner.calls.clear()
    enc.encode(["a", "c", "d"])
    assert inner.calls == []
    enc.encode(["b"])
    assert inner.calls == [["b"]]
    enc.encode([f"t{i}" for i in range(10)])
    assert enc.cache_info().currsize == 3
    with pytest.raises(ValueError, match="maxsize >= 1"):
        CachedEncoder(inner, maxsize=0)


def test_cache_keys_on_the_inner_character_limit() -> None:
    inner = CountingEncoder(max_chars=4)
    enc = CachedEncoder(inner)
    enc.encode(["abcdXXX", "abcdYYY"])
    assert inner.calls == [["abcd"]]


def test_cache_is_thread_safe_under_concurrent_calls() -> None:
    inner = CountingEncoder(delay=0.001)
    enc = CachedEncoder(inner, maxsize=50)
    rng = np.random.default_rng(0)
    batches = [[f"label {k}" for k in rng.integers(0, 80, size=30)] for _ in range(200)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(enc.encode, batches))
    for batch, result in zip(batches, results):
        np.testing.assert_array_equal(result, inner.encode(batch))
    info = enc.cache_info()
    assert info.hits + info.misses == sum(len(b) for b in batches)
    assert info.currsize <= 50 and info.misses > 0 and info.hits > 0


# ---------------------------------------------------------------- get_text_encoder


def test_get_text_encoder_dispatch(tmp_path: Path) -> None:
    assert isinstance(get_text_encoder("lexical"), LexicalEncoder)
    minilm = get_text_encoder("minilm")
    assert isinstance(minilm, SentenceTransformerEncoder) and minilm.name.endswith("all-MiniLM-L6-v2")
    assert isinstance(get_text_encoder("default"), SentenceTransformerEncoder)
    lexical = LexicalEncoder()
    assert get_text_encoder(lexical) is lexical
    assert isinstance(get_text_encoder(lambda texts: np.ones((len(texts), 2))), CallableEncoder)
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model.*not an existing directory"):
        get_text_encoder(str(missing))
    with pytest.raises(TypeError, match="expected 'minilm'"):
        get_text_encoder(3)  # type: ignore[arg-type]


# ---------------------------------------------------------------- MiniLM (real model, offline)


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder()


def test_minilm_ranks_paraphrase_above_unrelated(minilm: SentenceTransformerEncoder) -> None:
    e = minilm.encode(["left pleural effusion", "fluid in the left pleural space", "cardiomegaly"])
    assert e.dtype == np.float32 and e.shape == (3, 384) and unit_or_zero(e)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_minilm_odd_inputs(minilm: SentenceTransformerEncoder) -> None:
    e = minilm.encode(["", "   ", "épanchement pleural gauche", "左侧胸腔积液", HUGE])
    assert not e[:2].any()
    np.testing.assert_allclose(np.linalg.norm(e[2:], axis=1), 1.0, atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)


def test_minilm_through_cache_matches_direct(minilm: SentenceTransformerEncoder) -> None:
    texts = ["nodule in the right upper lobe", "rib fracture", "nodule in the right upper lobe"]
    cached = CachedEncoder(minilm)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(cached.encode, [texts] * 4))
    for result in results:
        np.testing.assert_allclose(result, minilm.encode(texts), atol=1e-5)


# ---------------------------------------------------------------- CLIP region mode (tiny random model)


def test_clip_region_similarity_is_finite_cosine(tiny_clip: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    gray16 = rng.integers(0, 4096, size=(50, 50)).astype(np.uint16)
    enc = ClipRegionEncoder(tiny_clip)
    boxes = np.array([[10, 5, 50, 40], [0, 0, 80, 60], [20.5, 10.2, 30.7, 55.9], [5, 5, 45, 30]])
    texts = ["left pleural effusion", "heart", "nodule " + HUGE, "lung"]
    sims = enc.similarity([image, image, image, gray16], boxes, texts)
    assert sims.shape == (4,) and np.isfinite(sims).all() and np.all(np.abs(sims) <= 1.0)
    assert np.all(sims != 0)
    again = enc.similarity([image], boxes[:1], texts[:1])
    np.testing.assert_allclose(again, sims[:1], atol=1e-5)


def test_clip_degenerate_boxes_score_zero(tiny_clip: Path) -> None:
    image = np.full((40, 40, 3), 128, dtype=np.uint8)
    enc = ClipRegionEncoder(tiny_clip)
    boxes = np.array(
        [[10, 10, 10, 30], [10, 30, 20, 10], [50, 50, 70, 70], [np.nan, 0, 5, 5], [-10, -10, 0, 40], [5, 5, 15, 15]]
    )
    sims = enc.similarity([image] * 6, boxes, ["lung"] * 6)
    np.testing.assert_array_equal(sims[:5], 0.0)
    assert sims[5] != 0
    assert enc.similarity([], np.zeros((0, 4)), []).shape == (0,)
    with pytest.raises(ValueError, match="2 images, 1 boxes, 2 texts"):
        enc.similarity([image, image], boxes[:1], ["a", "b"])


def test_clip_missing_path_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.*CLIP-style model directory"):
        ClipRegionEncoder(tmp_path / "nowhere")


def test_crop_square_pads_with_mean_colour() -> None:
    from PIL import Image

    arr = np.zeros((20, 30, 3), dtype=np.uint8)
    arr[:, 10:20] = (200, 100, 50)
    square = _crop_square(Image.fromarray(arr), np.array([10.0, 4.0, 19.5, 8.0]))
    assert square.size == (10, 10)
    out = np.asarray(square)
    np.testing.assert_array_equal(out[0, 0], (200, 100, 50))  # padding row = mean of a uniform crop
    np.testing.assert_array_equal(out[5, 5], (200, 100, 50))


def test_l2_normalize_tiny_and_huge_rows() -> None:
    # Found by hypothesis: in float32, [0, 0, 1.6e-21] normalised to norm 1.0000207 (a subnormal square).
    out = l2_normalize(np.array([[0.0, 0.0, 1.6e-21], [1e20, 0.0, 1e20]]))
    assert unit_or_zero(out) and np.linalg.norm(out, axis=1).min() > 0.99
