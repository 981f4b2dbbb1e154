"""`medground-eval convert`: turn a loaded data set into the training file each engine reads.

Every record carries the Chain-of-Box prompt (or another template) for the sample's phrase, the image path, and the
label of :mod:`medground_eval.integrations.labels` (a JSON string wherever an engine hands it to the reward unchanged).
The image path follows :func:`medground_eval.integrations.hf_data.image_path` (the rule of training and ``predict``):
an absolute ``sample.image`` as is, a relative one under ``image_root`` (as written without ``image_root``: the engine
reads it from its working folder); a sample without an image is an error naming its id.

For a ``resized`` frame (Qwen2.5-VL: absolute pixels of the model input) each label also carries ``input_size``, the
``[w, h]`` the model sees: :func:`~medground_eval.frames.smart_resize` of the image **file**'s size (read from its
header, so the file must exist; a file stored smaller than the annotated original still converts right), after
EasyR1's own rescaling into ``[min_pixels, max_pixels]`` (:data:`EASYR1_PIXELS`) for the ``easyr1`` format.

- ``trl``: a Hugging Face ``datasets`` directory (``save_to_disk``) with the reward's columns: ``id``, ``prompt``
  (chat messages with an image part), ``image`` (path), ``solution``, ``phrase``, ``image_size``, ``frame`` (and
  ``input_size`` for a ``resized`` frame).
- ``openrlhf``: JSON lines ``{"prompt": chat messages, "images": [path], "label": label JSON}``; train with
  ``--data.input_key prompt --data.image_key images --data.label_key label --data.apply_chat_template``.
- ``verl``: Parquet in the schema of verl's multimodal examples (``examples/data_preprocess/geo3k.py``):
  ``data_source`` (``medground/<data set>``), ``prompt`` ``[{"role": "user", "content": "<image>..."}]``,
  ``images`` ``[{"image": path, "min_pixels", "max_pixels"}]`` (the processor's pixel limits, so that
  ``qwen_vl_utils.fetch_image``, which verl runs before the processor, resizes to the processor's own size once),
  ``ability`` (``grounding``), ``reward_model`` ``{"style": "rule",
  "ground_truth": label JSON}``, ``extra_info`` ``{"split", "index", "id", "label"}``.
- ``easyr1``: JSON lines ``{"problem": "<image>...", "answer": label JSON, "images": [path]}`` (EasyR1's default
  ``data.prompt_key`` / ``answer_key`` / ``image_key``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from medground_eval.datasets import LoadedDataset
from medground_eval.extras import requires
from medground_eval.frames import Frame, get_frame
from medground_eval.integrations.hf_data import image_file_size, image_path
from medground_eval.integrations.labels import LabelError, read_label, sample_label
from medground_eval.outputs import atomic_directory, open_atomic
from medground_eval.prompts import chat_prompt, render_prompt
from medground_eval.structures import Sample

Format = Literal["trl", "openrlhf", "verl", "easyr1"]
FORMATS: tuple[str, ...] = ("trl", "openrlhf", "verl", "easyr1")
SUFFIXES = {"trl": "", "openrlhf": ".jsonl", "verl": ".parquet", "easyr1": ".jsonl"}
EASYR1_PIXELS = (262144, 4194304)
"""EasyR1's default ``data.min_pixels`` / ``data.max_pixels``: it rescales each image into this range first."""


def easyr1_image_size(size: tuple[int, int], min_pixels: int = EASYR1_PIXELS[0],
                      max_pixels: int = EASYR1_PIXELS[1]) -> tuple[int, int]:
    """``(w, h)`` of an image of ``size`` after EasyR1's ``process_image``: scaled by ``sqrt(max_pixels / (w h))``
    when above ``max_pixels``, then by ``sqrt(min_pixels / (w h))`` when below ``min_pixels``, sides truncated."""
    width, height = size
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        width, height = int(width * scale), int(height * scale)
    if width * height < min_pixels:
        scale = math.sqrt(min_pixels / (width * height))
        width, height = int(width * scale), int(height * scale)
    return width, height


def _trl(sample: Sample, image: str, label: dict, template: str, context: dict) -> dict:
    columns = {name: label[name] for name in ("solution", "phrase", "image_size", "frame", "input_size") if name in label}
    return {"id": sample.id, "prompt": chat_prompt(sample.phrase, template), "image": image, **columns}


