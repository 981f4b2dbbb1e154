"""Run a vision-language model over a data set split and write the predictions file ``score`` reads.

Each line of ``preds.jsonl`` is ``{"id", "completion", "frame", "image_size", "input_size"}``: the model's text, the
coordinate frame it writes boxes in (``"resized"`` for Qwen2.5-VL, ``"norm1000"`` for Qwen2-VL / Qwen3-VL), the
original image size ``[W, H]`` and, for ``"resized"``, the model input size ``[w, h]`` (else null). The frame comes
from the model folder (its config's ``model_type`` and its processor's pixel limits:
:func:`medground_eval.frames.resolve_model_frame`, the one resolver every backend uses), never from a guess.

Generation is batched, greedy by default (``do_sample=True`` samples at ``temperature``), with transformers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from medground_eval.extras import requires
from medground_eval.frames import MODEL_TYPE_FRAMES, Frame, get_frame
from medground_eval.outputs import open_atomic
from medground_eval.structures import Sample

RESIZED_MODEL_TYPES = frozenset(t for t, name in MODEL_TYPE_FRAMES.items() if get_frame(name).kind == "resized")
"""Model types that write absolute pixels of their resized input (frame ``"resized"``)."""
NORM1000_MODEL_TYPES = frozenset(t for t, name in MODEL_TYPE_FRAMES.items() if get_frame(name).kind == "norm1000")
"""Model types that write coordinates in 0-1000 (frame ``"norm1000"``)."""
QWEN_PROCESSORS = {
    "qwen2_vl": "Qwen2VLProcessor",
    "qwen2_5_vl": "Qwen2_5_VLProcessor",
    "qwen3_vl": "Qwen3VLProcessor",
    "qwen3_vl_moe": "Qwen3VLProcessor",
}


def _image_only(processor_class: type) -> type:
    """``processor_class`` without its video processor (which needs torchvision; grounding needs images only).

    The subclass keeps the parent's name, so a processor saved from it reloads as the parent class elsewhere.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # The parent passes (image_processor, tokenizer, video_processor) on; ProcessorMixin pairs them with this
        # class's attributes (image_processor, tokenizer), so the absent video processor is dropped.
        processor_class.__init__(self, image_processor, tokenizer, None, chat_template=chat_template)

    return type(processor_class.__name__, (processor_class,), {"__init__": __init__})


def local_model_dir(path: str | Path | None, option: str = "--model") -> Path:
    """``path`` as an existing local checkpoint folder (with ``config.json``), else FileNotFoundError in one line.

    Nothing is ever downloaded: every ``from_pretrained`` of the project reads such a folder with
    ``local_files_only=True``, so a hub id (``Qwen/Qwen2.5-VL-3B-Instruct``) is refused here, before transformers
    is imported and before any DNS look-up, whatever ``HF_HUB_OFFLINE`` says.
    """
    if not path:
        raise FileNotFoundError(f"{option} is required: a local checkpoint folder (config.json, weights)")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{option} {str(path)!r}: not a local folder; models are never downloaded at run time: fetch it first "
            f"(e.g. `huggingface-cli download {path} --local-dir DIR`) and pass DIR")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{option} {str(path)!r}: folder has no config.json; expected a checkpoint folder "
                                "(config.json, weights, tokenizer and processor files)")
    return folder


def load_processor(path: str | Path, *, min_pixels: int | None = None, max_pixels: int | None = None):
    """The processor of the checkpoint at ``path``, padding on the left (for batched generation).

    Qwen2-VL, Qwen2.5-VL and Qwen3-VL get an image-only processor (their image processor, tokenizer and chat
    template, no video processor); ``min_pixels`` / ``max_pixels`` override the image processor's pixel limits.
    Other model types load with ``AutoProcessor`` (the pixel limits are then passed on as keyword arguments).
    """
    with requires("train", "loading a model's processor (predict, train)"):
        import transformers
        from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer

    path = local_model_dir(path)
    image_kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    model_type = AutoConfig.from_pretrained(path, local_files_only=True).model_type
    if model_type not in QWEN_PROCESSORS:
        return AutoProcessor.from_pretrained(path, padding_side="left", local_files_only=True, **image_kwargs)
    processor_class = getattr(transformers, QWEN_PROCESSORS[model_type])
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left", local_files_only=True)
    image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=True, **image_kwargs)
    processor_dict, _ = processor_class.get_processor_dict(path, local_files_only=True)
    chat_template = processor_dict.get("chat_template") or tokenizer.chat_template
    if chat_template is None:
        raise ValueError(
            f"model {str(path)!r}: no chat template: expected chat_template.jinja or .json, or tokenizer_config.json's"
        )
    return _image_only(processor_class)(image_processor, tokenizer, chat_template=chat_template)


