"""`medground-eval leaderboard`: one table of several runs (md, csv, json), per-category columns, intervals,
sorted, paired tests against a named baseline that equal `compare`'s."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medground_eval.cli import app
from medground_eval.evaluation.compare import compare_runs
from medground_eval.evaluation.leaderboard import Run, build_leaderboard
from medground_eval.evaluation.scorer import score_files

runner = CliRunner()
CATEGORIES = ("nodule", "effusion", "heart")


def write_runs(root: Path) -> tuple[Path, dict[str, Path]]:
    """Ground truth of 12 samples in 3 categories and 3 runs of decreasing quality (b and c fail to parse 2)."""
    truth = [{"id": f"s{i}", "phrase": f"lesion {i}", "boxes": [[10 + i, 10, 60 + i, 60]], "image_size": [200, 160],
              "category": CATEGORIES[i % 3]} for i in range(12)]
    gt = root / "gt.jsonl"
    gt.write_text("".join(json.dumps(r) + "\n" for r in truth))
    runs = {}
    for name, noise in (("good", 4), ("mid", 14), ("bad", 30)):
        rng = random.Random(name)
        lines = []
        for i, row in enumerate(truth):
            x1, y1, x2, y2 = row["boxes"][0]
            shift = rng.randint(0, noise)
            if name != "good" and i % 5 == 4:
                lines.append({"id": row["id"], "completion": "<think>unsure</think> no box"})
            else:
                lines.append({"id": row["id"], "completion": f"<think>x</think><answer>[{x1 + shift}, {y1}, "
                                                             f"{x2 + shift}, {y2}]</answer>"})
        runs[name] = root / f"{name}.jsonl"
        runs[name].write_text("".join(json.dumps(r) + "\n" for r in lines))
    return gt, runs


def invoke(*args: str) -> str:
    result = runner.invoke(app, ["leaderboard", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_three_runs_in_all_three_formats_with_per_category_columns(tmp_path):
    gt, runs = write_runs(tmp_path)
    common = [str(runs["bad"]), str(runs["good"]), str(runs["mid"]), "--dataset", "jsonl", "--annotations", str(gt),
              "--bootstrap", "100"]
    scored = {name: score_files(path, dataset="jsonl", annotations=gt, n_bootstrap=100) for name, path in runs.items()}

    markdown = invoke(*common, "--format", "md").splitlines()
    header = markdown[0]
    for column in ("acc@0.5", "miou", "ciou", "pointing", "parse failures", "nodule acc@0.5", "effusion acc@0.5",
                   "heart acc@0.5"):
        assert f" {column} |" in header
    body = [line for line in markdown[2:] if line.startswith("| ")]
    assert [line.split(" | ")[1] for line in body] == ["good", "mid", "bad"]  # ranked by acc@0.5
    good = scored["good"].report
    assert f"{good.acc['0.5']:.4f} [{good.ci['acc@0.5'][0]:.4f}, {good.ci['acc@0.5'][1]:.4f}]" in body[0]

    rows = list(csv.DictReader(io.StringIO(invoke(*common, "--format", "csv"))))
    assert [r["run"] for r in rows] == ["good", "mid", "bad"]
    for row in rows:
        report = scored[row["run"]].report
        assert float(row["miou"]) == pytest.approx(report.miou)
        assert (float(row["miou_lo"]), float(row["miou_hi"])) == pytest.approx(report.ci["miou"])
        assert int(row["parse_failures"]) == round(report.parse_failure_rate * 12)
        for category in CATEGORIES:
            stats = report.per_category[category]
            assert float(row[f"{category} acc@0.5"]) == pytest.approx(stats["acc"]["0.5"])
            assert int(row[f"{category} n"]) == stats["n"] == 4

    document = json.loads(invoke(*common, "--format", "json"))
    assert [r["run"] for r in document["rows"]] == ["good", "mid", "bad"]
    assert document["categories"] == sorted(CATEGORIES)
    assert document["runs"][0]["metrics"] == json.loads(json.dumps(scored["good"].to_dict()))
    assert set(document["provenance"]["inputs"]) == {"annotations", "run good", "run mid", "run bad"}


def test_paired_tests_against_the_baseline_equal_compare(tmp_path):
    gt, runs = write_runs(tmp_path)
    document = json.loads(invoke(f"old={runs['bad']}", f"new={runs['good']}", str(runs["mid"]), "--dataset", "jsonl",
                                 "--annotations", str(gt), "--baseline", "old", "--bootstrap", "200",
                                 "--format", "json"))
    base = score_files(runs["bad"], dataset="jsonl", annotations=gt, n_bootstrap=200)
    new = score_files(runs["good"], dataset="jsonl", annotations=gt, n_bootstrap=200)
    expected = compare_runs(base.per_sample, new.per_sample, thresholds=base.report.thresholds, top=0,
                            n_bootstrap=200, seed=0)
    row = next(r for r in document["rows"] if r["run"] == "new")
    diff = next(d for d in expected.differences if d.metric == "acc@0.5")
    assert (row["d_acc@0.5"], row["d_acc@0.5_lo"], row["d_acc@0.5_hi"]) == pytest.approx((diff.diff, diff.lo, diff.hi))
    assert row["mcnemar_p"] == pytest.approx(expected.mcnemar.p_value)
    assert next(r for r in document["rows"] if r["run"] == "old")["d_acc@0.5"] is None
    markdown = invoke(f"old={runs['bad']}", f"new={runs['good']}", "--dataset", "jsonl", "--annotations", str(gt),
                      "--baseline", "old", "--bootstrap", "200")
    assert "Δacc@0.5 vs old" in markdown and f"{diff.diff:+.4f} [{diff.lo:+.4f}, {diff.hi:+.4f}]" in markdown


def test_sort_by_parse_failure_rate_puts_the_lowest_first(tmp_path):
    gt, runs = write_runs(tmp_path)
    rows = list(csv.DictReader(io.StringIO(invoke(str(runs["mid"]), str(runs["good"]), "--dataset", "jsonl",
                                                  "--annotations", str(gt), "--bootstrap", "0", "--sort",
                                                  "parse_failure_rate", "--format", "csv"))))
    assert [r["run"] for r in rows] == ["good", "mid"]


@pytest.mark.parametrize("args, message", [
    (["--baseline", "nobody"], "--baseline 'nobody' is not one of the runs"),
    (["--sort", "speed"], "--sort 'speed': expected one of"),
    (["--format", "xlsx"], "--format 'xlsx': expected one of md, csv, json"),
])
def test_bad_options_are_one_line_errors(tmp_path, args, message):
    gt, runs = write_runs(tmp_path)
    result = runner.invoke(app, ["leaderboard", str(runs["good"]), str(runs["mid"]), "--dataset", "jsonl",
                                 "--annotations", str(gt), "--bootstrap", "0", *args])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_runs_on_different_samples_cannot_be_paired(tmp_path):
    gt, runs = write_runs(tmp_path)
    other = score_files(runs["mid"], dataset="jsonl", annotations=gt, n_bootstrap=0)
    short_gt = tmp_path / "short.jsonl"
    short_gt.write_text("".join(line + "\n" for line in gt.read_text().splitlines()[:6]))
    short = score_files(runs["good"], dataset="jsonl", annotations=short_gt, n_bootstrap=0)
    with pytest.raises(ValueError, match="run 'short' vs baseline 'mid'.*not in run"):
        build_leaderboard([Run("mid", None, other), Run("short", None, short)], baseline="mid", n_bootstrap=10)
    with pytest.raises(ValueError, match="run name 'mid' is used twice"):
        build_leaderboard([Run("mid", None, other), Run("mid", None, short)])


def test_a_run_that_does_not_join_stops_the_table_unless_partial_is_allowed(tmp_path):
    """A predictions file with other ids would rank as a row of misses: exit 2 naming the file, as `score` does."""
    gt, runs = write_runs(tmp_path)
    renamed = tmp_path / "renamed.jsonl"
    renamed.write_text(runs["mid"].read_text().replace('"id": "s', '"id": "img_'))
    args = [str(runs["good"]), str(renamed), "--dataset", "jsonl", "--annotations", str(gt), "--bootstrap", "0"]
    result = runner.invoke(app, ["leaderboard", *args])
    assert result.exit_code == 2 and f"error: {renamed}: " in result.stderr and result.stdout == ""
    assert "Traceback" not in result.output
    allowed = runner.invoke(app, ["leaderboard", *args, "--allow-partial"])
    assert allowed.exit_code == 0 and "renamed: 12 ground-truth samples without a prediction" in allowed.stderr


def test_a_run_in_another_frame_is_named_on_standard_error(tmp_path):
    """Answers written in 0-1000 but scored as pixels: the table is what was asked for, with the frame warning
    (the diagnosis needs diagnosis.MIN_SAMPLES samples: 40 here)."""
    truth = [{"id": f"s{i}", "phrase": "lesion", "boxes": [[10 + 3 * i, 20, 60 + 3 * i, 90]],
              "image_size": [200, 160]} for i in range(40)]
    gt = tmp_path / "gt.jsonl"
    gt.write_text("".join(json.dumps(r) + "\n" for r in truth))

    def run(name: str, scale: tuple[float, float]) -> Path:
        path = tmp_path / f"{name}.jsonl"
        lines = []
        for row in truth:
            x1, y1, x2, y2 = row["boxes"][0]
            box = [round(x1 * scale[0]), round(y1 * scale[1]), round(x2 * scale[0]), round(y2 * scale[1])]
            lines.append(json.dumps({"id": row["id"], "completion": f"<think>x</think><answer>{box}</answer>"}))
        path.write_text("\n".join(lines) + "\n")
        return path

    good, norm = run("good", (1, 1)), run("norm", (1000 / 200, 1000 / 160))
    result = runner.invoke(app, ["leaderboard", str(good), str(norm), "--dataset", "jsonl", "--annotations",
                                 str(gt), "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    assert "norm: warning:" in result.stderr and "norm1000" in result.stderr
    assert "good: warning" not in result.stderr
