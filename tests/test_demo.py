"""`medground-eval demo`: deterministic synthetic data, the story it tells, and files a user can score again."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from medground_eval.cli import app
from medground_eval.demo import demo_dataset, run_demo
from medground_eval.evaluation.scorer import score_files


def test_demo_is_deterministic_and_tells_the_frame_story():
    first, rows = run_demo(60, seed=1)
    again, rows_again = run_demo(60, seed=1)
    assert [s.boxes.tolist() for s in first.samples] == [s.boxes.tolist() for s in again.samples]
    assert [r.result.to_dict() for r in rows] == [r.result.to_dict() for r in rows_again]
    acc = {row.run.name: row.result.report.acc["0.5"] for row in rows}
    assert acc["good"] > acc["sloppy"] > acc["qwen2-vl@pixel"]
    assert acc["qwen2-vl"] - acc["qwen2-vl@pixel"] > 0.5  # same answers, right vs wrong frame
    sloppy = next(row for row in rows if row.run.name == "sloppy").result.report
    assert sloppy.parse_failure_rate > 0 and sloppy.out_of_frame_rate > 0
    compat = {row.run.name: row.compat.report.acc["0.5"] for row in rows}
    assert compat["sloppy"] < acc["sloppy"] and compat["qwen2-vl"] < acc["qwen2-vl"]


def test_demo_sizes_include_images_above_the_qwen25_pixel_limit():
    sizes = {sample.image_size for sample in demo_dataset(10).samples}
    assert any(w * h > 16384 * 28 * 28 for w, h in sizes)


def test_demo_command_writes_files_that_score_the_same(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--n", "40", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Frames matter" in result.output and "qwen2-vl@pixel" in result.output
    assert "medground-eval score" in result.output
    _, rows = run_demo(40)
    good = next(row for row in rows if row.run.name == "good")
    rescored = score_files(tmp_path / "preds_good.jsonl", dataset="jsonl", annotations=tmp_path / "truth.jsonl",
                           frame="qwen2.5-vl", n_bootstrap=0)
    assert rescored.report.to_dict() == good.result.report.to_dict()
    assert len((tmp_path / "truth.jsonl").read_text().splitlines()) == 40
    assert json.loads((tmp_path / "preds_qwen2-vl.jsonl").read_text().splitlines()[0])["id"] == "demo-000"


def test_demo_uses_the_core_only():
    extras = ("torch", "sklearn", "transformers", "sentence_transformers", "fastapi", "PIL", "matplotlib", "datasets",
              "nibabel")
    code = ("import sys; from medground_eval.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['demo', '--n', '10']); assert r.exit_code == 0, r.output; "
            f"print(sorted(m for m in {extras!r} if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
