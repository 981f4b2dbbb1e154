"""Coordinate frames: smart_resize against transformers, conversions, out-of-frame counting, presets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medground_eval.frames import FRAME_PRESETS, Frame, get_frame, smart_resize

pytest.importorskip("transformers")
# transformers' smart_resize. The torchvision-backed module holds the original; its PIL twin is a verbatim
# "Copied from" copy that imports without torchvision (which this project never needs).
try:
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as reference_smart_resize
except ImportError:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as reference_smart_resize


@given(
    st.integers(1, 30000),
    st.integers(1, 30000),
    st.sampled_from([14, 16, 28, 32]),
    st.integers(1, 2_000_000),
    st.integers(1, 20_000_000),
)
def test_smart_resize_matches_transformers(
    height: int, width: int, factor: int, min_pixels: int, max_pixels: int
) -> None:
    try:
        expected = reference_smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    except ValueError:
        with pytest.raises(ValueError, match="aspect ratio"):
            smart_resize(height, width, factor, min_pixels, max_pixels)
        return
    assert smart_resize(height, width, factor, min_pixels, max_pixels) == expected


def test_smart_resize_known_values_and_errors() -> None:
    assert smart_resize(1080, 1920) == (1092, 1932)
    assert smart_resize(10, 10) == (56, 56)  # scaled up to min_pixels = 4 * 28 * 28
    for height, width in [(0, 10), (10, -3)]:
        with pytest.raises(ValueError, match="must be positive"):
            smart_resize(height, width)
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2010)


def test_norm_frames_scale_and_count_out_of_frame_before_clipping() -> None:
    boxes = np.array([[100, 200, 500, 1000], [0, 0, 1200, 500], [-1, 0, 10, 10]], dtype=float)
    result = get_frame("norm1000").to_pixels(boxes, (640, 480))
    np.testing.assert_allclose(result.boxes, [[64, 96, 320, 480], [0, 0, 640, 240], [0, 0, 6.4, 4.8]])
    np.testing.assert_array_equal(result.out_of_frame, [False, True, True])
    result = get_frame("norm1").to_pixels(boxes / 1000, (640, 480))
    np.testing.assert_allclose(result.boxes, [[64, 96, 320, 480], [0, 0, 640, 240], [0, 0, 6.4, 4.8]])
    np.testing.assert_array_equal(result.out_of_frame, [False, True, True])


def test_pixel_frame_clips_to_image() -> None:
    result = get_frame("pixel").to_pixels([[10, 10, 700, 20], [1, 2, 3, 4]], (640, 480))
    np.testing.assert_array_equal(result.boxes, [[10, 10, 640, 20], [1, 2, 3, 4]])
    np.testing.assert_array_equal(result.out_of_frame, [True, False])


def test_resized_frame_uses_smart_resize_or_given_input_size() -> None:
    frame = get_frame("qwen2.5-vl")
    height, width = smart_resize(1080, 1920)
    result = frame.to_pixels([[0, 0, width, height], [0, 0, width + 1, 10]], (1920, 1080))
    np.testing.assert_allclose(result.boxes[0], [0, 0, 1920, 1080])
    np.testing.assert_array_equal(result.out_of_frame, [False, True])
    given_input = frame.to_pixels([[10, 10, 100, 50]], (1000, 500), input_size=(500, 250))
    np.testing.assert_allclose(given_input.boxes, [[20, 20, 200, 100]])
    mixed = frame.to_pixels([[10, 10, 100, 50]] * 2, [(1000, 500), (1920, 1080)], [(500, 250), (np.nan, np.nan)])
    np.testing.assert_allclose(mixed.boxes[1], frame.to_pixels([[10, 10, 100, 50]], (1920, 1080)).boxes[0])
    with pytest.raises(ValueError, match=r"input_size: sizes must be positive and finite, got \[500.0, nan\]"):
        frame.to_pixels([[10, 10, 100, 50]], (1000, 500), input_size=(500, np.nan))
    small = get_frame("qwen2.5-vl", max_pixels=256 * 28 * 28)
    expected = smart_resize(1080, 1920, max_pixels=256 * 28 * 28)[::-1]
    np.testing.assert_array_equal(small.input_sizes([(1920, 1080)]), [expected])


def test_per_box_image_sizes_equal_one_call_per_box() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(50, 3000, (40, 2)).astype(float)
    sizes[::3] = [512, 512]  # repeated sizes share one smart_resize
    lo = rng.uniform(-50, 900, (40, 2))
    boxes = np.hstack([lo, lo + rng.uniform(0, 300, (40, 2))])
    for name in ("pixel", "norm1000", "norm1", "qwen2.5-vl"):
        frame = get_frame(name)
        batch = frame.to_pixels(boxes, sizes)
        for i in range(len(boxes)):
            one = frame.to_pixels(boxes[i : i + 1], sizes[i])
            np.testing.assert_array_equal(batch.boxes[i], one.boxes[0])
            assert batch.out_of_frame[i] == one.out_of_frame[0]


@given(
    st.sampled_from(["pixel", "norm1000", "norm1", "qwen2.5-vl"]),
    st.integers(28, 4000),
    st.integers(28, 4000),
    st.lists(st.floats(0, 1), min_size=4, max_size=4),
)
def test_from_pixels_inverts_to_pixels(name: str, width: int, height: int, unit: list[float]) -> None:
    x1, x2 = sorted(unit[:2])
    y1, y2 = sorted(unit[2:])
    pixels = np.array([[x1 * width, y1 * height, x2 * width, y2 * height]])
    frame = get_frame(name)
    written = frame.from_pixels(pixels, (width, height))
    result = frame.to_pixels(written, (width, height))
    np.testing.assert_allclose(result.boxes, pixels, rtol=1e-12, atol=1e-9)
    assert not result.out_of_frame.any()


def test_3d_norm_frames_and_resized_is_2d_only() -> None:
    result = get_frame("norm1000").to_pixels([[0, 0, 0, 500, 1000, 1001]], (256, 256, 32))
    np.testing.assert_allclose(result.boxes, [[0, 0, 0, 128, 256, 32]])
    assert result.out_of_frame.tolist() == [True]
    with pytest.raises(ValueError, match="2D only"):
        get_frame("resized").to_pixels([[0, 0, 0, 1, 1, 1]], (256, 256, 32))
    with pytest.raises(ValueError, match="expected 3 numbers"):
        get_frame("norm1").to_pixels([[0, 0, 0, 1, 1, 1]], (256, 256))


@pytest.mark.parametrize("size", [(0, 100), (100, -1), (float("nan"), 5), (float("inf"), 5)])
def test_invalid_image_sizes_name_the_value(size: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match=r"image_size: sizes must be positive and finite, got \[.*\]"):
        get_frame("norm1000").to_pixels([[0, 0, 1, 1]], size)
    with pytest.raises(ValueError, match=r"row 1"):
        get_frame("pixel").to_pixels([[0, 0, 1, 1], [0, 0, 1, 1]], [(10, 10), size])


def test_presets_and_get_frame() -> None:
    names = {"pixel", "norm1000", "norm1", "resized", "qwen2-vl", "qwen2.5-vl", "qwen3-vl", "internvl"}
    names |= {"voxel", "m3d-npy"}  # 3D presets
    names |= {"gemini", "norm1024", "paligemma", "bins1000", "florence-2"}  # y-first and binned families
    assert set(FRAME_PRESETS) == names
    for name in ("qwen2-vl", "qwen3-vl", "internvl"):
        assert get_frame(name).kind == "norm1000"
    assert get_frame("Qwen2.5-VL") == Frame("resized", factor=28, min_pixels=4 * 28 * 28, max_pixels=16384 * 28 * 28)
    assert get_frame("qwen2.5-vl", min_pixels=1024).min_pixels == 1024
    frame = Frame("norm1")
    assert get_frame(frame) is frame
    with pytest.raises(ValueError, match="unknown frame 'qwen9'.*qwen2.5-vl.*internvl"):
        get_frame("qwen9")
    with pytest.raises(ValueError, match="unknown frame override.*max_pxels"):
        get_frame("resized", max_pxels=10)
    with pytest.raises(ValueError, match="kind 'norm100' is unknown"):
        Frame("norm100")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not exceed"):
        Frame("resized", min_pixels=10, max_pixels=5)


def test_empty_and_nan_boxes() -> None:
    for name in set(FRAME_PRESETS) - {"m3d-npy"}:  # 3D only, tested in tests/test_3d.py
        result = get_frame(name).to_pixels(np.zeros((0, 4)), (640, 480))
        assert result.boxes.shape == (0, 4) and result.out_of_frame.shape == (0,)
    result = get_frame("norm1000").to_pixels([[0, 0, np.nan, 10]], (640, 480))
    assert result.out_of_frame.tolist() == [True]


def test_y_first_presets_swap_once_in_the_frame() -> None:
    # Gemini's box_2d is [ymin, xmin, ymax, xmax] on 0-1000 (Gemini API docs, "Object detection");
    # PaliGemma's <locYYYY><locXXXX>.. are y first, v / 1024 of the side (big_vision paligemma README).
    size = (2048, 1024)
    truth = np.array([[512.0, 256.0, 1536.0, 768.0]])
    gemini = get_frame("gemini")
    np.testing.assert_allclose(gemini.to_pixels([[250, 250, 750, 750]], size).boxes, truth)
    np.testing.assert_allclose(gemini.from_pixels(truth, size), [[250, 250, 750, 750]])
    paligemma = get_frame("paligemma")
    np.testing.assert_allclose(paligemma.to_pixels([[256, 256, 768, 768]], size).boxes, truth)
    np.testing.assert_array_equal(paligemma.to_pixels([[0, 0, 1023, 1024]], size).out_of_frame, [False])
    np.testing.assert_array_equal(paligemma.to_pixels([[0, 0, 1023, 1025]], size).out_of_frame, [True])
    # Gemini's numbers read x first are another box.
    assert not np.allclose(get_frame("norm1000").to_pixels([[100, 250, 900, 750]], size).boxes,
                           gemini.to_pixels([[100, 250, 900, 750]], size).boxes)
    with pytest.raises(ValueError, match="2D only"):
        gemini.to_pixels([[0, 0, 0, 1, 1, 1]], (10, 10, 10))


def test_florence_bins_are_dequantized_at_the_bin_centre() -> None:
    # Florence-2 processing_florence2.py BoxQuantizer: floor into 1000 bins, dequantize (bin + 0.5) * size / bins.
    florence = get_frame("florence-2")
    result = florence.to_pixels([[0, 100, 499, 999], [0, 0, 1000, 10]], (2000, 1000))
    np.testing.assert_allclose(result.boxes, [[1, 100.5, 999, 999.5], [1, 0.5, 2000, 10.5]])
    np.testing.assert_array_equal(result.out_of_frame, [False, True])
    np.testing.assert_allclose(florence.from_pixels(result.boxes[:1], (2000, 1000)), [[0, 100, 499, 999]])


def test_frame_spec_round_trips_through_get_frame() -> None:
    for name in FRAME_PRESETS:
        assert get_frame(get_frame(name).spec) == get_frame(name)
    limited = get_frame("qwen2.5-vl", max_pixels=1003520, min_pixels=3136)
    assert limited.spec == "resized:max_pixels=1003520"
    assert get_frame("resized:max_pixels=1003520") == limited
    assert get_frame("norm1:axes=yx") == Frame("norm1", axes="yx")
    for bad in ("resized:max_pixels=abc", "resized:colour=1", "resized:max_pixels"):
        with pytest.raises(ValueError, match="frame"):
            get_frame(bad)
    with pytest.raises(ValueError, match="axes"):
        Frame("norm1000", axes="zx")
