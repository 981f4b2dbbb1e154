"""`medground-eval convert`: turn a loaded data set into the training file each engine reads.

Every record carries the Chain-of-Box prompt (or another template) for the sample's phrase, the image path, and the
label of :mod:`medground_eval.trainers.labels` (a JSON string wherever an engine hands it to the reward unchanged).
The image path is ``image_root / sample.image`` (``sample.image`` as written when ``image_root`` is None); a sample
without an image is an error naming its id.

- ``trl``: a Hugging Face ``datasets`` directory (``save_to_disk``) with the reward's columns: ``id``, ``prompt``
  (chat messages with an image part), ``image`` (path), ``solution``, ``phrase``, ``image_size``, ``frame``.
- ``openrlhf``: JSON lines ``{"prompt": chat messages, "images": [path], "label": label JSON}``; train with
  ``--data.input_key prompt --data.image_key images --data.label_key label --data.apply_chat_template``.
- ``verl``: Parquet in the schema of verl's multimodal examples (``examples/data_preprocess/geo3k.py``):
  ``data_source`` (``medground/<data set>``), ``prompt`` ``[{"role": "user", "content": "<image>..."}]``,
  ``images`` ``[{"image": path}]``, ``ability`` (``grounding``), ``reward_model`` ``{"style": "rule",
  "ground_truth": label JSON}``, ``extra_info`` ``{"split", "index", "id", "label"}``.
- ``easyr1``: JSON lines ``{"problem": "<image>...", "answer": label JSON, "images": [path]}`` (EasyR1's default
  ``data.prompt_key`` / ``answer_key`` / ``image_key``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from medground_eval.datasets import LoadedDataset
from medground_eval.prompts import chat_prompt, render_prompt
from medground_eval.trainers.labels import sample_label
from medground_eval.types import Sample

Format = Literal["trl", "openrlhf", "verl", "easyr1"]
FORMATS: tuple[str, ...] = ("trl", "openrlhf", "verl", "easyr1")
SUFFIXES = {"trl": "", "openrlhf": ".jsonl", "verl": ".parquet", "easyr1": ".jsonl"}


def image_path(sample: Sample, image_root: str | Path | None) -> str:
    """The image file of ``sample`` as the engines will open it."""
    if sample.image is None:
        raise ValueError(
            f"sample {sample.id!r}: field 'image' is None: expected an image path (training needs the image)"
        )
    return str(Path(image_root) / sample.image) if image_root is not None else sample.image


def _trl(sample: Sample, image: str, label: dict, template: str, context: dict) -> dict:
    columns = {name: label[name] for name in ("solution", "phrase", "image_size", "frame")}
    return {"id": sample.id, "prompt": chat_prompt(sample.phrase, template), "image": image, **columns}


def _openrlhf(sample: Sample, image: str, label: dict, template: str, context: dict) -> dict:
    return {"prompt": chat_prompt(sample.phrase, template), "images": [image], "label": json.dumps(label)}


def _verl(sample: Sample, image: str, label: dict, template: str, context: dict) -> dict:
    ground_truth = json.dumps(label)
    return {
        "data_source": f"medground/{context['dataset']}",
        "prompt": [{"role": "user", "content": "<image>" + render_prompt(sample.phrase, template)}],
        "images": [{"image": image}],
        "ability": "grounding",
        "reward_model": {"style": "rule", "ground_truth": ground_truth},
        "extra_info": {"split": context["split"], "index": context["index"], "id": sample.id, "label": ground_truth},
    }


def _easyr1(sample: Sample, image: str, label: dict, template: str, context: dict) -> dict:
    problem = "<image>" + render_prompt(sample.phrase, template)
    return {"problem": problem, "answer": json.dumps(label), "images": [image]}


RECORDS: dict[str, Callable[[Sample, str, dict, str, dict], dict]] = {
    "trl": _trl, "openrlhf": _openrlhf, "verl": _verl, "easyr1": _easyr1,
}


def convert_records(
    dataset: LoadedDataset,
    fmt: Format,
    *,
    image_root: str | Path | None = None,
    frame: str = "qwen2.5-vl",
    template: str = "chain-of-box",
    split: str | None = None,
) -> list[dict]:
    """One record per sample, in the engine's layout (see the module docstring)."""
    if fmt not in RECORDS:
        raise ValueError(f"format = {fmt!r}: expected one of {list(FORMATS)}")
    if not dataset.samples:
        raise ValueError(f"data set {dataset.name!r} (split {split!r}) has no samples: nothing to convert")
    render_prompt("", template)  # an unknown template fails here, once
    build = RECORDS[fmt]
    return [
        build(sample, image_path(sample, image_root), sample_label(sample, frame), template,
              {"dataset": dataset.name, "split": split, "index": index})
        for index, sample in enumerate(dataset.samples)
    ]


def convert_dataset(
    dataset: LoadedDataset,
    fmt: Format,
    output: str | Path,
    *,
    image_root: str | Path | None = None,
    frame: str = "qwen2.5-vl",
    template: str = "chain-of-box",
    split: str | None = None,
) -> Path:
    """Write the records of :func:`convert_records` to ``output`` (a file; a directory for ``trl``); returns it."""
    records = convert_records(dataset, fmt, image_root=image_root, frame=frame, template=template, split=split)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "trl":
        import datasets

        datasets.Dataset.from_list(records).save_to_disk(str(output))
    elif fmt == "verl":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), output)
    else:
        with output.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in records)
    return output


def output_path(output_dir: str | Path, fmt: Format, split: str | None) -> Path:
    """Where `medground-eval convert` writes a split: ``<output_dir>/<split or 'all'><suffix>``."""
    return Path(output_dir) / f"{split or 'all'}{SUFFIXES[fmt]}"
