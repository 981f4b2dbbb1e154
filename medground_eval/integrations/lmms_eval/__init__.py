"""lmms-eval tasks for the medical grounding sets (MS-CXR, ChestX-ray8, any jsonl ground truth) from local files.

lmms-eval (EvolvingLMMs-Lab/lmms-eval, 0.7.x) loads extra tasks from ``--include_path``: a folder of task YAML files
whose ``!function`` tags name functions of a Python file beside them. :func:`write_task_folder` writes such a folder
for one data set: ``<task>.docs.jsonl`` (one doc per sample: id, phrase, absolute image path, true boxes in pixels,
image size, category, the model's frame, the prompt), ``<task>.yaml`` (from ``tasks/medground_task_template.yaml``:
``dataset_path: json`` on those docs, ``generate_until``) and ``medground_utils.py`` (our parser and metrics as the
task's ``process_results`` and aggregations). Then::

    lmms-eval --model qwen2_5_vl --model_args pretrained=... --include_path <folder> --tasks medground_mscxr \\
        --log_samples --output_path runs/
    medground-eval score runs/<model>/<date>_samples_medground_mscxr.jsonl --dataset mscxr --annotations ...

The docs are written once, from local files (no download); lmms-eval's ``samples_*.jsonl`` keeps each sample's id in
``target``, which ``score`` reads as the prediction's id (see :mod:`medground_eval.evaluation.predictions`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from medground_eval.frames import get_frame
from medground_eval.outputs import atomic_write_text
from medground_eval.prompts import render_prompt
from medground_eval.structures import Sample

__all__ = ["TASK_FILES", "task_docs", "write_task_folder"]

TASK_FILES = ("medground_task_template.yaml", "medground_utils.py")
"""The files shipped under ``medground_eval/integrations/lmms_eval/tasks``."""


def task_docs(samples: list[Sample], image_root: str | Path, frame: str, template: str = "chain-of-box") -> list[dict]:
    """One lmms-eval doc per 2D sample. Raises ValueError for a 3D sample, a sample without image or image size,
    or an image not found under ``image_root``."""
    get_frame(frame)  # an unknown frame fails here, not in the middle of an lmms-eval run
    root = Path(image_root).resolve()
    docs = []
    for sample in samples:
        if sample.dims != 2 or sample.image is None or sample.image_size is None:
            raise ValueError(f"sample {sample.id}: lmms-eval tasks need a 2D sample with an image and its size")
        image = root / sample.image
        if not image.is_file():
            raise ValueError(f"sample {sample.id}: image {image} not found (image {sample.image!r} under {root})")
        docs.append({
            "id": sample.id, "phrase": sample.phrase, "image_path": str(image), "boxes": sample.boxes.tolist(),
            "image_size": list(sample.image_size), "category": sample.category, "frame": frame,
            "prompt": render_prompt(sample.phrase, template),
        })
    return docs


def write_task_folder(
    samples: list[Sample], task: str, out_dir: str | Path, *, image_root: str | Path, frame: str,
    template: str = "chain-of-box",
) -> Path:
    """Write the lmms-eval task ``task`` (its docs, YAML and functions) into ``out_dir``; returns the YAML path."""
    if not task.replace("_", "").isalnum():
        raise ValueError(f"task name {task!r}: letters, digits and underscores only")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    docs_path = (out / f"{task}.docs.jsonl").resolve()
    atomic_write_text(docs_path, "".join(json.dumps(d) + "\n" for d in task_docs(samples, image_root, frame, template)))
    shipped = resources.files("medground_eval.integrations.lmms_eval") / "tasks"
    yaml_text = (shipped / TASK_FILES[0]).read_text(encoding="utf-8")
    yaml_text = yaml_text.replace('"{task}"', json.dumps(task)).replace('"{docs}"', json.dumps(str(docs_path)))
    yaml_path = out / f"{task}.yaml"
    atomic_write_text(yaml_path, yaml_text)
    atomic_write_text(out / TASK_FILES[1], (shipped / TASK_FILES[1]).read_text(encoding="utf-8"))
    return yaml_path