def _openrlhf(sample: Sample, image: str, label: dict, template: str, context: dict) -> dict:
    return {"prompt": chat_prompt(sample.phrase, template), "images": [image], "label": json.dumps(label)}


def _verl(sample: Sample, image: str, label: dict, template: str, context: dict) -> dict:
    ground_truth = json.dumps(label)
    return {
        "data_source": f"medground/{context['dataset']}",
        "prompt": [{"role": "user", "content": "<image>" + render_prompt(sample.phrase, template)}],
        "images": [{"image": image, **context["pixels"]}],
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
    frame: str | Frame = "qwen2.5-vl",
    pixel_limits: tuple[int, int] | None = None,
    template: str = "chain-of-box",
    split: str | None = None,
) -> list[dict]:
    """One record per sample, in the engine's layout (see the module docstring).

    ``frame``: a preset name or the model's :class:`~medground_eval.frames.Frame`
    (:func:`~medground_eval.frames.resolve_model_frame`), whose pixel limits give the labels' ``input_size``.
    ``pixel_limits``: the processor's ``(min_pixels, max_pixels)`` written beside each verl image (default: a
    ``resized`` frame's). Every label is read back (:func:`~medground_eval.integrations.labels.read_label`) before
    it is written: a broken one is a LabelError.
    """
    if fmt not in RECORDS:
        raise ValueError(f"format = {fmt!r}: expected one of {list(FORMATS)}")
    if not dataset.samples:
        raise ValueError(f"data set {dataset.name!r} (split {split!r}) has no samples: nothing to convert")
    render_prompt("", template)  # an unknown template fails here, once
    build = RECORDS[fmt]
    images = [str(image_path(sample, image_root, keep_relative=True)) for sample in dataset.samples]
    spec = get_frame(frame)
    labels = [sample_label(sample, frame) for sample in dataset.samples]
    if spec.kind == "resized":
        sizes = [image_file_size(sample, Path(image)) for sample, image in zip(dataset.samples, images)]
        if fmt == "easyr1":
            sizes = [easyr1_image_size(size) for size in sizes]
        for label, input_size in zip(labels, spec.input_sizes(sizes).astype(int).tolist()):
            label["input_size"] = input_size
    for sample, label in zip(dataset.samples, labels):
        try:
            read_label(label)
        except LabelError as error:
            raise LabelError(f"sample {sample.id!r}: {error}") from None
    if pixel_limits is None and spec.kind == "resized":
        pixel_limits = (spec.min_pixels, spec.max_pixels)
    pixels = {} if pixel_limits is None else {"min_pixels": pixel_limits[0], "max_pixels": pixel_limits[1]}
    return [
        build(sample, image, label, template,
              {"dataset": dataset.name, "split": split, "index": index, "pixels": pixels})
        for index, (sample, image, label) in enumerate(zip(dataset.samples, images, labels))
    ]


def convert_dataset(
    dataset: LoadedDataset,
    fmt: Format,
    output: str | Path,
    *,
    image_root: str | Path | None = None,
    frame: str | Frame = "qwen2.5-vl",
    pixel_limits: tuple[int, int] | None = None,
    template: str = "chain-of-box",
    split: str | None = None,
) -> Path:
    """Write the records of :func:`convert_records` to ``output`` (a file; a directory for ``trl``), atomically (a
    killed run leaves no partial file under ``output``); returns it."""
    records = convert_records(dataset, fmt, image_root=image_root, frame=frame, pixel_limits=pixel_limits,
                              template=template, split=split)
    output = Path(output)
    if fmt == "trl":
        with requires("convert", "convert --format trl"):
            import datasets

        with atomic_directory(output) as folder:
            datasets.Dataset.from_list(records).save_to_disk(str(folder))
    elif fmt == "verl":
        with requires("convert", "convert --format verl (Parquet)"):
            import pyarrow as pa
            import pyarrow.parquet as pq

        with open_atomic(output, "wb") as handle:
            pq.write_table(pa.Table.from_pylist(records), handle)
    else:
        with open_atomic(output) as handle:
            handle.writelines(json.dumps(record) + "\n" for record in records)
    return output


def output_path(output_dir: str | Path, fmt: Format, split: str | None) -> Path:
    """Where `medground-eval convert` writes a split: ``<output_dir>/<split or 'all'><suffix>``."""
    return Path(output_dir) / f"{split or 'all'}{SUFFIXES[fmt]}"
