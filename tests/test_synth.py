"""The synthetic grounding data set and the tiny model builder: determinism, tight boxes, phrases that match."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from medground_eval.cli import app
from medground_eval.datasets import get_loader
from medground_eval.synth import SynthOptions, make_sample, synthesize

runner = CliRunner()


def _digest(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_synth_is_deterministic_by_seed(tmp_path):
    options = SynthOptions(n=12, n_test=4, size=64, two_regions=0.5, seed=3)
    synthesize(tmp_path / "a", options)
    synthesize(tmp_path / "b", options)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")  # byte for byte
    synthesize(tmp_path / "c", SynthOptions(n=12, n_test=4, size=64, two_regions=0.5, seed=4))
    assert _digest(tmp_path / "a")["data.jsonl"] != _digest(tmp_path / "c")["data.jsonl"]
    more = SynthOptions(n=20, n_test=4, size=64, two_regions=0.5, seed=3)
    for index in range(8):  # a larger n adds samples without changing the first ones (their split aside)
        first, second = make_sample(index, options), make_sample(index, more)
        np.testing.assert_array_equal(first[0], second[0])
        assert first[1]["boxes"] == second[1]["boxes"] and first[1]["phrase"] == second[1]["phrase"]


@pytest.mark.parametrize("two_regions", [0.0, 1.0])
def test_boxes_are_the_tight_boxes_of_the_bright_shapes(two_regions):
    options = SynthOptions(n=30, n_test=5, size=112, two_regions=two_regions, seed=1)
    for index in range(options.n):
        pixels, record = make_sample(index, options)
        bright = pixels[:, :, 0] > 120
        assert len(record["boxes"]) == (2 if two_regions else 1)
        drawn = np.zeros_like(bright)
        for x1, y1, x2, y2 in record["boxes"]:
            assert 0 <= x1 < x2 <= 112 and 0 <= y1 < y2 <= 112
            region = bright[y1:y2, x1:x2]
            # the shape touches all four sides of its box
            assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any()
            drawn[y1:y2, x1:x2] = True
        assert not (bright & ~drawn).any()  # nothing bright outside the boxes (the noise stays far below)
        shape_word = {"ellipse": "round", "rectangle": "rectangular"}[record["category"]]
        assert shape_word in record["phrase"]
        if two_regions:
            assert record["phrase"].startswith("bilateral")
            assert record["boxes"][0][2] <= 56 <= record["boxes"][1][0]  # one in each half


def test_laterality_words_follow_the_radiological_convention():
    """The patient's right is on the image's left (chest X-ray convention, as medground_eval.anatomy assumes)."""
    options = SynthOptions(n=40, n_test=0, size=224, seed=2)
    for index in range(options.n):
        _, record = make_sample(index, options)
        x1, _, x2, _ = record["boxes"][0]
        side = "right" if (x1 + x2) / 2 < 112 else "left"
        assert record["phrase"].split()[0] == side, record
    plain = SynthOptions(n=10, n_test=0, laterality=False, shape_words=False)
    phrases = {make_sample(i, plain)[1]["phrase"] for i in range(plain.n)}
    assert phrases <= {"opacity", "nodule", "mass"}


def test_synth_cli_writes_what_the_jsonl_loader_reads(tmp_path):
    result = runner.invoke(app, ["synth", "--output", str(tmp_path / "d"), "--n", "10", "--n-test", "3",
                                 "--size", "56", "--two-regions", "0.5"])
    assert result.exit_code == 0, result.output
    assert "wrote 7 train and 3 test samples" in result.output
    annotations = tmp_path / "d" / "data.jsonl"
    train = get_loader("jsonl")(annotations, split="train").samples
    test = get_loader("jsonl")(annotations, split="test").samples
    assert len(train) == 7 and len(test) == 3
    assert all((tmp_path / "d" / s.image).is_file() and s.image_size == (56, 56) for s in train + test)
    record = json.loads(annotations.read_text().splitlines()[0])
    assert set(record) == {"id", "phrase", "boxes", "image_size", "category", "image", "split"}
    bad = runner.invoke(app, ["synth", "--output", str(tmp_path / "e"), "--n", "5", "--n-test", "5"])
    assert bad.exit_code == 2 and "--n-test 5: expected 0 <= n_test < n = 5" in bad.output


def test_tiny_model_cli_builds_a_loadable_checkpoint(tmp_path):
    pytest.importorskip("transformers")
    from medground_eval.frames import resolve_model_frame
    from medground_eval.inference import load_model_and_processor

    result = runner.invoke(app, ["tiny-model", str(tmp_path / "m"), "--size", "test"])
    assert result.exit_code == 0, result.output
    model, processor = load_model_and_processor(tmp_path / "m")
    assert model.config.model_type == "qwen2_5_vl"
    frame = resolve_model_frame(tmp_path / "m")
    assert (frame.kind, frame.max_pixels) == ("resized", 56 * 56)
    bad = runner.invoke(app, ["tiny-model", str(tmp_path / "n"), "--size", "huge"])
    assert bad.exit_code == 2 and "expected one of test, learn" in bad.output
