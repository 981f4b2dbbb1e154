"""`medground-eval ids`: the sample ids of a data set with their phrase and image, to key predictions by."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medground_eval.cli import app


def id_records(samples: list) -> list[dict]:
    """One record per sample: ``id``, ``phrase``, ``image``, ``image_size``, ``category``, ``split`` and, where the
    data set has one, ``dicom_id`` (MS-CXR ids are ``dicom_id:sha256(label_text)[:12]``)."""
    records = []
    for sample in samples:
        record = {"id": sample.id, "phrase": sample.phrase, "image": sample.image,
                  "image_size": None if sample.image_size is None else list(sample.image_size),
                  "category": sample.category, "split": sample.split}
        if "dicom_id" in sample.extra:
            record["dicom_id"] = sample.extra["dicom_id"]
        records.append(record)
    return records


@app.command("ids")
def ids_command(
    dataset: Annotated[str, typer.Option(help="Data set: jsonl, mscxr, chestxray8 or m3d-refseg.")],
    annotations: Annotated[Path, typer.Option("--annotations", "--data-dir", help="The data set's file or folder.")],
    split: Annotated[str | None, typer.Option(help="List this split only.")] = None,
    output: Annotated[Path, typer.Option(help="JSON lines to write ('-': standard output).")] = Path("-"),
) -> None:
    """Write every sample's id with its phrase and image (JSON lines), so predictions can be keyed by the id that
    `score` joins on."""
    from medground_eval.datasets import get_loader
    from medground_eval.outputs import atomic_write_text

    try:
        samples = get_loader(dataset)(annotations, split=split).samples
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    atomic_write_text(str(output), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in id_records(samples)))
    if str(output) != "-":
        typer.echo(f"wrote {len(samples)} ids to {output}", err=True)
