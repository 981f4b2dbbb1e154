"""Comparing two runs: paired differences equal the metrics' paired bootstrap, McNemar counts, the disagreement
ranking, id alignment, and `medground-eval compare` end to end against the scorer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from medground_eval.cli import app
from medground_eval.evaluation.compare import compare_runs, comparison_markdown
from medground_eval.evaluation.scorer import score_files
from medground_eval.metrics import SampleScores, mcnemar, paired_bootstrap


def scores(ids, iou, pointing=None, failed=None) -> SampleScores:
    n = len(ids)
    iou = np.asarray(iou, dtype=float)
    failed = np.zeros(n, bool) if failed is None else np.asarray(failed, dtype=bool)
    pointing = iou > 0.4 if pointing is None else np.asarray(pointing, dtype=bool)
    return SampleScores(ids, iou, iou, np.ones(n), pointing & ~failed, failed, np.zeros(n, bool), [None] * n)


A = scores(["s1", "s2", "s3", "s4", "s5", "s6"], [0.9, 0.5, 0.2, 0.0, 0.6, 0.3], failed=[0, 0, 0, 1, 0, 0])
B = scores(["s1", "s2", "s3", "s4", "s5", "s6"], [0.8, 0.45, 0.7, 0.55, 0.6, 0.0], failed=[0, 0, 0, 0, 0, 1])


def test_differences_are_the_paired_bootstrap_of_each_column():
    result = compare_runs(A, B, thresholds=(0.5,), n_bootstrap=300, seed=3)
    by_name = {d.metric: d for d in result.differences}
    assert list(by_name) == ["acc@0.5", "miou", "pointing", "parse_failure_rate"]
    columns = {"acc@0.5": (A.iou >= 0.5, B.iou >= 0.5), "miou": (A.iou, B.iou), "pointing": (A.pointing, B.pointing),
               "parse_failure_rate": (A.parse_failed, B.parse_failed)}
    for name, (a, b) in columns.items():
        diff, lo, hi = paired_bootstrap(a.astype(float), b.astype(float), n_bootstrap=300, seed=3)
        d = by_name[name]
        assert (d.a, d.b, d.diff, d.lo, d.hi) == pytest.approx((a.mean(), b.mean(), diff, lo, hi))
    assert by_name["acc@0.5"].a == pytest.approx(3 / 6) and by_name["acc@0.5"].b == pytest.approx(4 / 6)


def test_mcnemar_counts_and_test_at_the_threshold():
    m = compare_runs(A, B, n_bootstrap=10).mcnemar
    # A hits (>= 0.5): s1 s2 s5; B hits: s1 s3 s4 s5. s2 is A's alone; s3, s4 are B's alone.
    assert (m.threshold, m.both, m.a_only, m.b_only, m.neither) == (0.5, 2, 1, 2, 1)
    assert (m.statistic, m.p_value) == mcnemar(A.iou >= 0.5, B.iou >= 0.5)
    strict = compare_runs(A, B, inclusive=False, n_bootstrap=10).mcnemar
    assert (strict.a_only, strict.b_only) == (0, 2)  # s2 at exactly 0.5 is no hit under IoU > t


def test_disagreements_rank_by_absolute_gap_then_sample_order():
    result = compare_runs(A, B, top=4, n_bootstrap=10)
    assert [(d.id, d.iou_a, d.iou_b) for d in result.disagreements] == [
        ("s4", 0.0, 0.55), ("s3", 0.2, 0.7), ("s6", 0.3, 0.0), ("s1", 0.9, 0.8)]
    assert all(d.phrase is None for d in result.disagreements)
    named = result.with_phrases({"s4": "left effusion"})
    assert [d.phrase for d in named.disagreements] == ["left effusion", None, None, None]
    assert compare_runs(A, A, n_bootstrap=10).disagreements == ()  # equal IoUs are no disagreement
    assert compare_runs(A, B, top=0, n_bootstrap=10).disagreements == ()


def test_run_b_is_aligned_to_run_a_by_id():
    order = [5, 3, 0, 2, 4, 1]
    shuffled = scores(B.ids[order].tolist(), B.iou[order], B.pointing[order], B.parse_failed[order])
    assert compare_runs(A, shuffled, n_bootstrap=50).to_dict() == compare_runs(A, B, n_bootstrap=50).to_dict()


def test_different_samples_are_an_error_naming_the_ids():
    other = scores(["s1", "s2", "x9"], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"4 of run A's samples are not in run B \(first: 's3'\); 1 of run B's "
                                         r"samples are not in run A \(first: 'x9'\); expected both runs"):
        compare_runs(A, other)
    with pytest.raises(ValueError, match="top=-1"):
        compare_runs(A, B, top=-1)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=25))
def test_properties_swap_negates_and_counts_add_up(pairs):
    ids = [f"s{i}" for i in range(len(pairs))]
    a = scores(ids, [p[0] for p in pairs])
    b = scores(ids, [p[1] for p in pairs])
    ab, ba = compare_runs(a, b, n_bootstrap=20), compare_runs(b, a, n_bootstrap=20)
    for x, y in zip(ab.differences, ba.differences):
        assert x.diff == pytest.approx(-y.diff) and (x.lo, x.hi) == pytest.approx((-y.hi, -y.lo))
    m = ab.mcnemar
    assert m.both + m.a_only + m.b_only + m.neither == len(pairs)
    assert (m.a_only, m.b_only) == (ba.mcnemar.b_only, ba.mcnemar.a_only)
    gaps = [abs(d.iou_a - d.iou_b) for d in ab.disagreements]
    assert gaps == sorted(gaps, reverse=True) and all(g > 0 for g in gaps)


def test_to_dict_is_json_and_markdown_shows_the_numbers():
    result = compare_runs(A, B, n_bootstrap=50).with_phrases({"s4": "a | pipe"})
    document = json.loads(json.dumps(result.to_dict()))
    assert document["n"] == 6 and document["mcnemar"]["b_only"] == 2
    assert document["disagreements"][0] == {"id": "s4", "phrase": "a | pipe", "iou_a": 0.0, "iou_b": 0.55}
    text = comparison_markdown(result, name_a="base", name_b="tuned")
    miou = next(d for d in result.differences if d.metric == "miou")
    assert f"| miou | {miou.a:.4f} | {miou.b:.4f} | {miou.diff:+.4f} | [{miou.lo:+.4f}, {miou.hi:+.4f}] |" in text
    assert "| s4 | a \\| pipe | 0.0000 | 0.5500 | +0.5500 |" in text
    assert "A alone hits 1, B alone hits 2" in text


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


TRUTH = [{"id": f"c{i}", "phrase": f"finding {i}", "boxes": [[10 * i, 0, 10 * i + 20, 20]], "image_size": [200, 50]}
         for i in range(8)]


def answer(box):
    return {"completion": f"<think>look</think><answer>{json.dumps(box)}</answer>"}


def shifted(box, dx):
    return [box[0] + dx, box[1], box[2] + dx, box[3]]


def test_cli_compare_matches_the_scorer_and_writes_json(tmp_path):
    truth = write_jsonl(tmp_path / "truth.jsonl", TRUTH)
    # A: exact on even samples, shifted by half a box width on odd ones; B: exact everywhere but c3 (no answer).
    a_rows = [{"id": t["id"], **answer(shifted(t["boxes"][0], 10 if i % 2 else 0))} for i, t in enumerate(TRUTH)]
    b_rows = [{"id": t["id"], **answer(t["boxes"][0])} for t in TRUTH]
    b_rows[3] = {"id": "c3", "completion": "<think>?</think>"}
    pred_a = write_jsonl(tmp_path / "a.jsonl", a_rows)
    pred_b = write_jsonl(tmp_path / "b.jsonl", b_rows[::-1])  # another line order: compared by id
    out = tmp_path / "compare.json"
    run = CliRunner().invoke(app, ["compare", str(pred_a), str(pred_b), "--dataset", "jsonl", "--annotations",
                                   str(truth), "--bootstrap", "200", "--top", "4", "--output", str(out),
                                   "--markdown", str(tmp_path / "compare.md")])
    assert run.exit_code == 0, run.output
    document = json.loads(out.read_text())

    result_a = score_files(pred_a, dataset="jsonl", annotations=truth, n_bootstrap=200)
    result_b = score_files(pred_b, dataset="jsonl", annotations=truth, n_bootstrap=200)
    assert document["metrics_a"] == json.loads(json.dumps(result_a.to_dict()))
    assert document["metrics_b"] == json.loads(json.dumps(result_b.to_dict()))
    miou = next(d for d in document["differences"] if d["metric"] == "miou")
    assert (miou["a"], miou["b"]) == pytest.approx((result_a.report.miou, result_b.report.miou))
    assert document["mcnemar"]["b_only"] == 3 and document["mcnemar"]["a_only"] == 0  # c1, c5, c7 vs none
    top = document["disagreements"]
    # odd samples: IoU 1/3 vs 1 (gap 2/3, in sample order), then c3: 1/3 vs 0 (B's parse failure)
    assert [d["id"] for d in top] == ["c1", "c5", "c7", "c3"]
    assert top[3]["phrase"] == "finding 3" and top[3]["iou_a"] == pytest.approx(1 / 3) and top[3]["iou_b"] == 0.0
    assert "McNemar at IoU 0.5" in run.output and "finding 3" in run.output
    assert "| c3 | finding 3 | 0.3333 | 0.0000 | -0.3333 |" in (tmp_path / "compare.md").read_text()


def test_cli_compare_reports_mismatched_samples_without_a_traceback(tmp_path):
    lines_a = [{**t, **answer(t["boxes"][0])} for t in TRUTH]
    pred_a = write_jsonl(tmp_path / "a.jsonl", lines_a)
    pred_b = write_jsonl(tmp_path / "b.jsonl", lines_a[:5])  # ground truth carried by the lines: fewer samples
    run = CliRunner().invoke(app, ["compare", str(pred_a), str(pred_b), "--dataset", "jsonl"])
    assert run.exit_code == 1
    assert "error: 3 of run A's samples are not in run B (first: 'c5')" in run.output


def test_cli_compare_says_what_each_run_left_out(tmp_path):
    truth = write_jsonl(tmp_path / "truth.jsonl", TRUTH)
    pred_a = write_jsonl(tmp_path / "a.jsonl", [{"id": t["id"], **answer(t["boxes"][0])} for t in TRUTH])
    b_rows = [{"id": t["id"], **answer(t["boxes"][0])} for t in TRUTH[:6]]  # c6, c7: no line
    b_rows[2] = {"id": "c2", "pred_boxes": "bad"}  # skipped, so c2 is a miss too
    pred_b = write_jsonl(tmp_path / "b.jsonl", b_rows + [{"id": "zz", **answer([0, 0, 1, 1])}])
    markdown = tmp_path / "compare.md"
    run = CliRunner().invoke(app, ["compare", str(pred_a), str(pred_b), "--dataset", "jsonl", "--annotations",
                                   str(truth), "--on-error", "skip", "--bootstrap", "50", "--markdown", str(markdown)])
    assert run.exit_code == 0, run.output
    for note in ("B (b.jsonl): 1 predictions with an id not in the ground truth (left out)",
                 "B (b.jsonl): 3 ground-truth samples without a prediction (scored as misses)",
                 "B (b.jsonl): 1 lines skipped (--on-error skip)"):
        assert note in " ".join(run.output.split()) and note in markdown.read_text()
    assert "A (a.jsonl)" not in run.output
