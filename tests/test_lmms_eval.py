"""Our lmms-eval task, run by the lmms-eval package itself (0.7.x) with a fake model, and its samples file scored.

Facts from lmms-eval 0.7.3 (EvolvingLMMs-Lab/lmms-eval): ``TaskManager(include_path=...)`` loads task YAMLs of a
folder with ``!function`` tags into the Python file beside them (lmms_eval/tasks/__init__.py); ``simple_evaluate``
accepts an ``lmms`` instance as ``model`` (evaluator.py); ``EvaluationTracker.save_results_samples``
(loggers/evaluation_tracker.py) writes ``<date>_samples_<task>.jsonl`` and pops ``doc`` and ``arguments`` from
each line, keeping ``doc_id``, ``target`` (str of doc_to_target) and ``filtered_resps``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lmms_eval")
from lmms_eval.api.model import lmms
from PIL import Image

from medground_eval.datasets.mscxr import load_mscxr
from medground_eval.integrations.lmms_eval import write_task_folder

HEADER = ["dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height"]
ROWS = [  # synthetic rows with the MS-CXR schema (never real MS-CXR rows)
    ["d1", "Pneumonia", "patchy opacity, right base", "files/d1.png", 10, 20, 30, 40, 100, 200],
    ["d2", "Edema", "mild edema", "files/d2.png", 0, 0, 50, 50, 100, 100],
    ["d3", "Pneumothorax", "small apical pneumothorax", "files/d3.png", 60, 10, 20, 20, 100, 100],
]


@pytest.fixture
def task_folder(tmp_path: Path) -> tuple[Path, list]:
    (tmp_path / "files").mkdir()
    for row in ROWS:
        Image.new("L", (row[8], row[9])).save(tmp_path / row[3])
    csv_path = tmp_path / "MS_CXR_Local_Alignment_v1.0.0.csv"
    csv_path.write_text("\n".join(",".join(f'"{c}"' if "," in str(c) else str(c) for c in r) for r in [HEADER, *ROWS]))
    samples = load_mscxr(csv_path).samples
    write_task_folder(samples, "medground_mscxr", tmp_path / "tasks", image_root=tmp_path, frame="norm1000")
    return tmp_path / "tasks", samples


class FakeModel(lmms):
    """Answers sample 0 exactly (in 0-1000), sample 1 with a box half off, sample 2 with no box."""

    def __init__(self) -> None:
        super().__init__()
        self.contexts: list[str] = []

    def generate_until(self, requests):
        out = []
        for request in requests:
            context, doc_id = request.args[0], request.args[3]
            self.contexts.append(context)
            answers = {
                0: '<think>right base</think><answer>[{"bbox_2d": [100, 100, 400, 300], "label": "opacity"}]</answer>',
                1: "<think>edema</think><answer><ref>edema</ref><box>0 0 250 500</box></answer>",  # MiniCPM-V
                2: "<think>none</think><answer>I cannot see it.</answer>",
            }
            out.append(answers[doc_id])
        return out

    def loglikelihood(self, requests):
        raise NotImplementedError

    def generate_until_multi_round(self, requests):
        raise NotImplementedError


def test_lmms_eval_loads_and_scores_our_task(task_folder, tmp_path, monkeypatch):
    import lmms_eval.evaluator
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.loggers import EvaluationTracker
    from lmms_eval.tasks import TaskManager

    folder, samples = task_folder
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    # simple_evaluate patches filelock internals (filelock._api) against nested-lock deadlocks in multi-process
    # runs; the filelock installed beside transformers here has no such module. One process: nothing to patch.
    monkeypatch.setattr(lmms_eval.evaluator, "_enable_reentrant_filelocks", lambda: None)
    manager = TaskManager(include_path=str(folder))
    assert "medground_mscxr" in manager.all_tasks
    tracker = EvaluationTracker(output_path=str(tmp_path / "runs"))
    model = FakeModel()
    results = simple_evaluate(model=model, tasks=["medground_mscxr"], task_manager=manager, log_samples=True,
                              evaluation_tracker=tracker, bootstrap_iters=0)
    metrics = results["results"]["medground_mscxr"]
    # sample 0 exact (IoU 1), sample 1 half of its region (IoU 0.5), sample 2 no box (IoU 0, a parse failure)
    assert metrics["acc@0.5,none"] == pytest.approx(2 / 3)
    assert metrics["acc@0.7,none"] == pytest.approx(1 / 3)
    assert metrics["miou,none"] == pytest.approx(0.5)
    assert metrics["parse_failure_rate,none"] == pytest.approx(1 / 3)
    assert "patchy opacity, right base" in model.contexts[0]  # our Chain-of-Box prompt carries the phrase

    # lmms-eval's samples file, read back by `score` as predictions
    tracker.general_config_tracker.model_name_sanitized = "fake"  # what the CLI's log_experiment_args sets
    tracker.date_id = "2026-12-03T00-00-00"  # set by save_results_aggregated in the CLI
    for name, items in results["samples"].items():
        tracker.save_results_samples(task_name=name, samples=items)
    (samples_file,) = (tmp_path / "runs").rglob("*_samples_medground_mscxr.jsonl")
    line = json.loads(samples_file.read_text().splitlines()[0])
    assert line["target"] == samples[0].id and "doc" not in line

    from typer.testing import CliRunner

    from medground_eval.cli import app

    out = tmp_path / "metrics.json"
    result = CliRunner().invoke(app, ["score", str(samples_file), "--dataset", "mscxr", "--annotations",
                                      str(tmp_path / "MS_CXR_Local_Alignment_v1.0.0.csv"), "--frame", "norm1000",
                                      "--bootstrap", "0", "--output", str(out)])
    assert result.exit_code == 0, result.output
    scored = json.loads(out.read_text())
    assert scored["miou"] == pytest.approx(0.5) and scored["acc"]["0.5"] == pytest.approx(2 / 3)


def test_task_docs_refuse_missing_images(tmp_path):
    samples = load_mscxr_rows(tmp_path)
    with pytest.raises(ValueError, match="not found"):
        write_task_folder(samples, "medground_mscxr", tmp_path / "t", image_root=tmp_path / "nowhere", frame="pixel")


def load_mscxr_rows(tmp_path: Path) -> list:
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("\n".join(",".join(f'"{c}"' if "," in str(c) else str(c) for c in r) for r in [HEADER, *ROWS]))
    return load_mscxr(csv_path).samples


REAL_BBOX_LIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "chestxray8" / "BBox_List_2017.csv"


@pytest.mark.skipif(not REAL_BBOX_LIST.is_file(), reason="the NIH box list lives in ../shared beside the checkout")
def test_chestxray8_task_loads_in_lmms_eval(tmp_path, monkeypatch):
    """The ChestX-ray8 task from the real NIH box list (placeholder images: only their paths are checked here)."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    from lmms_eval.tasks import TaskManager, get_task_dict

    from medground_eval.datasets.chestxray8 import load_chestxray8

    samples = load_chestxray8(REAL_BBOX_LIST, phrase_template="{finding}").samples[:5]
    for sample in samples:
        Image.new("L", (8, 8)).save(tmp_path / sample.image)
    write_task_folder(samples, "medground_chestxray8", tmp_path / "tasks", image_root=tmp_path, frame="pixel")
    manager = TaskManager(include_path=str(tmp_path / "tasks"))
    task = get_task_dict(["medground_chestxray8"], manager)["medground_chestxray8"]
    docs = list(task.test_docs())
    assert [d["id"] for d in docs] == [s.id for s in samples]
    assert docs[0]["image_size"] == [1024, 1024] and docs[0]["boxes"] == samples[0].boxes.tolist()
    assert task.doc_to_target(docs[0]) == samples[0].id
