"""Each compatibility preset against a re-implementation of its script, on 5,000 generated completions with the
edge cases (ties at the thresholds, several boxes, missing tags, floats, negatives, swapped corners, no box).

The references below are written from the scripts' logic, line by line, not imported:
- lmms-eval refcoco ``bbox_rec``: EvolvingLMMs-Lab/lmms-eval ``lmms_eval/tasks/refcoco/utils_rec.py`` (0.7.3; mirror
  commit 75571cf, 2026-08-06): ``parse_float_sequence_within`` (first ``[a, b, c, d]`` of ``-?\\d+(\\.\\d+)?`` in the
  whole text, else ``[0, 0, 0, 0]``), ``compute_iou`` (continuous, signed areas), ``compute_accuracy`` (IoU >= t),
  ``compute_center_accuracy`` (centre of the prediction within the truth, inclusive), mean over samples.
- medground-r1: the MedGround-R1 fork's evaluation = VLM-R1 ``src/eval/test_rec_r1.py`` before om-ai-lab/VLM-R1
  commit 00755a2 (2025-06-26): ``extract_bbox_answer`` (first ``<answer>(.*?)</answer>`` with re.DOTALL, then
  greedy ``\\{.*\\[(\\d+),\\s*(\\d+),\\s*(\\d+),\\s*(\\d+)]\\s*.*\\}``, else ``[0, 0, 0, 0]``), ``iou`` with the -1/+1
  convention, hit when IoU > 0.5.
Where the scripts divide by a zero union (ZeroDivisionError) the preset scores 0; the generator writes such cases and
the reference applies the same documented decision.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from medground_eval.datasets.base import LoadedDataset
from medground_eval.evaluation.scorer import score_predictions
from medground_eval.structures import Sample

N = 5000
THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)


def lmms_parse(text: str) -> list[float]:
    pattern = r"\[\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)\s*\]"
    match = re.search(pattern, text)
    return [float(match.group(i)) for i in range(1, 5)] if match else [0, 0, 0, 0]


def lmms_iou(box1, box2) -> float:
    x_left, y_top = max(box1[0], box2[0]), max(box1[1], box2[1])
    x_right, y_bottom = min(box1[2], box2[2]), min(box1[3], box2[3])
    inter = max(0, x_right - x_left) * max(0, y_bottom - y_top)
    union = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1]) - inter
    return inter / union if union > 0 else 0.0  # ours: their ZeroDivisionError / negative union scores 0


def lmms_center(gt, pred) -> bool:
    cx, cy = (pred[0] + pred[2]) / 2, (pred[1] + pred[3]) / 2
    return gt[0] <= cx <= gt[2] and gt[1] <= cy <= gt[3]


def vlm_r1_extract(content: str) -> list[int]:
    answer = re.search(r"<answer>(.*?)</answer>", content, re.DOTALL)
    if answer:
        box = re.search(r"\{.*\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]\s*.*\}", answer.group(1).strip(), re.DOTALL)
        if box:
            return [int(box.group(i)) for i in range(1, 5)]
    return [0, 0, 0, 0]


def vlm_r1_iou(box1, box2) -> float:
    ix1, iy1 = max(box1[0], box2[0]), max(box1[1], box2[1])
    ix2, iy2 = min(box1[2] - 1, box2[2] - 1), min(box1[3] - 1, box2[3] - 1)
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
    union = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1]) - inter
    return float(inter) / union if union > 0 else 0.0


def generate(seed: int) -> tuple[list[Sample], list[dict]]:
    """Truth boxes on a 1000 x 1000 image and completions around them, with the edge cases of both scripts."""
    rng = random.Random(seed)
    samples, records = [], []
    for i in range(N):
        x1, y1 = rng.randint(0, 800), rng.randint(0, 800)
        w, h = rng.choice([10, 20, 40, 100]), rng.choice([10, 20, 40, 100])
        truth = [x1, y1, x1 + w, y1 + h]
        if rng.random() < 0.05:
            truth = [0, 0, w, h]  # touches the origin: their [0, 0, 0, 0] centre lies in it
        kind = rng.randrange(10)
        shift = rng.choice([0, 0, 1, w // 2, w, -w // 4])
        box = [truth[0] + shift, truth[1], truth[2] + shift, truth[3]]
        if kind == 1:  # half-width box: IoU exactly 0.5 (tie at the threshold)
            box = [truth[0], truth[1], truth[0] + w // 2, truth[3]]
        if kind == 2:  # floats
            box = [v + rng.choice([0.0, 0.5, 0.25]) for v in box]
        if kind == 3:  # swapped corners
            box = [box[2], box[3], box[0], box[1]]
        if kind == 4:  # negative
            box = [-5, box[1], box[2], box[3]]
        numbers = ", ".join(str(v) for v in box)
        other = f"[{box[0] + 300}, {box[1]}, {box[2] + 300}, {box[3]}]"
        shapes = [
            f'<think>t</think><answer>{{"bbox_2d": [{numbers}], "label": "x"}}</answer>',
            f'<think>t</think><answer>[{{"bbox_2d": [{numbers}]}}, {{"bbox_2d": {other}}}]</answer>',  # two boxes
            f'<think>t</think><answer>[{{"bbox_2d": {other}}}, {{"bbox_2d": [{numbers}]}}]</answer>',
            f'<think>t</think><answer>{{"bbox_2d": [{numbers}]}}',  # no </answer>
            f"<think>t</think><answer>[{numbers}]</answer>",  # bare list
            f"[{numbers}]",  # no tags at all
            f'<think>see [1, 2, 3, 4]</think><answer>{{"bbox_2d": [{numbers}]}}</answer>',  # box in think first
            "<think>t</think><answer>no box</answer>",
            f'<think>t</think><answer>\n{{"bbox_2d":\n[{numbers}]\n}}\n</answer>',  # multi-line
        ]
        samples.append(Sample(id=f"s{i}", phrase="p", boxes=[truth], image_size=(1000, 1000)))
        records.append({"id": f"s{i}", "completion": rng.choice(shapes)})
    return samples, records


@pytest.fixture(scope="module")
def generated():
    samples, records = generate(0)
    return LoadedDataset("jsonl", samples), samples, records


def test_lmms_eval_preset_matches_its_script(generated):
    dataset, samples, records = generated
    result = score_predictions(records, dataset, compat="lmms-eval", thresholds=THRESHOLDS, n_bootstrap=0)
    preds = [lmms_parse(r["completion"]) for r in records]
    truths = [s.boxes[0].tolist() for s in samples]
    iou = np.array([lmms_iou(t, p) for t, p in zip(truths, preds)])
    np.testing.assert_allclose(result.per_sample.iou, iou, atol=1e-12)
    report = result.report
    assert report.miou == pytest.approx(iou.mean(), abs=1e-12)
    for t in THRESHOLDS:
        assert report.acc[f"{t:g}"] == pytest.approx(np.mean([v >= t for v in iou]), abs=1e-12), t
    assert report.pointing == pytest.approx(np.mean([lmms_center(t, p) for t, p in zip(truths, preds)]), abs=1e-12)
    # the edge cases are really in the set
    assert np.isclose(iou, 0.5).sum() > 50 and (iou == 0).sum() > 100 and (iou == 1).sum() > 100


def test_medground_r1_preset_matches_its_script(generated):
    dataset, samples, records = generated
    result = score_predictions(records, dataset, compat="medground-r1", n_bootstrap=0)
    truths = [s.boxes[0].tolist() for s in samples]
    iou = np.array([vlm_r1_iou(vlm_r1_extract(r["completion"]), t) for r, t in zip(records, truths)])
    np.testing.assert_allclose(result.per_sample.iou, iou, atol=1e-12)
    assert result.report.acc["0.5"] == pytest.approx(np.mean(iou > 0.5), abs=1e-12)
    assert np.isclose(iou, 0.5).sum() > 50  # ties at the threshold: misses under > 0.5
    assert result.config["compat"] == "medground-r1"
    assert result.config["parse_rules"].startswith("medground-r1:")


def resize_bbox(bbox, input_height, input_width, image_height, image_width):
    # VLM-R1 src/eval/test_rec_r1.py since 00755a2: input_height = image_grid_thw[1] * 14, width likewise
    return [bbox[0] / input_width * image_width, bbox[1] / input_height * image_height,
            bbox[2] / input_width * image_width, bbox[3] / input_height * image_height]


def test_vlm_r1_preset_matches_todays_script():
    # The processor's grid is smart_resize(h, w) / 14 per side: transformers' own smart_resize (its PIL module, which
    # imports without torchvision), with Qwen2.5-VL's preprocessor limits min_pixels 3136, max_pixels 12845056,
    # the limits the preset uses.
    qwen = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    rng = random.Random(1)
    sizes = [(1024, 1024), (640, 480), (2000, 2500), (3000, 2000), (517, 733)]
    samples, records, expected = [], [], []
    for i in range(N):
        width, height = rng.choice(sizes)
        input_height, input_width = qwen.smart_resize(height, width, factor=28, min_pixels=3136, max_pixels=12845056)
        x1, y1 = rng.randint(0, width // 2), rng.randint(0, height // 2)
        truth = [x1, y1, x1 + rng.randint(20, width // 3), y1 + rng.randint(20, height // 3)]
        # the model answers in its input's pixels, sometimes off by a few input pixels, sometimes past the edge
        box = [round(v * s) for v, s in zip(truth, (input_width / width, input_height / height) * 2)]
        box = [v + rng.choice([0, 0, 1, -1, 3, 40]) for v in box]
        if rng.random() < 0.05:
            box[2] = input_width + 30
        shape = rng.choice([
            '<think>t</think><answer>{{"bbox_2d": [{}, {}, {}, {}]}}</answer>',
            "<think>t</think><answer>[{}, {}, {}, {}]</answer>",  # no braces: [0, 0, 0, 0]
        ])
        text = shape.format(*box)
        samples.append(Sample(id=f"s{i}", phrase="p", boxes=[truth], image_size=(width, height)))
        records.append({"id": f"s{i}", "completion": text})
        answer = vlm_r1_extract(text)
        resized = resize_bbox(answer, input_height, input_width, height, width)
        expected.append(vlm_r1_iou(resized, truth))
    dataset = LoadedDataset("jsonl", samples)
    result = score_predictions(records, dataset, compat="vlm-r1", n_bootstrap=0)
    np.testing.assert_allclose(result.per_sample.iou, expected, atol=1e-9)
    assert result.report.acc["0.5"] == pytest.approx(np.mean(np.array(expected) > 0.5), abs=1e-12)
    old = score_predictions(records, dataset, compat="medground-r1", n_bootstrap=0).report.acc["0.5"]
    assert old != result.report.acc["0.5"]  # the two protocols really differ on resized answers


def test_vlm_r1_prints_the_rename_notice(tmp_path):
    import json

    from typer.testing import CliRunner

    from medground_eval.cli import app

    truth = tmp_path / "gt.jsonl"
    truth.write_text(json.dumps({"id": "s", "phrase": "p", "boxes": [[0, 0, 100, 100]], "image_size": [1000, 1000]})
                     + "\n")
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "s", "completion": '<answer>{"bbox_2d": [0, 0, 100, 100]}</answer>'}) + "\n")
    notices = {}
    for preset in ("vlm-r1", "medground-r1"):
        result = CliRunner().invoke(app, ["score", str(preds), "--dataset", "jsonl", "--annotations", str(truth),
                                          "--compat", preset, "--bootstrap", "0", "--output", str(tmp_path / "m.json")])
        assert result.exit_code == 0, result.output
        notices[preset] = "--compat medground-r1" in result.output
    assert notices == {"vlm-r1": True, "medground-r1": False}
