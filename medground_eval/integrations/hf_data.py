"""From a loader's samples to a ``datasets.Dataset`` that TRL's GRPOTrainer and ``predict`` read.

One row per sample, columns:

- ``prompt``: the conversational prompt (one user turn: the image placeholder, then the template's instruction);
- ``image``: the image file, decoded lazily by ``datasets`` when a row is read (``datasets.Image`` feature);
- ``solution``: the true boxes ``[[x1, y1, x2, y2], ...]`` in original-image pixels;
- ``image_size``: ``[W, H]`` of the original image (the annotation's size, else the file's);
- ``input_size``: ``[w, h]`` the model sees (only for the ``"resized"`` frame: :func:`smart_resize` of the file's
  size, so an image stored smaller than the annotated original is still converted right);
- ``phrase``, ``id``.

These are the ground-truth columns the rewards read (see ``medground_eval.rewards.columns``). Every image is
checked (exists, readable header) before training starts: a missing one raises :class:`MissingImageError` naming the
sample id and the path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medground_eval.extras import requires
from medground_eval.frames import Frame
from medground_eval.prompts import chat_prompt
from medground_eval.structures import Sample


class MissingImageError(FileNotFoundError, ValueError):
    """A sample's image is missing or unreadable (a FileNotFoundError, and a ValueError of the data set); the message
    names the sample id and the path."""


def image_path(sample: Sample, image_root: str | Path | None, *, keep_relative: bool = False) -> Path:
    """The file of ``sample.image``: an absolute path as is, a relative one under ``image_root``. The one image-path
    rule of training, ``predict`` and ``convert``.

    A relative path without ``image_root`` is an error (it would be read from wherever the process runs), unless
    ``keep_relative`` (``convert``: the engine resolves it from its own working folder). A sample without an image
    is an error naming its id.
    """
    if not sample.image:
        raise MissingImageError(
            f"sample {sample.id!r}: field 'image' is {sample.image!r}: no image path in the data set (training needs it)"
        )
    path = Path(sample.image)
    if not path.is_absolute() and image_root is not None:
        path = Path(image_root) / path
    elif not path.is_absolute() and not keep_relative:
        raise MissingImageError(
            f"sample {sample.id!r}: image {sample.image!r} is a relative path: expected --image-root to say where"
            " the images are"
        )
    return path


def image_file_size(sample: Sample, path: Path) -> tuple[int, int]:
    """``(W, H)`` of the image file, read from its header only."""
    with requires("train", "reading image files (train, predict, convert)"):
        from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise MissingImageError(f"sample {sample.id!r}: image file {str(path)!r} not found")
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as error:
        message = f"sample {sample.id!r}: image file {str(path)!r} is not a readable image ({error})"
        raise MissingImageError(message) from None


def build_dataset(
    samples: Sequence[Sample],
    *,
    image_root: str | Path | None,
    frame: Frame,
    template: str = "chain-of-box",
):
    """A ``datasets.Dataset`` of ``samples`` with the columns of the module docstring.

    ``template`` is a name in :data:`medground_eval.prompts.TEMPLATES` ("chain-of-box", "plain") or a format string
    with ``{phrase}``. 2D samples only (a 3D sample raises ValueError). Raises :class:`MissingImageError` for the
    first sample whose image is missing, and ValueError for an empty sample list.
    """
    with requires("train", "building the training / prediction data set"):
        import datasets

    if not samples:
        raise ValueError("no samples to build a training data set from: check --dataset, --data-dir and --split")
    columns: dict[str, list] = {k: [] for k in ("id", "prompt", "image", "solution", "image_size", "phrase")}
    file_sizes = []
    for sample in samples:
        if sample.dims != 2:
            raise ValueError(
                f"sample {sample.id!r}: boxes with {2 * sample.dims} numbers: expected 2D boxes (4 numbers)"
            )
        path = image_path(sample, image_root)
        file_size = image_file_size(sample, path)
        file_sizes.append(file_size)
        columns["id"].append(sample.id)
        columns["prompt"].append(chat_prompt(sample.phrase, template))
        columns["image"].append(str(path))
        columns["solution"].append(sample.boxes.tolist())
        columns["image_size"].append(list(sample.image_size or file_size))
        columns["phrase"].append(sample.phrase)
    if frame.kind == "resized":
        columns["input_size"] = frame.input_sizes(file_sizes).astype(int).tolist()
    return datasets.Dataset.from_dict(columns).cast_column("image", datasets.Image())
