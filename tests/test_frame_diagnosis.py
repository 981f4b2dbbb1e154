"""Issue 12's cases on the command line: wrong frames, pixel limits, y-first presets, the join and the footer.

Synthetic chest-X-ray-sized images (2000-3000 px) with one true box each; the model's answer is the true box moved
by a few pixels, written in the frame under test, so the right frame scores about Acc@0.5 0.9+ and a wrong one
about 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medground_eval.cli import app
from medground_eval.evaluation.diagnosis import CANDIDATES, MIN_SAMPLES, sign_test
from medground_eval.frames import get_frame

runner = CliRunner()
N = 40


def synthetic_truth(n: int = N, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        w, h = int(rng.integers(2000, 3000)), int(rng.integers(2000, 3000))
        bw, bh = rng.uniform(0.15, 0.4) * w, rng.uniform(0.15, 0.4) * h
        x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        rows.append({"id": f"s{i}", "phrase": "left pleural effusion", "image_size": [w, h],
                     "boxes": [[round(x1), round(y1), round(x1 + bw), round(y1 + bh)]]})
    return rows


def answers(truth: list[dict], frame: str, jitter: float = 8.0, seed: int = 1) -> list[dict]:
    """Each true box moved by up to ``jitter`` pixels, written in ``frame`` as the model would."""
    rng = np.random.default_rng(seed)
    spec = get_frame(frame)
    lines = []
    for row in truth:
        box = np.asarray(row["boxes"], dtype=float) + rng.uniform(-jitter, jitter, size=(1, 4))
        written = spec.from_pixels(box, row["image_size"])[0]
        coords = [round(float(v), 3) if spec.kind == "norm1" else int(round(float(v))) for v in written]
        lines.append({"id": row["id"], "completion": f'<think>effusion</think><answer>{{"bbox_2d": {coords}}}</answer>'})
    return lines


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def score(tmp_path: Path, preds: list[dict], *options: str, truth: list[dict] | None = None):
    gt = write_jsonl(tmp_path / "gt.jsonl", truth or synthetic_truth())
    pred_file = write_jsonl(tmp_path / "preds.jsonl", preds)
    out = tmp_path / "metrics.json"
    result = runner.invoke(app, ["score", str(pred_file), "--dataset", "jsonl", "--annotations", str(gt),
                                 "--bootstrap", "0", "--output", str(out), *options])
    metrics = json.loads(out.read_text()) if out.exists() and result.exit_code == 0 else None
    return result, metrics


def flat(text: str) -> str:
    return " ".join(text.split())


def test_max_pixels_limited_answers_score_right_with_the_limit_and_warn_without(tmp_path):
    truth = synthetic_truth()
    preds = answers(truth, "qwen2.5-vl:max_pixels=1003520")
    wrong, metrics = score(tmp_path, preds, "--frame", "qwen2.5-vl", truth=truth)
    assert wrong.exit_code == 0, wrong.output
    assert metrics["acc"]["0.5"] < 0.1  # the processor's default max_pixels: every box lands elsewhere
    output = flat(wrong.output)
    assert "frame resized:max_pixels=1003520 clearly better" in output
    assert "--frame qwen2.5-vl --max-pixels 1003520" in output
    finding = metrics["config"]["diagnosis"]["findings"][0]
    assert finding["code"] == "frame-fit" and finding["numbers"]["best"]["acc@0.5"] > 0.9
    assert finding["numbers"]["used"]["acc@0.5"] == pytest.approx(metrics["acc"]["0.5"])  # never changes the score

    right, metrics = score(tmp_path, preds, "--frame", "qwen2.5-vl", "--max-pixels", "1003520", truth=truth)
    assert right.exit_code == 0, right.output
    assert metrics["acc"]["0.5"] > 0.9 and "warning" not in right.output
    assert metrics["config"]["frame"] == "resized:max_pixels=1003520"
    assert metrics["config"]["frame_settings"]["max_pixels"] == 1003520

    processor = tmp_path / "processor"
    processor.mkdir()
    (processor / "preprocessor_config.json").write_text(json.dumps({
        "processor_class": "Qwen2_5_VLProcessor", "patch_size": 14, "merge_size": 2,
        "size": {"shortest_edge": 3136, "longest_edge": 1003520}}))
    via_processor, metrics = score(tmp_path, preds, "--processor", str(processor), truth=truth)
    assert via_processor.exit_code == 0, via_processor.output
    assert metrics["acc"]["0.5"] > 0.9 and metrics["config"]["frame"] == "resized:max_pixels=1003520"


@pytest.mark.parametrize("written, option", [("norm1000", "--frame norm1000"), ("norm1", "--frame norm1")])
def test_normalized_answers_under_pixel_warn_with_the_right_frame(tmp_path, written, option):
    wrong, metrics = score(tmp_path, answers(synthetic_truth(), written))
    assert wrong.exit_code == 0 and metrics["acc"]["0.5"] < 0.1
    output = flat(wrong.output)
    assert f"fit frame {written} clearly better than the frame used (pixel)" in output
    assert option in output
    codes = [f["code"] for f in metrics["config"]["diagnosis"]["findings"]]
    assert codes == ["frame-fit", f"{written}-range"]


def test_a_correct_run_has_no_finding_and_a_small_run_is_not_judged(tmp_path):
    truth = synthetic_truth()
    result, metrics = score(tmp_path, answers(truth, "pixel"), truth=truth)
    assert result.exit_code == 0 and metrics["acc"]["0.5"] > 0.9
    assert metrics["config"]["diagnosis"]["findings"] == [] and "warning" not in result.output
    fit = metrics["config"]["diagnosis"]["frame_fit"]
    assert fit["used"]["frame"] == "pixel" and len(fit["candidates"]) == len(CANDIDATES) == 16
    small = synthetic_truth(MIN_SAMPLES - 1)
    result, metrics = score(tmp_path, answers(small, "norm1000"), truth=small)
    assert result.exit_code == 0 and metrics["config"]["diagnosis"]["findings"] == []


def test_sign_test_values():
    assert sign_test(20, 0) == pytest.approx(2 * 0.5 ** 20)
    assert sign_test(5, 5) == 1.0 and sign_test(0, 0) == 1.0


def test_gemini_answers_score_iou_one_under_their_preset(tmp_path):
    truth = synthetic_truth()
    lines = []
    for row in truth:
        y_first = get_frame("gemini").from_pixels(row["boxes"], row["image_size"])[0].tolist()
        lines.append({"id": row["id"], "completion": f'<answer>{{"box_2d": {y_first}, "label": "effusion"}}</answer>',
                      "frame": "gemini"})
    result, metrics = score(tmp_path, lines, "--answer-tag", "optional", truth=truth)
    assert result.exit_code == 0, result.output
    assert metrics["miou"] == pytest.approx(1.0) and metrics["config"]["frames_used"] == {"gemini": N}
    # The same answers read x first (the default norm1000) are wrong, and the diagnosis names gemini's frame.
    wrong, metrics = score(tmp_path, [{k: v for k, v in line.items() if k != "frame"} for line in lines],
                           "--answer-tag", "optional", "--frame", "norm1000", truth=truth)
    assert metrics["miou"] < 0.6 and "fit frame gemini clearly better" in flat(wrong.output)


def test_paligemma_loc_tokens_score_iou_one_under_their_preset(tmp_path):
    # PaliGemma writes <locYYYY><locXXXX><locYYYY><locXXXX> label: y first, v / 1024 of the side (big_vision).
    truth = synthetic_truth()
    lines = []
    for row in truth:
        w, h = row["image_size"]
        row["boxes"] = [[w / 8, h / 4, w / 2, 3 * h / 4]]  # on the 1024-bin grid, so the tokens are exact
        y1, x1, y2, x2 = (int(v) for v in get_frame("paligemma").from_pixels(row["boxes"], (w, h))[0])
        lines.append({"id": row["id"], "completion": f"<loc{y1:04d}><loc{x1:04d}><loc{y2:04d}><loc{x2:04d}> effusion"})
    result, metrics = score(tmp_path, lines, "--answer-tag", "optional", "--frame", "paligemma", truth=truth)
    assert result.exit_code == 0, result.output
    assert metrics["miou"] == pytest.approx(1.0) and metrics["config"]["frames_used"] == {"paligemma": N}
    # Under an x-first frame the same answers carry a problem naming the y-first presets (and still score).
    per_sample = tmp_path / "s.csv"
    wrong, _ = score(tmp_path, lines, "--answer-tag", "optional", "--frame", "norm1000", "--per-sample",
                     str(per_sample), truth=truth)
    assert wrong.exit_code == 0
    assert "box written y first" in per_sample.read_text() and "paligemma" in per_sample.read_text()


def test_florence_loc_tokens_score_under_their_preset(tmp_path):
    # Florence-2 writes label<loc_X1><loc_Y1><loc_X2><loc_Y2>, x first, 1000 bins dequantized at the bin centre.
    truth = synthetic_truth()
    lines = []
    for row in truth:
        x1, y1, x2, y2 = (int(round(v)) for v in get_frame("florence-2").from_pixels(row["boxes"], row["image_size"])[0])
        lines.append({"id": row["id"], "completion": f"effusion<loc_{x1}><loc_{y1}><loc_{x2}><loc_{y2}>"})
    result, metrics = score(tmp_path, lines, "--answer-tag", "optional", "--frame", "florence-2", truth=truth)
    assert result.exit_code == 0, result.output
    assert metrics["miou"] > 0.98  # one bin (< 3 px here) of quantization


def test_id_mismatch_exits_2_with_expected_and_given_ids(tmp_path):
    truth = synthetic_truth()
    preds = [dict(line, id=f"case-{i}") for i, line in enumerate(answers(truth, "pixel"))]
    result, _ = score(tmp_path, preds, truth=truth)
    assert result.exit_code == 2
    output = flat(result.output)
    assert "only 0 of 40 predictions matched" in output and "'s0'" in output and "'case-0'" in output
    assert "--allow-partial" in output
    partial, metrics = score(tmp_path, preds[:10] + answers(truth, "pixel")[10:15], "--allow-partial", truth=truth)
    assert partial.exit_code == 0 and metrics["config"]["matched_predictions"] == 5



def test_a_file_whose_every_line_joins_but_covers_few_samples_says_so(tmp_path):
    # every id is right, but the file holds 5 of 40 samples (another split, a run stopped early): the sentence says
    # coverage, not a keying problem, and names the samples without a prediction
    truth = synthetic_truth()
    result, _ = score(tmp_path, answers(truth, "pixel")[:5], truth=truth)
    assert result.exit_code == 2
    output = flat(result.output)
    assert "the 5 predictions cover only 5 of 40 ground-truth samples (35 without a prediction, such as 's5'" in output
    assert "--split" in output and "--allow-partial" in output and "matched a ground-truth id" not in output

def test_footer_names_the_frame_really_used(tmp_path):
    truth = synthetic_truth()
    preds = [dict(line, frame="qwen2.5-vl") for line in answers(truth, "qwen2.5-vl")]
    result, metrics = score(tmp_path, preds, truth=truth)
    assert result.exit_code == 0 and metrics["acc"]["0.5"] > 0.9
    output = flat(result.output)
    assert "frame pixel," not in output
    assert "frames resized on 40 lines (the lines own frame field) (run frame pixel applied to none)" in output
    assert metrics["config"]["frames_used"] == {"resized": 40}


def test_pixel_limits_need_a_resized_frame(tmp_path):
    result, _ = score(tmp_path, answers(synthetic_truth(), "pixel"), "--max-pixels", "1003520")
    assert result.exit_code == 1 and "only the 'resized' / 'qwen2.5-vl' frame uses" in flat(result.output)


def test_compare_warns_for_the_run_in_the_wrong_frame(tmp_path):
    truth = synthetic_truth()
    gt = write_jsonl(tmp_path / "gt.jsonl", truth)
    a = write_jsonl(tmp_path / "a.jsonl", answers(truth, "pixel"))
    b = write_jsonl(tmp_path / "b.jsonl", answers(truth, "norm1000"))
    out = tmp_path / "cmp.json"
    result = runner.invoke(app, ["compare", str(a), str(b), "--dataset", "jsonl", "--annotations", str(gt),
                                 "--bootstrap", "10", "--output", str(out)])
    assert result.exit_code == 0, result.output
    output = flat(result.output)
    assert "B (b.jsonl): warning: the answers fit frame norm1000 clearly better" in output
    assert "A (a.jsonl): warning" not in output
    document = json.loads(out.read_text())
    assert document["metrics_b"]["config"]["diagnosis"]["findings"][0]["code"] == "frame-fit"


def rollout_log(truth: list[dict], *, planted_frame_error: bool, whole_image: int, group_size: int = 4) -> list[dict]:
    """A synthetic GRPO rollout log: ``group_size`` completions per sample (one group each). The first groups are
    honest resized-frame answers with per-completion jitter (rewards vary); with ``planted_frame_error`` every
    completion writes norm1000 while its label says qwen2.5-vl; ``whole_image`` groups box the whole image."""
    lines = []
    for g, row in enumerate(truth):
        for k in range(group_size):
            if g < whole_image:
                written = get_frame("qwen2.5-vl").from_pixels([[0, 0, *row["image_size"]]], row["image_size"])[0]
            else:
                frame = "norm1000" if planted_frame_error else "qwen2.5-vl"
                jitter = np.random.default_rng(100 * g + k).uniform(-30, 30, 4)
                written = get_frame(frame).from_pixels(np.asarray(row["boxes"], float) + jitter, row["image_size"])[0]
            coords = [int(round(float(v))) for v in written]
            lines.append({"completion": f'<think>look</think><answer>{{"bbox_2d": {coords}}}</answer>',
                          "label": {"solution": row["boxes"], "phrase": row["phrase"], "image_size": row["image_size"],
                                    "frame": "qwen2.5-vl"}, "group": g})
    return lines


def test_doctor_finds_a_planted_frame_error_whole_image_boxes_and_zero_variance_groups(tmp_path):
    truth = synthetic_truth(30)
    log = write_jsonl(tmp_path / "rollouts.jsonl", rollout_log(truth, planted_frame_error=True, whole_image=6))
    result = runner.invoke(app, ["doctor", str(log), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    codes = {f["code"]: f for f in report["findings"]}
    assert report["kind"] == "rollouts" and report["samples"] == 120
    fit = codes["frame-fit"]["numbers"]
    assert fit["best"]["frame"] == "norm1000" and fit["best"]["acc@0.5"] > 0.6 and fit["used"]["acc@0.5"] < 0.1
    assert report["degenerate"]["whole_image"] == 24 and "degenerate-whole-image" in codes
    groups = report["groups"]
    assert groups["groups"] == 30 and groups["reward"] == "iou"
    # Wrong-frame groups score 0 for nearly every completion (a box read in the wrong frame rarely still overlaps)
    # and whole-image groups give one IoU to all four.
    assert groups["zero_variance"] >= 27 and "zero-variance-groups" in codes

    honest = write_jsonl(tmp_path / "honest.jsonl", rollout_log(truth, planted_frame_error=False, whole_image=0))
    result = runner.invoke(app, ["doctor", str(honest), "--json"])
    report = json.loads(result.output)
    assert report["findings"] == [] and report["groups"]["zero_variance"] == 0
    table = runner.invoke(app, ["doctor", str(log)])
    assert table.exit_code == 0 and "Frame fit" in table.output and "zero reward variance" in flat(table.output)


def test_doctor_on_a_predictions_file_reports_join_parse_failures_and_same_box(tmp_path):
    truth = synthetic_truth()
    gt = write_jsonl(tmp_path / "gt.jsonl", truth)
    lines = [{"id": row["id"] if i >= 5 else f"x{row['id']}",
              "completion": "<think>t</think><answer>[1, 2, 3]</answer>" if i % 10 == 9
              else '<think>t</think><answer>{"bbox_2d": [10, 10, 500, 500]}</answer>'} for i, row in enumerate(truth)]
    preds = write_jsonl(tmp_path / "p.jsonl", lines)
    result = runner.invoke(app, ["doctor", str(preds), "--dataset", "jsonl", "--annotations", str(gt), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["join"]["matched"] == 35 and report["join"]["unmatched"] == 5
    assert report["join"]["closest"][0] == {"given": "xs0", "closest_expected": "s0"}
    reasons = report["parse_failures"]
    assert reasons and reasons[0]["count"] == 4 and reasons[0]["example_id"] == "s9"
    codes = {f["code"] for f in report["findings"]}
    assert {"parse-failures", "degenerate-same-box"} <= codes


def test_mscxr_predictions_join_by_dicom_id_and_phrase_and_ids_lists_the_ids(tmp_path):
    from test_datasets import write_mscxr  # synthetic rows with the release schema (never real MS-CXR rows)

    csv_file = write_mscxr(tmp_path / "ms_cxr.csv")
    listed = runner.invoke(app, ["ids", "--dataset", "mscxr", "--annotations", str(csv_file)])
    assert listed.exit_code == 0, listed.output
    ids = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(ids) == 4 and {"id", "phrase", "image", "dicom_id"} <= set(ids[0])
    assert ids[0]["id"].startswith(f"{ids[0]['dicom_id']}:")

    # Keyed by dicom_id + phrase (no id): every sample matches and a perfect answer scores 1.
    boxes = {"patchy opacity, right base": [[100, 200, 400, 600], [900, 210, 1100, 510]]}
    lines = [{"dicom_id": r["dicom_id"], "phrase": r["phrase"], "pred_boxes": boxes.get(r["phrase"], [[0, 0, 10, 10]])}
             for r in ids]
    preds = write_jsonl(tmp_path / "by_dicom.jsonl", lines)
    out = tmp_path / "m.json"
    result = runner.invoke(app, ["score", str(preds), "--dataset", "mscxr", "--annotations", str(csv_file),
                                 "--bootstrap", "0", "--output", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["config"]["matched_predictions"] == 4 and metrics["config"]["unmatched_predictions"] == 0

    # Keyed by the bare dicom_id: exit 2 naming an expected id, a given one and the dicom_id + phrase way.
    dicom_ids = dict.fromkeys(r["dicom_id"] for r in ids)
    bare = write_jsonl(tmp_path / "bare.jsonl", [{"id": d, "pred_boxes": [[0, 0, 10, 10]]} for d in dicom_ids])
    result = runner.invoke(app, ["score", str(bare), "--dataset", "mscxr", "--annotations", str(csv_file)])
    assert result.exit_code == 2
    output = flat(result.output)
    assert repr(ids[0]["id"]) in output and "given 'd1'" in output and "'dicom_id' and 'phrase'" in output


def test_report_overlays_scale_boxes_to_half_size_copies_and_say_so(tmp_path):
    from PIL import Image

    from medground_eval.evaluation.report.plots import PRED_COLOR, TRUE_COLOR

    # Annotated on 1400 x 1000 images; the files on disk are 700 x 500 copies (as 512-px MIMIC copies are).
    truth, preds = [], []
    for i in range(9):
        x1 = 100 + 40 * i
        box = [x1, 200, x1 + 400, 600]
        truth.append({"id": f"c{i}", "phrase": "opacity", "boxes": [box], "image_size": [1400, 1000],
                      "image": f"img/c{i}.png"})
        preds.append({"id": f"c{i}", "pred_boxes": [[box[0], box[1], box[2] + 10 * i, box[3]]]})
        (tmp_path / "img").mkdir(exist_ok=True)
        Image.new("L", (700, 500), 0).save(tmp_path / f"img/c{i}.png")
    gt, pred_file = write_jsonl(tmp_path / "gt.jsonl", truth), write_jsonl(tmp_path / "p.jsonl", preds)
    result = runner.invoke(app, ["score", str(pred_file), "--dataset", "jsonl", "--annotations", str(gt),
                                 "--bootstrap", "0", "--report", str(tmp_path / "rep"), "--image-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    overlays = sorted((tmp_path / "rep").glob("overlay_*.png"))
    assert overlays
    markdown = next((tmp_path / "rep").glob("*.md")).read_text()
    assert markdown.count("boxes scaled from the annotated 1400 x 1000 to the stored file's 700 x 500") == len(overlays)
    for path in overlays:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        assert pixels.shape[1:] == (700, 3) and pixels.shape[0] > 500  # the image, then its caption strip
        pixels = pixels[:500]
        green = np.argwhere((pixels == TRUE_COLOR).all(axis=2))
        red = np.argwhere((pixels == PRED_COLOR).all(axis=2))
        assert len(green) and len(red)
        # Every true box spans y 200-600 annotated = 100-300 stored (outlines drawn inside the edges, the red one over
        # the green), x within [50, 470]: half the annotated numbers (unscaled it would run off the 500-row file).
        assert 100 <= green[:, 0].min() <= 104 and 296 <= green[:, 0].max() <= 300
        assert green[:, 1].min() >= 50 and green[:, 1].max() <= 470
