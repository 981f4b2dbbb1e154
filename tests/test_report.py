"""Reports: files written, PNGs decode at the documented sizes, the tables show the metrics' numbers, the HTML is
self-contained, overlays draw the boxes where they belong, views go through the shared frame conversion."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from medground_eval.datasets.base import LoadedDataset
from medground_eval.evaluation import report as rp
from medground_eval.evaluation.compat import get_compat
from medground_eval.evaluation.scorer import ScoreResult, score_files, score_predictions
from medground_eval.frames import get_frame
from medground_eval.metrics import SampleScores, grounding_report
from medground_eval.structures import Sample


def cob(think: str, answer: str) -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


def make_images(root: Path, sizes: dict[str, tuple[int, int]], mode: str = "L") -> None:
    """Synthetic grey 'scans': a dark background with a bright ellipse."""
    for name, (w, h) in sizes.items():
        image = Image.new(mode, (w, h), 20)
        ImageDraw.Draw(image).ellipse([w // 5, h // 5, 4 * w // 5, 4 * h // 5], fill=180)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / name)


SAMPLES = [
    Sample("a", "left nodule", [[10, 10, 60, 60]], (200, 160), "nodule", "img/a.png"),
    Sample("b", "right effusion", [[100, 50, 180, 150]], (200, 160), "effusion", "img/b.png"),
    Sample("c", "cardiomegaly", [[40, 40, 160, 120]], (200, 160), "heart", "img/c.png"),
    Sample("d", "apical opacity", [[20, 20, 80, 70]], (200, 160), "nodule", "img/d.png"),
    Sample("e", "big scan lesion", [[300, 200, 900, 800]], (1536, 1024), "nodule", "img/e.png"),
    Sample("f", "two lesions", [[10, 10, 30, 30], [50, 50, 90, 90]], (200, 160), None, None),
]
RECORDS = [
    {"id": "a", "completion": cob("first [5, 5, 50, 50] then [10, 10, 55, 60]", "[10, 10, 60, 60]")},
    {"id": "b", "completion": cob("look right", "[100, 60, 170, 150]")},
    {"id": "c", "completion": "<think>no idea</think> nothing to say"},
    {"id": "d", "completion": cob("hmm", "[0, 0, 40, 40]")},
    {"id": "e", "pred_boxes": [[320, 220, 880, 760]]},
    {"id": "f", "completion": cob("x", "[1, 2, 3]")},
]


def scored(records=RECORDS, samples=SAMPLES, frame="pixel") -> tuple[ScoreResult, dict[str, rp.SampleView]]:
    result = score_predictions(records, LoadedDataset("synthetic", samples), frame=frame, n_bootstrap=200)
    return result, rp.sample_views(records, samples, frame=frame)


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        return image.size


def test_write_report_writes_markdown_html_json_and_decodable_pngs(tmp_path):
    make_images(tmp_path / "data", {s.image: s.image_size for s in SAMPLES if s.image})
    run, views = scored()
    files = rp.write_report(run, tmp_path / "out", views=views, image_root=tmp_path / "data", examples_per_group=2)

    assert files.markdown.is_file() and files.html.is_file() and files.metrics.is_file()
    names = {p.name for p in files.images}
    assert {"acc_curve.png", "iou_histogram.png", "categories.png"} <= names
    assert png_size(files.markdown.parent / "acc_curve.png") == (640, 400)
    assert png_size(files.markdown.parent / "iou_histogram.png") == (640, 400)
    assert png_size(files.markdown.parent / "categories.png") == (640, round(100 * rp.category_plot_height(3)))
    overlays = sorted(p for p in files.images if p.name.startswith("overlay_"))
    # 6 samples, 2 per group, chosen among the 4 parsed answers (c and f are parse failures): each drawn once.
    assert len(overlays) == 4
    assert files.skipped_overlays == ()
    markdown = files.markdown.read_text()
    for path in overlays:
        sample_id = re.search(rf"!\[overlay of (\w)\]\({path.name}\)", markdown).group(1)
        width, height = (768, 512) if sample_id == "e" else (200, 160)
        shown = png_size(path)  # the image, then a white caption strip of whole lines under it
        assert shown[0] == width and (shown[1] - height - 6) % rp.plots.CAPTION_LINE_HEIGHT == 0
        assert shown[1] > height
    for path in files.images:  # every image the report references exists next to it
        assert f"]({path.name})" in markdown


def test_report_numbers_equal_the_metrics(tmp_path):
    run, views = scored()
    files = rp.write_report(run, tmp_path, views=views)
    assert json.loads(files.metrics.read_text()) == json.loads(json.dumps(run.to_dict()))

    markdown = files.markdown.read_text()
    table = {}
    for line in markdown.splitlines():
        cells = [re.sub(r"\\(.)", r"\1", c.strip()) for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("metric", "---"):
            table[cells[0]] = cells[1:]
    for name, value, interval in run.report.rows():
        shown_value, shown_interval = table[name]
        if isinstance(value, int):
            assert int(shown_value) == value
        else:
            assert float(shown_value) == pytest.approx(value, abs=5e-5)
        if interval is None:
            assert shown_interval == ""
        else:
            lo, hi = (float(x) for x in shown_interval.strip("[]").split(","))
            assert (lo, hi) == pytest.approx(interval, abs=5e-5)
    assert table["acc@0.5"][0] == f"{run.report.acc['0.5']:.4f}"
    row = next(line for line in markdown.splitlines() if line.startswith("| nodule |"))
    nodule = run.report.per_category["nodule"]
    assert row == (f"| nodule | {nodule['n']} | {nodule['acc']['0.5']:.4f} | {nodule['miou']:.4f} | "
                   f"{nodule['ciou']:.4f} | {nodule['pointing']:.4f} |")


def test_parse_failure_reasons_are_counted_in_the_report(tmp_path):
    run, views = scored()
    reasons = rp.failure_reasons(run.per_sample, run.problems)
    assert reasons["missing <answer>"] == 1  # c
    assert reasons["a box has 3 numbers (expected 4)"] == 1  # f
    assert reasons["no box in <answer>"] == 1  # f: its only box was invalid
    assert sum(run.per_sample.parse_failed) == 2
    markdown = rp.write_report(run, tmp_path, views=views).markdown.read_text()
    assert "2 of 6 samples have no usable predicted box." in markdown
    assert "| missing \\<answer\\> | 1 |" in markdown  # escaped: Markdown would read <answer> as an HTML tag
    assert "<td>missing &lt;answer&gt;</td><td>1</td>" in (tmp_path / "report.html").read_text()


def test_failure_without_problem_counts_as_no_predicted_box():
    scores = SampleScores(["x", "y"], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [False, False], [True, False],
                          [False, False], [None, None])
    assert rp.failure_reasons(scores, ["", "missing <answer>"]) == {"no predicted box": 1}


def test_html_is_self_contained_and_embeds_the_same_pngs(tmp_path):
    make_images(tmp_path / "data", {s.image: s.image_size for s in SAMPLES if s.image})
    run, views = scored()
    files = rp.write_report(run, tmp_path / "out", views=views, image_root=tmp_path / "data")
    page = files.html.read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(files.images)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    assert embedded == {p.read_bytes() for p in files.images}
    for blob in embedded:
        Image.open(io.BytesIO(blob)).verify()
    assert "href=" not in page and "<script" not in page
    assert "left nodule" in page  # captions carry the phrase


def test_overlay_draws_each_kind_of_box_in_its_colour(tmp_path):
    Image.new("L", (100, 80), 0).save(tmp_path / "black.png")
    view = rp.SampleView("s", "p", "black.png", np.array([[10.0, 10, 40, 40]]), np.array([[50.0, 20, 90, 70]]),
                         np.array([[5.0, 45, 30, 75]]))
    out = rp.draw_overlay(tmp_path / "black.png", view, tmp_path / "o.png")
    with Image.open(out) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape == (80, 100, 3)
    assert tuple(pixels[25, 10]) == rp.TRUE_COLOR  # left edge of the true box (row y, column x)
    assert tuple(pixels[45, 90]) == rp.PRED_COLOR  # right edge of the predicted box
    assert tuple(pixels[60, 5]) == rp.THINK_COLOR  # left edge of the reasoning box
    assert tuple(pixels[25, 25]) == (0, 0, 0)  # inside the true box: untouched


def test_overlay_handles_16_bit_images_and_downscales_boxes_with_the_image(tmp_path):
    scan = (np.arange(2000 * 1000, dtype=np.uint16).reshape(1000, 2000) % 4096).astype(np.uint16)
    Image.fromarray(scan).save(tmp_path / "scan.png")
    view = rp.SampleView("s", "p", "scan.png", np.array([[200.0, 200, 1000, 800]]), np.empty((0, 4)),
                         np.empty((0, 4)))
    out = rp.draw_overlay(tmp_path / "scan.png", view, tmp_path / "o.png")
    with Image.open(out) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape == (384, 768, 3)  # longer side 2000 -> 768, scale 0.384
    assert tuple(pixels[200, 77]) == rp.TRUE_COLOR  # x = 200 * 0.384 = 76.8


def test_sample_views_convert_answer_and_think_boxes_through_the_frame():
    samples = [Sample("a", "p", [[0, 0, 100, 50]], (400, 200)), Sample("b", "q", [[0, 0, 10, 10]], (400, 200)),
               Sample("c", "r", [[0, 0, 10, 10]], (400, 200))]
    records = [{"id": "a", "completion": cob("[0, 0, 500, 500] [100, 100, 200, 200]", "[250, 250, 750, 1000]")},
               {"id": "b", "pred_boxes": [500, 0, 1000, 500], "frame": "pixel"},
               {"id": "zzz", "completion": "ignored"}]
    views = rp.sample_views(records, samples, frame="norm1000")
    frame = get_frame("norm1000")
    np.testing.assert_allclose(views["a"].pred_boxes, frame.to_pixels([[250, 250, 750, 1000]], (400, 200)).boxes)
    np.testing.assert_allclose(views["a"].think_boxes,
                               frame.to_pixels([[0, 0, 500, 500], [100, 100, 200, 200]], (400, 200)).boxes)
    np.testing.assert_allclose(views["b"].pred_boxes, [[400, 0, 400, 200]])  # per-record pixel frame, clipped
    assert views["c"].pred_boxes.shape == (0, 4) and views["c"].think_boxes.shape == (0, 4)
    assert set(views) == {"a", "b", "c"}
    assert views["a"].phrase == "p" and views["a"].image is None


def test_sample_views_name_the_record_with_bad_pred_boxes():
    samples = [Sample("a", "p", [[0, 0, 10, 10]], (40, 20))]
    with pytest.raises(ValueError, match=r"record 'a': pred_boxes = \[1, 2, 3\]; expected a list of 4-number boxes"):
        rp.sample_views([{"id": "a", "pred_boxes": [1, 2, 3]}], samples)
    no_size = [Sample("a", "p", [[0, 0, 10, 10]])]
    with pytest.raises(ValueError, match="sample 'a' has no image_size"):
        rp.sample_views([{"id": "a", "pred_boxes": [1, 2, 3, 4]}], no_size, frame="norm1000")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.5, 0.75, 1.0]) | st.floats(0, 1), max_size=30),
       st.booleans())
def test_accuracy_curve_matches_a_direct_count(iou, inclusive):
    grid = np.linspace(0, 1, 21)
    values = np.array(iou)
    got = rp.accuracy_curve(values, grid, inclusive)
    if not iou:
        assert np.isnan(got).all()
        return
    expected = [np.mean(values >= t) if inclusive else np.mean(values > t) for t in grid]
    np.testing.assert_allclose(got, expected)


def test_accuracy_curve_agrees_with_the_report_at_its_thresholds():
    run, _ = scored()
    for inclusive in (True, False):
        report = grounding_report(run.per_sample, inclusive=inclusive, n_bootstrap=0)
        curve = rp.accuracy_curve(run.per_sample.iou, np.array(report.thresholds), inclusive)
        assert curve.tolist() == pytest.approx(list(report.acc.values()))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=0, max_size=40), st.integers(1, 5))
def test_example_groups_are_disjoint_and_ordered_by_iou(iou, per_group):
    n = len(iou)
    scores = SampleScores([f"s{i}" for i in range(n)], iou, np.zeros(n), np.ones(n), np.zeros(n, bool),
                          np.zeros(n, bool), np.zeros(n, bool), [None] * n)
    groups = rp.example_ids(scores, per_group)
    chosen = [i for ids in groups.values() for i in ids]
    assert len(chosen) == len(set(chosen)) == min(n, 3 * per_group)
    value = dict(zip(scores.ids.tolist(), iou))
    if groups["best"] and groups["worst"]:
        assert min(value[i] for i in groups["best"]) >= max(value[i] for i in groups["worst"])
    if groups["median"]:
        assert min(value[i] for i in groups["median"]) >= max(value[i] for i in groups["worst"])
        assert max(value[i] for i in groups["median"]) <= min(value[i] for i in groups["best"])


def test_missing_image_file_is_reported_not_drawn(tmp_path):
    run, views = scored()
    files = rp.write_report(run, tmp_path / "out", views=views, image_root=tmp_path / "nowhere")
    assert not any(p.name.startswith("overlay_") for p in files.images)
    reasons = dict(files.skipped_overlays)
    assert reasons["a"] == f"image file {tmp_path / 'nowhere' / 'img/a.png'} not found"
    assert "a: no overlay (image file" in files.markdown.read_text()


def test_empty_run_writes_tables_without_plots(tmp_path):
    empty = SampleScores([], [], [], [], [], [], [], [])
    files = rp.write_report(ScoreResult(grounding_report(empty), empty, [], {}), tmp_path)
    assert files.images == ()
    assert "| miou | n/a |  |" in files.markdown.read_text()


def test_importing_the_report_module_does_not_import_matplotlib_or_pillow():
    code = "import sys, medground_eval.evaluation.report; print('matplotlib' in sys.modules, 'PIL' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def truth_rows(samples=SAMPLES) -> list[dict]:
    return [{"id": s.id, "phrase": s.phrase, "boxes": s.boxes.tolist(), "image_size": list(s.image_size),
             "category": s.category, "image": s.image} for s in samples]


def test_score_report_from_files_matches_the_scorer_and_draws_overlays(tmp_path):
    make_images(tmp_path / "data", {s.image: s.image_size for s in SAMPLES if s.image})
    truth = write_jsonl(tmp_path / "truth.jsonl", truth_rows())
    # "d" has no prediction line (a miss); one line is not JSON and is skipped by the scorer.
    predictions = tmp_path / "preds.jsonl"
    write_jsonl(predictions, [r for r in RECORDS if r["id"] != "d"])
    predictions.write_text(predictions.read_text() + "{not json\n")
    result = score_files(predictions, dataset="jsonl", annotations=truth, on_error="skip", n_bootstrap=100)
    files = rp.score_report(result, tmp_path / "out", predictions, dataset="jsonl", annotations=truth,
                            image_root=tmp_path / "data", examples_per_group=2)

    assert json.loads(files.metrics.read_text()) == json.loads(json.dumps(result.to_dict()))
    # Examples come from the parsed answers only: a, b, e (c, f are parse failures, d has no prediction).
    drawn = sorted(re.findall(r"!\[overlay of (\w)\]", files.markdown.read_text()))
    assert drawn == ["a", "b", "e"]
    markdown = files.markdown.read_text()
    page = files.html.read_text()
    for note in ("1 ground-truth samples without a prediction (scored as misses)", "1 lines skipped (--on-error skip)"):
        assert note in markdown and note in page
    assert f"| acc@0.5 | {result.report.acc['0.5']:.4f} |" in markdown


def test_score_report_reads_ground_truth_carried_by_the_prediction_lines(tmp_path):
    make_images(tmp_path / "data", {s.image: s.image_size for s in SAMPLES if s.image})
    lines = [truth | record for truth, record in zip(truth_rows(), RECORDS)]
    predictions = write_jsonl(tmp_path / "preds.jsonl", lines)
    result = score_files(predictions, dataset="jsonl", n_bootstrap=0)
    files = rp.score_report(result, tmp_path / "out", predictions, dataset="jsonl", image_root=tmp_path / "data",
                            examples_per_group=1)
    assert [p.name for p in files.images if p.name.startswith("overlay_")] == [
        "overlay_best_1.png", "overlay_median_1.png", "overlay_worst_1.png"]
    assert "| acc@0.5 | 0.5000 |  |" in files.markdown.read_text()


def test_score_command_writes_the_report(tmp_path):
    from typer.testing import CliRunner

    from medground_eval.cli import app

    make_images(tmp_path / "data", {s.image: s.image_size for s in SAMPLES if s.image})
    truth = write_jsonl(tmp_path / "truth.jsonl", truth_rows())
    predictions = write_jsonl(tmp_path / "preds.jsonl", RECORDS)
    run = CliRunner().invoke(app, ["score", str(predictions), "--dataset", "jsonl", "--annotations", str(truth),
                                   "--bootstrap", "100", "--report", str(tmp_path / "out"),
                                   "--image-root", str(tmp_path / "data")])
    assert run.exit_code == 0, run.output
    result = score_files(predictions, dataset="jsonl", annotations=truth, n_bootstrap=100)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    provenance = metrics.pop("provenance")
    assert metrics == json.loads(json.dumps(result.to_dict()))
    assert provenance["inputs"]["predictions"]["sha256"] == hashlib.sha256(predictions.read_bytes()).hexdigest()
    assert provenance["command"].startswith("medground-eval score ")
    assert len(list((tmp_path / "out").glob("overlay_*.png"))) == 4  # the 4 parsed answers
    assert "# preds.jsonl vs jsonl" in (tmp_path / "out" / "report.md").read_text()


def test_report_names_the_compat_preset_and_its_parse_rules(tmp_path):
    dataset = LoadedDataset("jsonl", list(SAMPLES))
    records = [r for r in RECORDS if "completion" in r]
    result = score_predictions(records, dataset, compat="vlm-r1", n_bootstrap=0)
    files = rp.write_report(result, tmp_path)
    markdown = files.markdown.read_text()
    assert "| compat | vlm-r1 |" in markdown and "| dataset | jsonl |" in markdown
    assert html.escape(get_compat("vlm-r1").parse_rules) in files.html.read_text()
    assert json.loads(files.metrics.read_text())["config"]["compat"] == "vlm-r1"


def test_report_images_are_confined_to_the_image_root(tmp_path):
    """Issue 13 case 10: an absolute path or '..' in a carried image field was read from outside --image-root."""
    import dataclasses

    outside = tmp_path / "secret"
    make_images(outside, {"x.png": (200, 160)})
    root = tmp_path / "data"
    make_images(root, {s.image: s.image_size for s in SAMPLES if s.image})
    samples = [dataclasses.replace(SAMPLES[0], image=str(outside / "x.png")),
               dataclasses.replace(SAMPLES[1], image="../secret/x.png")] + SAMPLES[2:]
    run, views = scored(samples=samples)
    files = rp.write_report(run, tmp_path / "out", views=views, image_root=root, examples_per_group=2)
    reasons = dict(files.skipped_overlays)
    assert reasons["a"] == f"image path {str(outside / 'x.png')!r} is outside --image-root {str(root)!r}"
    assert reasons["b"] == f"image path '../secret/x.png' is outside --image-root {str(root)!r}"
    drawn = {p.name for p in files.images if p.name.startswith("overlay_")}
    assert len(drawn) == 2  # d, e (the examples are parsed answers: c and f are parse failures)


def test_report_folder_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    """Issue 13 case 1: a killed --report left a folder with metrics.json and one plot."""
    from medground_eval.evaluation.report import render

    def failing_plot(*args, **kwargs):
        raise KeyboardInterrupt

    run, views = scored()
    monkeypatch.setattr(render, "plot_iou_histogram", failing_plot)
    with pytest.raises(KeyboardInterrupt):
        rp.write_report(run, tmp_path / "out", views=views)
    assert list(tmp_path.iterdir()) == []
def test_examples_are_chosen_among_parsed_answers_and_failures_get_a_gallery(tmp_path):
    run, views = scored()  # c ("missing <answer>") and f (a 3-number box) are parse failures
    eligible = rp.parsed_answers(run.per_sample, run.problems)
    groups = rp.example_ids(run.per_sample, 3, eligible)
    assert set(groups["worst"]) | set(groups["median"]) | set(groups["best"]) == {"a", "b", "d", "e"}
    files = rp.write_report(run, tmp_path, views=views)
    markdown = files.markdown.read_text()
    gallery = markdown[markdown.index("### Parse-failure gallery"):]
    assert "| c | missing \\<answer\\> | \\<think\\>no idea\\</think\\> nothing to say |" in gallery
    assert "| f |" in gallery and "\\[1, 2, 3\\]" in gallery


def test_accuracy_curve_starts_at_the_first_threshold():
    run, _ = scored()
    grid, values = rp.curve_points(run.report, run.per_sample)
    assert grid[0] == min(run.report.thresholds) == 0.1 and grid[-1] == 1.0
    assert values[0] == pytest.approx(run.report.acc["0.1"])  # not 1.0: parse failures never count


def test_category_legend_does_not_cover_the_bars():
    run, _ = scored()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = rp.category_figure(run.report)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    (legend,) = fig.legends
    axes = fig.axes[0].get_window_extent(renderer)
    box = legend.get_window_extent(renderer)
    assert not box.overlaps(axes)


def test_overlay_caption_sits_under_the_image(tmp_path):
    Image.new("L", (100, 80), 0).save(tmp_path / "black.png")
    view = rp.SampleView("s", "p", "black.png", np.array([[10.0, 10, 40, 40]]), np.empty((0, 4)), np.empty((0, 4)))
    out = rp.draw_overlay(tmp_path / "black.png", view, tmp_path / "o.png", caption='s: "p", IoU 0.000')
    with Image.open(out) as image:
        pixels = np.asarray(image.convert("RGB"))
    strip_height = pixels.shape[0] - 80 - 6  # whole caption lines (wrapped to the image's width) and a margin
    assert pixels.shape[1] == 100 and strip_height > 0 and strip_height % rp.plots.CAPTION_LINE_HEIGHT == 0
    strip = pixels[80:]
    assert (strip == 255).all(axis=2).mean() > 0.5 and (strip < 100).all(axis=2).any()  # white strip, dark text
    assert tuple(pixels[25, 10]) == rp.TRUE_COLOR  # the image keeps its pixels


def test_score_prints_the_per_category_table_and_the_report_shows_provenance(tmp_path):
    from typer.testing import CliRunner

    from medground_eval.cli import app

    truth = write_jsonl(tmp_path / "truth.jsonl", truth_rows())
    predictions = write_jsonl(tmp_path / "preds.jsonl", RECORDS)
    run = CliRunner().invoke(app, ["score", str(predictions), "--dataset", "jsonl", "--annotations", str(truth),
                                   "--bootstrap", "0", "--report", str(tmp_path / "out")])
    assert run.exit_code == 0, run.output
    assert "Per category" in run.stdout
    for name in ("nodule", "effusion", "heart"):
        assert f"│ {name}" in run.stdout
    markdown = (tmp_path / "out" / "report.md").read_text()
    digest = hashlib.sha256(predictions.read_bytes()).hexdigest()
    assert "## Provenance" in markdown and digest in markdown and "medground-eval score" in markdown