def load_model_and_processor(
    path: str | Path,
    *,
    device: str | None = None,
    bf16: bool = False,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
):
    """``(model, processor)`` from a local checkpoint directory (config.json, weights, tokenizer, processor files).

    ``bf16`` loads the weights in bfloat16 (else float32); ``device`` moves the model there (None: leave it on the
    CPU, for a trainer to place); ``min_pixels`` / ``max_pixels`` as in :func:`load_processor`.
    """
    with requires("train", "loading a model (predict, train)"):
        import torch
        from transformers import AutoModelForImageTextToText

    path = local_model_dir(path)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32,
                                                        local_files_only=True)
    if device is not None:
        model = model.to(device)
    return model, load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels)


def default_device() -> tuple[str, bool]:
    """``(device, bf16)``: the first GPU with bfloat16 where it supports it, else the CPU in float32."""
    with requires("train", "running a model (predict, train)"):
        import torch

    if torch.cuda.is_available():
        return "cuda", torch.cuda.is_bf16_supported()
    return "cpu", False


def generate_completions(
    model,
    processor,
    dataset,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    do_sample: bool = False,
    temperature: float = 1.0,
    progress: bool = True,
) -> list[str]:
    """The model's completion text for every row of ``dataset`` (columns ``prompt`` and ``image``), in order."""
    import torch
    from rich.console import Console
    from rich.progress import Progress

    if batch_size < 1:
        raise ValueError(f"batch_size = {batch_size}: expected a positive integer")
    completions: list[str] = []
    generation = dict(max_new_tokens=max_new_tokens, do_sample=do_sample)
    if do_sample:
        generation["temperature"] = temperature
    model.eval()
    bar_console = Console(stderr=True)  # standard output stays the command's own (the `wrote ...` line)
    with Progress(disable=not progress, transient=True, console=bar_console) as bar, torch.inference_mode():
        task = bar.add_task("generating", total=len(dataset))
        for start in range(0, len(dataset), batch_size):
            rows = dataset[start : start + batch_size]
            texts = [
                processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
                for prompt in rows["prompt"]
            ]
            images = [[image.convert("RGB")] for image in rows["image"]]
            inputs = processor(images=images, text=texts, padding=True, return_tensors="pt").to(model.device)
            output = model.generate(**inputs, **generation)
            new_tokens = output[:, inputs["input_ids"].shape[1] :]
            completions.extend(processor.batch_decode(new_tokens, skip_special_tokens=True))
            bar.advance(task, len(texts))
    return completions


def prediction_records(dataset, completions: Sequence[str], frame: Frame) -> list[dict]:
    """One predictions-file record per row: ``id``, ``completion``, ``frame`` (its kind), sizes."""
    if len(completions) != len(dataset):
        raise ValueError(f"{len(completions)} completions for {len(dataset)} rows: expected one each")
    input_sizes = dataset["input_size"] if "input_size" in dataset.column_names else [None] * len(dataset)
    return [
        {"id": i, "completion": c, "frame": frame.kind, "image_size": s, "input_size": n}
        for i, c, s, n in zip(dataset["id"], completions, dataset["image_size"], input_sizes)
    ]


def write_predictions(records: Iterable[dict], path: str | Path) -> Path:
    """Write records as JSON lines (UTF-8) atomically, creating the parent folder."""
    path = Path(path)
    with open_atomic(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def predict_samples(
    model,
    processor,
    samples: Sequence[Sample],
    output: str | Path,
    *,
    image_root: str | Path | None,
    frame: Frame,
    template: str = "chain-of-box",
    batch_size: int = 8,
    max_new_tokens: int = 256,
    do_sample: bool = False,
    temperature: float = 1.0,
    progress: bool = True,
) -> Path:
    """Predict every sample with a loaded model and write ``output`` (JSON lines); returns its path.

    ``frame`` is the model's, :func:`~medground_eval.frames.resolve_model_frame` of its folder with the pixel limits
    the processor was loaded with.
    """
    from medground_eval.integrations.hf_data import build_dataset

    dataset = build_dataset(samples, image_root=image_root, frame=frame, template=template)
    completions = generate_completions(
        model, processor, dataset, batch_size=batch_size, max_new_tokens=max_new_tokens,
        do_sample=do_sample, temperature=temperature, progress=progress,
    )
    return write_predictions(prediction_records(dataset, completions, frame), output)
